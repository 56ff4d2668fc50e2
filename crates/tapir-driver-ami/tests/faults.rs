//! The provider when the link misbehaves: a peer that closes mid-call, sends garbage or an
//! oversized message, restarts with its banner, or refuses the login.

mod support;

use std::time::Duration;

use tapir_model::ErrorKind;
use tapir_provider::{DeviceKey, Provider, ProviderCommand, ProviderError, ProviderEvent};

use support::peer::{Library, Peer, Script};
use support::transcript::{Step, Transcript};
use support::{Running, config, reports, states_of};

/// The basic call from its Originate up to and including the recorded action `last`.
fn basic_call_until(last: &str) -> Vec<Step> {
    let basic = Transcript::load("basic-call.txt");
    let start = position(&basic, "a6");
    let end = position(&basic, last);
    basic.steps[start..=end].to_vec()
}

fn position(transcript: &Transcript, id: &str) -> usize {
    transcript
        .steps
        .iter()
        .position(|s| matches!(s, Step::Received(b) if b.action_id() == Some(id)))
        .expect("recorded")
}

/// Reads `Up` and `Synchronized`, returning the calls of the latter.
async fn synchronized(running: &mut Running) -> Vec<tapir_provider::CallReport> {
    let (_, before) = running.until(|e| *e == ProviderEvent::Up).await;
    assert!(before.iter().all(|e| !matches!(e, ProviderEvent::Call(_))));
    match running.next().await {
        ProviderEvent::Synchronized { calls, devices, .. } => {
            assert_eq!(devices.len(), 3);
            calls
        }
        other => panic!("Synchronized must follow Up, got {other:?}"),
    }
}

async fn down_reason(running: &mut Running) -> (String, Vec<ProviderEvent>) {
    let (event, before) = running
        .until(|e| matches!(e, ProviderEvent::Down { .. }))
        .await;
    let ProviderEvent::Down { reason } = event else {
        unreachable!()
    };
    (reason, before)
}

#[tokio::test]
async fn a_close_mid_call_reports_down_and_the_resync_closes_the_call() {
    // The peer takes the Hangup and closes before answering it.
    let mut first = Script::new(&basic_call_until("a8"), &["a6", "a8"]);
    first.then_close = true;
    let peer = Peer::start(Library::recorded(), vec![first]).await;
    let mut running = Running::start(config(peer.port));
    assert!(synchronized(&mut running).await.is_empty());
    peer.go();
    running
        .command(ProviderCommand::MakeCall {
            device: DeviceKey("201".into()),
            to: "202".into(),
        })
        .await;
    let (event, _) = running
        .until(|e| matches!(e, ProviderEvent::Call(r) if r.device.0 == "201" && r.state.name() == "connected"))
        .await;
    let ProviderEvent::Call(report) = event else {
        unreachable!()
    };
    let drop = running
        .command(ProviderCommand::Drop { call: report.call })
        .await;
    let (reason, before) = down_reason(&mut running).await;
    assert!(reason.contains("closed"), "{reason}");
    // The drop in flight completes once, as outcome unknown, before Down.
    let outcome = before.iter().find_map(|e| match e {
        ProviderEvent::Completed { request, outcome } if *request == drop => Some(outcome.clone()),
        _ => None,
    });
    assert!(
        matches!(outcome, Some(Err(ref e)) if e.kind == ErrorKind::OutcomeUnknown),
        "{outcome:?}"
    );
    // The second connection finds no channels: the call ended while the link was down.
    assert!(synchronized(&mut running).await.is_empty());
    let sent = peer.actions();
    let hangups = sent
        .iter()
        .filter(|a| a.get("Action") == Some("Hangup"))
        .count();
    assert_eq!(hangups, 1, "a command in flight is never resent");
    let logins = sent
        .iter()
        .filter(|a| a.get("Action") == Some("Login"))
        .count();
    assert_eq!(logins, 2);
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_reconnect_discovers_calls_that_exist() {
    let basic = Transcript::load("basic-call.txt");
    let first = Script {
        then_close: true,
        ..Script::default()
    };
    let mut second = Script::default();
    second
        .replies
        .insert("CoreShowChannels".into(), basic.replies("a7"));
    let peer = Peer::start(Library::recorded(), vec![first, second]).await;
    let mut running = Running::start(config(peer.port));
    assert!(synchronized(&mut running).await.is_empty());
    peer.go();
    down_reason(&mut running).await;
    let calls = synchronized(&mut running).await;
    let mut pictures: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.device.0.as_str(),
                c.state.name(),
                c.connected.number.as_deref(),
            )
        })
        .collect();
    pictures.sort();
    assert_eq!(
        pictures,
        [
            ("201", "connected", Some("202")),
            ("202", "connected", Some("201"))
        ]
    );
}

