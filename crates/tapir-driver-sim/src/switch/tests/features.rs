//! Transfer, consultation, conference, redirect and pickup.

use tapir_model::{CallOrigin, CallReason, ErrorKind, Party, SimAction};
use tapir_provider::{Completion, ProviderCommand};

use super::*;

fn transfer(call: &CallRef, to: &str) -> ProviderCommand {
    ProviderCommand::BlindTransfer {
        call: call.clone(),
        to: to.to_string(),
    }
}

fn conference(held: &CallRef, consult: &CallRef) -> ProviderCommand {
    ProviderCommand::Conference {
        held: held.clone(),
        consult: consult.clone(),
    }
}

#[test]
fn blind_transfer_rings_the_target_for_the_far_end() {
    let mut sim = Sim::new();
    let (c1, c2) = sim.connect("201", "202");
    let reports = sim.ok(transfer(&c2, "203"));
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c3@203 offering:active", "c1@201 ringback"]
    );
    let ringing = &reports[1];
    assert_eq!(ringing.reason, CallReason::Transfer);
    assert_eq!(ringing.origin, CallOrigin::Internal);
    assert_eq!(ringing.caller, ext("201"));
    assert_eq!(ringing.called, ext("203"));
    assert_eq!(ringing.redirecting, ext("202"));
    let caller = &reports[2];
    assert_eq!(caller.called, ext("203"));
    assert!(caller.connected.is_unknown());

    let reports = sim.ok(answer(&cref("c3")));
    assert_eq!(
        steps(&reports),
        ["c3@203 connected:active", "c1@201 connected:active"]
    );
    assert_eq!(reports[0].connected, ext("201"));
    assert_eq!(last(&reports, &c1.0).connected, ext("203"));
}

#[test]
fn blind_transfer_of_an_outside_caller() {
    let mut sim = Sim::new();
    sim.ok(simulate(
        "201",
        SimAction::IncomingCall {
            from: "0301234".into(),
            name: Some("Alice".into()),
        },
    ));
    sim.ok(answer(&cref("c1")));
    let reports = sim.ok(transfer(&cref("c1"), "202"));
    assert_eq!(steps(&reports), ["c1@201 idle", "c2@202 offering:active"]);
    assert_eq!(reports[1].origin, CallOrigin::External);
    assert_eq!(reports[1].caller, Party::named("0301234", "Alice"));
    assert_eq!(reports[1].redirecting, ext("201"));
}

#[test]
fn blind_transfer_checks_its_target() {
    let mut sim = Sim::new();
    let (c1, c2) = sim.connect("201", "202");
    assert_eq!(sim.fail(transfer(&c2, "202")).kind, ErrorKind::TargetSelf);
    assert_eq!(sim.fail(transfer(&c2, "201")).kind, ErrorKind::TargetSelf);
    assert_eq!(
        sim.fail(transfer(&c2, "2x")).kind,
        ErrorKind::InvalidAddress
    );
    sim.ok(hold(&c1));
    assert_eq!(
        sim.fail(transfer(&c1, "203")).kind,
        ErrorKind::InvalidCallState
    );
}

/// 201 talks to 202 (c1, c2); 202 consults 203 (c3 on 202, c4 on 203 ringing).
fn consulting() -> Sim {
    let mut sim = Sim::new();
    sim.connect("201", "202");
    let (c3, reports) = sim.call(consult(&cref("c2"), "203"));
    assert_eq!(c3, cref("c3"));
    assert_eq!(
        steps(&reports),
        [
            "c2@202 onholdpendtransfer",
            "c3@202 dialing",
            "c3@202 proceeding",
            "c4@203 offering:active",
            "c3@202 ringback",
        ]
    );
    assert_eq!(reports[0].related, Some(cref("c3")));
    assert_eq!(reports[1].related, Some(cref("c2")));
    assert_eq!(reports[3].caller, ext("202"));
    sim
}

#[test]
fn consultation_transfer_after_the_target_answered() {
    let mut sim = consulting();
    sim.ok(answer(&cref("c4")));
    let reports = sim.ok(complete(&cref("c2"), &cref("c3")));
    assert_eq!(
        steps(&reports),
        [
            "c2@202 idle",
            "c3@202 idle",
            "c4@203 connected:active",
            "c1@201 connected:active",
        ]
    );
    assert_eq!(reports[2].connected, ext("201"));
    assert_eq!(reports[3].connected, ext("203"));
    assert_eq!(reports[3].called, ext("203"));
    // The two are now talking: a hang-up at 201 clears 203.
    let reports = sim.ok(drop_call(&cref("c1")));
    assert_eq!(
        steps(&reports),
        ["c1@201 idle", "c4@203 disconnected:normal", "c4@203 idle"]
    );
}

