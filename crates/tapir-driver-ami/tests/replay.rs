//! The provider against the replay peer: real captured AMI traffic over TCP, driven through
//! tapir's commands, with assertions on the TAPI-level reports per line.

mod support;

use std::time::Duration;

use tapir_model::{CallReason, ErrorKind};
use tapir_provider::{
    CallRef, Completion, DeviceKey, Provider, ProviderCommand, ProviderError, ProviderEvent,
};

use support::peer::{Library, Peer, Script};
use support::transcript::{Step, Transcript};
use support::{Running, config, reports, states_of};

/// The steps of `transcript` from the action recorded as `id` on.
fn steps_from(transcript: &Transcript, id: &str) -> Vec<Step> {
    let start = transcript
        .steps
        .iter()
        .position(|s| matches!(s, Step::Received(b) if b.action_id() == Some(id)))
        .expect("the action is recorded");
    transcript.steps[start..].to_vec()
}

/// Starts a provider against a peer playing `script`, and reads `Up` and `Synchronized`.
async fn connected(script: Script) -> (Peer, Running) {
    let peer = Peer::start(Library::recorded(), vec![script]).await;
    let mut running = Running::start(config(peer.port));
    assert_eq!(running.next().await, ProviderEvent::Up);
    let ProviderEvent::Synchronized { devices, calls, .. } = running.next().await else {
        panic!("Synchronized must follow Up");
    };
    let keys: Vec<_> = devices.iter().map(|d| d.key.0.as_str()).collect();
    assert_eq!(keys, ["201", "202", "203"]);
    assert!(calls.is_empty());
    peer.go();
    (peer, running)
}

fn device(key: &str) -> DeviceKey {
    DeviceKey(key.into())
}

/// Reads until `device`'s appearance reaches `state`, returning its call and the events.
async fn until_state(
    running: &mut Running,
    device: &str,
    state: &str,
    seen: &mut Vec<ProviderEvent>,
) -> CallRef {
    let (event, before) = running
        .until(|e| matches!(e, ProviderEvent::Call(r) if r.device.0 == device && r.state.name() == state))
        .await;
    seen.extend(before);
    seen.push(event.clone());
    let ProviderEvent::Call(report) = event else {
        unreachable!()
    };
    report.call
}

/// Reads until every appearance seen has gone idle and nothing more comes.
async fn until_quiet(running: &mut Running, seen: &mut Vec<ProviderEvent>) {
    while let Some(event) = running.next_within(Duration::from_millis(300)).await {
        seen.push(event);
    }
}

/// The made call completes with its reference before the call's first report.
fn completion_comes_first(seen: &[ProviderEvent], request: tapir_model::RequestId) -> CallRef {
    let position = seen
        .iter()
        .position(|e| matches!(e, ProviderEvent::Completed { request: r, .. } if *r == request))
        .expect("the request completed");
    let ProviderEvent::Completed {
        outcome: Ok(Completion::Call(call)),
        ..
    } = &seen[position]
    else {
        panic!(
            "the made call completes with its call: {:?}",
            seen[position]
        );
    };
    let first_report = seen
        .iter()
        .position(|e| matches!(e, ProviderEvent::Call(r) if r.call == *call))
        .expect("the call is reported");
    assert!(
        position < first_report,
        "completion must precede the first report"
    );
    call.clone()
}

