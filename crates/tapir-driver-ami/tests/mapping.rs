//! The mapping fed directly from the captured transcripts, without sockets: the TAPI-level
//! picture of each scenario per line.

mod support;

use std::collections::BTreeMap;

use tapir_driver_ami::mapping::Tracker;
use tapir_driver_ami::mapping::lines::Lines;
use tapir_driver_ami::message::Message;
use tapir_model::{CallOrigin, CallReason, Party};
use tapir_provider::{CallReport, ProviderEvent};

use support::transcript::Transcript;
use support::{reports, states_of};

/// The lines of the captured PBX: endpoints 201-203 with their hints.
fn tracker() -> Tracker {
    let basic = Transcript::load("basic-call.txt");
    let items = |action| {
        let id = basic.first_action_id(action).expect("recorded");
        basic
            .replies(&id)
            .into_iter()
            .map(|b| b.message)
            .collect::<Vec<Message>>()
    };
    let lines = Lines::build(
        tapir_driver_ami::Technology::Pjsip,
        &items("PJSIPShowEndpoints"),
        &items("ExtensionStateList"),
        &BTreeMap::new(),
        |_, extension| format!("Extension {extension}"),
    );
    Tracker::new(lines)
}

/// Feeds every event of the scenario and returns the reports.
fn replay(name: &str) -> Vec<CallReport> {
    let transcript = Transcript::load("scenarios.txt");
    let mut tracker = tracker();
    let mut out: Vec<ProviderEvent> = Vec::new();
    for message in Transcript::sent(transcript.scenario(name)) {
        if message.action_id().is_none() {
            tracker.handle(message, &mut out);
        }
    }
    reports(&out)
}

fn party(report: &CallReport) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        report.caller.number.as_deref(),
        report.called.number.as_deref(),
        report.connected.number.as_deref(),
    )
}

/// The last report of `device` in `state`.
fn last_in<'a>(reports: &'a [CallReport], device: &str, state: &str) -> &'a CallReport {
    reports
        .iter()
        .rev()
        .find(|r| r.device.0 == device && r.state.name() == state)
        .unwrap_or_else(|| panic!("no {state} report on {device}"))
}

#[test]
fn ring_then_manual_answer() {
    let r = replay("ring_manual_answer");
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
    let offering = last_in(&r, "202", "offering");
    assert_eq!(offering.origin, CallOrigin::Internal);
    assert_eq!(offering.caller, Party::named("201", "CTI"));
    assert_eq!(party(offering), (Some("201"), Some("202"), None));
    let outbound = last_in(&r, "201", "connected");
    assert_eq!(outbound.origin, CallOrigin::Outbound);
    assert_eq!(party(outbound), (Some("201"), Some("202"), Some("202")));
    assert!(states_of(&r, "203").is_empty());
}

#[test]
fn hold_from_the_phone_holds_the_holder_and_keeps_the_other_connected() {
    let r = replay("hold_resume");
    // Phone 202 pressed hold: its appearance is on hold; 201 (hearing music) stays connected.
    assert_eq!(
        states_of(&r, "202"),
        [
            "offering",
            "connected",
            "onhold",
            "connected",
            "disconnected/normal",
            "idle"
        ]
    );
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
}

#[test]
fn blind_transfers_by_ami_and_by_refer_reach_the_target_as_transfers() {
    for name in ["ami_blindtransfer", "phone_refer"] {
        let r = replay(name);
        assert_eq!(
            states_of(&r, "202"),
            ["offering", "connected", "disconnected/normal", "idle"],
            "{name}"
        );
        assert_eq!(
            states_of(&r, "203"),
            ["offering", "connected", "disconnected/normal", "idle"],
            "{name}"
        );
        let target = last_in(&r, "203", "offering");
        assert_eq!(target.reason, CallReason::Transfer, "{name}");
        assert_eq!(target.redirecting.number.as_deref(), Some("202"), "{name}");
        assert_eq!(party(target), (Some("201"), Some("203"), None), "{name}");
        // The transferee now talks to the target.
        let transferee = last_in(&r, "201", "connected");
        assert_eq!(
            transferee.connected.number.as_deref(),
            Some("203"),
            "{name}"
        );
    }
}

#[test]
fn attended_transfer_holds_then_joins_the_transferee_and_the_target() {
    let r = replay("ami_atxfer");
    let s202 = states_of(&r, "202");
    assert_eq!(&s202[..4], ["offering", "connected", "onhold", "connected"]);
    assert_eq!(&s202[s202.len() - 2..], ["disconnected/normal", "idle"]);
    let target = last_in(&r, "203", "connected");
    assert_eq!(target.reason, CallReason::Transfer);
    assert_eq!(target.redirecting.number.as_deref(), Some("202"));
    assert_eq!(target.connected.number.as_deref(), Some("201"));
    assert_eq!(
        last_in(&r, "201", "connected").connected.number.as_deref(),
        Some("203")
    );
    // Local channels are no lines and make no appearances.
    assert!(
        r.iter()
            .all(|rep| ["201", "202", "203"].contains(&rep.device.0.as_str()))
    );
}

#[test]
fn a_call_dialled_on_the_phone_is_outbound() {
    let r = replay("phone_dial");
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
        last_in(&r, "201", "dialing").called.number.as_deref(),
        Some("203")
    );
    assert_eq!(
        states_of(&r, "203"),
        ["offering", "connected", "disconnected/normal", "idle"]
    );
}

#[test]
fn a_queue_rings_the_members_and_vanishes_from_the_loser() {
    let r = replay("queue");
    assert_eq!(
        states_of(&r, "201"),
        ["offering", "connected", "disconnected/normal", "idle"]
    );
    // 202 rang too; "Answered elsewhere" ends it as a pickup, and no ring is left behind.
    assert_eq!(
        states_of(&r, "202"),
        ["offering", "disconnected/pickup", "idle"]
    );
    assert!(last_in(&r, "202", "idle").connected.is_unknown());
    // The caller is connected to the queue, then to the member who answered.
    assert_eq!(
        states_of(&r, "203"),
        [
            "dialing",
            "connected",
            "connected",
            "disconnected/normal",
            "idle"
        ]
    );
    assert_eq!(
        last_in(&r, "203", "connected").connected.number.as_deref(),
        Some("201")
    );
    assert_eq!(
        last_in(&r, "201", "offering").caller.number.as_deref(),
        Some("203")
    );
}

#[test]
fn every_appearance_of_every_scenario_ends_idle() {
    let transcript = Transcript::load("scenarios.txt");
    for (name, _) in &transcript.scenarios {
        let r = replay(name);
        let mut calls: Vec<_> = r.iter().map(|rep| rep.call.clone()).collect();
        calls.dedup();
        for call in calls {
            let last = r
                .iter()
                .rev()
                .find(|rep| rep.call == call)
                .expect("a report");
            assert_eq!(last.state, tapir_model::CallState::Idle, "{name}: {call:?}");
        }
    }
}
