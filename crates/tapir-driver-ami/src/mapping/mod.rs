//! The mapping from AMI events to tapir's call reports: a synchronous state machine with no
//! I/O and no clock, fed one event at a time by the connection loop (or a test, or the
//! benchmark) through [`Tracker::handle`].
//!
//! - `cause`: hangup causes as TAPI disconnect modes.
//! - `lines`: endpoints as lines, with their extensions.
//! - `channel`: one channel and the TAPI picture of a line's channel.
//!
//! Every channel is tracked (trunks and Local channels too, to know who dialled whom and
//! who shares a bridge); only channels of a line's endpoint are reported. Both legs of a call
//! share Asterisk's `Linkedid`, which keys what transfers and redirects leave for the legs
//! they create next.

pub mod cause;
pub mod channel;
pub mod consultation;
pub mod lines;

use std::collections::HashMap;

use tapir_model::{CallOrigin, CallReason, ErrorKind, Party, RequestId, TapiError};
use tapir_provider::{CallReport, Completion, DeviceKey, ProviderEvent};

use crate::message::{AmiEvent, ChannelSnapshot, Message, channel_state};
use channel::{Channel, Progress, Role};
use consultation::{Consultation, PendingConsult};
use lines::Lines;

/// A made call (an Originate) waiting for its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOriginate {
    pub request: RequestId,
    pub device: DeviceKey,
    pub action_id: String,
    /// The number dialled, the called party.
    pub to: String,
    /// Why the call exists (`Direct`, or `Pickup` when a pickup placed it).
    pub reason: CallReason,
}

/// A park waiting for Asterisk to say where the call now waits (`ParkedCall`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPark {
    pub request: RequestId,
    pub action_id: String,
    /// The channel being parked: the line's far end.
    pub parkee: String,
}

/// Which transfer an event reports.
#[derive(Debug)]
enum Transfer {
    Blind,
    /// An attended transfer, naming the transferee when Asterisk does.
    Attended(Option<ChannelSnapshot>),
}

/// What a transfer or redirect leaves for the appearances its call creates next.
#[derive(Debug, Clone)]
struct Mark {
    reason: CallReason,
    redirecting: Party,
}

/// The calls on the PBX as tapir sees them.
#[derive(Debug, Default)]
pub struct Tracker {
    lines: Lines,
    channels: HashMap<String, Channel>,
    marks: HashMap<String, Mark>,
    originates: Vec<PendingOriginate>,
    /// Originates whose `OriginateResponse` named a channel not seen yet.
    answered_originates: HashMap<String, PendingOriginate>,
    parks: Vec<PendingPark>,
    /// Consultations tapir asked for and Asterisk has not accepted yet.
    consults: Vec<PendingConsult>,
    /// Running consultations by the transferer channel's `Uniqueid`.
    consultations: HashMap<String, Consultation>,
    /// Numbers the consultation references.
    consult_serial: u64,
}

impl Tracker {
    pub fn new(lines: Lines) -> Tracker {
        Tracker {
            lines,
            ..Tracker::default()
        }
    }

    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    /// Replaces the lines (after a reload); calls on vanished lines stop being reported.
    pub fn set_lines(&mut self, mut lines: Lines) {
        lines.keep_reachability(&self.lines);
        self.lines = lines;
    }

    /// Loads the items of a `DeviceStateList` answer (at a (re)connect): which lines' phones
    /// are unreachable. Nothing is reported; `Synchronized` carries them.
    pub fn load_device_states(&mut self, items: &[Message]) {
        for item in items {
            if let Some(AmiEvent::DeviceState { device, state }) = AmiEvent::from_message(item) {
                self.lines.device_state(&device, &state);
            }
        }
    }

    /// Loads the channels of a `CoreShowChannels` answer: the calls that exist after a
    /// (re)connect, whose history is lost. Returns their reports.
    pub fn load(&mut self, items: &[Message]) -> Vec<CallReport> {
        self.channels.clear();
        self.consultations.clear();
        for item in items {
            if let Some(channel) = self.channel_from_status(item) {
                self.channels
                    .insert(channel.snapshot.uniqueid.clone(), channel);
            }
        }
        let mut reports: Vec<CallReport> = Vec::new();
        for channel in self.channels.values_mut() {
            channel.last = channel.report();
            reports.extend(channel.last.clone());
        }
        reports.sort_by(|a, b| a.call.cmp(&b.call));
        reports
    }

