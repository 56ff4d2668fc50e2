//! The optional evapi feed: Kamailio's evapi module relays JSON events that the routing
//! script writes (see the README's snippet) to the provider over TCP, as netstrings. It tells
//! what RFC 4235 dialog-info cannot: who holds and resumes a call (an in-dialog re-INVITE or
//! UPDATE whose SDP is `sendonly`/`inactive`, or `sendrecv` again), and who transferred
//! whom (an in-dialog REFER's Refer-To and Referred-By).
//!
//! The feed only adds to the dialog-info path and never replaces it: a feed that is absent,
//! lost or sends garbage leaves the calls as dialog-info shows them. Frames that are not
//! netstrings, too large, or not one of the events below are logged and skipped, and the
//! connection stays up; a lost connection is made again with the shared back-off.
//!
//! Events (one JSON object per netstring; other `event`s are ignored, other fields too):
//! - `{"event":"hold","call_id":..,"by":"<From URI of the request>"}`, likewise `"resume"`;
//! - `{"event":"refer","call_id":..,"from":..,"to":..,"refer_to":..,"referred_by":..}`
//!   (`referred_by` optional: the REFER's From stands in).

use std::time::Duration;

use serde_json::Value;
use tapir_provider::backoff::Backoff;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

use crate::config::EvapiEndpoint;
use crate::dialog_info::uri_user;

/// The largest event payload taken; the script's events are a few hundred bytes, so a
/// larger frame is someone else's (or garbage) and is skipped without being buffered.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// The longest length prefix read: ten digits exceed any frame taken anyway.
const MAX_LENGTH_DIGITS: usize = 10;

/// How many skipped frames one connection logs as warnings; after that only at debug level,
/// so a peer that sends garbage cannot flood the log.
const SKIPS_WARNED_PER_LINK: u32 = 10;

/// A connection that lasted this long counts as working: the back-off starts again.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// Why a frame was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is larger than {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("not a netstring: {0}")]
    Malformed(&'static str),
}

/// What the reader takes out of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Payload(Vec<u8>),
    /// A frame left out; the reader has found (or is looking for) the next one.
    Skipped(FrameError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// At the start of a frame (its length prefix).
    Header,
    /// Inside an oversized frame: this many bytes, its trailing `,` included, are dropped
    /// as they arrive.
    Skipping { left: u64 },
    /// After a framing error: everything up to the next `,` is dropped (events end with
    /// one, so the next frame starts after it).
    Resync,
}

/// A netstring reader (`<length>:<payload>,`) without I/O: bytes go in with
/// [`NetstringReader::push`], frames come out of [`NetstringReader::next_frame`]. It never
/// holds more than one frame of at most `max` bytes plus what one push added, whatever the
/// peer sends.
#[derive(Debug)]
pub struct NetstringReader {
    buf: Vec<u8>,
    max: usize,
    state: ReadState,
}

impl NetstringReader {
    pub fn new(max: usize) -> NetstringReader {
        NetstringReader {
            buf: Vec::new(),
            max,
            state: ReadState::Header,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.state {
                ReadState::Skipping { left } => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let available = self.buf.len();
                    let take = usize::try_from(left).map_or(available, |l| l.min(available));
                    let ends_frame = take as u64 == left;
                    let trailer_ok = !ends_frame || self.buf[take - 1] == b',';
                    self.buf.drain(..take);
                    self.state = match (ends_frame, trailer_ok) {
                        (false, _) => ReadState::Skipping {
                            left: left - take as u64,
                        },
                        (true, true) => ReadState::Header,
                        (true, false) => ReadState::Resync,
                    };
                    if !ends_frame {
                        return None;
                    }
                }
                ReadState::Resync => match self.buf.iter().position(|b| *b == b',') {
                    Some(comma) => {
                        self.buf.drain(..=comma);
                        self.state = ReadState::Header;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                },
                ReadState::Header => return self.read_frame(),
            }
        }
    }

