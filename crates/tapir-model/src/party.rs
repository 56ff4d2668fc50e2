//! The parties of a call and why and where it started.

/// One party of a call as the PBX reported it: a number and, when known, a name.
///
/// An empty party (no number, no name) means "not known" (TAPI's `LINECALLPARTYID_UNKNOWN`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Party {
    pub number: Option<String>,
    pub name: Option<String>,
}

impl Party {
    /// A party known by number only.
    pub fn number(number: impl Into<String>) -> Party {
        Party {
            number: Some(number.into()),
            name: None,
        }
    }

    /// A party known by number and name.
    pub fn named(number: impl Into<String>, name: impl Into<String>) -> Party {
        Party {
            number: Some(number.into()),
            name: Some(name.into()),
        }
    }

    /// True when neither number nor name is known.
    pub fn is_unknown(&self) -> bool {
        self.number.is_none() && self.name.is_none()
    }
}

/// `LINECALLORIGIN_*`: where a call came from, seen from the line it appears on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOrigin {
    /// Placed from this line.
    Outbound,
    /// Incoming from a station on the same switch.
    Internal,
    /// Incoming from outside the switch.
    External,
    /// The line's leg to a conference bridge.
    Conference,
    /// Incoming, internal or external not known.
    Inbound,
    Unknown,
}

impl CallOrigin {
    pub const ALL: &'static [CallOrigin] = &[
        CallOrigin::Outbound,
        CallOrigin::Internal,
        CallOrigin::External,
        CallOrigin::Conference,
        CallOrigin::Inbound,
        CallOrigin::Unknown,
    ];

    /// TAPI's bit value.
    pub fn bit(self) -> u32 {
        match self {
            CallOrigin::Outbound => 0x1,
            CallOrigin::Internal => 0x2,
            CallOrigin::External => 0x4,
            CallOrigin::Unknown => 0x10,
            CallOrigin::Conference => 0x40,
            CallOrigin::Inbound => 0x80,
        }
    }

    /// The stable lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOrigin::Outbound => "outbound",
            CallOrigin::Internal => "internal",
            CallOrigin::External => "external",
            CallOrigin::Conference => "conference",
            CallOrigin::Inbound => "inbound",
            CallOrigin::Unknown => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<CallOrigin> {
        Self::ALL.iter().copied().find(|o| o.as_str() == name)
    }
}

/// `LINECALLREASON_*`: why a call appeared on this line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallReason {
    Direct,
    ForwardBusy,
    ForwardNoAnswer,
    ForwardUnconditional,
    Pickup,
    Unpark,
    Redirect,
    CallCompletion,
    Transfer,
    Reminder,
    Unknown,
}

impl CallReason {
    pub const ALL: &'static [CallReason] = &[
        CallReason::Direct,
        CallReason::ForwardBusy,
        CallReason::ForwardNoAnswer,
        CallReason::ForwardUnconditional,
        CallReason::Pickup,
        CallReason::Unpark,
        CallReason::Redirect,
        CallReason::CallCompletion,
        CallReason::Transfer,
        CallReason::Reminder,
        CallReason::Unknown,
    ];

    /// TAPI's bit value.
    pub fn bit(self) -> u32 {
        match self {
            CallReason::Direct => 0x1,
            CallReason::ForwardBusy => 0x2,
            CallReason::ForwardNoAnswer => 0x4,
            CallReason::ForwardUnconditional => 0x8,
            CallReason::Pickup => 0x10,
            CallReason::Unpark => 0x20,
            CallReason::Redirect => 0x40,
            CallReason::CallCompletion => 0x80,
            CallReason::Transfer => 0x100,
            CallReason::Reminder => 0x200,
            CallReason::Unknown => 0x400,
        }
    }

    /// The stable lower-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CallReason::Direct => "direct",
            CallReason::ForwardBusy => "forward_busy",
            CallReason::ForwardNoAnswer => "forward_no_answer",
            CallReason::ForwardUnconditional => "forward_unconditional",
            CallReason::Pickup => "pickup",
            CallReason::Unpark => "unpark",
            CallReason::Redirect => "redirect",
            CallReason::CallCompletion => "call_completion",
            CallReason::Transfer => "transfer",
            CallReason::Reminder => "reminder",
            CallReason::Unknown => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<CallReason> {
        Self::ALL.iter().copied().find(|r| r.as_str() == name)
    }
}
