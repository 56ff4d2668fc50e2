//! AMI framing: bytes to [`Frame`]s and [`Action`]s to bytes.
//!
//! An AMI message is a block of `Key: Value` lines closed by an empty line. Lines end with
//! CRLF; a bare LF is accepted too. The first line of a connection is the banner
//! `Asterisk Call Manager/x.y.z`, a single line without the closing empty line.
//!
//! Decoding is two steps, as in mini-redis: [`check`] finds where the next frame ends without
//! allocating (a short read is [`Check::Incomplete`], not an error), then [`parse`] builds it.
//! A message with a line that is not a header is returned as [`Frame::Garbage`] so that the
//! connection can log and skip it; a message larger than the limit is a fatal
//! [`CodecError::Oversized`], because nothing after it can be trusted.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::message::{Action, Message};

/// The largest AMI message accepted by default (the biggest seen in practice is a few KiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// What starts the banner line.
const BANNER_PREFIX: &str = "Asterisk Call Manager/";

/// One unit read from the AMI stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The greeting, with the AMI protocol version (`11.0.0` on Asterisk 22).
    Banner(String),
    Message(Message),
    /// A message that could not be parsed; it has been consumed.
    Garbage(ParseError),
}

/// Why a message was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line} is not a `Key: Value` header: {text:?}")]
    NotAHeader { line: usize, text: String },
    #[error("the message is not UTF-8")]
    NotUtf8,
}

/// A failure that ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("an AMI message exceeds {limit} bytes")]
    Oversized { limit: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where the next frame ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// More bytes are needed.
    Incomplete,
    /// A frame occupies the first `len` bytes (terminator included).
    Complete { len: usize },
}

/// Finds the end of the next frame in `buf`: the banner line, or a message and its empty
/// line. Blank lines before a message are part of its frame and ignored by [`parse`].
pub fn check(buf: &[u8], max: usize) -> Result<Check, CodecError> {
    let mut start = 0;
    let mut content_seen = false;
    while let Some(offset) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + offset + 1;
        let line = trim_line(&buf[start..end]);
        if !content_seen && line.starts_with(BANNER_PREFIX.as_bytes()) {
            return complete(end, max);
        }
        if line.is_empty() {
            if content_seen {
                return complete(end, max);
            }
        } else {
            content_seen = true;
        }
        start = end;
    }
    if buf.len() > max {
        return Err(CodecError::Oversized { limit: max });
    }
    Ok(Check::Incomplete)
}

fn complete(len: usize, max: usize) -> Result<Check, CodecError> {
    if len > max {
        return Err(CodecError::Oversized { limit: max });
    }
    Ok(Check::Complete { len })
}

/// Builds the frame that [`check`] found in `bytes`.
pub fn parse(bytes: &[u8]) -> Frame {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Frame::Garbage(ParseError::NotUtf8);
    };
    let mut headers = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if headers.is_empty()
            && let Some(version) = line.strip_prefix(BANNER_PREFIX)
        {
            return Frame::Banner(version.trim().to_string());
        }
        match line.split_once(':') {
            Some((key, value)) if !key.is_empty() && !key.contains(' ') => {
                headers.push((key.to_string(), value.trim().to_string()));
            }
            _ => {
                return Frame::Garbage(ParseError::NotAHeader {
                    line: index + 1,
                    text: line.chars().take(80).collect(),
                });
            }
        }
    }
    Frame::Message(Message::new(headers))
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The AMI codec for `tokio_util`'s `Framed`.
#[derive(Debug, Clone)]
pub struct AmiCodec {
    max: usize,
}

impl AmiCodec {
    pub fn new(max: usize) -> AmiCodec {
        AmiCodec { max }
    }
}

impl Default for AmiCodec {
    fn default() -> AmiCodec {
        AmiCodec::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Decoder for AmiCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match check(src, self.max)? {
            Check::Incomplete => Ok(None),
            Check::Complete { len } => {
                let frame = parse(&src[..len]);
                src.advance(len);
                Ok(Some(frame))
            }
        }
    }
}

impl Encoder<Action> for AmiCodec {
    type Error = CodecError;