    /// Reads one frame at the start of the buffer (after whitespace between frames).
    fn read_frame(&mut self) -> Option<Frame> {
        let Some(start) = self.buf.iter().position(|b| !b.is_ascii_whitespace()) else {
            self.buf.clear();
            return None;
        };
        self.buf.drain(..start);
        let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_LENGTH_DIGITS {
            return Some(self.malformed("length prefix too long"));
        }
        if digits == self.buf.len() {
            return None;
        }
        if digits == 0 {
            return Some(self.malformed("no length prefix"));
        }
        if self.buf[digits] != b':' {
            return Some(self.malformed("length not followed by `:`"));
        }
        let len = self.buf[..digits]
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        let fits = usize::try_from(len).is_ok_and(|l| l <= self.max);
        if !fits {
            self.buf.drain(..=digits);
            self.state = ReadState::Skipping { left: len + 1 };
            return Some(Frame::Skipped(FrameError::TooLarge { len, max: self.max }));
        }
        let start = digits + 1;
        let end = start + len as usize;
        if self.buf.len() <= end {
            return None;
        }
        if self.buf[end] != b',' {
            self.buf.drain(..start);
            return Some(self.malformed("payload not followed by `,`"));
        }
        let payload = self.buf[start..end].to_vec();
        self.buf.drain(..=end);
        Some(Frame::Payload(payload))
    }

    fn malformed(&mut self, reason: &'static str) -> Frame {
        self.state = ReadState::Resync;
        Frame::Skipped(FrameError::Malformed(reason))
    }
}

/// An event of the feed, with SIP users (the user parts of the URIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// `by` held (`on_hold`) or resumed the dialog `call_id`.
    Hold {
        call_id: String,
        by: String,
        on_hold: bool,
    },
    /// `transferor` asked `transferee` (in the dialog `call_id`) to call `target`.
    Transfer {
        call_id: String,
        transferor: String,
        transferee: String,
        target: String,
    },
}

/// Why an event was skipped.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("not a JSON object with a string `event`")]
    NoEvent,
    #[error("`{event}` event without a usable `{field}`")]
    Field {
        event: &'static str,
        field: &'static str,
    },
}

/// Reads one event; `Ok(None)` for an event the provider does not use.
pub fn parse_event(payload: &[u8]) -> Result<Option<FeedEvent>, EventError> {
    let value: Value = serde_json::from_slice(payload)?;
    let event = value
        .get("event")
        .and_then(Value::as_str)
        .ok_or(EventError::NoEvent)?;
    match event {
        "hold" => parse_hold(&value, "hold", true).map(Some),
        "resume" => parse_hold(&value, "resume", false).map(Some),
        "refer" => parse_refer(&value).map(Some),
        _ => Ok(None),
    }
}

fn parse_hold(value: &Value, event: &'static str, on_hold: bool) -> Result<FeedEvent, EventError> {
    Ok(FeedEvent::Hold {
        call_id: text(value, event, "call_id")?,
        by: user(value, event, "by")?,
        on_hold,
    })
}

fn parse_refer(value: &Value) -> Result<FeedEvent, EventError> {
    const EVENT: &str = "refer";
    let transferor = match user(value, EVENT, "referred_by") {
        Ok(user) => user,
        Err(_) => user(value, EVENT, "from")?,
    };
    Ok(FeedEvent::Transfer {
        call_id: text(value, EVENT, "call_id")?,
        transferor,
        transferee: user(value, EVENT, "to")?,
        target: user(value, EVENT, "refer_to")?,
    })
}

/// A non-empty string field.
fn text(value: &Value, event: &'static str, field: &'static str) -> Result<String, EventError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(EventError::Field { event, field })
}

/// The user part of a URI field.
fn user(value: &Value, event: &'static str, field: &'static str) -> Result<String, EventError> {
    text(value, event, field)
        .ok()
        .and_then(|uri| uri_user(&uri))
        .ok_or(EventError::Field { event, field })
}

