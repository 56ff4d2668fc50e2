//! Call park and unpark.

use tapir_model::{CallOrigin, CallReason, ErrorKind, Party, SimAction};
use tapir_provider::{Completion, ProviderCommand};

use super::*;

fn park(call: &CallRef, to: Option<&str>) -> ProviderCommand {
    ProviderCommand::Park {
        call: call.clone(),
        to: to.map(str::to_owned),
    }
}

fn unpark(device: &str, from: &str) -> ProviderCommand {
    ProviderCommand::Unpark {
        device: key(device),
        from: from.to_owned(),
    }
}

fn parked_at(outcome: Result<Completion, TapiError>) -> String {
    match outcome {
        Ok(Completion::Parked { at }) => at,
        other => panic!("expected a park, got {other:?}"),
    }
}

#[test]
fn a_parked_call_waits_at_its_place_until_another_extension_unparks_it() {
    let mut sim = Sim::new();
    let (c1, c2) = sim.connect("201", "202");
    let (outcome, reports) = sim.run(park(&c2, None));
    assert_eq!(parked_at(outcome), "701");
    assert_eq!(steps(&reports), ["c2@202 idle", "c1@201 connected:active"]);
    assert_eq!(reports[1].connected, Party::named("701", "Park"));

    let (taken, reports) = sim.call(unpark("203", "701"));
    assert_eq!(
        steps(&reports),
        ["c3@203 connected:active", "c1@201 connected:active"]
    );
    let new = &reports[0];
    assert_eq!(new.call, taken);
    assert_eq!(new.reason, CallReason::Unpark);
    assert_eq!(new.origin, CallOrigin::Internal);
    assert_eq!(new.connected, ext("201"));
    assert_eq!(new.redirecting, Party::named("701", "Park"));
    assert_eq!(reports[1].connected, ext("203"));
    // They talk: 201 hanging up clears 203, and the place is free again.
    let reports = sim.ok(drop_call(&c1));
    assert_eq!(
        steps(&reports),
        ["c1@201 idle", "c3@203 disconnected:normal", "c3@203 idle"]
    );
    assert_eq!(
        sim.fail(unpark("204", "701")).kind,
        ErrorKind::TargetNotFound
    );
}

#[test]
fn directed_park_takes_the_named_place_and_refuses_taken_or_unknown_ones() {
    let mut sim = Sim::new();
    let (_, c2) = sim.connect("201", "202");
    let (_, c4) = sim.connect("203", "204");
    let (outcome, _) = sim.run(park(&c2, Some("715")));
    assert_eq!(parked_at(outcome), "715");
    assert_eq!(
        sim.fail(park(&c4, Some("715"))).kind,
        ErrorKind::ResourceUnavailable
    );
    assert_eq!(
        sim.fail(park(&c4, Some("999"))).kind,
        ErrorKind::InvalidAddress
    );
    assert_eq!(
        sim.fail(park(&c4, Some("0715"))).kind,
        ErrorKind::InvalidAddress
    );
    // A non-directed park takes the first free place.
    let (outcome, _) = sim.run(park(&c4, None));
    assert_eq!(parked_at(outcome), "701");
}

#[test]
fn an_outside_caller_can_be_parked_and_a_parked_extension_that_hangs_up_frees_its_place() {
    let mut sim = Sim::new();
    sim.ok(simulate(
        "202",
        SimAction::IncomingCall {
            from: "555".into(),
            name: None,
        },
    ));
    sim.ok(simulate("202", SimAction::OffHook));
    let (outcome, reports) = sim.run(park(&cref("c1"), None));
    assert_eq!(parked_at(outcome), "701");
    assert_eq!(steps(&reports), ["c1@202 idle"]);
    let (_, reports) = sim.call(unpark("203", "701"));
    assert_eq!(reports[0].origin, CallOrigin::External);
    assert_eq!(reports[0].connected.number.as_deref(), Some("555"));

    let (c3, c4) = sim.connect("201", "204");
    let (outcome, _) = sim.run(park(&c4, None));
    assert_eq!(parked_at(outcome), "701");
    sim.ok(drop_call(&c3));
    assert_eq!(
        sim.fail(unpark("205", "701")).kind,
        ErrorKind::TargetNotFound
    );
}

#[test]
fn only_a_plain_connected_call_can_be_parked_and_unpark_needs_a_free_line() {
    let mut sim = Sim::new();
    let (c1, _) = sim.connect("201", "202");
    sim.call(consult(&c1, "203"));
    assert_eq!(sim.fail(park(&c1, None)).kind, ErrorKind::InvalidCallState);
    let (_, c6) = sim.connect("204", "205");
    let (outcome, _) = sim.run(park(&c6, None));
    let place = parked_at(outcome);
    // 201 is busy with its consultation: it cannot take the parked call now.
    assert_eq!(
        sim.fail(unpark("201", &place)).kind,
        ErrorKind::InvalidCallState
    );
    // 204 parked its own call from the other side: the parked party is 204 itself.
    assert_eq!(sim.fail(unpark("204", &place)).kind, ErrorKind::TargetSelf);
}
