//! Basic calls: ringing, answering, dropping, busy, do-not-disturb, forwarding, hold, the
//! trunk and the errors of call control.

use tapir_model::{CallOrigin, CallReason, CallState, ErrorKind, ForwardMode, Party};
use tapir_provider::{CallRef, DeviceStatus, ProviderCommand, ProviderEvent};

use super::*;
use crate::config::{ExternalBehaviour, ExternalRule};

#[test]
fn an_internal_call_rings_and_is_answered() {
    let mut sim = Sim::new();
    let (c1, reports) = sim.call(make_call("201", "202"));
    assert_eq!(c1, cref("c1"));
    assert_eq!(
        steps(&reports),
        [
            "c1@201 dialing",
            "c1@201 proceeding",
            "c2@202 offering:active",
            "c1@201 ringback",
        ]
    );
    let dialing = &reports[0];
    assert_eq!(dialing.origin, CallOrigin::Outbound);
    assert_eq!(dialing.reason, CallReason::Direct);
    assert_eq!(dialing.caller, ext("201"));
    assert_eq!(dialing.called, ext("202"));
    assert!(dialing.connected.is_unknown());
    let offering = &reports[2];
    assert_eq!(offering.origin, CallOrigin::Internal);
    assert_eq!(offering.reason, CallReason::Direct);
    assert_eq!(offering.caller, ext("201"));
    assert_eq!(offering.called, ext("202"));
    assert!(offering.connected.is_unknown());

    let reports = sim.ok(answer(&cref("c2")));
    assert_eq!(
        steps(&reports),
        ["c2@202 connected:active", "c1@201 connected:active"]
    );
    assert_eq!(reports[0].connected, ext("201"));
    assert_eq!(reports[1].connected, ext("202"));
    assert_eq!(reports[1].called, ext("202"));

    let reports = sim.ok(drop_call(&c1));
    assert_eq!(
        steps(&reports),
        ["c1@201 idle", "c2@202 disconnected:normal", "c2@202 idle"]
    );
}

#[test]
fn the_called_party_rejects_or_the_caller_gives_up() {
    let mut sim = Sim::new();
    sim.call(make_call("201", "202"));
    let reports = sim.ok(drop_call(&cref("c2")));
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c1@201 disconnected:reject", "c1@201 idle"]
    );

    sim.call(make_call("201", "202"));
    let reports = sim.ok(drop_call(&cref("c3")));
    assert_eq!(
        steps(&reports),
        [
            "c3@201 idle",
            "c4@202 disconnected:cancelled",
            "c4@202 idle"
        ]
    );
}

#[test]
fn a_busy_extension_gives_busy_tone() {
    let mut sim = Sim::new();
    // 202 is ringing: that is busy for another caller.
    sim.call(make_call("201", "202"));
    let (_, reports) = sim.call(make_call("203", "202"));
    assert_eq!(
        steps(&reports),
        ["c3@203 dialing", "c3@203 proceeding", "c3@203 busy:station"]
    );
    // 201 is active (ringing back): busy as well.
    let (_, reports) = sim.call(make_call("204", "201"));
    assert_eq!(steps(&reports)[2], "c4@204 busy:station");
    // A held call does not make an extension busy.
    sim.ok(answer(&cref("c2")));
    sim.ok(hold(&cref("c2")));
    let (_, reports) = sim.call(make_call("205", "202"));
    assert_eq!(steps(&reports)[2], "c6@202 offering:active");
}

#[test]
fn do_not_disturb_gives_busy_and_reports_the_status() {
    let mut sim = Sim::new();
    sim.ok(ProviderCommand::SetDoNotDisturb {
        device: key("202"),
        enabled: true,
    });
    assert_eq!(
        sim.last_events[0],
        ProviderEvent::DeviceStatus(DeviceStatus {
            device: key("202"),
            forwards: Vec::new(),
            do_not_disturb: true,
        })
    );
    let (_, reports) = sim.call(make_call("201", "202"));
    assert_eq!(steps(&reports)[2], "c1@201 busy:station");
}