#[tokio::test]
async fn garbage_is_skipped_and_the_link_stays_up() {
    let scenarios = Transcript::load("scenarios.txt");
    let dial = scenarios.scenario("phone_dial");
    let newchannel = dial
        .iter()
        .find_map(|s| match s {
            Step::Sent(b) if b.message.event() == Some("Newchannel") => Some(b),
            _ => None,
        })
        .expect("201 dials");
    let mut script = Script {
        then_send: b"Event: Broken\r\nthis line is no header\r\n\r\n".to_vec(),
        ..Script::default()
    };
    script.then_send.extend(newchannel.wire(None));
    let peer = Peer::start(Library::recorded(), vec![script]).await;
    let mut running = Running::start(config(peer.port));
    synchronized(&mut running).await;
    peer.go();
    let event = running.next().await;
    let r = reports(&[event]);
    assert_eq!(states_of(&r, "201"), ["dialing"]);
    assert!(
        running
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn an_oversized_message_drops_the_link_and_it_comes_back() {
    let script = Script {
        then_send: format!("Event: Huge\r\nData: {}\r\n\r\n", "x".repeat(70 * 1024)).into_bytes(),
        ..Script::default()
    };
    let peer = Peer::start(Library::recorded(), vec![script]).await;
    let mut running = Running::start(config(peer.port));
    synchronized(&mut running).await;
    peer.go();
    let (reason, _) = down_reason(&mut running).await;
    assert!(reason.contains("exceeds"), "{reason}");
    synchronized(&mut running).await;
}

#[tokio::test]
async fn a_banner_mid_stream_means_a_restart_and_a_new_login() {
    let script = Script {
        then_send: b"Asterisk Call Manager/11.0.0\r\n".to_vec(),
        ..Script::default()
    };
    let peer = Peer::start(Library::recorded(), vec![script]).await;
    let mut running = Running::start(config(peer.port));
    synchronized(&mut running).await;
    peer.go();
    let (reason, _) = down_reason(&mut running).await;
    assert!(reason.contains("restarted"), "{reason}");
    synchronized(&mut running).await;
    let logins = peer
        .actions()
        .iter()
        .filter(|a| a.get("Action") == Some("Login"))
        .count();
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn a_refused_login_is_reported_and_retried() {
    let peer = Peer::start(Library::recorded().refusing_logins(), Vec::new()).await;
    let mut running = Running::start(config(peer.port));
    let (reason, before) = down_reason(&mut running).await;
    assert!(before.is_empty(), "no Up before a login: {before:?}");
    assert!(reason.contains("Authentication failed"), "{reason}");
    let request = running
        .command(ProviderCommand::Drop {
            call: tapir_provider::CallRef("1.1".into()),
        })
        .await;
    let event = running.next().await;
    assert!(
        matches!(event, ProviderEvent::Completed { request: r, outcome: Err(ref e) } if r == request && e.kind == ErrorKind::InvalidLineState),
        "{event:?}"
    );
    running.stop().await.expect("shutdown during back-off");
    let provider = tapir_driver_ami::AmiProvider::new(config(peer.port)).expect("valid");
    let error = provider.test_connection().await.expect_err("refused");
    assert!(
        matches!(error, ProviderError::Auth(ref m) if m.contains("Authentication failed")),
        "{error}"
    );
}

#[tokio::test]
async fn an_idle_link_is_pinged() {
    let peer = Peer::start(Library::recorded(), Vec::new()).await;
    let mut cfg = config(peer.port);
    // A second interval without an answer would declare the link lost: 150 ms leaves room
    // for a loaded machine.
    cfg.ping_interval_ms = 150;
    let mut running = Running::start(cfg);
    synchronized(&mut running).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pings = peer
        .actions()
        .iter()
        .filter(|a| a.get("Action") == Some("Ping"))
        .count();
    assert!(pings >= 2, "{pings} pings");
    assert!(
        running
            .next_within(Duration::from_millis(50))
            .await
            .is_none(),
        "the link stays up"
    );
}
