//! The mapping fed with documents shaped like Kamailio 5.6's (sip-testbed.md §3).

use tapir_model::{
    CallOrigin, CallReason, CallState, ConnectedMode, DisconnectMode, OfferingMode, Party,
};
use tapir_provider::{CallRef, CallReport, DeviceKey};

use super::{Applied, LineSpec, Tracker, Transfer};
use crate::dialog_info;

fn tracker() -> Tracker {
    let lines = ["201", "202", "203"]
        .iter()
        .map(|user| LineSpec {
            device: DeviceKey(format!("sip:{user}@127.0.0.1")),
            user: (*user).to_owned(),
            name: None,
        })
        .collect();
    Tracker::new(lines, "tapir")
}

fn device(user: &str) -> DeviceKey {
    DeviceKey(format!("sip:{user}@127.0.0.1"))
}

/// One dialog: (call-id, direction, state, remote user, remote display).
type Dialog<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>);

fn document(user: &str, version: u64, dialogs: &[Dialog]) -> dialog_info::DialogInfo {
    let mut body = format!(
        "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{version}\" state=\"full\" entity=\"sip:{user}@127.0.0.1\">"
    );
    for (index, (call_id, direction, state, remote, display)) in dialogs.iter().enumerate() {
        let display = display
            .map(|d| format!(" display=\"{d}\""))
            .unwrap_or_default();
        body.push_str(&format!(
            "<dialog id=\"padi-{index}\" call-id=\"{call_id}\" direction=\"{direction}\"><state>{state}</state>\
             <remote><identity{display}>sip:{remote}@127.0.0.1</identity></remote>\
             <local><identity>sip:{user}@127.0.0.1;transport=udp</identity></local></dialog>"
        ));
    }
    body.push_str("</dialog-info>");
    dialog_info::parse(body.as_bytes()).unwrap().unwrap()
}

fn apply(t: &mut Tracker, user: &str, version: u64, dialogs: &[Dialog]) -> Vec<CallReport> {
    let mut out = Vec::new();
    t.apply(
        &device(user),
        "sub-1",
        &document(user, version, dialogs),
        &mut out,
    );
    out
}

fn states(reports: &[CallReport]) -> Vec<CallState> {
    reports.iter().map(|r| r.state).collect()
}