    /// Best knowledge of a channel from a `CoreShowChannel` item: the application tells the
    /// side (`AppDial` is a dialled channel, `AppDial2` an Originate's first leg).
    fn channel_from_status(&self, item: &Message) -> Option<Channel> {
        let snapshot = ChannelSnapshot::read(item, "")?;
        let mut channel = self.new_channel(snapshot);
        let bridged = !item.text("BridgeId").is_empty();
        channel.bridge = bridged.then(|| item.text("BridgeId").to_string());
        match item.text("Application") {
            "AppDial" => {
                channel.role = Role::Incoming;
                channel.caller = channel.snapshot.connected.clone();
                channel.origin = self.origin_of(&channel.caller);
            }
            "AppDial2" => channel.set_outgoing(Role::Originated),
            _ if channel.snapshot.state >= channel_state::RING => {
                channel.set_outgoing(Role::Outgoing);
                channel.progress = if bridged {
                    Progress::Answered
                } else {
                    Progress::Proceeding
                };
            }
            _ => {}
        }
        channel.connected_once = bridged && channel.role != Role::Incoming;
        Some(channel)
    }

    /// Expects the channel of an Originate sent for a made call.
    pub fn expect_originate(&mut self, pending: PendingOriginate) {
        self.originates.push(pending);
    }

    /// Forgets a made call whose Originate Asterisk refused, returning its request.
    pub fn cancel_originate(&mut self, action_id: &str) -> Option<RequestId> {
        let index = self
            .originates
            .iter()
            .position(|p| p.action_id == action_id)?;
        Some(self.originates.remove(index).request)
    }

    /// Expects the `ParkedCall` of a Park sent for a request.
    pub fn expect_park(&mut self, pending: PendingPark) {
        self.parks.push(pending);
    }

    /// Forgets a park Asterisk refused, returning its request.
    pub fn cancel_park(&mut self, action_id: &str) -> Option<RequestId> {
        let index = self.parks.iter().position(|p| p.action_id == action_id)?;
        Some(self.parks.remove(index).request)
    }

    /// Forgets the made calls still waiting for a channel and the parks waiting for their
    /// space (the link went down), returning their requests.
    pub fn take_pending(&mut self) -> Vec<RequestId> {
        let mut requests: Vec<RequestId> = self.originates.drain(..).map(|p| p.request).collect();
        requests.extend(self.answered_originates.drain().map(|(_, p)| p.request));
        requests.extend(self.parks.drain(..).map(|p| p.request));
        requests.extend(self.consults.drain(..).map(|p| p.request));
        requests
    }

    /// Notes that tapir is dropping this call, so its end is a normal one.
    pub fn note_drop(&mut self, call: &str) {
        if let Some(channel) = self.channels.get_mut(call) {
            channel.dropped = true;
        }
        self.note_consult_drop(call);
    }

    /// Marks the next appearances of `call`'s call as redirected by its line.
    pub fn note_redirect(&mut self, call: &str) {
        let Some(channel) = self.channels.get(call) else {
            return;
        };
        let mark = Mark {
            reason: CallReason::Redirect,
            redirecting: channel.snapshot.caller.clone(),
        };
        self.marks.insert(channel.snapshot.linkedid.clone(), mark);
    }

    pub fn channel(&self, call: &str) -> Option<&Channel> {
        self.channels.get(call)
    }

    /// The channel on the other side of `call`: its bridge mate, or who dialled it, or whom
    /// it dials.
    pub fn peer(&self, call: &str) -> Option<&Channel> {
        let channel = self.channels.get(call)?;
        let in_bridge = channel.bridge.as_ref().and_then(|bridge| {
            self.channels
                .values()
                .find(|c| c.bridge.as_ref() == Some(bridge) && c.snapshot.uniqueid != call)
        });
        in_bridge
            .or_else(|| self.channels.get(channel.dialled_by.as_ref()?))
            .or_else(|| {
                self.channels
                    .values()
                    .find(|c| c.dialled_by.as_deref() == Some(call))
            })
    }