#[tokio::test]
async fn basic_call_made_and_dropped_through_tapir() {
    let basic = Transcript::load("basic-call.txt");
    let (peer, mut running) =
        connected(Script::new(&steps_from(&basic, "a6"), &["a6", "a8"])).await;
    let request = running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let call = until_state(&mut running, "201", "connected", &mut seen).await;
    running
        .command(ProviderCommand::Drop { call: call.clone() })
        .await;
    until_quiet(&mut running, &mut seen).await;
    assert_eq!(completion_comes_first(&seen, request), call);
    let r = reports(&seen);
    assert_eq!(
        states_of(&r, "201"),
        [
            "dialing",
            "proceeding",
            "ringback",
            "connected",
            "disconnected/normal",
            "idle"
        ]
    );
    assert_eq!(
        states_of(&r, "202"),
        ["offering", "connected", "disconnected/normal", "idle"]
    );
    let actions = peer.actions();
    let originate = actions
        .iter()
        .find(|a| a.get("Action") == Some("Originate"))
        .expect("sent");
    assert_eq!(originate.get("Channel"), Some("PJSIP/201"));
    assert_eq!(originate.get("Exten"), Some("202"));
    assert_eq!(originate.get("Context"), Some("internal"));
    assert_eq!(originate.get("Async"), Some("true"));
    assert_eq!(originate.get("CallerID"), Some("\"Extension 201\" <201>"));
    let hangup = actions
        .iter()
        .find(|a| a.get("Action") == Some("Hangup"))
        .expect("sent");
    assert_eq!(hangup.get("Channel"), Some("PJSIP/201-00000004"));
    let completions: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, ProviderEvent::Completed { .. }))
        .collect();
    assert_eq!(completions.len(), 2, "each request completes exactly once");
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn ringing_answered_at_the_phone_then_dropped() {
    let scenarios = Transcript::load("scenarios.txt");
    let steps = scenarios.scenario("ring_manual_answer");
    let (_peer, mut running) = connected(Script::new(steps, &["a2", "a5"])).await;
    let request = running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let ringing = until_state(&mut running, "202", "offering", &mut seen).await;
    until_state(&mut running, "202", "connected", &mut seen).await;
    running
        .command(ProviderCommand::Drop { call: ringing })
        .await;
    until_quiet(&mut running, &mut seen).await;
    completion_comes_first(&seen, request);
    let r = reports(&seen);
    assert_eq!(
        states_of(&r, "202"),
        ["offering", "connected", "disconnected/normal", "idle"]
    );
    assert_eq!(
        states_of(&r, "201").last().map(String::as_str),
        Some("idle")
    );
}

#[tokio::test]
async fn blind_transfer_by_command() {
    let scenarios = Transcript::load("scenarios.txt");
    let steps = scenarios.scenario("ami_blindtransfer");
    let (peer, mut running) = connected(Script::new(steps, &["a12", "a14"])).await;
    running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let answered = until_state(&mut running, "202", "connected", &mut seen).await;
    let transfer = running
        .command(ProviderCommand::BlindTransfer {
            call: answered,
            to: "203".into(),
        })
        .await;
    until_state(&mut running, "203", "connected", &mut seen).await;
    until_quiet(&mut running, &mut seen).await;
    assert!(seen.contains(&ProviderEvent::Completed {
        request: transfer,
        outcome: Ok(Completion::Done)
    }));
    let sent = peer.actions();
    let action = sent
        .iter()
        .find(|a| a.get("Action") == Some("BlindTransfer"))
        .expect("sent");
    assert_eq!(action.get("Channel"), Some("PJSIP/202-0000000b"));
    assert_eq!(action.get("Exten"), Some("203"));
    let r = reports(&seen);
    let target = r
        .iter()
        .find(|rep| rep.device.0 == "203")
        .expect("203 rings");
    assert_eq!(target.reason, CallReason::Transfer);
    assert_eq!(target.redirecting.number.as_deref(), Some("202"));
    assert_eq!(
        states_of(&r, "202").last().map(String::as_str),
        Some("idle")
    );
}

#[tokio::test]
async fn redirect_sends_the_other_party_elsewhere() {
    let scenarios = Transcript::load("scenarios.txt");
    let steps = scenarios.scenario("ami_redirect");
    let (peer, mut running) = connected(Script::new(steps, &["a19", "a21"])).await;
    running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let at_202 = until_state(&mut running, "202", "connected", &mut seen).await;
    running
        .command(ProviderCommand::Redirect {
            call: at_202,
            to: "203".into(),
        })
        .await;
    until_state(&mut running, "203", "connected", &mut seen).await;
    until_quiet(&mut running, &mut seen).await;
    let sent = peer.actions();
    let action = sent
        .iter()
        .find(|a| a.get("Action") == Some("Redirect"))
        .expect("sent");
    // The party calling 202 (201's channel) is redirected; 202's leg is hung up.
    assert_eq!(action.get("Channel"), Some("PJSIP/201-0000000d"));
    let r = reports(&seen);
    assert_eq!(
        states_of(&r, "202").last().map(String::as_str),
        Some("idle")
    );
    let target = r
        .iter()
        .find(|rep| rep.device.0 == "203")
        .expect("203 rings");
    assert_eq!(target.reason, CallReason::Redirect);
    assert_eq!(target.redirecting.number.as_deref(), Some("202"));
}

