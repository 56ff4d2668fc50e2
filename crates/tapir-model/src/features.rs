//! Which actions are possible on a call right now (TAPI's `LINECALLSTATUS.dwCallFeatures`),
//! and which a provider supports at all.
//!
//! The rules follow TAPI's call features per state (`tapi.md` §4.3), restricted to what the
//! provider declared in its [`Capabilities`] and to the other calls on the same line (swap
//! needs a held call, completing a transfer needs a consultation call).

use bitflags::bitflags;

use crate::{Call, CallOrigin, CallState};

bitflags! {
    /// The call-control actions possible on one call, as TAPI `LINECALLFEATURE_*` bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CallFeatures: u32 {
        /// Claim an offered call before answering it (`LINECALLFEATURE_ACCEPT`).
        const ACCEPT = 0x0000_0001;
        /// Join a consultation into a three-party conference (`LINECALLFEATURE_ADDTOCONF`).
        const CONFERENCE = 0x0000_0002;
        const ANSWER = 0x0000_0004;
        const BLIND_TRANSFER = 0x0000_0008;
        const COMPLETE_TRANSFER = 0x0000_0020;
        const DROP = 0x0000_0080;
        const HOLD = 0x0000_0800;
        const REDIRECT = 0x0002_0000;
        /// Send DTMF tones (`LINECALLFEATURE_GENERATEDIGITS`).
        const GENERATE_DIGITS = 0x0000_0200;
        /// Start a consultation call for a transfer (`LINECALLFEATURE_SETUPTRANSFER`).
        const CONSULT = 0x0200_0000;
        const SWAP = 0x0400_0000;
        const UNHOLD = 0x0800_0000;
        /// Park the call (`LINECALLFEATURE_PARK`).
        const PARK = 0x0000_8000;
    }
}

impl CallFeatures {
    /// Wire names of the possible actions, in a stable order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (CallFeatures::ACCEPT, "accept"),
            (CallFeatures::ANSWER, "answer"),
            (CallFeatures::DROP, "drop"),
            (CallFeatures::HOLD, "hold"),
            (CallFeatures::UNHOLD, "unhold"),
            (CallFeatures::SWAP, "swap"),
            (CallFeatures::BLIND_TRANSFER, "transfer"),
            (CallFeatures::CONSULT, "consult"),
            (CallFeatures::COMPLETE_TRANSFER, "complete_transfer"),
            (CallFeatures::CONFERENCE, "conference"),
            (CallFeatures::REDIRECT, "redirect"),
            (CallFeatures::GENERATE_DIGITS, "generate_digits"),
            (CallFeatures::PARK, "park"),
        ]
        .into_iter()
        .filter(|(flag, _)| self.contains(*flag))
        .map(|(_, name)| name)
        .collect()
    }
}

bitflags! {
    /// What a provider can do at all; declared once, before it starts.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Capabilities: u32 {
        const MAKE_CALL = 1 << 0;
        const ANSWER = 1 << 1;
        const DROP = 1 << 2;
        const HOLD = 1 << 3;
        const SWAP = 1 << 4;
        const BLIND_TRANSFER = 1 << 5;
        const CONSULT_TRANSFER = 1 << 6;
        const CONFERENCE = 1 << 7;
        const REDIRECT = 1 << 8;
        const PICKUP = 1 << 9;
        const FORWARD = 1 << 10;
        const DO_NOT_DISTURB = 1 << 11;
        /// Handset and outside-world actions for demos and tests (the simulated PBX).
        const SIMULATE = 1 << 12;
        const GENERATE_DIGITS = 1 << 13;
        const ACCEPT = 1 << 14;
        /// Park calls and take parked calls back (unpark).
        const PARK = 1 << 15;
    }
}