#[test]
fn a_basic_call_rings_connects_and_ends_on_both_lines() {
    let mut t = tracker();
    let ringback = apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "Trying", "202", None)],
    );
    assert_eq!(states(&ringback), [CallState::Proceeding]);
    let ringback = apply(
        &mut t,
        "201",
        2,
        &[("c1", "initiator", "early", "202", None)],
    );
    assert_eq!(states(&ringback), [CallState::Ringback]);
    let report = &ringback[0];
    assert_eq!(report.caller, Party::number("201"));
    assert_eq!(report.called, Party::number("202"));
    assert_eq!(report.origin, CallOrigin::Outbound);
    assert_eq!(report.call.0, "sip:201@127.0.0.1/c1");

    let offering = apply(
        &mut t,
        "202",
        1,
        &[("c1", "recipient", "early", "201", Some("Ada"))],
    );
    assert_eq!(
        states(&offering),
        [CallState::Offering(OfferingMode::Active)]
    );
    assert_eq!(offering[0].caller, Party::named("201", "Ada"));
    assert_eq!(offering[0].called, Party::number("202"));
    assert_eq!(offering[0].origin, CallOrigin::Internal);

    let connected = apply(
        &mut t,
        "202",
        2,
        &[("c1", "recipient", "confirmed", "201", Some("Ada"))],
    );
    assert_eq!(
        states(&connected),
        [CallState::Connected(ConnectedMode::Active)]
    );
    assert_eq!(connected[0].connected, Party::named("201", "Ada"));
    // The same state again (a re-INVITE) reports nothing.
    assert!(
        apply(
            &mut t,
            "202",
            3,
            &[("c1", "recipient", "confirmed", "201", Some("Ada"))]
        )
        .is_empty()
    );

    let ended = apply(
        &mut t,
        "202",
        4,
        &[("c1", "recipient", "terminated", "201", None)],
    );
    assert_eq!(
        states(&ended),
        [
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    assert_eq!(t.live("c1"), [(device("201"), CallState::Ringback)]);
}

/// Kamailio numbered 202's documents in one order and sent them in another: v12 (the new
/// dialog still trying) came before v11 (it confirmed), and later ones showed it trying
/// again. The late v11 still confirms the dialog; it does not end or start anything.
#[test]
fn a_late_older_version_still_moves_a_live_dialog_forward() {
    let mut t = tracker();
    apply(
        &mut t,
        "202",
        10,
        &[
            ("c1", "recipient", "confirmed", "201", None),
            ("c2", "initiator", "early", "203", None),
        ],
    );
    let mut out = Vec::new();
    let late = t.apply(
        &device("202"),
        "sub-1",
        &document(
            "202",
            9,
            &[
                ("c2", "initiator", "confirmed", "203", None),
                ("c0", "initiator", "confirmed", "204", None),
            ],
        ),
        &mut out,
    );
    assert_eq!(
        late,
        Applied::Stale {
            version: 9,
            current: 10
        }
    );
    assert_eq!(
        states(&out),
        [CallState::Connected(ConnectedMode::Active)],
        "c2 connected; c0 (not live) not started, c1 (absent) not ended: {out:?}"
    );
    let trying_again = apply(
        &mut t,
        "202",
        11,
        &[
            ("c1", "recipient", "confirmed", "201", None),
            ("c2", "initiator", "trying", "203", None),
        ],
    );
    assert!(trying_again.is_empty(), "{trying_again:?}");
    let old_end = apply_stale(
        &mut t,
        "202",
        5,
        &[("c2", "initiator", "terminated", "203", None)],
    );
    assert!(
        old_end.is_empty(),
        "an old termination ends nothing: {old_end:?}"
    );
}

fn apply_stale(t: &mut Tracker, user: &str, version: u64, dialogs: &[Dialog]) -> Vec<CallReport> {
    let mut out = Vec::new();
    let applied = t.apply(
        &device(user),
        "sub-1",
        &document(user, version, dialogs),
        &mut out,
    );
    assert!(matches!(applied, Applied::Stale { .. }), "{applied:?}");
    out
}

#[test]
fn older_and_repeated_versions_are_ignored() {
    let mut t = tracker();
    apply(
        &mut t,
        "202",
        8,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    let mut out = Vec::new();
    let stale = t.apply(
        &device("202"),
        "sub-1",
        &document("202", 7, &[("c1", "recipient", "early", "201", None)]),
        &mut out,
    );
    assert_eq!(
        stale,
        Applied::Stale {
            version: 7,
            current: 8
        }
    );
    assert!(out.is_empty());
    assert_eq!(
        t.live("c1"),
        [(device("202"), CallState::Connected(ConnectedMode::Active))]
    );
    // A new subscription starts counting again.
    let applied = t.apply(&device("202"), "sub-2", &document("202", 0, &[]), &mut out);
    assert_eq!(applied, Applied::Applied);
    assert_eq!(
        states(&out),
        [
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
}

#[test]
fn lingering_terminated_dialogs_never_come_back() {
    let mut t = tracker();
    apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "confirmed", "202", None)],
    );
    let ended = apply(
        &mut t,
        "201",
        2,
        &[("c1", "initiator", "terminated", "202", None)],
    );
    assert_eq!(ended.len(), 2);
    // Still listed as terminated next to a new call: nothing more for c1.
    let next = apply(
        &mut t,
        "201",
        3,
        &[
            ("c1", "initiator", "terminated", "202", None),
            ("c2", "initiator", "early", "203", None),
        ],
    );
    assert_eq!(states(&next), [CallState::Ringback]);
    assert_eq!(next[0].call.0, "sip:201@127.0.0.1/c2");
    // A terminated dialog never seen alive is not reported at all.
    assert!(
        apply(
            &mut t,
            "203",
            1,
            &[("c3", "recipient", "terminated", "201", None)]
        )
        .is_empty()
    );
}

#[test]
fn a_dialog_missing_from_two_full_documents_has_ended() {
    let mut t = tracker();
    apply(
        &mut t,
        "203",
        1,
        &[("c1", "recipient", "early", "201", None)],
    );
    // One document without it may be a reordered view: nothing yet.
    assert!(apply(&mut t, "203", 2, &[]).is_empty());
    // Listed again: the absence is forgotten.
    let back = apply(
        &mut t,
        "203",
        3,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    assert_eq!(states(&back), [CallState::Connected(ConnectedMode::Active)]);
    assert!(apply(&mut t, "203", 4, &[]).is_empty());
    let ended = apply(&mut t, "203", 5, &[]);
    assert_eq!(
        states(&ended),
        [
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
    assert!(t.calls().is_empty());
}

#[test]
fn empty_documents_count_as_full_documents_without_dialogs() {
    let mut t = tracker();
    apply(
        &mut t,
        "203",
        1,
        &[("c1", "recipient", "early", "201", None)],
    );
    let mut out = Vec::new();
    t.apply_empty(&device("203"), "sub-1", &mut out);
    assert!(out.is_empty(), "{out:?}");
    t.apply_empty(&device("203"), "sub-1", &mut out);
    assert_eq!(
        states(&out),
        [
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
}

#[test]
fn the_first_document_of_a_new_subscription_is_the_whole_truth() {
    let mut t = tracker();
    apply(
        &mut t,
        "203",
        1,
        &[("c1", "recipient", "early", "201", None)],
    );
    let mut out = Vec::new();
    t.apply_empty(&device("203"), "sub-2", &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(t.calls().is_empty());
}

#[test]
fn a_dialog_state_never_moves_backwards() {
    let mut t = tracker();
    let early = apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "early", "203", None)],
    );
    assert_eq!(states(&early), [CallState::Ringback]);
    let confirmed = apply(
        &mut t,
        "201",
        2,
        &[("c1", "initiator", "confirmed", "203", None)],
    );
    assert_eq!(
        states(&confirmed),
        [CallState::Connected(ConnectedMode::Active)]
    );
    // Kamailio stored the early PUBLISH after the confirmed one: a newer version, older news.
    assert!(
        apply(
            &mut t,
            "201",
            3,
            &[("c1", "initiator", "early", "203", None)]
        )
        .is_empty()
    );
    assert_eq!(
        t.live("c1"),
        [(device("201"), CallState::Connected(ConnectedMode::Active))]
    );
}

#[test]
fn two_entries_of_one_dialog_count_as_the_more_advanced() {
    let mut t = tracker();
    apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "confirmed", "203", None)],
    );
    // A stale presentity (early) beside the current one (terminated), same dialog id.
    let body = "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"2\" state=\"full\" entity=\"sip:201@127.0.0.1\">\
        <dialog id=\"d1\" call-id=\"c1\" direction=\"initiator\"><state>terminated</state></dialog>\
        <dialog id=\"d1\" call-id=\"c1\" direction=\"initiator\"><state>early</state></dialog>\
        </dialog-info>";
    let info = dialog_info::parse(body.as_bytes()).unwrap().unwrap();
    let mut out = Vec::new();
    t.apply(&device("201"), "sub-1", &info, &mut out);
    assert_eq!(
        states(&out),
        [
            CallState::Disconnected(DisconnectMode::Normal),
            CallState::Idle
        ]
    );
}

#[test]
fn terminated_events_become_disconnect_modes() {
    let mut t = tracker();
    apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "early", "202", None)],
    );
    let body = "<dialog-info version=\"2\" state=\"full\" entity=\"sip:201@127.0.0.1\">\
        <dialog id=\"a\" call-id=\"c1\" direction=\"initiator\"><state event=\"rejected\" code=\"486\">terminated</state></dialog>\
        </dialog-info>";
    let mut out = Vec::new();
    t.apply(
        &device("201"),
        "sub-1",
        &dialog_info::parse(body.as_bytes()).unwrap().unwrap(),
        &mut out,
    );
    assert_eq!(
        states(&out),
        [
            CallState::Disconnected(DisconnectMode::Busy),
            CallState::Idle
        ]
    );
}

