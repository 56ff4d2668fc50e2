//! Lines, calls, parties, instances, snapshots and events as clients see them.

use serde::{Deserialize, Serialize};
use tapir_model::{Call, CallFeatures, CallInfoChange, Line, Party};
use utoipa::ToSchema;

use crate::command::ForwardDto;

/// A party of a call. Both fields are absent when the PBX did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartyDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<&Party> for PartyDto {
    fn from(p: &Party) -> PartyDto {
        PartyDto {
            number: p.number.clone(),
            name: p.name.clone(),
        }
    }
}

impl PartyDto {
    /// "Name <number>", the number alone, or "-" for people reading a table.
    pub fn display(&self) -> String {
        match (&self.name, &self.number) {
            (Some(name), Some(number)) => format!("{name} <{number}>"),
            (None, Some(number)) => number.clone(),
            (Some(name), None) => name.clone(),
            (None, None) => "-".into(),
        }
    }
}

/// A line: one PBX extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineDto {
    /// Permanent line id: stable across restarts, never reused.
    pub id: u32,
    /// The instance (PBX connection) the line belongs to.
    pub instance: String,
    /// The extension number.
    pub address: String,
    pub name: String,
    /// `in_service` or `out_of_service`.
    pub status: String,
    pub forwards: Vec<ForwardDto>,
    pub do_not_disturb: bool,
}

impl LineDto {
    pub fn new(line: &Line, instance: &str) -> LineDto {
        LineDto {
            id: line.id.0,
            instance: instance.to_owned(),
            address: line.address.clone(),
            name: line.name.clone(),
            status: line.status.as_str().into(),
            forwards: line.forwards.iter().map(ForwardDto::from).collect(),
            do_not_disturb: line.do_not_disturb,
        }
    }
}

/// A call appearance on one line, with everything TAPI's `LINECALLINFO` and
/// `LINECALLSTATUS` carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallDto {
    pub id: u64,
    pub line: u32,
    /// One of TAPI's 16 call states, lower case: `offering`, `connected`, `disconnected`, ...
    pub state: String,
    /// The state's detail: busy, dial tone, offering, connected or disconnect mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// TAPI's `LINECALLSTATE_*` bit.
    pub state_bits: u32,
    /// TAPI's mode bit (`dwParam2` of `LINE_CALLSTATE`), 0 when the state has none.
    pub mode_bits: u32,
    /// `outbound`, `internal`, `external`, `conference`, `inbound` or `unknown`.
    pub origin: String,
    /// `direct`, `transfer`, `forward_busy`, `pickup`, `redirect`, ...
    pub reason: String,
    pub caller: PartyDto,
    pub called: PartyDto,
    pub connected: PartyDto,
    pub redirecting: PartyDto,
    pub redirection: PartyDto,
    /// The call this one relates to (consultation and original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<u64>,
    /// The conference parent of a conferenced call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference: Option<u64>,
    /// The actions possible now, by name.
    pub features: Vec<String>,
    /// The same as TAPI `LINECALLFEATURE_*` bits.
    pub feature_bits: u32,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub state_entered_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<u64>,
}

impl CallDto {
    pub fn new(call: &Call, features: CallFeatures) -> CallDto {
        let info = &call.info;
        CallDto {
            id: call.id.0,
            line: call.line.0,
            state: call.state.name().into(),
            mode: call.state.mode().map(|(name, _)| name.into()),
            state_bits: call.state.bit(),
            mode_bits: call.state.mode().map(|(_, bit)| bit).unwrap_or(0),
            origin: info.origin.as_str().into(),
            reason: info.reason.as_str().into(),
            caller: (&info.caller).into(),
            called: (&info.called).into(),
            connected: (&info.connected).into(),
            redirecting: (&info.redirecting).into(),
            redirection: (&info.redirection).into(),
            related: info.related.map(|c| c.0),
            conference: info.conference.map(|c| c.0),
            features: features.names().into_iter().map(String::from).collect(),
            feature_bits: features.bits(),
            created_at: call.created_at,
            state_entered_at: call.state_entered_at,
            connected_at: call.connected_at,
        }
    }
}

/// One configured PBX connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceDto {
    pub name: String,
    pub driver: String,
    /// `starting`, `up`, `down` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the status last changed, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub since: u64,
    pub lines: usize,
    /// What the PBX link can do at all: `make_call`, `answer`, `drop`, `hold`, `swap`,
    /// `blind_transfer`, `consult_transfer`, `conference`, `redirect`, `pickup`, `forward`,
    /// `do_not_disturb`, `simulate`, `generate_digits`, `accept`, `park`. A Windows TSP
    /// advertises line and address capabilities from it.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Everything at one sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDto {
    /// The server's current event stream; send it back with `since` when resuming, so that
    /// a restarted server answers with a fresh snapshot instead of unrelated events.
    #[serde(default)]
    pub epoch: u64,
    /// The last event included; the events that follow have larger numbers.
    pub seq: u64,
    pub instances: Vec<InstanceDto>,
    pub lines: Vec<LineDto>,
    pub calls: Vec<CallDto>,
}

