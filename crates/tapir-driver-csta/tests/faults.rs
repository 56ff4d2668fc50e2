//! Faults against a real peer: the third-party mock switch pyssimist, driven by the scenario
//! glue in `tests/peer/scenario.py`, which takes faults as lines on its stdin and reports what
//! it received. The switch going away mid-call and coming back, a request in flight when the
//! link drops, garbage and oversized or malformed frames mid-session, and a switch that stops
//! answering keep-alives. Skipped with a message when pyssimist is not installed; set
//! `TAPIR_PYSSIMIST_PYTHON` to the interpreter of its virtualenv.
//!
//! The waits are generous and nothing is timed: these run on slow, busy CI machines.

mod support;

use std::sync::{Arc, Mutex};

use support::{Controlled, PEER_WAIT};
use tapir_driver_csta::{CstaConfig, CstaProvider, Dialect};
use tapir_model::{ErrorKind, RequestId};
use tapir_provider::testing::RunningProvider;
use tapir_provider::{
    CallRef, CallReport, Completion, DeviceKey, ProviderCommand, ProviderEvent, ProviderRequest,
};

/// An OSV-dialect provider for `devices` on the peer, reconnecting quickly.
fn start(
    peer: &Controlled,
    devices: &[&str],
    tweak: impl FnOnce(&mut CstaConfig),
) -> RunningProvider {
    let mut config = CstaConfig::new("127.0.0.1", devices);
    config.port = peer.peer.port;
    config.dialect = Dialect::Osv;
    config.reconnect_min_ms = 100;
    config.reconnect_max_ms = 1_000;
    tweak(&mut config);
    let provider = CstaProvider::new(config).expect("a valid configuration");
    RunningProvider::start(Box::new(provider), "faults")
}

async fn next(running: &mut RunningProvider) -> ProviderEvent {
    running
        .next_event(PEER_WAIT)
        .await
        .expect("an event from the provider in time")
}

/// Reads events up to and including the next `Synchronized`; returns the events before it
/// and its calls.
async fn until_synchronized(
    running: &mut RunningProvider,
) -> (Vec<ProviderEvent>, Vec<CallReport>) {
    let mut before = Vec::new();
    loop {
        match next(running).await {
            ProviderEvent::Synchronized { calls, .. } => return (before, calls),
            other => before.push(other),
        }
    }
}

async fn command(running: &RunningProvider, id: u64, command: ProviderCommand) {
    running
        .requests
        .send(ProviderRequest {
            id: RequestId(id),
            command,
        })
        .await
        .expect("the provider takes requests");
}

fn make_call(device: &str) -> ProviderCommand {
    ProviderCommand::MakeCall {
        device: DeviceKey(device.into()),
        to: "2000".into(),
    }
}

/// MakeCall from `device` (a scenario device that keeps its calls): completes with the call,
/// then three reports of it.
async fn place_call(running: &mut RunningProvider, id: u64, device: &str) -> CallRef {
    command(running, id, make_call(device)).await;
    let event = next(running).await;
    let ProviderEvent::Completed {
        request,
        outcome: Ok(Completion::Call(call)),
    } = event
    else {
        panic!("MakeCall must complete with its call first, not {event:?}");
    };
    assert_eq!(request, RequestId(id));
    let mut states = Vec::new();
    for _ in 0..3 {
        let ProviderEvent::Call(report) = next(running).await else {
            panic!("a report of the new call");
        };
        assert_eq!(report.call, call);
        states.push(report.state.name());
    }
    assert_eq!(states, ["dialtone", "proceeding", "ringback"]);
    call
}

fn skip() -> bool {
    if let Some(reason) = support::pyssimist_missing() {
        eprintln!("{reason}");
        return true;
    }
    false
}

/// With calls up on two monitored devices the switch closes the link; one call ends while the
/// link is down. The provider reports `Down` with a reason, reconnects, monitors every device
/// anew and rebuilds from the snapshot: the call still up is listed, the ended one is not.
#[tokio::test]
async fn the_switch_goes_away_mid_call_and_comes_back() {
    if skip() {
        return;
    }
    let mut peer = support::controlled_peer(300).await;
    let mut running = start(&peer, &["1500", "1501"], |_| {});
    let (before, calls) = until_synchronized(&mut running).await;
    assert_eq!(before, [ProviderEvent::Up]);
    assert!(calls.is_empty(), "{calls:?}");
    let kept = place_call(&mut running, 1, "1500").await;
    let ended = place_call(&mut running, 2, "1501").await;

    peer.tell("hangup 1501").await;
    peer.tell("drop").await;
    let (before, calls) = until_synchronized(&mut running).await;
    let [ProviderEvent::Down { reason }, ProviderEvent::Up] = &before[..] else {
        panic!("Down, then Up, before the new Synchronized: {before:?}");
    };
    assert!(reason.contains("closed"), "{reason}");
    let listed: Vec<&CallRef> = calls.iter().map(|c| &c.call).collect();
    assert_eq!(listed, [&kept], "the call still up, not {ended:?}");

    // Every device was monitored again on the new connection, each once.
    peer.wait_for("accepted").await;
    let second = peer.on_connection(2);
    for device in ["1500", "1501"] {
        let line = format!("monitor {device}");
        let starts = second.iter().filter(|l| **l == line).count();
        assert_eq!(
            starts, 1,
            "MonitorStart for {device} on the new link: {second:?}"
        );
    }
    running.shutdown.cancel();
    running
        .task
        .await
        .expect("the provider task")
        .expect("a clean stop");
}