#[tokio::test]
async fn a_failed_originate_completes_with_an_error_and_no_call() {
    let scenarios = Transcript::load("scenarios.txt");
    let steps = scenarios.scenario("originate failure");
    let (_peer, mut running) = connected(Script::new(steps, &["a52"])).await;
    let request = running
        .command(ProviderCommand::MakeCall {
            device: device("203"),
            to: "202".into(),
        })
        .await;
    let (event, before) = running
        .until(|e| matches!(e, ProviderEvent::Completed { .. }))
        .await;
    assert!(reports(&before).is_empty());
    let ProviderEvent::Completed {
        request: r,
        outcome: Err(error),
    } = event
    else {
        panic!("an error: {event:?}");
    };
    assert_eq!(r, request);
    assert_eq!(error.kind, ErrorKind::OperationFailed);
    assert!(error.message.contains("203"), "{}", error.message);
}

#[tokio::test]
async fn commands_for_unknown_calls_and_lines_fail_precisely() {
    let (_peer, mut running) = connected(Script::default()).await;
    let request = running
        .command(ProviderCommand::Drop {
            call: CallRef("nope".into()),
        })
        .await;
    let event = running.next().await;
    assert!(
        matches!(event, ProviderEvent::Completed { request: r, outcome: Err(ref e) } if r == request && e.kind == ErrorKind::InvalidCall)
    );
    running
        .command(ProviderCommand::MakeCall {
            device: device("299"),
            to: "202".into(),
        })
        .await;
    let event = running.next().await;
    assert!(
        matches!(event, ProviderEvent::Completed { outcome: Err(ref e), .. } if e.kind == ErrorKind::InvalidLine)
    );
    running
        .command(ProviderCommand::Hold {
            call: CallRef("x".into()),
        })
        .await;
    let event = running.next().await;
    assert!(
        matches!(event, ProviderEvent::Completed { outcome: Err(ref e), .. } if e.kind == ErrorKind::OperationUnavailable)
    );
}

#[tokio::test]
async fn do_not_disturb_goes_to_astdb() {
    let (peer, mut running) = connected(Script::default()).await;
    let request = running
        .command(ProviderCommand::SetDoNotDisturb {
            device: device("202"),
            enabled: false,
        })
        .await;
    // Removing an entry that is not there is what the user wanted.
    assert_eq!(
        running.next().await,
        ProviderEvent::Completed {
            request,
            outcome: Ok(Completion::Done)
        }
    );
    let sent = peer.actions();
    let del = sent
        .iter()
        .find(|a| a.get("Action") == Some("DBDel"))
        .expect("sent");
    assert_eq!(
        (del.get("Family"), del.get("Key")),
        (Some("DND"), Some("202"))
    );
}

#[tokio::test]
async fn the_connection_test_reports_versions_and_endpoints() {
    let peer = Peer::start(Library::recorded(), Vec::new()).await;
    let provider = tapir_driver_ami::AmiProvider::new(config(peer.port)).expect("valid");
    assert_eq!(provider.kind(), "asterisk");
    let report = provider.test_connection().await.expect("connects");
    assert_eq!(report.devices, 3);
    assert!(
        report.summary.contains("Asterisk 22.10.1"),
        "{}",
        report.summary
    );
    assert!(report.summary.contains("AMI 11.0.0"), "{}", report.summary);
    let login = peer.actions().into_iter().next().expect("a login");
    assert_eq!(login.get("Events"), Some("off"));
}

#[tokio::test]
async fn the_connection_test_says_why_it_cannot_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let provider = tapir_driver_ami::AmiProvider::new(config(port)).expect("valid");
    let error = provider
        .test_connection()
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, ProviderError::Connect { .. }), "{error}");
}