    /// The ringing appearances of a line, oldest first by uniqueid.
    pub fn ringing_on(&self, device: &DeviceKey) -> Vec<&Channel> {
        let mut ringing: Vec<&Channel> = self
            .channels
            .values()
            .filter(|c| c.device.as_ref() == Some(device) && c.state().is_alerting())
            .collect();
        ringing.sort_by(|a, b| a.snapshot.uniqueid.cmp(&b.snapshot.uniqueid));
        ringing
    }

    /// Applies one AMI message, appending what tapir must be told to `out`.
    pub fn handle(&mut self, message: &Message, out: &mut Vec<ProviderEvent>) {
        if let Some(event) = AmiEvent::from_message(message) {
            self.apply(event, out);
        }
        if let Some(event) = AmiEvent::retrieval(message) {
            self.apply(event, out);
        }
    }

    /// Applies one typed event.
    pub fn apply(&mut self, event: AmiEvent, out: &mut Vec<ProviderEvent>) {
        match event {
            AmiEvent::NewChannel(snapshot) => self.new_channel_event(snapshot, out),
            AmiEvent::ChannelUpdate(snapshot) => {
                let id = snapshot.uniqueid.clone();
                self.update(snapshot);
                self.report(&id, out);
            }
            AmiEvent::Rename { uniqueid, new_name } => {
                if let Some(channel) = self.channels.get_mut(&uniqueid) {
                    channel.snapshot.name = new_name;
                }
            }
            AmiEvent::DialBegin { source, dest } => self.dial_begin(source, dest, out),
            AmiEvent::DialProgress {
                source,
                dest,
                status,
                end,
            } => self.dial_progress(source, dest, &status, end, out),
            AmiEvent::Hangup { channel, cause } => self.hangup(channel, cause, out),
            AmiEvent::BridgeEnter { bridge, channel } => {
                self.bridge(channel, Some(bridge), out);
            }
            AmiEvent::BridgeLeave { channel, .. } => self.bridge(channel, None, out),
            AmiEvent::Hold { channel, held } => {
                let id = channel.uniqueid.clone();
                self.update(channel);
                if let Some(c) = self.channels.get_mut(&id) {
                    c.held = held;
                }
                if !held {
                    self.consultation_unhold(&id, out);
                }
                self.report(&id, out);
            }
            AmiEvent::BlindTransfer { transferer, .. } => {
                self.transferred(&transferer, Transfer::Blind, out);
            }
            AmiEvent::AttendedTransfer {
                transferer,
                transferee,
            } => {
                self.transferred(&transferer, Transfer::Attended(transferee), out);
            }
            AmiEvent::OriginateResponse {
                action_id,
                success,
                reason,
                uniqueid,
            } => self.originate_response(&action_id, success, reason, uniqueid, out),
            AmiEvent::Parked {
                parkee,
                parked,
                space,
            } => {
                if let Some(channel) = self.channels.get_mut(&parkee) {
                    channel.parked = parked;
                }
                if parked {
                    self.parked(&parkee, space, out);
                }
                self.report(&parkee, out);
            }
            AmiEvent::Retrieved { retriever } => {
                if let Some(channel) = self.channels.get_mut(&retriever) {
                    channel.reason = CallReason::Unpark;
                }
                self.report(&retriever, out);
            }
            AmiEvent::DeviceState { device, state } => {
                if let Some((device, in_service)) = self.lines.device_state(&device, &state) {
                    let reason = if in_service {
                        "the phone is reachable again".to_string()
                    } else {
                        format!(
                            "Asterisk reports the phone {state}: not registered or not answering"
                        )
                    };
                    out.push(ProviderEvent::DeviceService {
                        device,
                        in_service,
                        reason,
                    });
                }
            }
            AmiEvent::FullyBooted | AmiEvent::Reload | AmiEvent::Shutdown => {}
        }
    }