#[test]
fn consultation_transfer_while_the_target_still_rings() {
    let mut sim = consulting();
    let reports = sim.ok(complete(&cref("c2"), &cref("c3")));
    assert_eq!(
        steps(&reports),
        [
            "c2@202 idle",
            "c3@202 idle",
            "c4@203 offering:active",
            "c1@201 ringback",
        ]
    );
    assert_eq!(reports[2].caller, ext("201"));
    assert!(reports[3].connected.is_unknown());
    assert_eq!(reports[3].called, ext("203"));
    let reports = sim.ok(answer(&cref("c4")));
    assert_eq!(
        steps(&reports),
        ["c4@203 connected:active", "c1@201 connected:active"]
    );
    assert_eq!(reports[0].connected, ext("201"));
    assert_eq!(reports[1].connected, ext("203"));
}

#[test]
fn dropping_the_consultation_brings_the_original_back() {
    let mut sim = consulting();
    let reports = sim.ok(drop_call(&cref("c3")));
    assert_eq!(
        steps(&reports),
        [
            "c3@202 idle",
            "c4@203 disconnected:cancelled",
            "c4@203 idle",
            "c2@202 connected:active",
        ]
    );
    assert_eq!(reports[3].related, None);
}

#[test]
fn complete_transfer_checks_the_pair() {
    let mut sim = consulting();
    let error = sim.fail(complete(&cref("c3"), &cref("c2")));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    let error = sim.fail(complete(&cref("c2"), &cref("c1")));
    assert_eq!(error.kind, ErrorKind::InvalidConsultCall);
    let error = sim.fail(complete(&cref("c2"), &cref("c99")));
    assert_eq!(error.kind, ErrorKind::InvalidCall);
    // A conference needs the consultation answered.
    let error = sim.fail(conference(&cref("c2"), &cref("c3")));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    // One consultation at a time.
    let error = sim.fail(consult(&cref("c2"), "204"));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
}

#[test]
fn conference_joins_both_and_ends_with_its_parent() {
    let mut sim = consulting();
    sim.ok(answer(&cref("c4")));
    let (parent, reports) = sim.call(conference(&cref("c2"), &cref("c3")));
    assert_eq!(parent, cref("c5"));
    assert_eq!(
        steps(&reports),
        [
            "c5@202 connected:active",
            "c2@202 conferenced",
            "c1@201 connected:active",
            "c3@202 conferenced",
            "c4@203 connected:active",
        ]
    );
    assert_eq!(reports[0].origin, CallOrigin::Conference);
    assert_eq!(reports[1].conference, Some(cref("c5")));
    assert_eq!(reports[1].related, None);
    let bridge = Party::named("202", "Conference");
    assert_eq!(reports[2].connected, bridge);
    assert_eq!(reports[4].connected, bridge);

    let reports = sim.ok(drop_call(&parent));
    assert_eq!(
        steps(&reports),
        [
            "c2@202 idle",
            "c1@201 disconnected:normal",
            "c1@201 idle",
            "c3@202 idle",
            "c4@203 disconnected:normal",
            "c4@203 idle",
            "c5@202 idle",
        ]
    );
}

#[test]
fn a_conference_ends_when_its_last_member_leaves() {
    let mut sim = consulting();
    sim.ok(answer(&cref("c4")));
    sim.call(conference(&cref("c2"), &cref("c3")));
    let reports = sim.ok(drop_call(&cref("c1")));
    assert_eq!(steps(&reports), ["c1@201 idle", "c2@202 idle"]);
    let reports = sim.ok(drop_call(&cref("c4")));
    assert_eq!(
        steps(&reports),
        ["c4@203 idle", "c3@202 idle", "c5@202 idle"]
    );
}

#[test]
fn redirect_deflects_a_ringing_call() {
    let mut sim = Sim::new();
    sim.call(make_call("201", "202"));
    let reports = sim.ok(ProviderCommand::Redirect {
        call: cref("c2"),
        to: "203".into(),
    });
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c3@203 offering:active", "c1@201 ringback"]
    );
    assert_eq!(reports[1].reason, CallReason::Redirect);
    assert_eq!(reports[1].redirecting, ext("202"));
    assert_eq!(reports[1].called, ext("202"));
    assert_eq!(reports[1].caller, ext("201"));
    assert_eq!(reports[2].redirection, ext("203"));
    let error = sim.fail(ProviderCommand::Redirect {
        call: cref("c1"),
        to: "204".into(),
    });
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
}