/// Where the feed connects and how it retries.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub endpoint: EvapiEndpoint,
    pub connect_timeout: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// How one connection ended.
enum LinkEnd {
    /// Shutdown, or the owner loop is gone: the feed stops.
    Stop,
    Lost {
        reason: String,
        worked: bool,
    },
}

/// Keeps a connection to evapi until `stop`, sending every usable event to `events`.
pub async fn run(settings: FeedSettings, events: mpsc::Sender<FeedEvent>, stop: CancellationToken) {
    let address = settings.endpoint.address();
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max);
    // Said once per outage, not per attempt.
    let mut outage_reported = false;
    loop {
        let attempt = tokio::select! {
            () = stop.cancelled() => return,
            attempt = connect(&address, settings.connect_timeout) => attempt,
        };
        match attempt {
            Ok(stream) => {
                tracing::info!(%address, "evapi feed connected: hold and transfers are followed");
                outage_reported = false;
                match read_link(stream, &events, &stop).await {
                    LinkEnd::Stop => return,
                    LinkEnd::Lost { reason, worked } => {
                        tracing::warn!(%address, %reason,
                            "evapi feed lost; calls follow dialog-info only until it is back");
                        if worked {
                            backoff.reset();
                        }
                    }
                }
            }
            Err(reason) if !outage_reported => {
                outage_reported = true;
                tracing::warn!(%address, %reason,
                    "evapi feed unavailable; calls follow dialog-info only, retrying");
            }
            Err(reason) => tracing::debug!(%address, %reason, "evapi feed still unavailable"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = sleep(backoff.next_delay()) => {}
        }
    }
}

async fn connect(address: &str, limit: Duration) -> Result<TcpStream, String> {
    let address: std::net::SocketAddr = address.parse().map_err(|e| format!("{e}"))?;
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    // A Kamailio host that vanishes without closing the connection is noticed eventually.
    socket.set_keepalive(true).map_err(|e| e.to_string())?;
    match timeout(limit, socket.connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no connection within {limit:?}")),
    }
}

/// Reads one connection until it ends, sending its events.
async fn read_link(
    mut stream: TcpStream,
    events: &mpsc::Sender<FeedEvent>,
    stop: &CancellationToken,
) -> LinkEnd {
    let opened = Instant::now();
    let mut reader = NetstringReader::new(MAX_EVENT_BYTES);
    let mut chunk = vec![0u8; 8 * 1024];
    let mut skipped = 0u32;
    let mut delivered = false;
    loop {
        let read = tokio::select! {
            () = stop.cancelled() => return LinkEnd::Stop,
            read = stream.read(&mut chunk) => read,
        };
        let reason = match read {
            Ok(0) => "closed by Kamailio".to_owned(),
            Ok(n) => {
                reader.push(&chunk[..n]);
                while let Some(frame) = reader.next_frame() {
                    let Some(event) = usable_event(frame, &mut skipped) else {
                        continue;
                    };
                    delivered = true;
                    if events.send(event).await.is_err() {
                        return LinkEnd::Stop;
                    }
                }
                continue;
            }
            Err(error) => error.to_string(),
        };
        let worked = delivered || opened.elapsed() >= STABLE_LINK;
        return LinkEnd::Lost { reason, worked };
    }
}

