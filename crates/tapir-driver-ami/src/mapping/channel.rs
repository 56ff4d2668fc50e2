//! One Asterisk channel as the mapping knows it, and the TAPI picture of a line's channel.
//!
//! A phone's channel is that line's call appearance; its [`CallRef`] is the channel's
//! `Uniqueid`, which Asterisk never reuses. The state is derived from what the events told
//! (who dials whom, ringing, answer, bridges, hold, hangup) every time, never stepped, so a
//! skipped event cannot leave a wrong state behind.

use tapir_model::{
    BusyMode, CallOrigin, CallReason, CallState, ConnectedMode, OfferingMode, Party,
};
use tapir_provider::{CallRef, CallReport, DeviceKey};

use crate::mapping::cause::disconnect_mode;
use crate::message::{ChannelSnapshot, channel_state};

/// Which side of a call the channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not known yet: a new channel that nobody has dialled.
    Unknown,
    /// Dialled by another channel: the phone is being called.
    Incoming,
    /// Created by the phone's own call (a SIP INVITE from it).
    Outgoing,
    /// Created by Asterisk for an Originate: the phone rings first, then the destination.
    Originated,
}

/// How far an outgoing or originated call has got towards its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    NotDialled,
    Proceeding,
    Ringback,
    Busy,
    Answered,
}

/// A channel and what is known about it.
#[derive(Debug, Clone)]
pub struct Channel {
    pub snapshot: ChannelSnapshot,
    /// The line this channel is an appearance of; `None` for trunks, Local channels, ...
    pub device: Option<DeviceKey>,
    /// The line's address, the called party of an incoming call.
    pub address: Option<String>,
    pub role: Role,
    pub progress: Progress,
    /// Once connected, an outgoing call stays connected while its far end changes (a queue
    /// that rings members, a transfer, a redirect).
    pub connected_once: bool,
    pub bridge: Option<String>,
    /// The party at this channel pressed hold.
    pub held: bool,
    pub parked: bool,
    /// The channel that dialled this one.
    pub dialled_by: Option<String>,
    pub origin: CallOrigin,
    pub reason: CallReason,
    pub caller: Party,
    pub called: Party,
    pub redirecting: Party,
    /// Set by `Hangup`.
    pub cause: Option<u32>,
    /// tapir dropped this channel, so its end is normal whatever the cause says.
    pub dropped: bool,
    /// The report last sent, to send only changes.
    pub last: Option<CallReport>,
}

impl Channel {
    pub fn new(snapshot: ChannelSnapshot, device: Option<(DeviceKey, String)>) -> Channel {
        let (device, address) = device.map_or((None, None), |(d, a)| (Some(d), Some(a)));
        Channel {
            snapshot,
            device,
            address,
            role: Role::Unknown,
            progress: Progress::NotDialled,
            connected_once: false,
            bridge: None,
            held: false,
            parked: false,
            dialled_by: None,
            origin: CallOrigin::Unknown,
            reason: CallReason::Direct,
            caller: Party::default(),
            called: Party::default(),
            redirecting: Party::default(),
            cause: None,
            dropped: false,
            last: None,
        }
    }

    /// Takes a newer snapshot; the called number of an outgoing call is the first real
    /// extension it reaches (an Originate's first leg starts at `s`).
    pub fn update(&mut self, snapshot: ChannelSnapshot) {
        if self.role != Role::Incoming && self.called.is_unknown() {
            self.called = dialled_party(&snapshot.exten);
        }
        self.snapshot = snapshot;
    }

    /// Makes this the outgoing side: the phone placed the call.
    pub fn set_outgoing(&mut self, role: Role) {
        self.role = role;
        self.origin = CallOrigin::Outbound;
        if self.called.is_unknown() {
            self.called = dialled_party(&self.snapshot.exten);
        }
    }

    /// True while the far end is being dialled and nothing was connected yet.
    pub fn dialling(&self) -> bool {
        !self.connected_once && matches!(self.role, Role::Outgoing | Role::Originated)
    }

    pub fn is_up(&self) -> bool {
        self.snapshot.state == channel_state::UP
    }

    /// The TAPI state now.
    pub fn state(&self) -> CallState {
        if let Some(cause) = self.cause {
            let mode = if self.dropped {
                tapir_model::DisconnectMode::Normal
            } else {
                disconnect_mode(cause)
            };
            return CallState::Disconnected(mode);
        }
        if self.held || self.parked {
            return CallState::OnHold;
        }
        let connected = CallState::Connected(ConnectedMode::Active);
        match self.role {
            Role::Unknown => CallState::Unknown,
            Role::Incoming if self.is_up() => connected,
            Role::Incoming => CallState::Offering(OfferingMode::Active),
            Role::Outgoing | Role::Originated => self.outgoing_state(),
        }
    }

    fn outgoing_state(&self) -> CallState {
        let connected = CallState::Connected(ConnectedMode::Active);
        if self.connected_once || self.bridge.is_some() || self.progress == Progress::Answered {
            return connected;
        }
        match self.progress {
            // Answered by a dialplan application (voicemail, IVR, queue).
            Progress::NotDialled if self.role == Role::Outgoing && self.is_up() => connected,
            Progress::NotDialled => CallState::Dialing,
            Progress::Proceeding => CallState::Proceeding,
            Progress::Ringback => CallState::Ringback,
            Progress::Busy => CallState::Busy(BusyMode::Station),
            Progress::Answered => connected,
        }
    }

    /// The full picture for the line, or `None` when the channel is not a line's or its role
    /// is not known yet (it is reported as soon as it is).
    pub fn report(&self) -> Option<CallReport> {
        let device = self.device.clone()?;
        let state = self.state();
        if self.role == Role::Unknown && !self.is_up() && self.cause.is_none() {
            return None;
        }
        // A call that ends keeps the party it was talking to; one that never connected has
        // none (a ringing queue member's channel names the caller as its connected line).
        let connected = match state {
            CallState::Connected(_) | CallState::OnHold => self.snapshot.connected.clone(),
            CallState::Disconnected(_) => self
                .last
                .as_ref()
                .map(|last| last.connected.clone())
                .unwrap_or_default(),
            _ => Party::default(),
        };
        let (caller, called) = match self.role {
            Role::Incoming => (self.caller.clone(), self.own_party()),
            _ => (self.snapshot.caller.clone(), self.called.clone()),
        };
        Some(CallReport {
            device,
            call: CallRef(self.snapshot.uniqueid.clone()),
            state,
            origin: self.origin,
            reason: self.reason,
            caller,
            called,
            connected,
            redirecting: self.redirecting.clone(),
            redirection: Party::default(),
            related: None,
            conference: None,
        })
    }

    /// The line's own party: its address and the name Asterisk gives the phone.
    pub fn own_party(&self) -> Party {
        Party {
            number: self.address.clone(),
            name: self.snapshot.caller.name.clone(),
        }
    }
}

/// The party a dialled extension names; `s` and empty are Asterisk's placeholders.
fn dialled_party(exten: &str) -> Party {
    match exten {
        "" | "s" => Party::default(),
        number => Party::number(number),
    }
}