#[test]
fn forward_unconditional_sends_the_call_on() {
    let mut sim = Sim::new();
    sim.ok(forwards("202", &[(ForwardMode::Unconditional, "203")]));
    let (c1, reports) = sim.call(make_call("201", "202"));
    assert_eq!(
        steps(&reports),
        [
            "c1@201 dialing",
            "c1@201 proceeding",
            "c2@203 offering:active",
            "c1@201 ringback",
        ]
    );
    let forwarded = &reports[2];
    assert_eq!(forwarded.reason, CallReason::ForwardUnconditional);
    assert_eq!(forwarded.caller, ext("201"));
    assert_eq!(forwarded.called, ext("202"));
    assert_eq!(forwarded.redirecting, ext("202"));
    assert_eq!(reports[3].redirection, ext("203"));
    let reports = sim.ok(answer(&cref("c2")));
    assert_eq!(last(&reports, &c1.0).connected, ext("203"));
}

#[test]
fn forwarding_is_applied_once() {
    let mut sim = Sim::new();
    sim.ok(forwards("202", &[(ForwardMode::Unconditional, "203")]));
    sim.ok(forwards("203", &[(ForwardMode::Unconditional, "202")]));
    let (_, reports) = sim.call(make_call("201", "202"));
    assert_eq!(steps(&reports)[2], "c2@203 offering:active");
}

#[test]
fn forward_on_busy_applies_only_when_busy() {
    let mut sim = Sim::new();
    sim.ok(forwards("202", &[(ForwardMode::Busy, "0301 234-5")]));
    let status = &sim.last_events[0];
    let ProviderEvent::DeviceStatus(status) = status else {
        panic!("expected a device status, got {status:?}");
    };
    assert_eq!(
        status.forwards[0].destination, "03012345",
        "stored normalised"
    );
    let (_, reports) = sim.call(make_call("201", "202"));
    assert_eq!(steps(&reports)[2], "c2@202 offering:active");
    // Now 202 rings, so it is busy for 203, whose call goes to the outside number.
    let (c3, reports) = sim.call(make_call("203", "202"));
    assert_eq!(
        steps(&reports),
        [
            "c3@203 dialing",
            "c3@203 proceeding",
            "c3@203 ringback",
            "c3@203 connected:active",
        ]
    );
    let connected = last(&reports, &c3.0);
    assert_eq!(connected.redirection, Party::number("03012345"));
    assert_eq!(connected.connected, Party::number("03012345"));
}

#[test]
fn forward_on_no_answer_moves_a_call_that_rang_too_long() {
    let mut sim = Sim::with(SimConfig {
        no_answer_timeout_ms: 1000,
        ..SimConfig::default()
    });
    sim.ok(forwards("202", &[(ForwardMode::NoAnswer, "203")]));
    sim.call(make_call("201", "202"));
    assert!(sim.advance(999).is_empty());
    let reports = sim.advance(1);
    assert_eq!(
        steps(&reports),
        ["c2@202 idle", "c3@203 offering:active", "c1@201 ringback"]
    );
    assert_eq!(reports[1].reason, CallReason::ForwardNoAnswer);
    assert_eq!(reports[1].redirecting, ext("202"));
    assert_eq!(reports[1].called, ext("202"));
    assert_eq!(reports[2].redirection, ext("203"));
    // The forwarded call is not forwarded again, and without forwarding nothing moves.
    assert!(sim.advance(5000).is_empty());
}

#[test]
fn no_answer_without_forwarding_keeps_ringing() {
    let mut sim = Sim::with(SimConfig {
        no_answer_timeout_ms: 10,
        ..SimConfig::default()
    });
    sim.call(make_call("201", "202"));
    assert!(sim.advance(100).is_empty());
    assert_eq!(sim.switch.next_deadline(), None, "timers are used up");
}