/// One change. For a Windows TSP: `call_new` is `LINE_NEWCALL` followed by `LINE_CALLSTATE`
/// with the call's first state; `call_state` is one `LINE_CALLSTATE`; `call_info` is
/// `LINE_CALLINFO`; `line_created` and `line_removed` are `LINE_CREATE` and `LINE_REMOVE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventDto {
    LineCreated {
        line: LineDto,
    },
    LineChanged {
        line: LineDto,
    },
    /// The PBX no longer has the line's device (`LINE_REMOVE`); the line stays listed as
    /// `defunct`, with its id and name, until purged, and comes back with the same id.
    LineRemoved {
        line: u32,
        instance: String,
    },
    /// The line is forgotten: purged, or its instance was removed from the config.
    LinePurged {
        line: u32,
        instance: String,
    },
    CallNew {
        call: CallDto,
    },
    CallState {
        call: CallDto,
    },
    CallInfo {
        call: CallDto,
        /// What changed: `caller`, `called`, `connected`, `redirecting`, `redirection`,
        /// `origin`, `reason`, `related`.
        changed: Vec<String>,
        /// The same as TAPI `LINECALLINFOSTATE_*` bits.
        changed_bits: u32,
    },
    CallFeatures {
        call: CallDto,
    },
    InstanceChanged {
        instance: InstanceDto,
    },
}

impl EventDto {
    pub fn call_info(call: CallDto, changed: CallInfoChange) -> EventDto {
        EventDto::CallInfo {
            call,
            changed: changed.names().into_iter().map(String::from).collect(),
            changed_bits: changed.bits(),
        }
    }

    /// The line the event is about, if any.
    pub fn line(&self) -> Option<u32> {
        match self {
            EventDto::LineCreated { line } | EventDto::LineChanged { line } => Some(line.id),
            EventDto::LineRemoved { line, .. } | EventDto::LinePurged { line, .. } => Some(*line),
            EventDto::CallNew { call }
            | EventDto::CallState { call }
            | EventDto::CallInfo { call, .. }
            | EventDto::CallFeatures { call } => Some(call.line),
            EventDto::InstanceChanged { .. } => None,
        }
    }
}

/// An event with its sequence number and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SequencedDto {
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    #[serde(flatten)]
    pub event: EventDto,
}

/// The answer to a successful command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommandResultDto {
    /// The server's request id (for logs).
    pub request: u64,
    /// The call the command created (make call, consult, pickup, conference, unpark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<u64>,
    /// Where a park put the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_at: Option<String>,
}

/// Body of `POST /calls/{id}/park`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParkBody {
    /// The park place (directed park); without it the PBX chooses one and the result names it.
    #[serde(default)]
    pub to: Option<String>,
}

/// Body of `POST /lines/{id}/unpark`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnparkBody {
    /// The park place to take the call from.
    pub from: String,
}

/// Body of `POST /lines/{id}/calls`, `.../transfer`, `.../consult` and `.../redirect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    /// The number to dial: an extension or an outside number.
    pub to: String,
}

/// Body of `POST /calls/{id}/swap`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapBody {
    /// The held call to swap with, when the line has more than one.
    #[serde(default)]
    pub with: Option<u64>,
}

/// Body of `POST /calls/{id}/pickup`: the line that takes the ringing call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupBody {
    pub line: u32,
}

/// Body of `POST /lines/{id}/pickup`: what to take onto the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickupOntoLineBody {
    #[serde(default)]
    pub call: Option<u64>,
    #[serde(default)]
    pub from_line: Option<u32>,
}

/// Body of `PUT /lines/{id}/forwards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardsBody {
    /// The complete new list; empty clears forwarding.
    pub forwards: Vec<ForwardDto>,
}

/// Body of `PUT /lines/{id}/dnd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DndBody {
    pub enabled: bool,
}

/// Body of `POST /lines/purge`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// The defunct lines to forget; empty or absent forgets every defunct line.
    #[serde(default)]
    pub lines: Vec<u32>,
}

/// The lines a purge forgot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurgedDto {
    pub purged: Vec<u32>,
}

/// What a config reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReloadDto {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
}

/// What a connection test of an instance found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceTestDto {
    pub instance: String,
    pub ok: bool,
    /// What was found (PBX version, device count), or exactly why it failed.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<usize>,
}

/// Body of `PUT /instances/{name}/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogLevelBody {
    /// `error`, `warn`, `info`, `debug` or `trace`; `default` follows the server's level.
    pub level: String,
}

/// Body of `PUT /instances/{name}/trace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceBody {
    /// Write the instance's raw PBX traffic to the protocol trace file.
    pub enabled: bool,
}

/// Body of `POST /calls/{id}/digits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigitsBody {
    /// DTMF digits to send: `0-9 * # A-D`.
    pub digits: String,
}
