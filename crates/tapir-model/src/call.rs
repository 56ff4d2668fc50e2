//! A call appearance on one line, and the rules for moving it between states.

use bitflags::bitflags;

use crate::{CallId, CallOrigin, CallReason, CallState, LineId, Party, Timestamp};

/// Everything the PBX told about a call apart from its state: TAPI's `LINECALLINFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub origin: CallOrigin,
    pub reason: CallReason,
    pub caller: Party,
    pub called: Party,
    pub connected: Party,
    /// The party that redirected the call to this line (TAPI's redirecting id).
    pub redirecting: Party,
    /// The party this line's call was redirected to (TAPI's redirection id).
    pub redirection: Party,
    /// The call this one is related to: the consulted call of a consultation, or the
    /// original call of a transfer (TAPI's `dwRelatedCallID`).
    pub related: Option<CallId>,
    /// The conference parent of a conferenced call.
    pub conference: Option<CallId>,
}

impl CallInfo {
    /// Which `LINECALLINFOSTATE_*` items differ between `self` and `newer`.
    pub fn changes_to(&self, newer: &CallInfo) -> CallInfoChange {
        let mut changed = CallInfoChange::empty();
        changed.set(CallInfoChange::ORIGIN, self.origin != newer.origin);
        changed.set(CallInfoChange::REASON, self.reason != newer.reason);
        changed.set(CallInfoChange::CALLER, self.caller != newer.caller);
        changed.set(CallInfoChange::CALLED, self.called != newer.called);
        changed.set(CallInfoChange::CONNECTED, self.connected != newer.connected);
        changed.set(
            CallInfoChange::REDIRECTING,
            self.redirecting != newer.redirecting,
        );
        changed.set(
            CallInfoChange::REDIRECTION,
            self.redirection != newer.redirection,
        );
        changed.set(
            CallInfoChange::RELATED,
            self.related != newer.related || self.conference != newer.conference,
        );
        changed
    }
}

bitflags! {
    /// `LINECALLINFOSTATE_*`: which parts of a call's info changed (values are TAPI's).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CallInfoChange: u32 {
        const RELATED = 0x0000_0080;
        const ORIGIN = 0x0000_0100;
        const REASON = 0x0000_0200;
        const CALLER = 0x0000_8000;
        const CALLED = 0x0001_0000;
        const CONNECTED = 0x0002_0000;
        const REDIRECTION = 0x0004_0000;
        const REDIRECTING = 0x0008_0000;
    }
}

impl CallInfoChange {
    /// Wire names of the changed items, in a stable order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (CallInfoChange::ORIGIN, "origin"),
            (CallInfoChange::REASON, "reason"),
            (CallInfoChange::CALLER, "caller"),
            (CallInfoChange::CALLED, "called"),
            (CallInfoChange::CONNECTED, "connected"),
            (CallInfoChange::REDIRECTING, "redirecting"),
            (CallInfoChange::REDIRECTION, "redirection"),
            (CallInfoChange::RELATED, "related"),
        ]
        .into_iter()
        .filter(|(flag, _)| self.contains(*flag))
        .map(|(_, name)| name)
        .collect()
    }
}

/// How a state change relates to TAPI's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A transition TAPI documents.
    Expected,
    /// Not in TAPI's tables but harmless: switches legitimately skip states, so the change is
    /// applied and the caller should log it.
    Unusual,
    /// Never allowed: IDLE is terminal.
    Forbidden,
}

/// Classifies the move from `from` to `to` following TAPI's per-operation rules (the
/// transition matrix of a shipping TSP, see `tapi.md` §4.2), widened so that any live call may
/// drop to DISCONNECTED or IDLE and a call may leave UNKNOWN for anything.
pub fn classify_transition(from: CallState, to: CallState) -> Transition {
    use CallState as S;
    if from == S::Idle {
        return Transition::Forbidden;
    }
    if from.bit() == to.bit() {
        // Same state with a new mode (e.g. connected active -> inactive) is a detail change.
        return Transition::Expected;
    }
    let expected = match (from, to) {
        (_, S::Idle) | (_, S::Disconnected(_)) | (S::Unknown, _) | (_, S::Unknown) => true,
        (S::Disconnected(_), _) => false,
        (S::Offering(_), S::Accepted | S::Connected(_)) => true,
        (S::Accepted, S::Connected(_)) => true,
        (S::Dialtone(_), S::Dialing | S::Proceeding | S::Ringback | S::Connected(_)) => true,
        (S::Dialing, S::Proceeding | S::Ringback | S::Busy(_) | S::SpecialInfo(_)) => true,
        (S::Dialing, S::Connected(_)) => true,
        (S::Proceeding, S::Ringback | S::Busy(_) | S::SpecialInfo(_) | S::Connected(_)) => true,
        (S::Proceeding | S::Ringback, S::Conferenced | S::OnHold) => true,
        (S::Ringback, S::Connected(_) | S::Busy(_)) => true,
        (S::Connected(_), S::OnHold | S::Conferenced | S::OnHoldPendConf) => true,
        (S::Connected(_), S::OnHoldPendTransfer) => true,
        (S::OnHold, S::Connected(_) | S::Conferenced) => true,
        (S::Conferenced, S::Connected(_) | S::OnHold) => true,
        (S::OnHoldPendConf, S::Connected(_)) => true,
        (S::OnHoldPendTransfer, S::Connected(_) | S::Conferenced) => true,
        _ => false,
    };
    if expected {
        Transition::Expected
    } else {
        Transition::Unusual
    }
}

