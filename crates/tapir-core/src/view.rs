//! What the engine publishes: snapshots of lines and calls, and sequenced events.

use tapir_model::{
    Call, CallFeatures, CallId, CallInfoChange, Capabilities, InstanceId, Line, LineId, RequestId,
    Timestamp,
};

/// A line with the name of the instance it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSnapshot {
    pub line: Line,
    pub instance: String,
}

/// A call with the actions possible on it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSnapshot {
    pub call: Call,
    pub features: CallFeatures,
    /// The instance of the call's line, so that a call can be placed without its line.
    pub instance: InstanceId,
}

/// The state of one instance's PBX link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStatus {
    Starting,
    Up,
    Down { reason: String },
    Failed { reason: String },
}

impl InstanceStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InstanceStatus::Starting => "starting",
            InstanceStatus::Up => "up",
            InstanceStatus::Down { .. } => "down",
            InstanceStatus::Failed { .. } => "failed",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            InstanceStatus::Down { reason } | InstanceStatus::Failed { reason } => Some(reason),
            _ => None,
        }
    }
}

/// One configured PBX connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub id: InstanceId,
    pub name: String,
    pub driver: &'static str,
    pub status: InstanceStatus,
    /// When the status last changed.
    pub since: Timestamp,
    pub lines: usize,
    /// What the instance's provider can do at all.
    pub capabilities: Capabilities,
}

/// Everything at one sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Which run of the engine this is: sequence numbers are comparable within one epoch only.
    pub epoch: u64,
    /// The sequence number of the last event included; deltas continue after it.
    pub seq: u64,
    pub instances: Vec<InstanceInfo>,
    pub lines: Vec<LineSnapshot>,
    pub calls: Vec<CallSnapshot>,
}

/// One change, as subscribers receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LineCreated(LineSnapshot),
    LineChanged(LineSnapshot),
    /// The PBX no longer has the line's device (TAPI's `LINE_REMOVE`); it stays listed as
    /// defunct until purged.
    LineRemoved {
        line: LineId,
        instance: String,
    },
    /// The line is forgotten: purged by an administrator, or its instance was removed.
    LinePurged {
        line: LineId,
        instance: String,
    },
    /// A call appeared; always the first event about a call, carrying its first state.
    CallNew(CallSnapshot),
    /// A call changed state; one state per event. `Idle` is the last event about a call.
    CallState(CallSnapshot),
    CallInfo {
        call: CallSnapshot,
        changed: CallInfoChange,
    },
    /// Only the possible actions changed (another call on the line moved).
    CallFeatures(CallSnapshot),
    InstanceChanged(InstanceInfo),
}

impl Event {
    /// The instance the event is about, by id where the event carries one.
    pub fn instance_id(&self) -> Option<InstanceId> {
        match self {
            Event::LineCreated(l) | Event::LineChanged(l) => Some(l.line.instance),
            Event::CallNew(c) | Event::CallState(c) | Event::CallFeatures(c) => Some(c.instance),
            Event::CallInfo { call, .. } => Some(call.instance),
            Event::InstanceChanged(i) => Some(i.id),
            Event::LineRemoved { .. } | Event::LinePurged { .. } => None,
        }
    }

    /// The line the event is about, if any.
    pub fn line(&self) -> Option<LineId> {
        match self {
            Event::LineCreated(l) | Event::LineChanged(l) => Some(l.line.id),
            Event::LineRemoved { line, .. } | Event::LinePurged { line, .. } => Some(*line),
            Event::CallNew(c) | Event::CallState(c) | Event::CallFeatures(c) => Some(c.call.line),
            Event::CallInfo { call, .. } => Some(call.call.line),
            Event::InstanceChanged(_) => None,
        }
    }
}

/// An event with its place in the one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    pub seq: u64,
    pub at: Timestamp,
    pub event: Event,
}

/// What a successful command gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub request: RequestId,
    /// The call the command created, if it created one.
    pub call: Option<CallId>,
    /// Where a park put the call.
    pub parked_at: Option<String>,
}