/// The event in a frame, or `None` (logged) for a frame that is skipped or ignored.
fn usable_event(frame: Frame, skipped: &mut u32) -> Option<FeedEvent> {
    let problem = match frame {
        Frame::Skipped(error) => error.to_string(),
        Frame::Payload(payload) => match parse_event(&payload) {
            Ok(Some(event)) => {
                tracing::debug!(?event, "evapi event");
                return Some(event);
            }
            Ok(None) => {
                tracing::trace!(payload = %String::from_utf8_lossy(&payload), "evapi event not used");
                return None;
            }
            Err(error) => format!(
                "{error}: {}",
                String::from_utf8_lossy(&payload[..payload.len().min(256)])
            ),
        },
    };
    *skipped += 1;
    if *skipped <= SKIPS_WARNED_PER_LINK {
        tracing::warn!(%problem, "evapi frame skipped");
    } else {
        tracing::debug!(%problem, "evapi frame skipped");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(reader: &mut NetstringReader, bytes: &[u8]) -> Vec<Frame> {
        reader.push(bytes);
        std::iter::from_fn(|| reader.next_frame()).collect()
    }

    fn payload(text: &str) -> Frame {
        Frame::Payload(text.as_bytes().to_vec())
    }

    #[test]
    fn netstrings_are_read_whole_from_any_split() {
        let stream = b"5:hello,0:,\n3:abc,";
        for split in 0..stream.len() {
            let mut reader = NetstringReader::new(16);
            let mut got = frames(&mut reader, &stream[..split]);
            got.extend(frames(&mut reader, &stream[split..]));
            assert_eq!(
                got,
                [payload("hello"), payload(""), payload("abc")],
                "split {split}"
            );
        }
    }

    #[test]
    fn an_oversized_frame_is_skipped_without_buffering_and_the_next_one_read() {
        let mut reader = NetstringReader::new(8);
        let big = format!("20:{},", "x".repeat(20));
        let got = frames(&mut reader, &big.as_bytes()[..10]);
        assert_eq!(
            got,
            [Frame::Skipped(FrameError::TooLarge { len: 20, max: 8 })]
        );
        assert!(reader.buf.is_empty(), "the oversized payload is not kept");
        let mut rest = big.as_bytes()[10..].to_vec();
        rest.extend_from_slice(b"2:ok,");
        assert_eq!(frames(&mut reader, &rest), [payload("ok")]);
        // A length beyond any number the reader could hold.
        let mut reader = NetstringReader::new(8);
        let got = frames(&mut reader, b"99999999999999999999:");
        assert_eq!(
            got,
            [Frame::Skipped(FrameError::Malformed(
                "length prefix too long"
            ))]
        );
    }

    #[test]
    fn garbage_is_skipped_up_to_the_next_frame() {
        let mut reader = NetstringReader::new(64);
        let got = frames(
            &mut reader,
            b"GET / HTTP/1.1\r\n,4:good,x:bad,3:abcd,2:ok,\x00\xff",
        );
        assert_eq!(
            got,
            [
                Frame::Skipped(FrameError::Malformed("no length prefix")),
                payload("good"),
                Frame::Skipped(FrameError::Malformed("no length prefix")),
                Frame::Skipped(FrameError::Malformed("payload not followed by `,`")),
                payload("ok"),
                Frame::Skipped(FrameError::Malformed("no length prefix")),
            ]
        );
        // Garbage without any `,` is dropped as it comes, never piled up.
        for _ in 0..100 {
            assert!(frames(&mut reader, &[b'z'; 1000]).is_empty());
            assert!(reader.buf.len() <= 1000);
        }
        assert_eq!(frames(&mut reader, b",2:ok,"), [payload("ok")]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded() {
        // A cheap deterministic stand-in for the fuzzer: every byte value, in odd chunks.
        let mut state = 0x2545_f491_u32;
        let mut reader = NetstringReader::new(32);
        for round in 0..2000 {
            let len = (round % 37) + 1;
            let chunk: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    [b'1', b'9', b':', b',', b'x', (state >> 24) as u8][(state % 6) as usize]
                })
                .collect();
            reader.push(&chunk);
            while let Some(frame) = reader.next_frame() {
                if let Frame::Payload(payload) = frame {
                    assert!(payload.len() <= 32);
                }
            }
            assert!(reader.buf.len() <= 32 + MAX_LENGTH_DIGITS + 2 + 37);
        }
    }

    #[test]
    fn hold_resume_and_refer_events_are_read() {
        let hold = br#"{"event":"hold","call_id":"abc@h","from_tag":"1","to_tag":"2","by":"sip:201@127.0.0.1"}"#;
        assert_eq!(
            parse_event(hold).unwrap(),
            Some(FeedEvent::Hold {
                call_id: "abc@h".into(),
                by: "201".into(),
                on_hold: true
            })
        );
        let resume =
            br#"{"event":"resume","call_id":"abc@h","by":"sip:202@127.0.0.1;transport=udp"}"#;
        assert!(matches!(
            parse_event(resume).unwrap(),
            Some(FeedEvent::Hold { on_hold: false, by, .. }) if by == "202"
        ));
        let refer = br#"{"event":"refer","call_id":"c","from":"sip:201@h","to":"sip:202@h",
            "refer_to":"sip:203@127.0.0.1?Replaces=x%40y","referred_by":"<sip:201@h>"}"#;
        assert_eq!(
            parse_event(refer).unwrap(),
            Some(FeedEvent::Transfer {
                call_id: "c".into(),
                transferor: "201".into(),
                transferee: "202".into(),
                target: "203".into()
            })
        );
        // Without (or with Kamailio's `<null>` for) Referred-By the REFER's From stands in.
        let refer = br#"{"event":"refer","call_id":"c","from":"sip:201@h","to":"sip:202@h","refer_to":"sip:203@h","referred_by":"<null>"}"#;
        assert!(matches!(
            parse_event(refer).unwrap(),
            Some(FeedEvent::Transfer { transferor, .. }) if transferor == "201"
        ));
    }

    #[test]
    fn other_and_broken_events_are_told_apart() {
        assert!(matches!(
            parse_event(br#"{"event":"dialog-start"}"#),
            Ok(None)
        ));
        assert!(matches!(
            parse_event(b"{\"event\":"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(parse_event(b"[1,2]"), Err(EventError::NoEvent)));
        assert!(matches!(
            parse_event(br#"{"event":"hold","call_id":"c","by":"127.0.0.1"}"#),
            Err(EventError::Field { field: "by", .. })
        ));
        assert!(matches!(
            parse_event(br#"{"event":"refer","call_id":"c","from":"sip:1@h","to":"sip:2@h"}"#),
            Err(EventError::Field {
                field: "refer_to",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn the_link_survives_garbage_and_oversized_frames() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mut rx) = mpsc::channel(8);
        let stop = CancellationToken::new();
        let settings = FeedSettings {
            endpoint: EvapiEndpoint {
                host: "127.0.0.1".into(),
                port,
            },
            connect_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(10),
            retry_max: Duration::from_millis(50),
        };
        let feed = tokio::spawn(run(settings, tx, stop.clone()));
        let (mut kamailio, _) = listener.accept().await.unwrap();
        let oversized = format!(
            "{}:{},",
            MAX_EVENT_BYTES + 1,
            "x".repeat(MAX_EVENT_BYTES + 1)
        );
        let hold = r#"{"event":"hold","call_id":"c1","by":"sip:201@h"}"#;
        let wire = format!("junk,{oversized}9:not json,{}:{hold},", hold.len());
        kamailio.write_all(wire.as_bytes()).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the event after the garbage")
            .unwrap();
        assert!(matches!(event, FeedEvent::Hold { on_hold: true, .. }));
        // Kamailio restarts: the feed connects again.
        drop(kamailio);
        let (mut kamailio, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
            .await
            .expect("a new connection")
            .unwrap();
        let resume = r#"{"event":"resume","call_id":"c1","by":"sip:201@h"}"#;
        kamailio
            .write_all(format!("{}:{resume},", resume.len()).as_bytes())
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the event on the new connection")
            .unwrap();
        assert!(matches!(event, FeedEvent::Hold { on_hold: false, .. }));
        stop.cancel();
        feed.await.unwrap();
    }
}
