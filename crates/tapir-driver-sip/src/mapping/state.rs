//! RFC 4235 dialog states as TAPI call states, and terminated events as disconnect modes.

use tapir_model::{CallState, ConnectedMode, DisconnectMode, OfferingMode};

use crate::dialog_info::{DialogState, Direction};

/// The TAPI state of a dialog that is not terminated.
pub fn call_state(state: DialogState, direction: Direction) -> CallState {
    match (state, direction) {
        (DialogState::Confirmed, _) => CallState::Connected(ConnectedMode::Active),
        (DialogState::Terminated, _) => CallState::Disconnected(DisconnectMode::Normal),
        (DialogState::Trying | DialogState::Proceeding, Direction::Initiator) => {
            CallState::Proceeding
        }
        (DialogState::Early, Direction::Initiator) => CallState::Ringback,
        (_, Direction::Recipient) => CallState::Offering(OfferingMode::Active),
    }
}

/// How alive a dialog is, to pick one of several entries with the same `call-id` (forks).
pub fn rank(state: DialogState) -> u8 {
    match state {
        DialogState::Terminated => 0,
        DialogState::Trying => 1,
        DialogState::Proceeding => 2,
        DialogState::Early => 3,
        DialogState::Confirmed => 4,
    }
}

/// The disconnect mode of a terminated dialog from its `event` and `code` attributes.
pub fn disconnect_mode(event: Option<&str>, code: Option<u16>) -> DisconnectMode {
    match code {
        Some(486 | 600) => return DisconnectMode::Busy,
        Some(404 | 484 | 604) => return DisconnectMode::BadAddress,
        Some(408 | 480) => return DisconnectMode::NoAnswer,
        Some(603) => return DisconnectMode::Reject,
        Some(487) => return DisconnectMode::Cancelled,
        _ => {}
    }
    match event {
        Some("rejected") => DisconnectMode::Reject,
        Some("cancelled") => DisconnectMode::Cancelled,
        Some("timeout") => DisconnectMode::NoAnswer,
        Some("error") => DisconnectMode::Unknown,
        Some("replaced") => DisconnectMode::Normal,
        _ => DisconnectMode::Normal,
    }
}