#[test]
fn pickup_by_call_takes_the_ringing_call() {
    let mut sim = Sim::new();
    sim.call(make_call("201", "202"));
    let (picked, reports) = sim.call(pickup("203", PickupFrom::Call(cref("c2"))));
    assert_eq!(picked, cref("c3"));
    assert_eq!(
        steps(&reports),
        [
            "c2@202 disconnected:pickup",
            "c2@202 idle",
            "c3@203 connected:active",
            "c1@201 connected:active",
        ]
    );
    let new = &reports[2];
    assert_eq!(new.reason, CallReason::Pickup);
    assert_eq!(new.origin, CallOrigin::Internal);
    assert_eq!(new.caller, ext("201"));
    assert_eq!(new.called, ext("202"));
    assert_eq!(new.connected, ext("201"));
    assert_eq!(reports[3].connected, ext("203"));
    // The two talk: 201 hanging up clears 203.
    let reports = sim.ok(drop_call(&cref("c1")));
    assert_eq!(
        steps(&reports),
        ["c1@201 idle", "c3@203 disconnected:normal", "c3@203 idle"]
    );
}

#[test]
fn pickup_by_device_takes_what_rings_there() {
    let mut sim = Sim::new();
    sim.ok(simulate(
        "202",
        SimAction::IncomingCall {
            from: "555".into(),
            name: None,
        },
    ));
    let (outcome, reports) = sim.run(pickup("204", PickupFrom::Device(key("202"))));
    assert_eq!(outcome, Ok(Completion::Call(cref("c2"))));
    assert_eq!(
        steps(&reports),
        [
            "c1@202 disconnected:pickup",
            "c1@202 idle",
            "c2@204 connected:active",
        ]
    );
    assert_eq!(reports[2].origin, CallOrigin::External);
    assert_eq!(reports[2].connected, Party::number("555"));
    // The picking extension must be free.
    sim.ok(simulate(
        "202",
        SimAction::IncomingCall {
            from: "556".into(),
            name: None,
        },
    ));
    let error = sim.fail(pickup("204", PickupFrom::Device(key("202"))));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
}

#[test]
fn consultation_transfer_to_an_outside_number_that_still_rings() {
    let mut sim = Sim::with(SimConfig {
        external_answer_delay_ms: 1000,
        ..SimConfig::default()
    });
    sim.connect("201", "202");
    let (c3, reports) = sim.call(consult(&cref("c2"), "0800"));
    assert_eq!(
        steps(&reports).last().map(String::as_str),
        Some("c3@202 ringback")
    );
    let reports = sim.ok(complete(&cref("c2"), &c3));
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c3@202 idle", "c1@201 ringback"]
    );
    assert_eq!(reports[2].called, Party::number("0800"));
    // The outside number answers the transferred caller after its answer delay.
    assert!(sim.advance(999).is_empty());
    let reports = sim.advance(1);
    assert_eq!(steps(&reports), ["c1@201 connected:active"]);
    assert_eq!(reports[0].connected, Party::number("0800"));
}

#[test]
fn consultation_transfer_before_the_target_is_reached() {
    let mut sim = Sim::with(SimConfig {
        ring_delay_ms: 200,
        ..SimConfig::default()
    });
    let (_, reports) = sim.call(make_call("201", "202"));
    assert_eq!(steps(&reports), ["c1@201 dialing", "c1@201 proceeding"]);
    sim.advance(200);
    sim.ok(answer(&cref("c2")));
    let (c3, _) = sim.call(consult(&cref("c2"), "203"));
    // c3 is proceeding: 201 dials on in its place, without a second ring delay.
    let reports = sim.ok(complete(&cref("c2"), &c3));
    assert_eq!(
        steps(&reports),
        [
            "c2@202 idle",
            "c3@202 idle",
            "c4@203 offering:active",
            "c1@201 ringback",
        ]
    );
    assert_eq!(reports[2].reason, CallReason::Transfer);
    assert_eq!(reports[2].caller, ext("201"));
    assert!(
        sim.advance(1000).is_empty(),
        "the consultation's delay is void"
    );
}

#[test]
fn swapping_between_an_original_and_its_consultation() {
    let mut sim = consulting();
    sim.ok(answer(&cref("c4")));
    let reports = sim.ok(ProviderCommand::Swap {
        active: cref("c3"),
        held: cref("c2"),
    });
    assert_eq!(
        steps(&reports),
        ["c3@202 onhold", "c2@202 connected:active"]
    );
    // Dropping the held consultation leaves the original alone but unrelated.
    let reports = sim.ok(drop_call(&cref("c3")));
    assert_eq!(
        steps(&reports),
        [
            "c3@202 idle",
            "c4@203 disconnected:normal",
            "c4@203 idle",
            "c2@202 connected:active",
        ]
    );
    assert_eq!(reports[3].related, None);
}

#[test]
fn blind_transfer_to_an_outside_number() {
    let mut sim = Sim::new();
    let (c1, c2) = sim.connect("201", "202");
    let reports = sim.ok(transfer(&c2, "+44 20 7946 0000"));
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c1@201 ringback", "c1@201 connected:active"]
    );
    assert_eq!(
        last(&reports, &c1.0).connected,
        Party::number("+442079460000")
    );
}