/// A call appearance on one line (TAPI's call handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: CallId,
    pub line: LineId,
    pub state: CallState,
    pub info: CallInfo,
    pub created_at: Timestamp,
    pub state_entered_at: Timestamp,
    /// When the call was first connected, if it ever was.
    pub connected_at: Option<Timestamp>,
}

impl Call {
    /// A new call, first seen in `state` at `now`.
    pub fn new(id: CallId, line: LineId, state: CallState, info: CallInfo, now: Timestamp) -> Call {
        let connected_at = matches!(state, CallState::Connected(_)).then_some(now);
        Call {
            id,
            line,
            state,
            info,
            created_at: now,
            state_entered_at: now,
            connected_at,
        }
    }

    /// Moves the call to `to`. Returns how the move relates to TAPI's rules; a forbidden move
    /// leaves the call unchanged.
    pub fn enter(&mut self, to: CallState, now: Timestamp) -> Transition {
        let transition = classify_transition(self.state, to);
        if transition == Transition::Forbidden || self.state == to {
            return transition;
        }
        self.state = to;
        self.state_entered_at = now;
        if matches!(to, CallState::Connected(_)) && self.connected_at.is_none() {
            self.connected_at = Some(now);
        }
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::*;

    fn info() -> CallInfo {
        CallInfo {
            origin: CallOrigin::Outbound,
            reason: CallReason::Direct,
            caller: Party::number("201"),
            called: Party::number("202"),
            connected: Party::default(),
            redirecting: Party::default(),
            redirection: Party::default(),
            related: None,
            conference: None,
        }
    }

    #[test]
    fn idle_is_terminal() {
        let mut call = Call::new(CallId(1), LineId(1), CallState::Dialing, info(), 10);
        assert_eq!(call.enter(CallState::Idle, 20), Transition::Expected);
        assert_eq!(
            call.enter(CallState::Connected(ConnectedMode::Active), 30),
            Transition::Forbidden
        );
        assert_eq!(call.state, CallState::Idle);
        assert_eq!(call.state_entered_at, 20);
    }

    #[test]
    fn disconnected_leads_only_to_idle() {
        let from = CallState::Disconnected(DisconnectMode::Normal);
        assert_eq!(
            classify_transition(from, CallState::Idle),
            Transition::Expected
        );
        assert_eq!(
            classify_transition(from, CallState::Connected(ConnectedMode::Active)),
            Transition::Unusual
        );
    }

    #[test]
    fn documented_paths_are_expected() {
        use CallState as S;
        let outbound = [
            S::Dialtone(DialtoneMode::Normal),
            S::Dialing,
            S::Proceeding,
            S::Ringback,
            S::Connected(ConnectedMode::Active),
            S::OnHold,
            S::Connected(ConnectedMode::Active),
            S::OnHoldPendTransfer,
            S::Connected(ConnectedMode::Active),
            S::Disconnected(DisconnectMode::Normal),
            S::Idle,
        ];
        for pair in outbound.windows(2) {
            assert_eq!(
                classify_transition(pair[0], pair[1]),
                Transition::Expected,
                "{pair:?}"
            );
        }
        assert_eq!(
            classify_transition(S::Offering(OfferingMode::Active), S::Accepted),
            Transition::Expected
        );
        assert_eq!(
            classify_transition(
                S::Busy(BusyMode::Station),
                S::Connected(ConnectedMode::Active)
            ),
            Transition::Unusual
        );
    }

    #[test]
    fn connected_time_is_kept_from_the_first_connect() {
        let mut call = Call::new(CallId(1), LineId(1), CallState::Ringback, info(), 10);
        call.enter(CallState::Connected(ConnectedMode::Active), 20);
        call.enter(CallState::OnHold, 30);
        call.enter(CallState::Connected(ConnectedMode::Active), 40);
        assert_eq!(call.connected_at, Some(20));
        assert_eq!(call.state_entered_at, 40);
    }

    #[test]
    fn info_changes_name_what_changed() {
        let before = info();
        let mut after = info();
        after.connected = Party::named("202", "Bob");
        after.reason = CallReason::Transfer;
        let changed = before.changes_to(&after);
        assert_eq!(changed, CallInfoChange::CONNECTED | CallInfoChange::REASON);
        assert_eq!(changed.names(), vec!["reason", "connected"]);
        assert!(before.changes_to(&before).is_empty());
    }
}
