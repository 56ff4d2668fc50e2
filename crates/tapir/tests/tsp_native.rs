//! The Windows provider's logic (`tapir-tsp`, built natively) against a live `tapir serve`
//! with the simulated PBX: the same rules the Wine harness checks through the DLL, but
//! without Wine, so a failure points at the provider rather than the ABI. A recorder plays
//! TAPISRV's callbacks.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tapir_tsp::config::{Credentials, Mode, TspConfig};
use tapir_tsp::devices::{CallHandle, DeviceId, LineErr, OpenLine};
use tapir_tsp::engine::{Tapisrv, test_connection};
use tapir_tsp::provider::Provider;
use tapir_tsp::structs::PlaceBuffer;

use common::{PATIENCE, Server, calls, lines, request_as};

// TAPI's values (tapi.h), spelled out so the test does not share the provider's constants.
const LINE_CALLSTATE: u32 = 2;
const LINE_LINEDEVSTATE: u32 = 8;
const LINECALLSTATE_IDLE: usize = 0x1;
const LINECALLSTATE_OFFERING: usize = 0x2;
const LINECALLSTATE_CONNECTED: usize = 0x100;
const LINEDEVSTATE_INSERVICE: usize = 0x40;
const LINEDEVSTATE_OUTOFSERVICE: usize = 0x80;
const LINECALLFEATURE_DROP: u32 = 0x80;

/// One callback as TAPISRV would have received it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Completion(u32, LineErr),
    NewCall {
        tapi_line: usize,
        call: CallHandle,
    },
    Event {
        tapi_line: usize,
        tapi_call: usize,
        message: u32,
        params: [usize; 3],
    },
    Create(usize),
    Remove(DeviceId),
    /// The provider handed out a new call's handle (TAPISRV's out-parameter).
    Published(CallHandle),
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    changed: Condvar,
}

/// TAPISRV's handle for a new call: recognisable in the events that follow.
fn tapi_handle(call: CallHandle) -> usize {
    0x7000 + call
}

impl Recorder {
    fn push(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
        self.changed.notify_all();
    }

