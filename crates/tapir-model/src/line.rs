//! A line: one PBX extension (one address in this version), with forwarding and DND.

use crate::{InstanceId, LineId};

/// Whether the PBX behind a line can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineStatus {
    /// The instance is connected and the device exists on the PBX.
    InService,
    /// The instance lost its PBX connection (or has not reported yet); state is
    /// resynchronised on reconnect.
    OutOfService,
    /// The PBX no longer has the device. The line keeps its id and name until an
    /// administrator purges it, and comes back with the same id if the device returns.
    Defunct,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::InService => "in_service",
            LineStatus::OutOfService => "out_of_service",
            LineStatus::Defunct => "defunct",
        }
    }
}

/// `LINEFORWARDMODE_*` (the plain variants): when a line's calls are forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMode {
    Unconditional,
    Busy,
    NoAnswer,
}

impl ForwardMode {
    pub const ALL: &'static [ForwardMode] = &[
        ForwardMode::Unconditional,
        ForwardMode::Busy,
        ForwardMode::NoAnswer,
    ];

    /// TAPI's bit value.
    pub fn bit(self) -> u32 {
        match self {
            ForwardMode::Unconditional => 0x1,
            ForwardMode::Busy => 0x10,
            ForwardMode::NoAnswer => 0x100,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ForwardMode::Unconditional => "unconditional",
            ForwardMode::Busy => "busy",
            ForwardMode::NoAnswer => "no_answer",
        }
    }

    pub fn from_name(name: &str) -> Option<ForwardMode> {
        Self::ALL.iter().copied().find(|m| m.as_str() == name)
    }
}

/// One forwarding rule of a line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forward {
    pub mode: ForwardMode,
    pub destination: String,
}

/// A line as the core knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: LineId,
    pub instance: InstanceId,
    /// The line's address (the extension number) as clients see it.
    pub address: String,
    pub name: String,
    pub status: LineStatus,
    pub forwards: Vec<Forward>,
    pub do_not_disturb: bool,
}