impl Capabilities {
    /// Wire names of the capabilities, in a stable order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Capabilities::MAKE_CALL, "make_call"),
            (Capabilities::ANSWER, "answer"),
            (Capabilities::DROP, "drop"),
            (Capabilities::HOLD, "hold"),
            (Capabilities::SWAP, "swap"),
            (Capabilities::BLIND_TRANSFER, "blind_transfer"),
            (Capabilities::CONSULT_TRANSFER, "consult_transfer"),
            (Capabilities::CONFERENCE, "conference"),
            (Capabilities::REDIRECT, "redirect"),
            (Capabilities::PICKUP, "pickup"),
            (Capabilities::FORWARD, "forward"),
            (Capabilities::DO_NOT_DISTURB, "do_not_disturb"),
            (Capabilities::SIMULATE, "simulate"),
            (Capabilities::GENERATE_DIGITS, "generate_digits"),
            (Capabilities::ACCEPT, "accept"),
            (Capabilities::PARK, "park"),
        ]
        .into_iter()
        .filter(|(flag, _)| self.contains(*flag))
        .map(|(_, name)| name)
        .collect()
    }

    /// The call features these capabilities allow at most.
    pub fn allowed_features(self) -> CallFeatures {
        let mut allowed = CallFeatures::empty();
        let pairs = [
            (Capabilities::ANSWER, CallFeatures::ANSWER),
            (Capabilities::DROP, CallFeatures::DROP),
            (
                Capabilities::HOLD,
                CallFeatures::HOLD | CallFeatures::UNHOLD,
            ),
            (Capabilities::SWAP, CallFeatures::SWAP),
            (Capabilities::BLIND_TRANSFER, CallFeatures::BLIND_TRANSFER),
            (
                Capabilities::CONSULT_TRANSFER,
                CallFeatures::CONSULT | CallFeatures::COMPLETE_TRANSFER,
            ),
            (Capabilities::CONFERENCE, CallFeatures::CONFERENCE),
            (Capabilities::REDIRECT, CallFeatures::REDIRECT),
            (Capabilities::GENERATE_DIGITS, CallFeatures::GENERATE_DIGITS),
            (Capabilities::ACCEPT, CallFeatures::ACCEPT),
            (Capabilities::PARK, CallFeatures::PARK),
        ];
        for (capability, features) in pairs {
            if self.contains(capability) {
                allowed |= features;
            }
        }
        allowed
    }
}

/// The actions possible on `call` now, given the other calls on its line and what the
/// provider supports.
pub fn call_features<'a>(
    call: &Call,
    others_on_line: impl IntoIterator<Item = &'a Call> + Clone,
    capabilities: Capabilities,
) -> CallFeatures {
    use CallState as S;
    let other_held = others_on_line
        .clone()
        .into_iter()
        .any(|c| c.state == S::OnHold);
    let other_active = others_on_line
        .clone()
        .into_iter()
        .any(|c| c.state.is_active());
    let is_conference_parent = call.info.origin == CallOrigin::Conference;
    let consult_partner = consultation_partner(call, others_on_line);

    let swap = |held_elsewhere: bool| {
        if held_elsewhere {
            CallFeatures::SWAP
        } else {
            CallFeatures::empty()
        }
    };
    let complete = if consult_partner {
        CallFeatures::COMPLETE_TRANSFER | CallFeatures::CONFERENCE
    } else {
        CallFeatures::empty()
    };

    let features = match call.state {
        S::Idle | S::Unknown => CallFeatures::empty(),
        S::Disconnected(_) => CallFeatures::DROP,
        S::Offering(_) => {
            CallFeatures::ACCEPT
                | CallFeatures::ANSWER
                | CallFeatures::REDIRECT
                | CallFeatures::DROP
        }
        S::Accepted => CallFeatures::ANSWER | CallFeatures::REDIRECT | CallFeatures::DROP,
        S::Dialtone(_) | S::Dialing | S::Proceeding | S::Busy(_) | S::SpecialInfo(_) => {
            CallFeatures::DROP | swap(other_held)
        }
        S::Ringback => CallFeatures::DROP | swap(other_held) | complete,
        S::Connected(_) if is_conference_parent => CallFeatures::DROP,
        S::Connected(_) => {
            let mut f = CallFeatures::DROP
                | CallFeatures::HOLD
                | CallFeatures::BLIND_TRANSFER
                | CallFeatures::GENERATE_DIGITS
                | CallFeatures::PARK
                | swap(other_held)
                | complete;
            if !consult_partner {
                f |= CallFeatures::CONSULT;
            }
            f
        }
        S::OnHold => CallFeatures::DROP | CallFeatures::UNHOLD | swap(other_active),
        S::OnHoldPendTransfer => {
            CallFeatures::DROP | CallFeatures::UNHOLD | swap(other_active) | complete
        }
        S::OnHoldPendConf => CallFeatures::DROP | CallFeatures::UNHOLD | swap(other_active),
        S::Conferenced => CallFeatures::DROP,
    };
    features & capabilities.allowed_features()
}

