//! The person at the phone and the outside world: handset actions, incoming outside calls
//! and remote hang-ups.

use tapir_model::{CallOrigin, CallReason, ErrorKind, Party, SimAction};

use super::*;

fn incoming(from: &str, name: Option<&str>) -> SimAction {
    SimAction::IncomingCall {
        from: from.to_string(),
        name: name.map(str::to_string),
    }
}

#[test]
fn off_hook_gives_dial_tone_and_dialling_places_the_call() {
    let mut sim = Sim::new();
    let reports = sim.ok(simulate("201", SimAction::OffHook));
    assert_eq!(steps(&reports), ["c1@201 dialtone:normal"]);
    assert_eq!(reports[0].origin, CallOrigin::Outbound);
    assert_eq!(reports[0].caller, ext("201"));
    let reports = sim.ok(simulate("201", SimAction::Dial("202".into())));
    assert_eq!(
        steps(&reports),
        [
            "c1@201 dialing",
            "c1@201 proceeding",
            "c2@202 offering:active",
            "c1@201 ringback",
        ]
    );
    // Lifting the ringing phone answers it.
    let reports = sim.ok(simulate("202", SimAction::OffHook));
    assert_eq!(
        steps(&reports),
        ["c2@202 connected:active", "c1@201 connected:active"]
    );
    // Hanging up ends the call; the far end is cleared.
    let reports = sim.ok(simulate("201", SimAction::OnHook));
    assert_eq!(
        steps(&reports),
        ["c1@201 idle", "c2@202 disconnected:normal", "c2@202 idle"]
    );
}

#[test]
fn dialling_on_hook_lifts_the_handset_first() {
    let mut sim = Sim::new();
    let reports = sim.ok(simulate("201", SimAction::Dial("203".into())));
    assert_eq!(
        steps(&reports)[..3],
        [
            "c1@201 dialtone:normal",
            "c1@201 dialing",
            "c1@201 proceeding"
        ]
    );
    // With a call in progress there is nothing to dial on.
    let error = sim.fail(simulate("201", SimAction::Dial("204".into())));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    let error = sim.fail(simulate("201", SimAction::OffHook));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    let error = sim.fail(simulate("202", SimAction::Dial("2 0 2".into())));
    assert_eq!(error.kind, ErrorKind::TargetSelf);
    let error = sim.fail(simulate("202", SimAction::Dial("#a".into())));
    assert_eq!(error.kind, ErrorKind::InvalidAddress);
}

#[test]
fn on_hook_clears_a_call_the_far_end_ended_and_needs_a_call() {
    let mut sim = Sim::with(SimConfig {
        external_default: crate::config::ExternalBehaviour::Reject,
        ..SimConfig::default()
    });
    let error = sim.fail(simulate("201", SimAction::OnHook));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    assert!(error.message.contains("201"), "{}", error.message);
    sim.call(make_call("201", "0800"));
    let reports = sim.ok(simulate("201", SimAction::OnHook));
    assert_eq!(steps(&reports), ["c1@201 idle"]);
}

#[test]
fn the_hold_key_holds_the_connected_call() {
    let mut sim = Sim::new();
    assert_eq!(
        sim.fail(simulate("201", SimAction::Hold)).kind,
        ErrorKind::InvalidCallState
    );
    sim.connect("201", "202");
    let reports = sim.ok(simulate("201", SimAction::Hold));
    assert_eq!(steps(&reports), ["c1@201 onhold"]);
}

#[test]
fn an_outside_caller_rings_is_answered_and_hangs_up() {
    let mut sim = Sim::new();
    let reports = sim.ok(simulate("201", incoming("030 1234", Some("Alice"))));
    assert_eq!(steps(&reports), ["c1@201 offering:active"]);
    let ringing = &reports[0];
    assert_eq!(ringing.origin, CallOrigin::External);
    assert_eq!(ringing.reason, CallReason::Direct);
    assert_eq!(ringing.caller, Party::named("0301234", "Alice"));
    assert_eq!(ringing.called, ext("201"));

    let reports = sim.ok(simulate("201", SimAction::OffHook));
    assert_eq!(steps(&reports), ["c1@201 connected:active"]);
    assert_eq!(reports[0].connected, Party::named("0301234", "Alice"));

    let reports = sim.ok(simulate("201", SimAction::RemoteHangup));
    assert_eq!(
        steps(&reports),
        ["c1@201 disconnected:normal", "c1@201 idle"]
    );
    let error = sim.fail(simulate("201", SimAction::RemoteHangup));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
}

#[test]
fn an_outside_caller_follows_busy_and_forwarding_rules() {
    let mut sim = Sim::new();
    let error = sim.fail(simulate("201", incoming("abc", None)));
    assert_eq!(error.kind, ErrorKind::InvalidAddress);
    sim.call(make_call("201", "202"));
    // 201 is busy and does not forward: the outside caller hears busy; no leg appears.
    let reports = sim.ok(simulate("201", incoming("555", None)));
    assert!(reports.is_empty());
    sim.ok(forwards("201", &[(tapir_model::ForwardMode::Busy, "203")]));
    let reports = sim.ok(simulate("201", incoming("555", None)));
    assert_eq!(steps(&reports), ["c3@203 offering:active"]);
    assert_eq!(reports[0].reason, CallReason::ForwardBusy);
    assert_eq!(reports[0].origin, CallOrigin::External);
    assert_eq!(reports[0].caller, Party::number("555"));
    assert_eq!(reports[0].redirecting, ext("201"));
}

#[test]
fn a_ringing_outside_caller_can_give_up() {
    let mut sim = Sim::new();
    sim.ok(simulate("201", incoming("555", None)));
    let reports = sim.ok(simulate("201", SimAction::RemoteHangup));
    assert_eq!(
        steps(&reports),
        ["c1@201 disconnected:cancelled", "c1@201 idle"]
    );
}

#[test]
fn a_remote_hangup_by_an_extension_ends_both_legs() {
    let mut sim = Sim::new();
    sim.connect("201", "202");
    let reports = sim.ok(simulate("201", SimAction::RemoteHangup));
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c1@201 disconnected:normal", "c1@201 idle"]
    );
}

#[test]
fn a_held_call_can_be_hung_up_remotely() {
    let mut sim = Sim::new();
    sim.ok(simulate("201", incoming("555", None)));
    sim.ok(simulate("201", SimAction::OffHook));
    sim.ok(simulate("201", SimAction::Hold));
    let reports = sim.ok(simulate("201", SimAction::RemoteHangup));
    assert_eq!(
        steps(&reports),
        ["c1@201 disconnected:normal", "c1@201 idle"]
    );
}

#[test]
fn on_hook_in_a_conference_ends_the_conference() {
    let mut sim = Sim::new();
    let (_, c2) = sim.connect("201", "202");
    let (c3, reports) = sim.call(consult(&c2, "203"));
    let c4 = last_call_on(&reports, "203");
    sim.ok(answer(&c4));
    let (parent, _) = sim.call(ProviderCommand::Conference {
        held: c2,
        consult: c3,
    });
    let reports = sim.ok(simulate("202", SimAction::OnHook));
    assert_eq!(
        last(&reports, &parent.0).state,
        tapir_model::CallState::Idle
    );
    assert_eq!(reports.len(), 7);
}