#[test]
fn hold_unhold_and_swap() {
    let mut sim = Sim::new();
    let (c1, _) = sim.connect("201", "202");
    let reports = sim.ok(hold(&c1));
    assert_eq!(
        steps(&reports),
        ["c1@201 onhold"],
        "the far end stays connected"
    );
    let reports = sim.ok(unhold(&c1));
    assert_eq!(steps(&reports), ["c1@201 connected:active"]);
    sim.ok(hold(&c1));
    let (c3, _) = sim.connect("201", "203");
    let error = sim.fail(unhold(&c1));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    assert!(error.message.contains("use swap"), "{}", error.message);
    let reports = sim.ok(ProviderCommand::Swap {
        active: c3.clone(),
        held: c1.clone(),
    });
    assert_eq!(
        steps(&reports),
        ["c3@201 onhold", "c1@201 connected:active"]
    );
    // Swapping calls of different extensions is refused.
    let (c5, _) = sim.connect("205", "206");
    let error = sim.fail(ProviderCommand::Swap {
        active: c5,
        held: c3.clone(),
    });
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    // Holding a held call is refused.
    assert_eq!(sim.fail(hold(&c3)).kind, ErrorKind::InvalidCallState);
}

#[test]
fn dropping_a_held_call_disconnects_its_far_end() {
    let mut sim = Sim::new();
    let (c1, _) = sim.connect("201", "202");
    sim.ok(hold(&c1));
    let reports = sim.ok(drop_call(&c1));
    assert_eq!(
        steps(&reports),
        ["c1@201 idle", "c2@202 disconnected:normal", "c2@202 idle"]
    );
}

fn trunk(rules: &[(&str, ExternalBehaviour)]) -> SimConfig {
    SimConfig {
        external_answer_delay_ms: 500,
        external: rules
            .iter()
            .map(|(prefix, behaviour)| ExternalRule {
                prefix: prefix.to_string(),
                behaviour: *behaviour,
                name: Some(format!("{behaviour:?} line")),
            })
            .collect(),
        ..SimConfig::default()
    }
}

#[test]
fn outside_numbers_behave_as_configured() {
    use ExternalBehaviour as B;
    let config = trunk(&[
        ("01", B::Answer),
        ("02", B::Busy),
        ("03", B::Reject),
        ("04", B::NoAnswer),
    ]);
    let mut sim = Sim::with(config);

    let (_, reports) = sim.call(make_call("201", "0100"));
    assert_eq!(
        steps(&reports),
        ["c1@201 dialing", "c1@201 proceeding", "c1@201 ringback"]
    );
    assert_eq!(reports[0].called, Party::named("0100", "Answer line"));
    assert!(sim.advance(499).is_empty());
    let reports = sim.advance(1);
    assert_eq!(steps(&reports), ["c1@201 connected:active"]);
    assert_eq!(reports[0].connected, Party::named("0100", "Answer line"));

    let (_, reports) = sim.call(make_call("202", "0200"));
    assert_eq!(steps(&reports)[2], "c2@202 busy:trunk");

    let (c3, reports) = sim.call(make_call("203", "0300"));
    assert_eq!(steps(&reports)[2], "c3@203 disconnected:reject");
    // The caller hangs up the rejected call.
    assert_eq!(steps(&sim.ok(drop_call(&c3))), ["c3@203 idle"]);

    let (_, reports) = sim.call(make_call("204", "0400"));
    assert_eq!(steps(&reports)[2], "c4@204 ringback");
    assert!(
        sim.advance(1_000_000).is_empty(),
        "no answer rings for ever"
    );
}

#[test]
fn unmatched_outside_numbers_follow_the_default() {
    let mut sim = Sim::with(SimConfig {
        external_default: ExternalBehaviour::Busy,
        ..SimConfig::default()
    });
    let (_, reports) = sim.call(make_call("201", "+49 89 1234"));
    assert_eq!(reports[0].called, Party::number("+49891234"));
    assert_eq!(steps(&reports)[2], "c1@201 busy:trunk");
}

