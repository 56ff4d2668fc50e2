//! A call appearance ("leg") on one extension, and what is at the other end of it.

use tapir_model::{CallOrigin, CallReason, CallState, Party};
use tapir_provider::{CallRef, CallReport, DeviceKey};

use crate::config::ExternalBehaviour;

/// A leg's number inside the switch; its [`CallRef`] is `c<id>`. Never reused.
pub(crate) type LegId = u64;

/// A number outside the switch, reached over the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct External {
    pub number: String,
    pub name: Option<String>,
    pub behaviour: ExternalBehaviour,
}

impl External {
    pub fn party(&self) -> Party {
        Party {
            number: Some(self.number.clone()),
            name: self.name.clone(),
        }
    }
}

/// Where a dialled number leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The extension at this index.
    Extension(usize),
    External(External),
}

/// What is at the other end of a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Far {
    /// Nobody: dial tone, busy, a conference parent, or a call whose far end went away.
    Nobody,
    /// The call is on its way to this destination (the ring delay has not passed).
    Pending(Target),
    /// A leg of another extension.
    Leg(LegId),
    External(External),
}

/// One end of a call that is being put through: the calling side of a ring attempt.
///
/// A leg as a side stands for its extension (the extension calls); an outside caller has no
/// leg on this switch at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side {
    Leg(LegId),
    External(External),
}

impl Side {
    /// The far end a leg gets when this side is at the other end of it.
    pub fn as_far(&self) -> Far {
        match self {
            Side::Leg(id) => Far::Leg(*id),
            Side::External(external) => Far::External(external.clone()),
        }
    }

    /// The side a far end stands for; `None` when there is nobody to put through.
    pub fn of(far: &Far) -> Option<Side> {
        match far {
            Far::Leg(id) => Some(Side::Leg(*id)),
            Far::External(external) => Some(Side::External(external.clone())),
            Far::Nobody | Far::Pending(_) => None,
        }
    }
}

/// A call appearance on one extension.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub id: LegId,
    /// The index of the extension the leg appears on.
    pub station: usize,
    pub state: CallState,
    pub origin: CallOrigin,
    pub reason: CallReason,
    pub caller: Party,
    pub called: Party,
    pub connected: Party,
    pub redirecting: Party,
    pub redirection: Party,
    /// The other half of a consultation on the same extension.
    pub related: Option<LegId>,
    /// The conference parent this leg is a member of.
    pub conference: Option<LegId>,
    pub far: Far,
}

impl Leg {
    /// A leg with no parties but the caller and the called, and nobody at the far end.
    pub fn new(id: LegId, station: usize, state: CallState, origin: CallOrigin) -> Leg {
        Leg {
            id,
            station,
            state,
            origin,
            reason: CallReason::Direct,
            caller: Party::default(),
            called: Party::default(),
            connected: Party::default(),
            redirecting: Party::default(),
            redirection: Party::default(),
            related: None,
            conference: None,
            far: Far::Nobody,
        }
    }

    /// The report of this leg's full picture, as the provider contract wants it.
    pub fn report(&self, device: DeviceKey) -> CallReport {
        CallReport {
            device,
            call: call_ref(self.id),
            state: self.state,
            origin: self.origin,
            reason: self.reason,
            caller: self.caller.clone(),
            called: self.called.clone(),
            connected: self.connected.clone(),
            redirecting: self.redirecting.clone(),
            redirection: self.redirection.clone(),
            related: self.related.map(call_ref),
            conference: self.conference.map(call_ref),
        }
    }

    /// True when the leg was put here by forwarding, which the switch applies only once.
    pub fn was_forwarded(&self) -> bool {
        is_forward(self.reason)
    }
}

/// True for the reasons forwarding gives; a call that has them is not forwarded again,
/// which also makes forwarding loops impossible.
pub(crate) fn is_forward(reason: CallReason) -> bool {
    matches!(
        reason,
        CallReason::ForwardUnconditional | CallReason::ForwardBusy | CallReason::ForwardNoAnswer
    )
}

pub(crate) fn call_ref(id: LegId) -> CallRef {
    CallRef(format!("c{id}"))
}

/// The leg id in a [`CallRef`] this switch made; `None` for anything else.
pub(crate) fn parse_call_ref(call: &CallRef) -> Option<LegId> {
    let digits = call.0.strip_prefix('c')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