    fn encode(&mut self, action: Action, dst: &mut BytesMut) -> Result<(), CodecError> {
        action.write_to(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut AmiCodec, buf: &mut BytesMut) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(buf).unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn banner_then_message_with_crlf() {
        let mut codec = AmiCodec::default();
        let mut buf = BytesMut::from(
            "Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n",
        );
        let frames = decode_all(&mut codec, &mut buf);
        assert_eq!(frames[0], Frame::Banner("11.0.0".into()));
        let Frame::Message(message) = &frames[1] else {
            panic!("{frames:?}");
        };
        assert_eq!(message.get("response"), Some("Success"));
        assert_eq!(message.get("ActionID"), Some("a1"));
        assert!(buf.is_empty());
    }

    #[test]
    fn bare_lf_and_empty_values_are_accepted() {
        let mut codec = AmiCodec::default();
        let mut buf = BytesMut::from("Event: Newchannel\nAccountCode: \nExten:\n\n");
        let frames = decode_all(&mut codec, &mut buf);
        let Frame::Message(message) = &frames[0] else {
            panic!("{frames:?}");
        };
        assert_eq!(message.get("AccountCode"), Some(""));
        assert_eq!(message.get("Exten"), Some(""));
    }

    #[test]
    fn fragmented_input_waits_for_the_empty_line() {
        let mut codec = AmiCodec::default();
        let whole = b"Event: Hangup\r\nCause: 16\r\n\r\nEvent: Ping\r\n\r\n";
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for byte in whole {
            buf.extend_from_slice(&[*byte]);
            frames.extend(decode_all(&mut codec, &mut buf));
        }
        assert_eq!(frames.len(), 2);
        let Frame::Message(first) = &frames[0] else {
            panic!("{frames:?}");
        };
        assert_eq!(first.get("Cause"), Some("16"));
    }

    #[test]
    fn oversized_message_is_a_typed_error() {
        let mut codec = AmiCodec::new(64);
        let mut buf = BytesMut::from(format!("Event: X\r\nData: {}\r\n", "x".repeat(100)).as_str());
        let error = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(error, CodecError::Oversized { limit: 64 }),
            "{error}"
        );
        let mut complete = BytesMut::from(format!("Data: {}\r\n\r\n", "x".repeat(100)).as_str());
        assert!(AmiCodec::new(64).decode(&mut complete).is_err());
    }

    #[test]
    fn a_garbage_line_skips_only_its_message() {
        let mut codec = AmiCodec::default();
        let mut buf = BytesMut::from("Event: X\r\nthis is not a header\r\n\r\nEvent: Y\r\n\r\n");
        let frames = decode_all(&mut codec, &mut buf);
        assert!(matches!(
            &frames[0],
            Frame::Garbage(ParseError::NotAHeader { line: 2, .. })
        ));
        let Frame::Message(next) = &frames[1] else {
            panic!("{frames:?}");
        };
        assert_eq!(next.get("Event"), Some("Y"));
    }

    #[test]
    fn invalid_utf8_is_garbage() {
        let mut codec = AmiCodec::default();
        let mut buf = BytesMut::from(&b"Event: \xff\xfe\r\n\r\n"[..]);
        let frames = decode_all(&mut codec, &mut buf);
        assert_eq!(frames, [Frame::Garbage(ParseError::NotUtf8)]);
    }

    #[test]
    fn a_banner_mid_stream_is_recognised() {
        let mut codec = AmiCodec::default();
        let mut buf = BytesMut::from("Event: A\r\n\r\nAsterisk Call Manager/11.0.0\r\n");
        let frames = decode_all(&mut codec, &mut buf);
        assert_eq!(frames[1], Frame::Banner("11.0.0".into()));
    }

    #[test]
    fn actions_are_encoded_with_crlf_and_a_closing_empty_line() {
        let mut codec = AmiCodec::default();
        let mut out = BytesMut::new();
        let action = Action::new("Ping", "t1");
        codec.encode(action, &mut out).unwrap();
        assert_eq!(&out[..], b"Action: Ping\r\nActionID: t1\r\n\r\n");
    }
}