#[test]
fn the_ring_delay_holds_the_caller_in_proceeding() {
    let mut sim = Sim::with(SimConfig {
        ring_delay_ms: 300,
        ..SimConfig::default()
    });
    let (_, reports) = sim.call(make_call("201", "202"));
    assert_eq!(steps(&reports), ["c1@201 dialing", "c1@201 proceeding"]);
    assert!(sim.advance(299).is_empty());
    let reports = sim.advance(1);
    assert_eq!(
        steps(&reports),
        ["c2@202 offering:active", "c1@201 ringback"]
    );
}

#[test]
fn a_call_dropped_during_the_ring_delay_never_rings() {
    let mut sim = Sim::with(SimConfig {
        ring_delay_ms: 300,
        ..SimConfig::default()
    });
    let (c1, _) = sim.call(make_call("201", "202"));
    assert_eq!(steps(&sim.ok(drop_call(&c1))), ["c1@201 idle"]);
    assert!(sim.advance(1000).is_empty());
}

#[test]
fn auto_answer_extensions_pick_up_by_themselves() {
    let mut sim = Sim::with(SimConfig {
        auto_answer: vec!["202".into()],
        auto_answer_delay_ms: 100,
        ..SimConfig::default()
    });
    sim.call(make_call("201", "202"));
    assert!(sim.advance(99).is_empty());
    let reports = sim.advance(1);
    assert_eq!(
        steps(&reports),
        ["c2@202 connected:active", "c1@201 connected:active"]
    );
}

#[test]
fn auto_answer_without_delay_answers_in_the_same_step() {
    let mut sim = Sim::with(SimConfig {
        auto_answer: vec!["202".into()],
        ..SimConfig::default()
    });
    let (_, reports) = sim.call(make_call("201", "202"));
    let tail: Vec<_> = steps(&reports).into_iter().skip(2).collect();
    assert_eq!(
        tail,
        [
            "c2@202 offering:active",
            "c1@201 ringback",
            "c2@202 connected:active",
            "c1@201 connected:active",
        ]
    );
}

#[test]
fn errors_name_the_call_or_device_and_have_no_effect() {
    let mut sim = Sim::new();
    let error = sim.fail(make_call("999", "202"));
    assert_eq!(error.kind, ErrorKind::InvalidLine);
    assert!(error.message.contains("999"), "{}", error.message);

    for call in ["c42", "x1", "c", ""] {
        let error = sim.fail(drop_call(&cref(call)));
        assert_eq!(error.kind, ErrorKind::InvalidCall, "{call:?}");
        assert!(error.message.contains(call), "{}", error.message);
    }

    for to in ["", "12a", "+", "sip:202"] {
        let error = sim.fail(make_call("201", to));
        assert_eq!(error.kind, ErrorKind::InvalidAddress, "{to:?}");
    }

    let error = sim.fail(make_call("201", "2-01"));
    assert_eq!(error.kind, ErrorKind::TargetSelf);
    assert!(error.message.contains("201"), "{}", error.message);

    let error = sim.fail(forwards("201", &[(ForwardMode::Busy, "201")]));
    assert_eq!(error.kind, ErrorKind::TargetSelf);
    let error = sim.fail(forwards("201", &[(ForwardMode::Busy, "abc")]));
    assert_eq!(error.kind, ErrorKind::InvalidAddress);

    let (c1, _) = sim.call(make_call("201", "202"));
    let error = sim.fail(make_call("201", "203"));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    assert_eq!(
        error.message,
        "extension 201 already has an active call; hold it first"
    );
    let error = sim.fail(answer(&c1));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    assert!(error.message.contains("c1"), "{}", error.message);
    assert_eq!(
        sim.fail(hold(&cref("c2"))).kind,
        ErrorKind::InvalidCallState
    );
    assert_eq!(sim.fail(unhold(&c1)).kind, ErrorKind::InvalidCallState);

    let error = sim.fail(pickup("203", PickupFrom::Device(key("204"))));
    assert_eq!(error.kind, ErrorKind::TargetNotFound);
    let error = sim.fail(pickup("202", PickupFrom::Device(key("202"))));
    assert_eq!(error.kind, ErrorKind::TargetSelf);
    let error = sim.fail(pickup("202", PickupFrom::Call(cref("c2"))));
    assert_eq!(error.kind, ErrorKind::TargetSelf);
    let error = sim.fail(pickup("203", PickupFrom::Call(c1.clone())));
    assert_eq!(error.kind, ErrorKind::InvalidCallState);
    let error = sim.fail(pickup("203", PickupFrom::Device(key("1"))));
    assert_eq!(error.kind, ErrorKind::InvalidLine);

    let error = sim.fail(ProviderCommand::Redirect {
        call: cref("c2"),
        to: "202".into(),
    });
    assert_eq!(error.kind, ErrorKind::TargetSelf);
    let error = sim.fail(ProviderCommand::SetDoNotDisturb {
        device: key("0201"),
        enabled: true,
    });
    assert_eq!(error.kind, ErrorKind::InvalidLine);
}