#[test]
fn the_controllers_own_dialogs_are_hidden_and_a_made_call_completes_first() {
    let mut t = tracker();
    let (key, call) = t
        .expect_made_call(&device("201"), Some("203".into()))
        .unwrap();
    // The phone is called by the controller and answers: hidden.
    assert!(
        apply(
            &mut t,
            "201",
            1,
            &[("ctl", "recipient", "confirmed", "tapir", None)]
        )
        .is_empty()
    );
    // After the REFER the phone calls 203: held back until the command completes.
    let held = apply(
        &mut t,
        "201",
        2,
        &[
            ("ctl", "recipient", "confirmed", "tapir", None),
            ("c9", "initiator", "confirmed", "203", None),
        ],
    );
    assert!(held.is_empty());
    assert!(t.calls().is_empty());
    let mut released = Vec::new();
    t.finish_made_call(key, true, &mut released);
    assert_eq!(
        states(&released),
        [CallState::Connected(ConnectedMode::Active)]
    );
    assert_eq!(released[0].call, call);
    assert_eq!(t.find(&call), Some((device("201"), "c9".into())));
    // From now on it is an ordinary appearance.
    let ended = apply(
        &mut t,
        "201",
        3,
        &[("c9", "initiator", "terminated", "203", None)],
    );
    assert_eq!(ended[1].state, CallState::Idle);
    assert_eq!(ended[1].call, call);
}