#[tokio::test]
async fn park_names_the_space_asterisk_chose() {
    let park = Transcript::load("park-and-status.txt");
    let (peer, mut running) = connected(Script::new(&steps_from(&park, "a2"), &["a2", "a4"])).await;
    running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let answered = until_state(&mut running, "202", "connected", &mut seen).await;
    // A directed park is refused at once: Asterisk's Park action picks the space itself.
    let directed = running
        .command(ProviderCommand::Park {
            call: answered.clone(),
            to: Some("705".into()),
        })
        .await;
    let request = running
        .command(ProviderCommand::Park {
            call: answered,
            to: None,
        })
        .await;
    let (done, before) = running
        .until(|e| matches!(e, ProviderEvent::Completed { request: r, .. } if *r == request))
        .await;
    seen.extend(before);
    assert_eq!(
        done,
        ProviderEvent::Completed {
            request,
            outcome: Ok(Completion::Parked { at: "701".into() })
        }
    );
    let refused = seen.iter().find_map(|e| match e {
        ProviderEvent::Completed { request, outcome } if *request == directed => Some(outcome),
        _ => None,
    });
    assert!(
        matches!(refused, Some(Err(e)) if e.kind == ErrorKind::OperationUnavailable),
        "{refused:?}"
    );
    let sent = peer.actions();
    let action = sent
        .iter()
        .find(|a| a.get("Action") == Some("Park"))
        .expect("sent");
    // 202 parks its far end, 201; a park that times out rings 202 again.
    assert_eq!(action.get("Channel"), Some("PJSIP/201-0000001c"));
    assert_eq!(action.get("TimeoutChannel"), Some("PJSIP/202-0000001d"));
    assert_eq!(
        sent.iter()
            .filter(|a| a.get("Action") == Some("Park"))
            .count(),
        1,
        "the directed park never reached Asterisk"
    );
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn unpark_dials_the_space_for_the_line() {
    let basic = Transcript::load("basic-call.txt");
    let (peer, mut running) = connected(Script::new(&steps_from(&basic, "a6"), &["a6"])).await;
    running
        .command(ProviderCommand::Unpark {
            device: device("203"),
            from: "701".into(),
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let originate = loop {
        let sent = peer.actions();
        if let Some(action) = sent
            .into_iter()
            .find(|a| a.get("Action") == Some("Originate"))
        {
            break action;
        }
        assert!(tokio::time::Instant::now() < deadline, "no Originate sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(originate.get("Channel"), Some("PJSIP/203"));
    assert_eq!(originate.get("Exten"), Some("701"));
    assert_eq!(originate.get("Context"), Some("internal"));
    running.stop().await.expect("clean stop");
}

/// The states of one appearance, with the disconnect mode if any.
fn states_of_call(reports: &[tapir_provider::CallReport], call: &CallRef) -> Vec<String> {
    let own: Vec<_> = reports
        .iter()
        .filter(|r| r.call == *call)
        .cloned()
        .collect();
    let device = own.first().map(|r| r.device.0.clone()).unwrap_or_default();
    states_of(&own, &device)
}

/// The completion of `request`, which must be a new call.
fn completed_call(seen: &[ProviderEvent], request: tapir_model::RequestId) -> CallRef {
    seen.iter()
        .find_map(|e| match e {
            ProviderEvent::Completed {
                request: r,
                outcome: Ok(Completion::Call(call)),
            } if *r == request => Some(call.clone()),
            _ => None,
        })
        .expect("the consultation completes with its call")
}

/// Reads until the appearance `call` reaches `state`.
async fn until_call_state(
    running: &mut Running,
    call: &CallRef,
    state: &str,
    seen: &mut Vec<ProviderEvent>,
) {
    let (event, before) = running
        .until(
            |e| matches!(e, ProviderEvent::Call(r) if r.call == *call && r.state.name() == state),
        )
        .await;
    seen.extend(before);
    seen.push(event);
}

#[tokio::test]
async fn consultation_transfer_by_command_shows_two_appearances_and_completes() {
    let scenarios = Transcript::load("scenarios.txt");
    let steps = scenarios.scenario("ami_atxfer");
    let (peer, mut running) = connected(Script::new(steps, &["a26", "a28", "a29"])).await;
    running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let original = until_state(&mut running, "202", "connected", &mut seen).await;
    let (consult, complete) = consult_then_complete(&mut running, &original, &mut seen).await;
    until_quiet(&mut running, &mut seen).await;

    assert!(seen.contains(&ProviderEvent::Completed {
        request: complete,
        outcome: Ok(Completion::Done)
    }));
    let sent = peer.actions();
    let atxfer = sent
        .iter()
        .find(|a| a.get("Action") == Some("Atxfer"))
        .expect("sent");
    assert_eq!(atxfer.get("Channel"), Some("PJSIP/202-00000011"));
    assert_eq!(atxfer.get("Exten"), Some("203"));
    assert_eq!(atxfer.get("Context"), Some("internal"));
    // Completing hangs up the transferer's channel: Asterisk completes the transfer.
    let hangup = sent
        .iter()
        .find(|a| a.get("Action") == Some("Hangup"))
        .expect("sent");
    assert_eq!(hangup.get("Channel"), Some("PJSIP/202-00000011"));

    let r = reports(&seen);
    assert_eq!(
        states_of_call(&r, &original),
        [
            "offering",
            "connected",
            "onholdpendtransfer",
            "disconnected/normal",
            "idle"
        ]
    );
    assert_eq!(
        states_of_call(&r, &consult),
        [
            "dialing",
            "proceeding",
            "ringback",
            "connected",
            "disconnected/normal",
            "idle"
        ]
    );
    assert_consultation_pair(&r, &original, &consult);
    // The transferee and the target now talk, both knowing who transferred them.
    let target = r
        .iter()
        .rev()
        .find(|rep| rep.device.0 == "203" && rep.state.name() == "connected")
        .expect("203 answered");
    assert_eq!(target.reason, CallReason::Transfer);
    assert_eq!(target.redirecting.number.as_deref(), Some("202"));
    assert_eq!(target.connected.number.as_deref(), Some("201"));
    let transferee = r
        .iter()
        .rev()
        .find(|rep| rep.device.0 == "201" && rep.state.name() == "connected")
        .expect("201 talks");
    assert_eq!(transferee.connected.number.as_deref(), Some("203"));
    assert_eq!(transferee.redirecting.number.as_deref(), Some("202"));
    running.stop().await.expect("clean stop");
}

/// Consults 203 from `original`, waits for the target to answer and completes the transfer;
/// returns the consultation and the completing request.
async fn consult_then_complete(
    running: &mut Running,
    original: &CallRef,
    seen: &mut Vec<ProviderEvent>,
) -> (CallRef, tapir_model::RequestId) {
    let consult = consult_203(running, original, seen).await;
    until_call_state(running, &consult, "connected", seen).await;
    let complete = running
        .command(ProviderCommand::CompleteTransfer {
            held: original.clone(),
            consult: consult.clone(),
        })
        .await;
    (consult, complete)
}

/// Consults 203 from `original`: the request completes with the consultation's call before
/// any report of it.
async fn consult_203(
    running: &mut Running,
    original: &CallRef,
    seen: &mut Vec<ProviderEvent>,
) -> CallRef {
    let request = running
        .command(ProviderCommand::Consult {
            call: original.clone(),
            to: "203".into(),
        })
        .await;
    let (done, before) = running
        .until(|e| matches!(e, ProviderEvent::Completed { request: r, .. } if *r == request))
        .await;
    seen.extend(before);
    seen.push(done);
    let consult = completed_call(seen, request);
    assert_ne!(&consult, original);
    assert!(
        !reports(seen).iter().any(|r| r.call == consult),
        "the consultation is named before it is reported"
    );
    consult
}

/// The original waits related to the consultation, which calls 203 from 202.
fn assert_consultation_pair(
    r: &[tapir_provider::CallReport],
    original: &CallRef,
    consult: &CallRef,
) {
    let held = r
        .iter()
        .find(|rep| rep.call == *original && rep.state.name() == "onholdpendtransfer")
        .expect("the original waits");
    assert_eq!(held.related.as_ref(), Some(consult));
    assert_eq!(held.connected.number.as_deref(), Some("201"));
    let talking = r
        .iter()
        .find(|rep| rep.call == *consult && rep.state.name() == "connected")
        .expect("the consultation talks");
    assert_eq!(talking.device.0, "202");
    assert_eq!(talking.related.as_ref(), Some(original));
    assert_eq!(talking.called.number.as_deref(), Some("203"));
    assert_eq!(talking.connected.number.as_deref(), Some("203"));
    assert_eq!(talking.caller.number.as_deref(), Some("202"));
    assert_eq!(talking.origin, tapir_model::CallOrigin::Outbound);
}

#[tokio::test]
async fn a_dropped_consultation_returns_the_original_to_its_party() {
    // Composed from the captured ami_atxfer scenario and Asterisk's REBRIDGE (see its header).
    let cancel = Transcript::load_composed("atxfer-cancel.txt");
    let steps = cancel.scenario("ami_atxfer_cancel");
    let (peer, mut running) = connected(Script::new(steps, &["a26", "a28", "a29", "a30"])).await;
    running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    let mut seen = Vec::new();
    let original = until_state(&mut running, "202", "connected", &mut seen).await;
    let consult = consult_203(&mut running, &original, &mut seen).await;
    until_call_state(&mut running, &consult, "connected", &mut seen).await;
    let drop_consult = running
        .command(ProviderCommand::Drop {
            call: consult.clone(),
        })
        .await;
    until_call_state(&mut running, &consult, "idle", &mut seen).await;
    until_call_state(&mut running, &original, "connected", &mut seen).await;
    running
        .command(ProviderCommand::Drop {
            call: original.clone(),
        })
        .await;
    until_quiet(&mut running, &mut seen).await;

    assert!(seen.contains(&ProviderEvent::Completed {
        request: drop_consult,
        outcome: Ok(Completion::Done)
    }));
    let hangups: Vec<_> = peer
        .actions()
        .into_iter()
        .filter(|a| a.get("Action") == Some("Hangup"))
        .filter_map(|a| a.get("Channel").map(str::to_string))
        .collect();
    // The consultation's target leg, then the original's own channel.
    assert_eq!(
        hangups,
        ["Local/203@internal-00000000;1", "PJSIP/202-00000011"]
    );
    let r = reports(&seen);

    assert_eq!(
        states_of_call(&r, &original),
        [
            "offering",
            "connected",
            "onholdpendtransfer",
            "connected",
            "disconnected/normal",
            "idle"
        ]
    );
    assert_eq!(
        states_of_call(&r, &consult),
        [
            "dialing",
            "proceeding",
            "ringback",
            "connected",
            "disconnected/normal",
            "idle"
        ]
    );
    assert_consultation_pair(&r, &original, &consult);
    // Back with 201, the original names it again and relates to nothing.
    let back = r
        .iter()
        .rev()
        .find(|rep| rep.call == original && rep.state.name() == "connected")
        .expect("the original is back");
    assert_eq!(back.connected.number.as_deref(), Some("201"));
    assert_eq!(back.related, None);
    // 201 never left its call and was never transferred.
    let transferee = r
        .iter()
        .rev()
        .find(|rep| rep.device.0 == "201" && rep.state.name() == "connected")
        .expect("201 talks");
    assert_eq!(transferee.connected.number.as_deref(), Some("202"));
    assert!(transferee.redirecting.is_unknown());
    assert!(
        r.iter()
            .all(|rep| rep.device.0 != "203" || rep.reason != CallReason::Transfer)
    );
    running.stop().await.expect("clean stop");
}

/// An Asterisk whose phones are chan_sip peers: the lines come from `SIPpeers`, made calls
/// ring `SIP/<peer>` with chan_sip's header variable, and the connection test counts the
/// peers.
#[tokio::test]
async fn chan_sip_peers_are_the_lines_of_a_sip_technology_instance() {
    let peers = Transcript::load_composed("chan-sip-peers.txt");
    let mut library = Library::recorded();
    library.use_reply("SIPpeers", &peers, "a1");
    let peer = Peer::start(library, vec![Script::default()]).await;
    let mut config = config(peer.port);
    config.endpoint_technology = tapir_driver_ami::Technology::Sip;
    config.auto_answer_header = Some("Call-Info: answer-after=0".into());

    let provider = tapir_driver_ami::AmiProvider::new(config.clone()).expect("valid");
    let report = provider.test_connection().await.expect("connects");
    assert_eq!(report.devices, 3);
    assert!(
        report.summary.contains("3 SIP endpoints"),
        "{}",
        report.summary
    );

    let mut running = Running::start(config);
    assert_eq!(running.next().await, ProviderEvent::Up);
    let ProviderEvent::Synchronized { devices, .. } = running.next().await else {
        panic!("Synchronized must follow Up");
    };
    let keys: Vec<_> = devices.iter().map(|d| d.key.0.as_str()).collect();
    assert_eq!(keys, ["201", "202", "203"]);
    let listed: Vec<_> = peer
        .actions()
        .iter()
        .filter_map(|a| a.get("Action").map(str::to_owned))
        .collect();
    assert!(listed.iter().any(|a| a == "SIPpeers"), "{listed:?}");
    assert!(
        !listed.iter().any(|a| a == "PJSIPShowEndpoints"),
        "{listed:?}"
    );

    running
        .command(ProviderCommand::MakeCall {
            device: device("201"),
            to: "202".into(),
        })
        .await;
    running
        .until(|e| matches!(e, ProviderEvent::Completed { .. }))
        .await;
    let actions = peer.actions();
    let originate = actions
        .iter()
        .find(|a| a.get("Action") == Some("Originate"))
        .expect("sent");
    assert_eq!(originate.get("Channel"), Some("SIP/201"));
    assert_eq!(
        originate.get("Variable"),
        Some("SIPADDHEADER=Call-Info: answer-after=0")
    );
    running.stop().await.expect("clean stop");
}

/// Asterisk's device state tells whether a line's phone can be reached: `UNAVAILABLE` (no
/// registered contact, or one that stopped answering qualify) puts the line out of service at
/// synchronisation (`DeviceStateList`) and whenever `DeviceStateChange` says so; any other
/// state brings it back. Device states of other things (queues, park lots) change nothing.
#[tokio::test]
async fn unreachable_phones_are_lines_out_of_service() {
    let basic = Transcript::load("basic-call.txt");
    let id = basic.first_action_id("DeviceStateList").expect("recorded");
    // The captured answer, with 203's phone unregistered.
    let mut composed = String::new();
    for block in basic.replies(&id) {
        let text = block.lines.join("\n");
        let text = text.replace(
            "Device: PJSIP/203\nState: NOT_INUSE",
            "Device: PJSIP/203\nState: UNAVAILABLE",
        );
        composed.push_str(&format!("<<< [   0.009]\n{text}\n\n"));
    }
    let unregistered = Transcript::parse(&composed);
    let mut library = Library::recorded();
    library.use_reply("DeviceStateList", &unregistered, &id);
    let live = |device: &str, state: &str| {
        format!(
            "Event: DeviceStateChange\r\nPrivilege: call,all\r\nTimestamp: 1795407300.000000\r\nDevice: {device}\r\nState: {state}\r\n\r\n"
        )
    };
    let script = Script {
        then_send: [
            live("Queue:support", "UNAVAILABLE"),
            live("PJSIP/202", "UNAVAILABLE"),
            live("PJSIP/202", "UNAVAILABLE"),
            live("PJSIP/203", "NOT_INUSE"),
        ]
        .concat()
        .into_bytes(),
        ..Script::default()
    };
    let peer = Peer::start(library, vec![script]).await;
    let mut running = Running::start(config(peer.port));
    assert_eq!(running.next().await, ProviderEvent::Up);
    let ProviderEvent::Synchronized { out_of_service, .. } = running.next().await else {
        panic!("Synchronized must follow Up");
    };
    assert_eq!(out_of_service, [device("203")]);
    peer.go();
    let mut changes = Vec::new();
    while let Some(event) = running.next_within(Duration::from_millis(500)).await {
        if let ProviderEvent::DeviceService {
            device, in_service, ..
        } = event
        {
            changes.push((device.0, in_service));
        }
    }
    assert_eq!(
        changes,
        [("202".to_string(), false), ("203".to_string(), true)],
        "one change each, in order"
    );
    running.stop().await.expect("clean stop");
}