#[test]
fn every_request_gets_exactly_one_completion() {
    // `Sim::run` asserts one Completed per request; here a mixed script of successes and
    // failures counts them over the whole run as well.
    let mut sim = Sim::new();
    let commands = vec![
        make_call("201", "202"),
        make_call("201", "203"),
        answer(&cref("c2")),
        answer(&cref("c2")),
        hold(&cref("c1")),
        consult(&cref("c1"), "204"),
        unhold(&cref("c1")),
        drop_call(&cref("c9")),
        simulate("205", tapir_model::SimAction::OnHook),
        simulate("205", tapir_model::SimAction::Dial("201".into())),
    ];
    let total = commands.len();
    let mut completions = 0;
    let mut failures = 0;
    for command in commands {
        failures += usize::from(sim.run(command).0.is_err());
        completions += sim
            .last_events
            .iter()
            .filter(|event| matches!(event, ProviderEvent::Completed { .. }))
            .count();
    }
    assert_eq!(completions, total);
    assert_eq!(failures, 5, "the script mixes successes and failures");
}

#[test]
fn a_hundred_thousand_extensions_enumerate_and_call() {
    let mut sim = Sim::with(SimConfig {
        extensions: 100_000,
        ..SimConfig::default()
    });
    let devices = sim.switch.devices();
    assert_eq!(devices.len(), 100_000);
    assert_eq!(devices[0].key.0, "201");
    assert_eq!(devices[99_999].key.0, "100200");
    assert_eq!(devices[99_999].name, "Extension 100200");
    assert_eq!(sim.switch.statuses().len(), 100_000);
    let (_, reports) = sim.call(make_call("100200", "201"));
    assert_eq!(steps(&reports)[2], "c2@201 offering:active");
    assert_eq!(
        sim.fail(make_call("100201", "201")).kind,
        ErrorKind::InvalidLine
    );
}

#[test]
fn call_refs_are_never_reused() {
    let mut sim = Sim::new();
    let (c1, _) = sim.call(make_call("201", "202"));
    sim.ok(drop_call(&c1));
    let (next, _) = sim.call(make_call("201", "202"));
    assert_eq!(next, CallRef("c3".into()));
    assert_eq!(sim.fail(drop_call(&c1)).kind, ErrorKind::InvalidCall);
}

#[test]
fn a_call_state_report_is_full() {
    let mut sim = Sim::new();
    let (_, reports) = sim.call(make_call("201", "202"));
    let ringback = last(&reports, "c1");
    assert_eq!(ringback.state, CallState::Ringback);
    assert_eq!(ringback.device, key("201"));
    assert_eq!(ringback.related, None);
    assert_eq!(ringback.conference, None);
    assert!(ringback.redirecting.is_unknown() && ringback.redirection.is_unknown());
}