#[test]
fn a_made_call_that_completes_before_its_dialog_is_seen_binds_later() {
    let mut t = tracker();
    let (key, call) = t
        .expect_made_call(&device("201"), Some("203".into()))
        .unwrap();
    let mut out = Vec::new();
    t.finish_made_call(key, true, &mut out);
    assert!(out.is_empty());
    let reports = apply(
        &mut t,
        "201",
        1,
        &[("c9", "initiator", "early", "203", None)],
    );
    assert_eq!(reports[0].call, call);
    // Another call to 203 afterwards gets its own reference.
    let other = apply(
        &mut t,
        "201",
        2,
        &[
            ("c9", "initiator", "early", "203", None),
            ("c10", "initiator", "early", "203", None),
        ],
    );
    assert_eq!(other[0].call.0, "sip:201@127.0.0.1/c10");
}

#[test]
fn a_lost_subscription_ends_the_lines_calls() {
    let mut t = tracker();
    apply(
        &mut t,
        "202",
        1,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    let mut out = Vec::new();
    t.clear_line(&device("202"), &mut out);
    assert_eq!(
        states(&out),
        [
            CallState::Disconnected(DisconnectMode::Unknown),
            CallState::Idle
        ]
    );
    // A document for a line that is not monitored changes nothing.
    let applied = t.apply(&device("999"), "s", &document("999", 1, &[]), &mut out);
    assert_eq!(applied, Applied::UnknownLine);
}

#[test]
fn a_remote_hold_shows_until_resumed_and_later_documents_keep_it() {
    let mut t = tracker();
    let ringing = apply(
        &mut t,
        "202",
        1,
        &[("c1", "recipient", "early", "201", None)],
    );
    let call = ringing[0].call.clone();
    let mut out = Vec::new();
    assert!(
        !t.set_on_hold(&call, true, &mut out),
        "only a connected call"
    );
    assert!(out.is_empty());
    apply(
        &mut t,
        "202",
        2,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    assert!(t.set_on_hold(&call, true, &mut out));
    assert_eq!(states(&out), [CallState::OnHold]);
    assert_eq!(t.state_of(&call), Some(CallState::OnHold));
    // The feed still says confirmed: that is no resume.
    let later = apply(
        &mut t,
        "202",
        3,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    assert!(later.is_empty(), "{later:?}");
    out.clear();
    assert!(t.set_on_hold(&call, false, &mut out));
    assert_eq!(states(&out), [CallState::Connected(ConnectedMode::Active)]);
    assert_eq!(t.state_of(&CallRef("none".into())), None);
}

#[test]
fn the_feeds_hold_goes_back_and_forth_on_the_holding_line_only() {
    let mut t = tracker();
    apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "confirmed", "202", None)],
    );
    apply(
        &mut t,
        "202",
        1,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    let mut out = Vec::new();
    assert!(t.hold_by("c1", "201", true, &mut out));
    assert_eq!(states(&out), [CallState::OnHold]);
    assert_eq!(
        out[0].device,
        device("201"),
        "202 stays connected (a remote hold)"
    );
    // A later document of the confirmed dialog keeps the hold; resume, hold and resume again.
    assert!(
        apply(
            &mut t,
            "201",
            2,
            &[("c1", "initiator", "confirmed", "202", None)]
        )
        .is_empty()
    );
    for on_hold in [false, true, false] {
        out.clear();
        assert!(t.hold_by("c1", "201", on_hold, &mut out));
        let expected = if on_hold {
            CallState::OnHold
        } else {
            CallState::Connected(ConnectedMode::Active)
        };
        assert_eq!(states(&out), [expected]);
    }
    // A resume of a call not held (a session refresh) says nothing.
    out.clear();
    assert!(t.hold_by("c1", "201", false, &mut out));
    assert!(out.is_empty());
    // Not a monitored line's hold, or an unknown call.
    assert!(!t.hold_by("c1", "555", true, &mut out));
    assert!(!t.hold_by("c9", "201", true, &mut out));
    assert!(out.is_empty());
}

#[test]
fn a_hold_seen_before_the_dialog_is_confirmed_applies_once_it_is() {
    let mut t = tracker();
    apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "early", "202", None)],
    );
    let mut out = Vec::new();
    assert!(t.hold_by("c1", "201", true, &mut out));
    assert!(
        out.is_empty(),
        "a ringing call does not show on hold: {out:?}"
    );
    let confirmed = apply(
        &mut t,
        "201",
        2,
        &[("c1", "initiator", "confirmed", "202", None)],
    );
    assert_eq!(states(&confirmed), [CallState::OnHold]);
}