    /// Completes the park that put `parkee` in the lot, naming the space.
    fn parked(&mut self, parkee: &str, space: Option<String>, out: &mut Vec<ProviderEvent>) {
        let Some(index) = self.parks.iter().position(|p| p.parkee == parkee) else {
            return;
        };
        let park = self.parks.remove(index);
        let outcome = match space {
            Some(at) => Ok(Completion::Parked { at }),
            None => Err(TapiError::new(
                ErrorKind::OperationFailed,
                "Asterisk parked the call but did not name the parking space",
            )),
        };
        out.push(ProviderEvent::Completed {
            request: park.request,
            outcome,
        });
    }

    fn new_channel(&self, snapshot: ChannelSnapshot) -> Channel {
        let device = self
            .lines
            .of_channel(&snapshot.name)
            .map(|d| (d.key.clone(), d.address.clone()));
        Channel::new(snapshot, device)
    }

    fn new_channel_event(&mut self, snapshot: ChannelSnapshot, out: &mut Vec<ProviderEvent>) {
        let id = snapshot.uniqueid.clone();
        if self.channels.contains_key(&id) {
            self.update(snapshot);
            self.report(&id, out);
            return;
        }
        self.consultation_new_channel(&snapshot);
        let mut channel = self.new_channel(snapshot);
        // A channel that starts in Ring is the phone calling out.
        if channel.snapshot.state == channel_state::RING {
            channel.set_outgoing(Role::Outgoing);
        }
        self.channels.insert(id.clone(), channel);
        if let Some(pending) = self.answered_originates.remove(&id) {
            self.bind(&id, pending, out);
        }
        self.report(&id, out);
    }

    /// Takes a snapshot into its channel, creating the channel when it was missed.
    fn update(&mut self, snapshot: ChannelSnapshot) {
        match self.channels.get_mut(&snapshot.uniqueid) {
            Some(channel) => channel.update(snapshot),
            None => {
                let channel = self.new_channel(snapshot);
                self.channels
                    .insert(channel.snapshot.uniqueid.clone(), channel);
            }
        }
    }

    fn dial_begin(
        &mut self,
        source: Option<ChannelSnapshot>,
        dest: ChannelSnapshot,
        out: &mut Vec<ProviderEvent>,
    ) {
        let dest_id = dest.uniqueid.clone();
        self.update(dest);
        match source {
            None => self.originate_leg(&dest_id, out),
            Some(source) => {
                let source_id = source.uniqueid.clone();
                let caller = source.caller.clone();
                self.update(source);
                self.called_by(&dest_id, &source_id, caller);
                if let Some(channel) = self.channels.get_mut(&source_id)
                    && channel.dialling()
                {
                    channel.progress = channel.progress.max(Progress::Proceeding);
                }
                self.report(&source_id, out);
            }
        }
        self.report(&dest_id, out);
    }

    /// Asterisk dials a phone by itself: the first leg of an Originate. It belongs to the
    /// oldest made call waiting on that line, if any.
    fn originate_leg(&mut self, id: &str, out: &mut Vec<ProviderEvent>) {
        let Some(channel) = self.channels.get_mut(id) else {
            return;
        };
        if channel.role == Role::Unknown {
            channel.set_outgoing(Role::Originated);
        }
        let device = channel.device.clone();
        let waiting = self
            .originates
            .iter()
            .position(|p| Some(&p.device) == device.as_ref());
        if let Some(index) = waiting {
            let pending = self.originates.remove(index);
            self.bind(id, pending, out);
        }
    }

    /// Ties a made call to its channel and completes the request: the completion goes out
    /// before the call's first report.
    fn bind(&mut self, id: &str, pending: PendingOriginate, out: &mut Vec<ProviderEvent>) {
        let Some(channel) = self.channels.get_mut(id) else {
            return;
        };
        channel.set_outgoing(Role::Originated);
        channel.called = Party::number(pending.to);
        channel.reason = pending.reason;
        out.push(ProviderEvent::Completed {
            request: pending.request,
            outcome: Ok(Completion::Call(tapir_provider::CallRef(id.to_string()))),
        });
    }