    /// Waits for a callback after position `from` that `matches`; returns it and its position.
    fn wait(&self, from: usize, what: &str, matches: impl Fn(&Seen) -> bool) -> (usize, Seen) {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = self.seen.lock().unwrap();
        loop {
            if let Some(found) = seen.iter().skip(from).position(&matches) {
                return (from + found, seen[from + found].clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} after #{from}; seen: {seen:#?}");
            seen = self.changed.wait_timeout(seen, left).unwrap().0;
        }
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Tapisrv for Recorder {
    fn completion(&self, request: u32, result: LineErr) {
        self.push(Seen::Completion(request, result));
    }
    fn line_event(&self, line: OpenLine, tapi_call: usize, message: u32, params: [usize; 3]) {
        self.push(Seen::Event {
            tapi_line: line.tapi_line,
            tapi_call,
            message,
            params,
        });
    }
    fn new_call(&self, line: OpenLine, call: CallHandle) -> usize {
        self.push(Seen::NewCall {
            tapi_line: line.tapi_line,
            call,
        });
        tapi_handle(call)
    }
    fn line_create(&self, temp_id: usize) {
        self.push(Seen::Create(temp_id));
    }
    fn line_remove(&self, device: DeviceId) {
        self.push(Seen::Remove(device));
    }
}

fn call_state(tapi_call: usize, state: usize) -> impl Fn(&Seen) -> bool {
    move |seen| {
        matches!(seen, Seen::Event { tapi_call: c, message: LINE_CALLSTATE, params, .. }
            if *c == tapi_call && params[0] == state)
    }
}

fn line_state(tapi_line: usize, state: usize) -> impl Fn(&Seen) -> bool {
    move |seen| {
        matches!(seen, Seen::Event { tapi_line: l, message: LINE_LINEDEVSTATE, params, .. }
            if *l == tapi_line && params[0] == state)
    }
}

async fn application_token(server: &Server) -> String {
    let (status, issued) = request_as(
        &server.token,
        Method::POST,
        &server.api("/tokens"),
        Some(json!({"label": "tsp"})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    issued["token"].as_str().unwrap().to_owned()
}

fn config(server: &Server, credentials: Credentials) -> TspConfig {
    TspConfig {
        server: server.url.replacen("http", "ws", 1),
        credentials,
        ca_file: None,
        mode: Mode::All,
        log_level: "info".into(),
        log_dir: None,
        startup_wait_ms: 5000,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_provider_follows_and_controls_calls_and_survives_a_server_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), None);
    let listen = server.listen_address().to_owned();
    let token = application_token(&server).await;
    let mut all = lines(&server).await;
    all.sort_by_key(|l| l.id);
    let device_of =
        |extension: &str| all.iter().position(|l| l.address == extension).unwrap() as u32;
    let line_201 = all[device_of("201") as usize].id;

    let recorder = Arc::new(Recorder::default());
    let provider = tokio::task::block_in_place(|| {
        let provider = Provider::start(
            config(&server, Credentials::Token(token.clone())),
            recorder.clone(),
        )
        .unwrap();
        assert_eq!(provider.enumerate(), all.len() as u32);
        provider
    });
    provider.init(0);
    let open_201 = OpenLine {
        tapi_line: 0x201,
        event_proc: 1,
    };
    let open_202 = OpenLine {
        tapi_line: 0x202,
        event_proc: 1,
    };
    assert_eq!(provider.open(device_of("201"), open_201), Ok(line_201));
    let line_202 = provider.open(device_of("202"), open_202).unwrap();

    // 201 calls 202: the completion, then 201's own call; 202 hears of it with LINE_NEWCALL.
    let made = provider
        .make_call(1, line_201, 0xA1, Some("202".into()), &|handle| {
            recorder.push(Seen::Published(handle))
        })
        .unwrap();
    let (published, _) = recorder.wait(0, "the handle", |s| *s == Seen::Published(made));
    let (done, _) = recorder.wait(0, "make call completion", |s| *s == Seen::Completion(1, 0));
    assert!(published < done, "the handle is out before the completion");
    let (state, _) = recorder.wait(0, "201's first state", |s| {
        matches!(
            s,
            Seen::Event {
                tapi_call: 0xA1,
                message: LINE_CALLSTATE,
                ..
            }
        )
    });
    assert!(
        done < state,
        "no event for a made call before its completion"
    );
    let (new_call, seen) = recorder.wait(0, "202's new call", |s| {
        matches!(
            s,
            Seen::NewCall {
                tapi_line: 0x202,
                ..
            }
        )
    });
    let Seen::NewCall { call: ringing, .. } = seen else {
        unreachable!()
    };
    let (offering, _) = recorder.wait(
        0,
        "202 offering",
        call_state(tapi_handle(ringing), LINECALLSTATE_OFFERING),
    );
    assert!(new_call < offering, "LINE_NEWCALL comes first");
    assert_eq!(party(&provider, ringing, CALLER_ID), "201");

    // 202 answers; both connected; the status offers drop.
    assert_eq!(provider.answer(2, ringing), Ok(2));
    recorder.wait(0, "answer completion", |s| *s == Seen::Completion(2, 0));
    recorder.wait(
        0,
        "202 connected",
        call_state(tapi_handle(ringing), LINECALLSTATE_CONNECTED),
    );
    recorder.wait(
        0,
        "201 connected",
        call_state(0xA1, LINECALLSTATE_CONNECTED),
    );
    let mut status = vec![0u8; 256];
    status[..4].copy_from_slice(&256u32.to_le_bytes());
    provider.call_status(made, &mut status).unwrap();
    let features = u32::from_le_bytes(status[24..28].try_into().unwrap());
    assert_ne!(features & LINECALLFEATURE_DROP, 0, "features {features:#x}");

    // A command on a line that is not open is refused at once, not completed later.
    assert!(
        provider
            .make_call(3, line_202 + 1000, 0xA3, Some("201".into()), &|_| ())
            .is_err()
    );

    // tapir restarts mid-call: out of service, then in service with the call gone.
    let before_stop = recorder.len();
    tokio::task::block_in_place(|| server.stop());
    recorder.wait(
        before_stop,
        "201 out of service",
        line_state(0x201, LINEDEVSTATE_OUTOFSERVICE),
    );
    recorder.wait(
        before_stop,
        "202 out of service",
        line_state(0x202, LINEDEVSTATE_OUTOFSERVICE),
    );
    assert!(
        provider.hold(4, made).is_err(),
        "a command while the server is away fails at once"
    );
    let server = Server::start_on(data.path(), None, &listen);
    recorder.wait(
        before_stop,
        "201 back in service",
        line_state(0x201, LINEDEVSTATE_INSERVICE),
    );
    recorder.wait(
        before_stop,
        "201's call ended",
        call_state(0xA1, LINECALLSTATE_IDLE),
    );
    recorder.wait(
        before_stop,
        "202's call ended",
        call_state(tapi_handle(ringing), LINECALLSTATE_IDLE),
    );
    provider.close_call(made).unwrap();
    provider.close_call(ringing).unwrap();

    // Calls work again on the new server.
    let after = recorder.len();
    provider
        .make_call(5, line_201, 0xA5, Some("203".into()), &|_| ())
        .unwrap();
    recorder.wait(after, "make call after the restart", |s| {
        *s == Seen::Completion(5, 0)
    });
    let phantom = recorder.seen.lock().unwrap().iter().skip(after).any(|s| {
        matches!(
            s,
            Seen::NewCall {
                tapi_line: 0x201,
                ..
            }
        )
    });
    assert!(!phantom, "no phantom call announced after the restart");
    provider.close(line_201).unwrap();
    provider.close(line_202).unwrap();
    tokio::task::block_in_place(|| provider.shutdown());
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn test_connection_reports_lines_and_names_a_bad_password() {
    let server = Server::start();
    let (status, body) = request_as(
        &server.token,
        Method::PUT,
        &server.api("/users/admin/password"),
        Some(json!({"password": "correct horse"})),
    )
    .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let good = config(
        &server,
        Credentials::Password {
            user: "admin".into(),
            password: "correct horse".into(),
        },
    );
    let report = tokio::task::block_in_place(|| test_connection(&good)).unwrap();
    assert_eq!((report.lines, report.lines_in_service), (20, 20));
    assert!(report.to_string().contains("sim (sim): up"), "{report}");
    let bad = config(
        &server,
        Credentials::Password {
            user: "admin".into(),
            password: "wrong".into(),
        },
    );
    let error = tokio::task::block_in_place(|| test_connection(&bad)).unwrap_err();
    assert!(
        error.contains("login failed") && error.contains("401"),
        "{error}"
    );
    server.stop();
}

/// A TCP relay in front of the server that the test can cut, as a network fault would.
struct Relay {
    address: String,
    cut: tokio::sync::watch::Sender<u32>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (cut, cuts) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Relay { address, cut }
    }

    /// Drops every connection through the relay (new ones are accepted again).
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_network_fault_the_provider_catches_up_and_follows_new_lines() {
    let server = Server::start();
    let token = application_token(&server).await;
    let relay = Relay::start(server.listen_address().to_owned()).await;
    let mut via_relay = config(&server, Credentials::Token(token));
    via_relay.server = format!("ws://{}", relay.address);
    let mut all = lines(&server).await;
    all.sort_by_key(|l| l.id);
    let device_of =
        |extension: &str| all.iter().position(|l| l.address == extension).unwrap() as u32;

    let recorder = Arc::new(Recorder::default());
    let provider = tokio::task::block_in_place(|| {
        let provider = Provider::start(via_relay, recorder.clone()).unwrap();
        assert_eq!(provider.enumerate(), 20);
        provider
    });
    provider.init(0);
    let open_205 = OpenLine {
        tapi_line: 0x205,
        event_proc: 1,
    };
    provider.open(device_of("205"), open_205).unwrap();

    // The link drops; while it is down, 206 calls 205.
    relay.cut();
    recorder.wait(
        0,
        "205 out of service",
        line_state(0x205, LINEDEVSTATE_OUTOFSERVICE),
    );
    let line_206 = all[device_of("206") as usize].id;
    let (status, body) = request_as(
        &server.token,
        Method::POST,
        &server.api(&format!("/lines/{line_206}/calls")),
        Some(json!({"to": "205"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Back (the provider asks to resume from its last sequence number): what happened while
    // the link was down reaches TAPISRV.
    recorder.wait(
        0,
        "205 in service",
        line_state(0x205, LINEDEVSTATE_INSERVICE),
    );
    let (_, seen) = recorder.wait(0, "the call made during the fault", |s| {
        matches!(
            s,
            Seen::NewCall {
                tapi_line: 0x205,
                ..
            }
        )
    });
    let Seen::NewCall { call, .. } = seen else {
        unreachable!()
    };
    recorder.wait(
        0,
        "offering",
        call_state(tapi_handle(call), LINECALLSTATE_OFFERING),
    );
    assert_eq!(party(&provider, call, CALLER_ID), "206");

    // The PBX gains an extension: LINE_CREATE, then TAPISRV numbers it; and loses it again.
    let before = recorder.len();
    let (status, body) = request_as(
        &server.token,
        Method::POST,
        &server.api("/instances/sim/sim"),
        Some(json!({"action": "add_extension", "number": "299", "name": "Lab"})),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    let (_, created) = recorder.wait(before, "LINE_CREATE", |s| matches!(s, Seen::Create(_)));
    let Seen::Create(temp_id) = created else {
        unreachable!()
    };
    provider.create_line_device(temp_id, 40).unwrap();
    let mut caps = vec![0u8; 1024];
    caps[..4].copy_from_slice(&1024u32.to_le_bytes());
    provider.dev_caps(40, 0x0002_0002, &mut caps).unwrap();
    let permanent = u32::from_le_bytes(caps[28..32].try_into().unwrap());
    let new_line = lines(&server)
        .await
        .into_iter()
        .find(|l| l.address == "299")
        .unwrap();
    assert_eq!(
        permanent, new_line.id,
        "dwPermanentLineID is tapir's line id"
    );
    let (status, body) = request_as(
        &server.token,
        Method::POST,
        &server.api("/instances/sim/sim"),
        Some(json!({"action": "remove_extension", "number": "299"})),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    recorder.wait(before, "LINE_REMOVE", |s| *s == Seen::Remove(40));
    tokio::task::block_in_place(|| provider.shutdown());
    server.stop();
}

const LINECALLSTATE_DIALTONE: usize = 0x8;
const LINECALLSTATE_ONHOLD: usize = 0x400;
const LINE_GENERATE: u32 = 7;
const LINEGENERATETERM_DONE: usize = 1;
const LINETRANSFERMODE_TRANSFER: u32 = 1;
const LINEFORWARDMODE_UNCOND: u32 = 1;
const LINEERR_INVALCALLSTATE: i32 = 0x8000_001C_u32 as i32;
/// `dwConnectedIDSize` and `dwConnectedIDOffset` in LINECALLINFO.
const CONNECTED_ID: (usize, usize) = (152, 156);
/// `dwCallerIDSize` and `dwCallerIDOffset`.
const CALLER_ID: (usize, usize) = (112, 116);

/// A number of a call's LINECALLINFO, by its size and offset fields.
fn party(provider: &Provider, call: CallHandle, fields: (usize, usize)) -> String {
    let mut buf = vec![0u8; 2048];
    buf[..4].copy_from_slice(&2048u32.to_le_bytes());
    provider.call_info(call, &mut buf).unwrap();
    text_at(&buf, fields)
}

/// The string of a `VARSTRING` (its size and offset fields are at 16 and 20).
fn var_string_text(buf: &[u8]) -> String {
    text_at(buf, (16, 20))
}

/// The UTF-16 string whose size and offset fields are at `size_at` and `offset_at`.
fn text_at(buf: &[u8], (size_at, offset_at): (usize, usize)) -> String {
    let read = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
    let (size, offset) = (read(size_at), read(offset_at));
    let units: Vec<u16> = buf[offset..offset + size]
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16(&units).unwrap()
}

/// A provider on a fresh server with the lines of `extensions` open; their TAPI line handles
/// are `0x1000 + extension`.
struct Bench {
    server: Server,
    recorder: Arc<Recorder>,
    provider: Provider,
    lines: Vec<(String, u32)>,
}

impl Bench {
    async fn start(extensions: &[&str]) -> Bench {
        let server = Server::start();
        let token = application_token(&server).await;
        let mut all = lines(&server).await;
        all.sort_by_key(|l| l.id);
        let recorder = Arc::new(Recorder::default());
        let provider = tokio::task::block_in_place(|| {
            let provider =
                Provider::start(config(&server, Credentials::Token(token)), recorder.clone())
                    .unwrap();
            provider.enumerate();
            provider
        });
        provider.init(0);
        let mut opened = Vec::new();
        for extension in extensions {
            let device = all.iter().position(|l| l.address == *extension).unwrap() as u32;
            let open = OpenLine {
                tapi_line: Bench::tapi_line(extension),
                event_proc: 1,
            };
            opened.push((extension.to_string(), provider.open(device, open).unwrap()));
        }
        Bench {
            server,
            recorder,
            provider,
            lines: opened,
        }
    }

    fn tapi_line(extension: &str) -> usize {
        0x1000 + extension.parse::<usize>().unwrap()
    }

    fn line(&self, extension: &str) -> u32 {
        self.lines.iter().find(|(e, _)| e == extension).unwrap().1
    }

    /// Waits for request `request` to complete; returns its result.
    fn completed(&self, request: u32) -> LineErr {
        let (_, seen) = self.recorder.wait(
            0,
            &format!("completion of {request}"),
            |s| matches!(s, Seen::Completion(r, _) if *r == request),
        );
        match seen {
            Seen::Completion(_, result) => result,
            _ => unreachable!(),
        }
    }

    /// The call announced on `extension` after position `from`.
    fn announced(&self, from: usize, extension: &str) -> CallHandle {
        let line = Bench::tapi_line(extension);
        let (_, seen) = self.recorder.wait(
            from,
            &format!("a new call on {extension}"),
            |s| matches!(s, Seen::NewCall { tapi_line, .. } if *tapi_line == line),
        );
        match seen {
            Seen::NewCall { call, .. } => call,
            _ => unreachable!(),
        }
    }

    fn reaches(&self, from: usize, tapi_call: usize, state: usize) {
        self.recorder.wait(
            from,
            &format!("{tapi_call:#x} in {state:#x}"),
            call_state(tapi_call, state),
        );
    }

    /// `from` calls `to` and `to` answers: (the caller's handle with TAPI handle `tapi`, the
    /// called side's handle).
    fn connected_call(
        &self,
        request: u32,
        from: &str,
        to: &str,
        tapi: usize,
    ) -> (CallHandle, CallHandle) {
        let mark = self.recorder.len();
        let made = self
            .provider
            .make_call(request, self.line(from), tapi, Some(to.into()), &|_| ())
            .unwrap();
        assert_eq!(self.completed(request), 0);
        let ringing = self.announced(mark, to);
        assert_eq!(self.provider.answer(request + 1, ringing), Ok(request + 1));
        assert_eq!(self.completed(request + 1), 0);
        self.reaches(mark, tapi, LINECALLSTATE_CONNECTED);
        self.reaches(mark, tapi_handle(ringing), LINECALLSTATE_CONNECTED);
        (made, ringing)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_consultation_transfer_and_digits_through_the_provider() {
    let bench = Bench::start(&["201", "202", "203"]).await;
    let (a, b) = bench.connected_call(10, "201", "202", 0xA1);

    // Answering a connected call is refused by the server, with its LINEERR.
    bench.provider.answer(12, b).unwrap();
    assert_eq!(bench.completed(12), LINEERR_INVALCALLSTATE);

    // Hold and back.
    let mark = bench.recorder.len();
    bench.provider.hold(13, a).unwrap();
    assert_eq!(bench.completed(13), 0);
    bench.reaches(mark, 0xA1, LINECALLSTATE_ONHOLD);
    bench.provider.unhold(14, a).unwrap();
    assert_eq!(bench.completed(14), 0);
    bench.reaches(mark, 0xA1, LINECALLSTATE_CONNECTED);

    // DTMF: LINE_GENERATE when done.
    bench.provider.generate_digits(a, 77, "12#".into()).unwrap();
    bench.recorder.wait(mark, "LINE_GENERATE", |s| {
        matches!(s, Seen::Event { message: LINE_GENERATE, params, .. }
            if params[0] == LINEGENERATETERM_DONE && params[1] == 77)
    });

    // 202 transfers 201 to 203 with consultation: lineSetupTransfer gives a call in dial
    // tone, lineDial dials it, 203 answers, lineCompleteTransfer joins 201 and 203.
    let mark = bench.recorder.len();
    let consult = bench.provider.setup_transfer(15, b, 0xC1, &|_| ()).unwrap();
    assert_eq!(bench.completed(15), 0);
    bench.reaches(mark, 0xC1, LINECALLSTATE_DIALTONE);
    bench.provider.dial(16, consult, "203".into()).unwrap();
    assert_eq!(bench.completed(16), 0);
    let at_203 = bench.announced(mark, "203");
    assert_eq!(party(&bench.provider, at_203, CALLER_ID), "202");
    bench.provider.answer(17, at_203).unwrap();
    assert_eq!(bench.completed(17), 0);
    bench.reaches(mark, 0xC1, LINECALLSTATE_CONNECTED);
    bench
        .provider
        .complete_transfer(18, b, consult, 0, LINETRANSFERMODE_TRANSFER, &|_| ())
        .unwrap();
    assert_eq!(bench.completed(18), 0);
    bench.reaches(mark, tapi_handle(b), LINECALLSTATE_IDLE);
    bench.reaches(mark, 0xC1, LINECALLSTATE_IDLE);
    let deadline = Instant::now() + PATIENCE;
    while party(&bench.provider, a, CONNECTED_ID) != "203" {
        assert!(
            Instant::now() < deadline,
            "201 never showed 203 as connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| bench.provider.shutdown());
    bench.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn blind_transfer_pickup_forwarding_and_park_through_the_provider() {
    let bench = Bench::start(&["204", "205", "206", "207"]).await;

    // A call ringing at 205 is picked up at 206 (linePickup names the ringing extension).
    let mark = bench.recorder.len();
    bench
        .provider
        .make_call(20, bench.line("204"), 0xB1, Some("205".into()), &|_| ())
        .unwrap();
    assert_eq!(bench.completed(20), 0);
    bench.announced(mark, "205");
    let picked = bench
        .provider
        .pickup(21, bench.line("206"), 0xB2, Some("205".into()), &|_| ())
        .unwrap();
    assert_eq!(bench.completed(21), 0);
    bench.reaches(mark, 0xB2, LINECALLSTATE_CONNECTED);

    // 206 transfers 204 blind to 207; 206's call ends, 207 rings with 204 calling.
    let mark = bench.recorder.len();
    bench
        .provider
        .blind_transfer(22, picked, "207".into())
        .unwrap();
    assert_eq!(bench.completed(22), 0);
    bench.reaches(mark, 0xB2, LINECALLSTATE_IDLE);
    let at_207 = bench.announced(mark, "207");
    assert_eq!(party(&bench.provider, at_207, CALLER_ID), "204");
    bench.provider.answer(23, at_207).unwrap();
    assert_eq!(bench.completed(23), 0);

    // 207 parks the call at 705; 205 takes it back with lineUnpark.
    let mark = bench.recorder.len();
    bench.provider.park(24, at_207, "705".into()).unwrap();
    assert_eq!(bench.completed(24), 0);
    bench.reaches(mark, tapi_handle(at_207), LINECALLSTATE_IDLE);
    let unparked = bench
        .provider
        .unpark(25, bench.line("205"), 0xB5, "705".into(), &|_| ())
        .unwrap();
    assert_eq!(bench.completed(25), 0);
    bench
        .recorder
        .wait(mark, "the unparked call's first state", |s| {
            matches!(
                s,
                Seen::Event {
                    tapi_call: 0xB5,
                    message: LINE_CALLSTATE,
                    ..
                }
            )
        });

    // 205 parks it again, non-directed: the place the PBX chose is in the VARSTRING by the
    // completion, and 206 takes the call back from there.
    let mut varstring = vec![0u8; 128];
    varstring[..4].copy_from_slice(&128u32.to_le_bytes());
    // SAFETY: a VARSTRING of dwTotalSize bytes, kept until the request completes.
    let place = unsafe { PlaceBuffer::new(varstring.as_mut_ptr()) }.unwrap();
    let mark = bench.recorder.len();
    bench
        .provider
        .park_nondirected(26, unparked, place)
        .unwrap();
    assert_eq!(bench.completed(26), 0);
    bench.reaches(mark, 0xB5, LINECALLSTATE_IDLE);
    let place = var_string_text(&varstring);
    assert!(
        !place.is_empty(),
        "the place is written before the completion"
    );
    let again = bench
        .provider
        .unpark(27, bench.line("206"), 0xB6, place, &|_| ())
        .unwrap();
    assert_eq!(bench.completed(27), 0);
    bench.reaches(mark, 0xB6, LINECALLSTATE_CONNECTED);
    bench.provider.drop_call(28, again).unwrap();
    assert_eq!(bench.completed(28), 0);

    // Forwarding and do-not-disturb on 204 through lineForward.
    let forward = |destination: &str| {
        Some(vec![tapir_tsp::provider::ForwardEntry {
            mode: LINEFORWARDMODE_UNCOND,
            destination: destination.into(),
        }])
    };
    bench
        .provider
        .forward(29, bench.line("204"), forward("299"))
        .unwrap();
    assert_eq!(bench.completed(29), 0);
    let line_204 = || async {
        lines(&bench.server)
            .await
            .into_iter()
            .find(|l| l.address == "204")
            .unwrap()
    };
    let forwarded = line_204().await;
    assert_eq!(forwarded.forwards.len(), 1, "{forwarded:?}");
    assert_eq!(forwarded.forwards[0].destination, "299");
    bench
        .provider
        .forward(30, bench.line("204"), forward(""))
        .unwrap();
    assert_eq!(bench.completed(30), 0);
    assert!(line_204().await.do_not_disturb);
    bench.provider.forward(31, bench.line("204"), None).unwrap();
    assert_eq!(bench.completed(31), 0);
    // The two commands behind it may finish in either order.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = line_204().await;
        if !now.do_not_disturb && now.forwards.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lineForward(NULL) cancels forwarding and do-not-disturb: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| bench.provider.shutdown());
    bench.server.stop();
}

const LINECALLSTATE_CONFERENCED: usize = 0x800;
const LINECALLSTATE_ONHOLDPENDCONF: usize = 0x1000;

/// `lineMakeCall` without a number (what dialers do before the user types): the call is in
/// dial tone at once, shows the line as its caller, is dropped without the PBX, and once
/// `lineDial` gives the number it is the PBX's call, under the same handle and without a
/// `LINE_NEWCALL`.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_made_without_a_number_waits_in_dial_tone_for_line_dial() {
    let bench = Bench::start(&["208", "209"]).await;
    let mark = bench.recorder.len();
    let undialled = bench
        .provider
        .make_call(40, bench.line("208"), 0xD0, None, &|_| ())
        .unwrap();
    assert_eq!(bench.completed(40), 0);
    bench.reaches(mark, 0xD0, LINECALLSTATE_DIALTONE);
    assert_eq!(party(&bench.provider, undialled, CALLER_ID), "208");
    bench.provider.drop_call(41, undialled).unwrap();
    assert_eq!(bench.completed(41), 0);
    bench.reaches(mark, 0xD0, LINECALLSTATE_IDLE);
    assert!(
        calls(&bench.server).await.is_empty(),
        "the PBX never saw the undialled call"
    );

    let mark = bench.recorder.len();
    let call = bench
        .provider
        .make_call(42, bench.line("208"), 0xD1, Some(" ".into()), &|_| ())
        .unwrap();
    assert_eq!(bench.completed(42), 0);
    bench.reaches(mark, 0xD1, LINECALLSTATE_DIALTONE);
    bench.provider.dial(43, call, "209".into()).unwrap();
    assert_eq!(bench.completed(43), 0);
    let at_209 = bench.announced(mark, "209");
    assert_eq!(party(&bench.provider, at_209, CALLER_ID), "208");
    bench.provider.answer(44, at_209).unwrap();
    assert_eq!(bench.completed(44), 0);
    bench.reaches(mark, 0xD1, LINECALLSTATE_CONNECTED);
    assert_eq!(party(&bench.provider, call, CONNECTED_ID), "209");
    let new_calls_on_208 = bench.recorder.seen.lock().unwrap()[mark..]
        .iter()
        .filter(|s| matches!(s, Seen::NewCall { tapi_line, .. } if *tapi_line == Bench::tapi_line("208")))
        .count();
    assert_eq!(new_calls_on_208, 0, "the dialled call kept TAPI's handle");
    tokio::task::block_in_place(|| bench.provider.shutdown());
    bench.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conference_set_up_through_the_provider() {
    let bench = Bench::start(&["204", "205", "206"]).await;
    let (a, _) = bench.connected_call(30, "204", "205", 0xA4);

    // lineSetupConference from 204's call: the conference call waits on hold, the
    // consultation has dial tone; lineDial, 206 answers, lineAddToConference joins.
    let mark = bench.recorder.len();
    let (conference, consultation) = bench
        .provider
        .setup_conference(32, a, 0xF0, 0xF1, &|_, _| ())
        .unwrap();
    assert_eq!(bench.completed(32), 0);
    bench.reaches(mark, 0xF0, LINECALLSTATE_ONHOLDPENDCONF);
    bench.reaches(mark, 0xF1, LINECALLSTATE_DIALTONE);
    bench.provider.dial(33, consultation, "206".into()).unwrap();
    assert_eq!(bench.completed(33), 0);
    let at_206 = bench.announced(mark, "206");
    bench.provider.answer(34, at_206).unwrap();
    assert_eq!(bench.completed(34), 0);
    bench.reaches(mark, 0xF1, LINECALLSTATE_CONNECTED);
    bench
        .provider
        .add_to_conference(35, conference, consultation)
        .unwrap();
    assert_eq!(bench.completed(35), 0);
    // The members are conferenced into TAPI's conference call (its handle in dwParam2).
    for member in [0xA4, 0xF1] {
        bench.recorder.wait(mark, "a conferenced member", |s| {
            matches!(s, Seen::Event { tapi_call, message: LINE_CALLSTATE, params, .. }
                if *tapi_call == member && params[0] == LINECALLSTATE_CONFERENCED && params[1] == 0xF0)
        });
    }
    bench.reaches(mark, 0xF0, LINECALLSTATE_CONNECTED);
    assert_eq!(
        bench
            .provider
            .add_to_conference(36, conference, consultation),
        Err(0x8000_0049_u32 as i32),
        "a second consultation is not offered (LINEERR_OPERATIONUNAVAIL)"
    );

    let mark = bench.recorder.len();
    bench.provider.drop_call(37, conference).unwrap();
    assert_eq!(bench.completed(37), 0);
    bench.reaches(mark, 0xF0, LINECALLSTATE_IDLE);
    tokio::task::block_in_place(|| bench.provider.shutdown());
    bench.server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn over_wss_the_provider_trusts_its_ca_file_and_refuses_an_unknown_certificate() {
    let sim = "\n[[instances]]\nname = \"sim\"\n[instances.driver]\ntype = \"sim\"\n";
    let (server, cert, _tls_dir) = Server::with_self_signed_tls(sim);

    // The server's own administrator token serves: it does not restart here.
    let mut trusting = config(&server, Credentials::Token(server.token.clone()));
    assert!(trusting.server.starts_with("wss://"), "{}", trusting.server);
    trusting.ca_file = Some(cert);
    let report = tokio::task::block_in_place(|| test_connection(&trusting)).unwrap();
    assert_eq!(report.lines, 20);

    let untrusting = TspConfig {
        ca_file: None,
        ..trusting
    };
    let error = tokio::task::block_in_place(|| test_connection(&untrusting)).unwrap_err();
    assert!(error.contains("certificate"), "says why: {error}");
    server.stop();
}
