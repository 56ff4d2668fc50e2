//! The call-control commands that clients give, addressed by server-wide ids.

use crate::{CallId, Forward, LineId};

/// What a pickup takes: one ringing call, or whatever rings at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickupTarget {
    Call(CallId),
    Line(LineId),
}

/// What a person at a phone, or the world outside the PBX, does. Only providers with the
/// `SIMULATE` capability (the built-in simulated PBX) carry these out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAction {
    /// Lift the handset: answers a ringing call, or gets dial tone.
    OffHook,
    /// Put the handset down: ends the line's active call.
    OnHook,
    /// Dial digits on the handset (lifting it first when needed).
    Dial(String),
    /// Press the hold key: holds the active call.
    Hold,
    /// An outside caller with this number calls the line.
    IncomingCall { from: String, name: Option<String> },
    /// The far end of the line's active call hangs up.
    RemoteHangup,
}

/// What the administrator of a simulated PBX does to the PBX as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxSimAction {
    /// A new extension appears on the PBX.
    AddExtension {
        number: String,
        name: Option<String>,
    },
    /// An extension disappears from the PBX; its calls end.
    RemoveExtension { number: String },
}

/// One call-control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    MakeCall {
        line: LineId,
        to: String,
    },
    /// Claim an offered call (TAPI's `lineAccept`): it stays ringing, now `accepted`.
    Accept {
        call: CallId,
    },
    Answer {
        call: CallId,
    },
    Drop {
        call: CallId,
    },
    Hold {
        call: CallId,
    },
    Unhold {
        call: CallId,
    },
    /// Swap the active call and a held one; `with` names the held call when the line has more.
    Swap {
        call: CallId,
        with: Option<CallId>,
    },
    BlindTransfer {
        call: CallId,
        to: String,
    },
    /// Put the call on consultation hold and dial `to` (TAPI's setup transfer plus dial).
    Consult {
        call: CallId,
        to: String,
    },
    /// Join the held original and its consultation call and leave.
    CompleteTransfer {
        call: CallId,
    },
    /// Join the held original and its consultation call into a three-party conference.
    Conference {
        call: CallId,
    },
    /// Send DTMF tones on a connected call (TAPI's `lineGenerateDigits`): `0-9 * # A-D`.
    GenerateDigits {
        call: CallId,
        digits: String,
    },
    /// Deflect a ringing call elsewhere.
    Redirect {
        call: CallId,
        to: String,
    },
    /// Take a call that rings elsewhere onto `line`.
    Pickup {
        line: LineId,
        target: PickupTarget,
    },
    /// Park a connected call (TAPI's `linePark`): at the park place `to` (directed), or
    /// wherever the PBX chooses (non-directed; the result names the place). The line's
    /// appearance ends; the other party waits in the park.
    Park {
        call: CallId,
        to: Option<String>,
    },
    /// Take the call parked at `from` onto `line` (TAPI's `lineUnpark`): a new call.
    Unpark {
        line: LineId,
        from: String,
    },
    SetForwards {
        line: LineId,
        forwards: Vec<Forward>,
    },
    SetDoNotDisturb {
        line: LineId,
        enabled: bool,
    },
    Simulate {
        line: LineId,
        action: SimAction,
    },
    /// A change to a simulated PBX as a whole, named by its instance.
    SimulatePbx {
        instance: String,
        action: PbxSimAction,
    },
}

impl Command {
    /// The wire name of the command.
    pub fn name(&self) -> &'static str {
        match self {
            Command::MakeCall { .. } => "make_call",
            Command::Accept { .. } => "accept",
            Command::Answer { .. } => "answer",
            Command::Drop { .. } => "drop",
            Command::Hold { .. } => "hold",
            Command::Unhold { .. } => "unhold",
            Command::Swap { .. } => "swap",
            Command::BlindTransfer { .. } => "transfer",
            Command::Consult { .. } => "consult",
            Command::CompleteTransfer { .. } => "complete_transfer",
            Command::Conference { .. } => "conference",
            Command::Redirect { .. } => "redirect",
            Command::GenerateDigits { .. } => "generate_digits",
            Command::Pickup { .. } => "pickup",
            Command::Park { .. } => "park",
            Command::Unpark { .. } => "unpark",
            Command::SetForwards { .. } => "set_forwards",
            Command::SetDoNotDisturb { .. } => "set_dnd",
            Command::Simulate { .. } => "simulate",
            Command::SimulatePbx { .. } => "simulate_pbx",
        }
    }
}