    /// `dest` is being called by `source`: the incoming side of a call.
    fn called_by(&mut self, dest_id: &str, source_id: &str, source_caller: Party) {
        let mark = self
            .channels
            .get(dest_id)
            .and_then(|c| self.marks.get(&c.snapshot.linkedid))
            .cloned();
        let Some(channel) = self.channels.get(dest_id) else {
            return;
        };
        let caller = if channel.snapshot.connected.is_unknown() {
            source_caller
        } else {
            channel.snapshot.connected.clone()
        };
        let origin = self.origin_of(&caller);
        let Some(channel) = self.channels.get_mut(dest_id) else {
            return;
        };
        channel.role = Role::Incoming;
        channel.dialled_by = Some(source_id.to_string());
        channel.caller = caller;
        channel.origin = origin;
        if let Some(mark) = mark {
            channel.reason = mark.reason;
            channel.redirecting = mark.redirecting;
        }
    }

    /// Internal when the caller is one of the lines, external otherwise.
    fn origin_of(&self, caller: &Party) -> CallOrigin {
        match &caller.number {
            Some(number) if self.lines.is_address(number) => CallOrigin::Internal,
            Some(_) => CallOrigin::External,
            None => CallOrigin::Unknown,
        }
    }

    fn dial_progress(
        &mut self,
        source: Option<ChannelSnapshot>,
        dest: ChannelSnapshot,
        status: &str,
        end: bool,
        out: &mut Vec<ProviderEvent>,
    ) {
        let dest_id = dest.uniqueid.clone();
        self.update(dest);
        if let Some(source) = source {
            let source_id = source.uniqueid.clone();
            self.update(source);
            if let Some(channel) = self.channels.get_mut(&source_id)
                && channel.dialling()
            {
                channel.progress = match (status, end) {
                    ("RINGING", _) => channel.progress.max(Progress::Ringback),
                    ("ANSWER", true) => Progress::Answered,
                    ("BUSY", true) => Progress::Busy,
                    _ => channel.progress,
                };
            }
            self.report(&source_id, out);
        }
        self.report(&dest_id, out);
    }

    fn bridge(
        &mut self,
        snapshot: ChannelSnapshot,
        bridge: Option<String>,
        out: &mut Vec<ProviderEvent>,
    ) {
        let id = snapshot.uniqueid.clone();
        self.update(snapshot);
        if let Some(channel) = self.channels.get_mut(&id) {
            // Entering a bridge means talking in it: a consultation ends the holder's hold.
            if bridge.is_some() {
                channel.held = false;
                channel.connected_once |= channel.role != Role::Incoming;
            }
            channel.bridge = bridge;
        }
        self.consultation_bridge(&id, out);
        self.report(&id, out);
    }

    fn hangup(&mut self, snapshot: ChannelSnapshot, cause: u32, out: &mut Vec<ProviderEvent>) {
        let id = snapshot.uniqueid.clone();
        let linkedid = snapshot.linkedid.clone();
        self.update(snapshot);
        if let Some(channel) = self.channels.get_mut(&id) {
            channel.cause = Some(cause);
        }
        self.report(&id, out);
        self.consultation_hangup(&id, cause, out);
        if let Some(channel) = self.channels.remove(&id)
            && let Some(mut idle) = channel.last
        {
            idle.state = tapir_model::CallState::Idle;
            out.push(ProviderEvent::Call(Box::new(idle)));
        }
        if !self
            .channels
            .values()
            .any(|c| c.snapshot.linkedid == linkedid)
        {
            self.marks.remove(&linkedid);
        }
    }