/// A MakeCall the switch has received but not answered when the link drops completes once, as
/// `OutcomeUnknown`, and is not sent again on the new link (it may have happened).
#[tokio::test]
async fn a_request_in_flight_when_the_link_drops_is_unknown_and_never_resent() {
    if skip() {
        return;
    }
    let mut peer = support::controlled_peer(300).await;
    let mut running = start(&peer, &["1599", "1500"], |_| {});
    until_synchronized(&mut running).await;
    // 1599's MakeCall is never answered by the scenario.
    command(&running, 7, make_call("1599")).await;
    peer.wait_until("the MakeCall", |seen| {
        seen.iter().any(|l| l.starts_with("got MakeCall"))
    })
    .await;
    peer.tell("drop").await;
    let (before, _) = until_synchronized(&mut running).await;
    let completions: Vec<&ProviderEvent> = before
        .iter()
        .filter(|e| matches!(e, ProviderEvent::Completed { .. }))
        .collect();
    let [ProviderEvent::Completed { request, outcome }] = &completions[..] else {
        panic!("one completion before the new Synchronized: {before:?}");
    };
    assert_eq!(*request, RequestId(7));
    let error = outcome.as_ref().expect_err("the outcome is not known");
    assert_eq!(error.kind, ErrorKind::OutcomeUnknown, "{error:?}");
    assert!(
        matches!(before.last(), Some(ProviderEvent::Up)),
        "Up follows the reconnect: {before:?}"
    );

    // A command after the reconnect goes through; its completion is the only one, and the
    // peer's new connection carries its MakeCall and no other.
    let call = place_call(&mut running, 8, "1500").await;
    assert_eq!(call.0, "1500/K1500-1");
    let second = peer.on_connection(2);
    let make_calls = second
        .iter()
        .filter(|l| l.starts_with("got MakeCall"))
        .count();
    assert_eq!(make_calls, 1, "only the new MakeCall: {second:?}");
    running.shutdown.cancel();
    running
        .task
        .await
        .expect("the provider task")
        .expect("a clean stop");
    while let Ok(event) = running.events.try_recv() {
        assert!(
            !matches!(
                event,
                ProviderEvent::Completed {
                    request: RequestId(7),
                    ..
                }
            ),
            "request 7 completed twice"
        );
    }
}

/// A switch that stops answering the provider's keep-alives is declared dead after two
/// missed answers: `Down` with that reason, then a new link.
#[tokio::test]
async fn a_switch_that_stops_answering_keep_alives_is_declared_dead() {
    if skip() {
        return;
    }
    let mut peer = support::controlled_peer(300).await;
    // Two unanswered keep-alives declare the link dead: a second between them leaves the
    // peer (a Python process) time to answer on a loaded two-core machine.
    let mut running = start(&peer, &["1500"], |c| c.keepalive_ms = 1_000);
    until_synchronized(&mut running).await;
    // Answered keep-alives keep the link up: three of them go by without an event.
    peer.wait_until("three keep-alives", |seen| {
        seen.iter()
            .filter(|l| l.starts_with("got SystemStatus "))
            .count()
            >= 3
    })
    .await;
    assert!(running.events.is_empty(), "nothing happened while answered");

    peer.tell("deaf").await;
    let event = next(&mut running).await;
    let ProviderEvent::Down { reason } = &event else {
        panic!("Down once keep-alives go unanswered, not {event:?}");
    };
    assert!(reason.contains("keep-alive"), "{reason}");
    let (before, _) = until_synchronized(&mut running).await;
    assert_eq!(before, [ProviderEvent::Up]);
    peer.wait_for("accepted").await;
    let ignored = support::connection(&peer.seen, 1)
        .iter()
        .filter(|l| *l == "ignored SystemStatus")
        .count();
    assert!(
        ignored >= 1,
        "the peer ignored a keep-alive: {:?}",
        peer.seen
    );
    assert!(
        peer.on_connection(2).contains(&"monitor 1500".to_owned()),
        "{:?}",
        peer.seen
    );
    running.shutdown.cancel();
    running
        .task
        .await
        .expect("the provider task")
        .expect("a clean stop");
}

/// The provider's log lines, kept for a test to read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("the log buffer")).into_owned()
    }
}

/// Mid-session the switch sends bytes that are not a frame, a frame longer than 64 KiB (its
/// length written in 32 bits) and a frame of broken XML: each is logged as what it is, the
/// link stays up, and the next good event becomes a call report.
#[tokio::test]
async fn garbage_and_oversized_or_malformed_frames_are_logged_and_skipped() {
    if skip() {
        return;
    }
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test's runtime runs the provider on this thread, so a thread default catches it.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut peer = support::controlled_peer(300).await;
    let mut running = start(&peer, &["1500"], |_| {});
    until_synchronized(&mut running).await;

    for fault in ["garbage", "oversized", "malformed"] {
        peer.tell(fault).await;
    }
    peer.tell("incoming 1500 IN-1").await;
    let event = next(&mut running).await;
    let ProviderEvent::Call(report) = &event else {
        panic!("the link stays up and the next event is a call report, not {event:?}");
    };
    assert_eq!(report.call.0, "1500/IN-1");
    assert!(report.state.is_alerting(), "{report:?}");

    let text = logs.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("not a CSTA frame") && l.contains("first byte is not zero")),
        "garbage: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("70000 bytes exceeds the limit of 65535")),
        "oversized: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("malformed CSTA message")),
        "malformed: {lines:#?}"
    );
    assert!(!text.contains("CSTA link down"), "{text}");
    running.shutdown.cancel();
    running
        .task
        .await
        .expect("the provider task")
        .expect("a clean stop");
}