/// True when `call` is one half of a consultation whose other half is on the line in a state
/// from which the transfer or conference can be completed.
fn consultation_partner<'a>(call: &Call, others: impl IntoIterator<Item = &'a Call>) -> bool {
    use CallState as S;
    let consult_ready = |s: CallState| {
        matches!(
            s,
            S::Connected(_) | S::Ringback | S::Proceeding | S::Busy(_)
        )
    };
    others.into_iter().any(|other| {
        let related = other.info.related == Some(call.id) || call.info.related == Some(other.id);
        related
            && ((call.state == S::OnHoldPendTransfer && consult_ready(other.state))
                || (other.state == S::OnHoldPendTransfer && consult_ready(call.state)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallInfo;
    use crate::state::*;
    use crate::{CallId, CallReason, LineId, Party};

    fn call(id: u64, state: CallState) -> Call {
        let info = CallInfo {
            origin: CallOrigin::Outbound,
            reason: CallReason::Direct,
            caller: Party::number("201"),
            called: Party::number("202"),
            connected: Party::default(),
            redirecting: Party::default(),
            redirection: Party::default(),
            related: None,
            conference: None,
        };
        Call::new(CallId(id), LineId(1), state, info, 0)
    }

    fn features(c: &Call, others: &[Call]) -> Vec<&'static str> {
        call_features(c, others.iter(), Capabilities::all()).names()
    }

    const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

    #[test]
    fn offering_can_be_answered_redirected_or_rejected() {
        let c = call(1, CallState::Offering(OfferingMode::Active));
        assert_eq!(features(&c, &[]), ["accept", "answer", "drop", "redirect"]);
        let accepted = call(1, CallState::Accepted);
        assert_eq!(features(&accepted, &[]), ["answer", "drop", "redirect"]);
    }

    #[test]
    fn idle_and_unknown_allow_nothing_and_disconnected_only_drop() {
        assert!(features(&call(1, CallState::Idle), &[]).is_empty());
        assert!(features(&call(1, CallState::Unknown), &[]).is_empty());
        let gone = call(1, CallState::Disconnected(DisconnectMode::Busy));
        assert_eq!(features(&gone, &[]), ["drop"]);
    }

    #[test]
    fn connected_alone_can_hold_transfer_consult_and_park() {
        let c = call(1, CONNECTED);
        assert_eq!(
            features(&c, &[]),
            [
                "drop",
                "hold",
                "transfer",
                "consult",
                "generate_digits",
                "park"
            ]
        );
    }

    #[test]
    fn swap_needs_a_held_call_and_an_active_one() {
        let held = call(2, CallState::OnHold);
        let active = call(1, CONNECTED);
        assert!(features(&active, std::slice::from_ref(&held)).contains(&"swap"));
        assert!(features(&held, std::slice::from_ref(&active)).contains(&"swap"));
        assert!(!features(&held, &[]).contains(&"swap"));
        assert_eq!(features(&held, &[]), ["drop", "unhold"]);
    }

    #[test]
    fn a_consultation_can_be_completed_from_either_side() {
        let mut original = call(1, CallState::OnHoldPendTransfer);
        let mut consult = call(2, CallState::Ringback);
        original.info.related = Some(CallId(2));
        consult.info.related = Some(CallId(1));
        let on_original = features(&original, std::slice::from_ref(&consult));
        assert!(on_original.contains(&"complete_transfer") && on_original.contains(&"conference"));
        let on_consult = features(&consult, std::slice::from_ref(&original));
        assert!(on_consult.contains(&"complete_transfer"));
        consult.state = CONNECTED;
        let on_consult = features(&consult, std::slice::from_ref(&original));
        assert!(on_consult.contains(&"conference"));
        assert!(
            !on_consult.contains(&"consult"),
            "one consultation at a time"
        );
    }

    #[test]
    fn an_unrelated_held_call_is_no_consultation() {
        let original = call(1, CallState::OnHoldPendTransfer);
        let other = call(2, CONNECTED);
        assert!(!features(&original, std::slice::from_ref(&other)).contains(&"complete_transfer"));
    }

    #[test]
    fn capabilities_limit_features() {
        let c = call(1, CONNECTED);
        let only_drop = call_features(&c, std::iter::empty(), Capabilities::DROP);
        assert_eq!(only_drop, CallFeatures::DROP);
    }

    #[test]
    fn feature_bits_are_tapis() {
        assert_eq!(CallFeatures::ANSWER.bits(), 0x4);
        assert_eq!(CallFeatures::CONSULT.bits(), 0x0200_0000);
        assert_eq!(CallFeatures::UNHOLD.bits(), 0x0800_0000);
        assert_eq!(CallFeatures::PARK.bits(), 0x0000_8000);
    }
}