    /// A transfer by `transferer` succeeded: the legs its call creates next (blind), or the
    /// target already ringing or talking (attended, which names the `transferee`), were
    /// transferred by that party. The transferee of an attended transfer learns who
    /// transferred it.
    fn transferred(
        &mut self,
        transferer: &ChannelSnapshot,
        kind: Transfer,
        out: &mut Vec<ProviderEvent>,
    ) {
        let mark = Mark {
            reason: CallReason::Transfer,
            redirecting: transferer.caller.clone(),
        };
        let linkedid = transferer.linkedid.clone();
        if let Transfer::Attended(transferee) = kind {
            let transferee = transferee.map(|t| t.uniqueid).unwrap_or_default();
            if let Some(channel) = self.channels.get_mut(&transferee) {
                channel.redirecting = mark.redirecting.clone();
                self.report(&transferee, out);
            }
            let targets: Vec<String> = self
                .channels
                .values()
                .filter(|c| {
                    c.snapshot.linkedid == linkedid
                        && c.role == Role::Incoming
                        && c.snapshot.uniqueid != transferer.uniqueid
                        && c.snapshot.uniqueid != transferee
                        && c.device.is_some()
                        && c.cause.is_none()
                })
                .map(|c| c.snapshot.uniqueid.clone())
                .collect();
            for id in targets {
                if let Some(channel) = self.channels.get_mut(&id) {
                    channel.reason = mark.reason;
                    channel.redirecting = mark.redirecting.clone();
                }
                self.report(&id, out);
            }
        }
        self.marks.insert(linkedid, mark);
    }

    fn originate_response(
        &mut self,
        action_id: &str,
        success: bool,
        reason: u32,
        uniqueid: Option<String>,
        out: &mut Vec<ProviderEvent>,
    ) {
        let Some(index) = self
            .originates
            .iter()
            .position(|p| p.action_id == action_id)
        else {
            return;
        };
        let pending = self.originates.remove(index);
        match (success, uniqueid) {
            (true, Some(id)) if self.channels.contains_key(&id) => {
                self.bind(&id, pending, out);
                self.report(&id, out);
            }
            (true, Some(id)) => {
                self.answered_originates.insert(id, pending);
            }
            // Success without a channel: nothing to follow; the call is not ours to report.
            (true, None) => out.push(ProviderEvent::Completed {
                request: pending.request,
                outcome: Ok(Completion::Done),
            }),
            (false, _) => out.push(ProviderEvent::Completed {
                request: pending.request,
                outcome: Err(originate_failure(reason, &pending)),
            }),
        }
    }

    /// Sends the channel's report when it changed (both appearances of a transferer in a
    /// consultation, and the consultation whose target leg this is).
    fn report(&mut self, id: &str, out: &mut Vec<ProviderEvent>) {
        if self.consultations.contains_key(id) {
            self.report_transferer(id, out);
            return;
        }
        self.report_consultation_of_target(id, out);
        let Some(channel) = self.channels.get_mut(id) else {
            return;
        };
        let Some(report) = channel.report() else {
            return;
        };
        if channel.last.as_ref() == Some(&report) {
            return;
        }
        if matches!(report.state, tapir_model::CallState::Connected(_))
            && channel.role != Role::Incoming
        {
            channel.connected_once = true;
        }
        channel.last = Some(report.clone());
        out.push(ProviderEvent::Call(Box::new(report)));
    }
}

/// Why an Originate failed, from `OriginateResponse`'s `Reason` (Asterisk's control frame
/// numbers: 0 no channel, 1 hung up, 3 ringing timed out, 5 busy, 8 congestion).
fn originate_failure(reason: u32, pending: &PendingOriginate) -> TapiError {
    let device = &pending.device.0;
    match reason {
        0 => TapiError::new(
            ErrorKind::OperationFailed,
            format!("Asterisk could not call the phone of {device} (not registered or unknown)"),
        ),
        1 | 3 => TapiError::new(
            ErrorKind::OperationFailed,
            format!("the phone of {device} was not answered"),
        ),
        5 => TapiError::new(
            ErrorKind::ResourceUnavailable,
            format!("the phone of {device} is busy"),
        ),
        8 => TapiError::new(
            ErrorKind::ResourceUnavailable,
            format!("congestion while calling the phone of {device}"),
        ),
        other => TapiError::new(
            ErrorKind::OperationFailed,
            format!("the call from {device} failed (Asterisk reason {other})"),
        ),
    }
}