fn transfer(transferor: &str) -> Transfer {
    Transfer {
        call_id: "c1".into(),
        transferor: transferor.into(),
        transferee: "202".into(),
        target: "203".into(),
    }
}

#[test]
fn a_transfers_new_dialog_carries_the_transferor_on_both_lines() {
    let mut t = tracker();
    apply(
        &mut t,
        "201",
        1,
        &[("c1", "initiator", "confirmed", "202", None)],
    );
    apply(
        &mut t,
        "202",
        1,
        &[("c1", "recipient", "confirmed", "201", None)],
    );
    assert!(
        t.expect_transfer(transfer("201"), &mut Vec::new())
            .is_some()
    );
    // The REFER's own dialog is not the new one; an unrelated call from 202 neither.
    let other = apply(
        &mut t,
        "202",
        2,
        &[
            ("c1", "recipient", "confirmed", "201", None),
            ("c0", "initiator", "early", "201", None),
        ],
    );
    assert!(
        other.iter().all(|r| r.reason == CallReason::Direct),
        "{other:?}"
    );
    let new_202 = apply(
        &mut t,
        "202",
        3,
        &[
            ("c1", "recipient", "terminated", "201", None),
            ("c2", "initiator", "early", "203", None),
        ],
    );
    let ringback = new_202
        .iter()
        .find(|r| r.state == CallState::Ringback)
        .unwrap();
    assert_eq!(ringback.reason, CallReason::Transfer);
    assert_eq!(ringback.redirecting, Party::number("201"));
    assert_eq!(ringback.caller, Party::number("202"));
    let new_203 = apply(
        &mut t,
        "203",
        1,
        &[("c2", "recipient", "confirmed", "202", None)],
    );
    assert_eq!(new_203[0].reason, CallReason::Transfer);
    assert_eq!(new_203[0].redirecting, Party::number("201"));
    // Bound once: a later call from 202 to 203 is a plain call.
    let later = apply(
        &mut t,
        "203",
        2,
        &[("c3", "recipient", "early", "202", None)],
    );
    assert_eq!(later[0].reason, CallReason::Direct);
    assert_eq!(later[0].redirecting, Party::default());
}

/// Kamailio relays the REFER on evapi while the transferee already dials: the NOTIFYs of the
/// new dialog can come first. The transfer then binds to it at once and its appearances are
/// reported again, and the calls that merely share the parties' numbers stay plain.
#[test]
fn a_transfer_reported_after_its_new_dialog_marks_that_dialog() {
    let mut t = tracker();
    apply(
        &mut t,
        "202",
        1,
        &[
            ("c1", "recipient", "confirmed", "201", None),
            ("c2", "initiator", "trying", "203", None),
        ],
    );
    apply(
        &mut t,
        "203",
        1,
        &[("c2", "recipient", "early", "202", None)],
    );
    let mut out = Vec::new();
    assert_eq!(t.expect_transfer(transfer("201"), &mut out), None, "bound");
    let marked: Vec<(&str, CallReason, &Party)> = out
        .iter()
        .map(|r| (r.device.0.as_str(), r.reason, &r.redirecting))
        .collect();
    assert_eq!(
        marked,
        [
            (
                "sip:202@127.0.0.1",
                CallReason::Transfer,
                &Party::number("201")
            ),
            (
                "sip:203@127.0.0.1",
                CallReason::Transfer,
                &Party::number("201")
            ),
        ]
    );
    let answered = apply(
        &mut t,
        "203",
        2,
        &[("c2", "recipient", "confirmed", "202", None)],
    );
    assert_eq!(answered[0].reason, CallReason::Transfer);
    assert_eq!(answered[0].redirecting, Party::number("201"));
    let later = apply(
        &mut t,
        "203",
        3,
        &[("c3", "recipient", "early", "202", None)],
    );
    assert_eq!(later[0].reason, CallReason::Direct);
}

#[test]
fn the_controllers_refers_and_forgotten_transfers_redirect_nothing() {
    let mut t = tracker();
    assert_eq!(
        t.expect_transfer(transfer("tapir"), &mut Vec::new()),
        None,
        "3PCC"
    );
    let key = t.expect_transfer(transfer("201"), &mut Vec::new()).unwrap();
    t.forget_transfer(key);
    let call = apply(
        &mut t,
        "203",
        1,
        &[("c2", "recipient", "early", "202", None)],
    );
    assert_eq!(call[0].reason, CallReason::Direct);
}
