//! Consultation transfer: Asterisk's attended transfer (`Atxfer`) shown as TAPI's two call
//! appearances on the transferring line.
//!
//! # Why Atxfer, and why two appearances made from one channel
//!
//! There are two ways to consult from AMI. tapir could originate a second call from the line
//! and join the parties with `Bridge` or `Redirect` at the end; but that needs the phone to take
//! a second call by itself (auto-answer) and to put the first on hold, and AMI cannot hold a
//! PJSIP call: it only works with `phone_control`, and the phone keeps its own idea of both
//! calls. `Atxfer` needs nothing from the phone: Asterisk holds the transferee (music on hold),
//! dials the target through a `Local/<to>@<context>` pair and moves the transferer's one
//! channel into a new bridge with it; hanging up the transferer completes the transfer
//! (`AttendedTransfer`, even while the target still rings), and a target that hangs up sends
//! the transferer back to the transferee (Asterisk's `REBRIDGE`). Both behaviours are in
//! Asterisk's attended transfer state machine, and completion is in the captured
//! `ami_atxfer` scenario. So tapir uses `Atxfer` and presents what TAPI expects itself:
//!
//! - the original appearance keeps the channel's `Uniqueid` as its reference and is reported
//!   `onholdpendtransfer`, still connected to the held party, `related` to the consultation;
//! - the consultation is a second appearance of the same line with a reference of its own
//!   (`<uniqueid>/atxfer<n>`), `related` to the original, called and connected party the
//!   target; its state follows the target leg (the `;1` Local channel): dialing until that
//!   exists, proceeding, ringback while it rings, connected once it is up.
//!
//! Commands map onto what Asterisk offers: consult is `Atxfer`; complete transfer hangs up the
//! transferer's channel; dropping the consultation hangs up the target leg, which returns the
//! original to the transferee; dropping the original hangs up the transferee, which leaves the
//! transferer talking to the target (Asterisk's `FAIL` state), shown as the consultation alone.
//!
//! Limits: only consultations tapir started are shown this way (one started on the phone with
//! its feature code stays one appearance); a reconnect during a consultation shows the
//! channel as one connected call again, since `CoreShowChannels` does not say it is one.

use tapir_model::{
    CallOrigin, CallReason, CallState, ConnectedMode, DisconnectMode, Party, RequestId,
};
use tapir_provider::{CallRef, CallReport, Completion, ProviderEvent};

use super::Tracker;
use crate::message::{ChannelSnapshot, channel_state};

/// A consultation requested with `Atxfer` and not yet accepted by Asterisk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConsult {
    pub request: RequestId,
    pub action_id: String,
    /// The `Uniqueid` of the transferring line's channel.
    pub transferer: String,
    /// The number dialled for the consultation.
    pub to: String,
}

/// Where a consultation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Both appearances exist: the original waits, the consultation dials or talks.
    Consulting,
    /// The consultation has ended; the original waits on hold until Asterisk bridges the
    /// transferer with the transferee again.
    Returning,
    /// The transferer is back with the transferee. Asterisk's events about the channel still
    /// name the target as its connected line until its connected line update comes, so the
    /// original names the held party until then.
    Returned,
    /// The transferee hung up: the original has ended and the consultation is the channel's
    /// only appearance.
    Alone,
    /// Nothing of the channel is reported any more; it is about to hang up.
    Over,
}

/// One consultation on a transferring line's channel.
#[derive(Debug, Clone)]
pub struct Consultation {
    /// The consultation appearance's reference.
    pub call: String,
    pub to: String,
    /// The channels waiting in the original bridge (the transferee's side).
    transferees: Vec<String>,
    /// The bridge the transferer shared with the transferee.
    original_bridge: Option<String>,
    /// The party on hold, the original's connected party throughout.
    held_party: Party,
    /// The channel that reaches the target: the `;1` side of Asterisk's Local pair.
    target: Option<String>,
    phase: Phase,
    /// tapir dropped the consultation, so its end is a normal one.
    dropped: bool,
    /// The consultation's report last sent.
    last: Option<CallReport>,
}

impl Consultation {
    /// True while the consultation can still be completed or dropped.
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Consulting
    }

    /// True once the transferer is back with the transferee: its channel is the original call
    /// alone again.
    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Returned
    }

    /// The target leg, once Asterisk created it.
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// The channels of the held party.
    pub fn transferees(&self) -> &[String] {
        &self.transferees
    }
}

const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

impl Tracker {
    /// Expects the answer to an `Atxfer` sent for a consultation.
    pub fn expect_consult(&mut self, pending: PendingConsult) {
        self.consults.push(pending);
    }

    /// Forgets a consultation Asterisk refused, returning its request.
    pub fn cancel_consult(&mut self, action_id: &str) -> Option<RequestId> {
        let index = self
            .consults
            .iter()
            .position(|p| p.action_id == action_id)?;
        Some(self.consults.remove(index).request)
    }

    /// The consultation on the channel `transferer`, if any.
    pub fn consultation(&self, transferer: &str) -> Option<&Consultation> {
        self.consultations.get(transferer)
    }

    /// The transferer channel whose consultation appearance is `call`.
    pub fn transferer_of(&self, call: &str) -> Option<&str> {
        self.consultations
            .iter()
            .find(|(_, c)| c.call == call)
            .map(|(transferer, _)| transferer.as_str())
    }

    /// Notes that tapir is dropping the consultation `call`, so its end is a normal one.
    pub(super) fn note_consult_drop(&mut self, call: &str) {
        if let Some(consultation) = self.consultations.values_mut().find(|c| c.call == call) {
            consultation.dropped = true;
        }
    }

    /// Asterisk accepted the `Atxfer`: the request completes with the consultation's
    /// reference, then both appearances are reported.
    pub fn start_consultation(&mut self, action_id: &str, out: &mut Vec<ProviderEvent>) {
        let Some(index) = self.consults.iter().position(|p| p.action_id == action_id) else {
            return;
        };
        let pending = self.consults.remove(index);
        let Some(channel) = self.channels.get(&pending.transferer) else {
            out.push(ProviderEvent::Completed {
                request: pending.request,
                outcome: Err(tapir_model::TapiError::new(
                    tapir_model::ErrorKind::InvalidCall,
                    "the call ended before Asterisk started the consultation",
                )),
            });
            return;
        };
        self.consult_serial += 1;
        let call = format!("{}/atxfer{}", pending.transferer, self.consult_serial);
        let transferees = self.bridge_mates(&pending.transferer);
        let consultation = Consultation {
            call: call.clone(),
            to: pending.to,
            transferees,
            original_bridge: channel.bridge.clone(),
            held_party: channel.snapshot.connected.clone(),
            target: None,
            phase: Phase::Consulting,
            dropped: false,
            last: None,
        };
        self.consultations
            .insert(pending.transferer.clone(), consultation);
        out.push(ProviderEvent::Completed {
            request: pending.request,
            outcome: Ok(Completion::Call(CallRef(call))),
        });
        self.report_transferer(&pending.transferer, out);
    }

    /// The other channels in `id`'s bridge.
    pub fn bridge_mates(&self, id: &str) -> Vec<String> {
        let Some(bridge) = self.channels.get(id).and_then(|c| c.bridge.as_ref()) else {
            return Vec::new();
        };
        let mut mates: Vec<String> = self
            .channels
            .values()
            .filter(|c| c.bridge.as_ref() == Some(bridge) && c.snapshot.uniqueid != id)
            .map(|c| c.snapshot.uniqueid.clone())
            .collect();
        mates.sort();
        mates
    }

    /// A new channel may be the Local channel Asterisk dials the target with: `;1` of
    /// `Local/<to>@...`, in the transferer's call.
    pub(super) fn consultation_new_channel(&mut self, snapshot: &ChannelSnapshot) {
        let Some(name) = snapshot.name.strip_suffix(";1") else {
            return;
        };
        let transferer = self.consultations.iter().find_map(|(id, c)| {
            let prefix = format!("Local/{}@", c.to);
            let same_call = self
                .channels
                .get(id)
                .is_some_and(|t| t.snapshot.linkedid == snapshot.linkedid);
            (c.is_active() && c.target.is_none() && same_call && name.starts_with(&prefix))
                .then(|| id.clone())
        });
        if let Some(transferer) = transferer
            && let Some(consultation) = self.consultations.get_mut(&transferer)
        {
            consultation.target = Some(snapshot.uniqueid.clone());
        }
    }

    /// A channel entered or left a bridge; a transferer back in the original bridge ends the
    /// consultation, and the target leg is whoever it finds in a new one.
    pub(super) fn consultation_bridge(&mut self, id: &str, out: &mut Vec<ProviderEvent>) {
        let Some(consultation) = self.consultations.get(id) else {
            return;
        };
        if !matches!(consultation.phase, Phase::Consulting | Phase::Returning) {
            return;
        }
        let Some(bridge) = self.channels.get(id).and_then(|c| c.bridge.clone()) else {
            return;
        };
        if consultation.original_bridge.as_ref() == Some(&bridge) {
            self.end_consult_appearance(id, DisconnectMode::Normal, out);
            self.back_with_transferee(id);
            return;
        }
        if consultation.target.is_none() {
            let target = self.bridge_mates(id).into_iter().next();
            if let Some(consultation) = self.consultations.get_mut(id) {
                consultation.target = target;
            }
        }
    }

    /// `Unhold` on a transferer: Asterisk gave up before dialling (an unknown number) or
    /// has put it back with the transferee.
    pub(super) fn consultation_unhold(&mut self, id: &str, out: &mut Vec<ProviderEvent>) {
        let Some(consultation) = self.consultations.get(id) else {
            return;
        };
        match consultation.phase {
            Phase::Consulting if consultation.target.is_none() => {
                self.end_consult_appearance(id, DisconnectMode::BadAddress, out);
                self.back_with_transferee(id);
            }
            Phase::Returning => self.back_with_transferee(id),
            _ => {}
        }
    }

    /// A channel hung up: the transferer (completion or abandonment), the target leg (the
    /// consultation ends) or a transferee (the original ends).
    pub(super) fn consultation_hangup(
        &mut self,
        id: &str,
        cause: u32,
        out: &mut Vec<ProviderEvent>,
    ) {
        if self.consultations.contains_key(id) {
            self.end_consult_appearance(id, DisconnectMode::Normal, out);
            self.consultations.remove(id);
            return;
        }
        let target_of = self
            .consultations
            .iter()
            .find(|(_, c)| c.target.as_deref() == Some(id))
            .map(|(t, _)| t.clone());
        if let Some(transferer) = target_of {
            self.target_gone(&transferer, cause, out);
        }
        let transferee_of: Vec<String> = self
            .consultations
            .iter()
            .filter(|(_, c)| c.transferees.iter().any(|t| t == id))
            .map(|(t, _)| t.clone())
            .collect();
        for transferer in transferee_of {
            self.transferee_gone(&transferer, id, out);
        }
    }

    /// The target leg hung up. If Asterisk swapped another channel in for it (Local channel
    /// optimisation), that one is the target now; otherwise the consultation is over.
    fn target_gone(&mut self, transferer: &str, cause: u32, out: &mut Vec<ProviderEvent>) {
        let replacement = self
            .bridge_mates(transferer)
            .into_iter()
            .find(|mate| self.channels.get(mate).is_some_and(|c| c.cause.is_none()));
        if let Some(consultation) = self.consultations.get_mut(transferer) {
            consultation.target = replacement.clone();
        }
        if replacement.is_some() {
            self.report_transferer(transferer, out);
            return;
        }
        let dropped = self
            .consultations
            .get(transferer)
            .is_some_and(|c| c.dropped);
        let mode = if dropped {
            DisconnectMode::Normal
        } else {
            super::cause::disconnect_mode(cause)
        };
        self.end_consult_appearance(transferer, mode, out);
        self.report_transferer(transferer, out);
    }

    fn transferee_gone(&mut self, transferer: &str, id: &str, out: &mut Vec<ProviderEvent>) {
        let Some(consultation) = self.consultations.get_mut(transferer) else {
            return;
        };
        consultation.transferees.retain(|t| t != id);
        // Once the consultation is over the channel is the original's again and ends as such.
        if !consultation.transferees.is_empty() || consultation.phase != Phase::Consulting {
            return;
        }
        let Some(channel) = self.channels.get_mut(transferer) else {
            return;
        };
        // The original appearance ends here; the channel lives on for the consultation.
        if let Some(last) = channel.last.take() {
            let mut ended = last.clone();
            ended.state = CallState::Disconnected(DisconnectMode::Normal);
            ended.related = None;
            let mut idle = ended.clone();
            idle.state = CallState::Idle;
            out.push(ProviderEvent::Call(Box::new(ended)));
            out.push(ProviderEvent::Call(Box::new(idle)));
        }
        if let Some(consultation) = self.consultations.get_mut(transferer) {
            consultation.phase = Phase::Alone;
        }
        self.report_transferer(transferer, out);
    }

    /// The transferer is back with the transferee: the channel is the original call again,
    /// talking to the held party.
    fn back_with_transferee(&mut self, transferer: &str) {
        if let Some(consultation) = self.consultations.get_mut(transferer)
            && consultation.phase == Phase::Returning
        {
            consultation.phase = Phase::Returned;
        }
    }

    /// Reports the consultation appearance ended in `mode`, then idle; the original then waits
    /// on hold for Asterisk to put it back (or, alone, the channel is done). The caller reports
    /// the original.
    fn end_consult_appearance(
        &mut self,
        transferer: &str,
        mode: DisconnectMode,
        out: &mut Vec<ProviderEvent>,
    ) {
        let Some(consultation) = self.consultations.get(transferer) else {
            return;
        };
        if matches!(
            consultation.phase,
            Phase::Returning | Phase::Returned | Phase::Over
        ) {
            return;
        }
        let next = if consultation.phase == Phase::Alone {
            Phase::Over
        } else {
            Phase::Returning
        };
        if let Some(mut report) = self.consult_report(transferer) {
            report.state = CallState::Disconnected(mode);
            let mut idle = report.clone();
            idle.state = CallState::Idle;
            self.push_consult(transferer, report, out);
            out.push(ProviderEvent::Call(Box::new(idle)));
        }
        if let Some(consultation) = self.consultations.get_mut(transferer) {
            consultation.phase = next;
        }
    }

    /// Reports both appearances of a transferer's channel, each when it changed.
    pub(super) fn report_transferer(&mut self, id: &str, out: &mut Vec<ProviderEvent>) {
        let Some(consultation) = self.consultations.get(id) else {
            return;
        };
        let phase = consultation.phase;
        let related = consultation.call.clone();
        let held_party = consultation.held_party.clone();
        if matches!(
            phase,
            Phase::Consulting | Phase::Returning | Phase::Returned
        ) && let Some(channel) = self.channels.get_mut(id)
            && let Some(mut report) = channel.report()
        {
            let caught_up = channel.snapshot.connected.number == held_party.number;
            if !matches!(report.state, CallState::Disconnected(_)) {
                report.connected = held_party;
                match phase {
                    Phase::Consulting => {
                        report.state = CallState::OnHoldPendTransfer;
                        report.related = Some(CallRef(related));
                    }
                    Phase::Returning => report.state = CallState::OnHold,
                    _ => {}
                }
            }
            if channel.last.as_ref() != Some(&report) {
                channel.last = Some(report.clone());
                out.push(ProviderEvent::Call(Box::new(report)));
            }
            if phase == Phase::Returned && caught_up {
                self.consultations.remove(id);
                return;
            }
        }
        if matches!(phase, Phase::Consulting | Phase::Alone)
            && let Some(report) = self.consult_report(id)
        {
            self.push_consult(id, report, out);
        }
    }

    /// The consultation's report, when the target leg of `id`'s consultation changed.
    pub(super) fn report_consultation_of_target(
        &mut self,
        target: &str,
        out: &mut Vec<ProviderEvent>,
    ) {
        let transferer = self
            .consultations
            .iter()
            .find(|(_, c)| c.target.as_deref() == Some(target))
            .map(|(t, _)| t.clone());
        if let Some(transferer) = transferer {
            self.report_transferer(&transferer, out);
        }
    }

    fn push_consult(&mut self, transferer: &str, report: CallReport, out: &mut Vec<ProviderEvent>) {
        let Some(consultation) = self.consultations.get_mut(transferer) else {
            return;
        };
        if consultation.last.as_ref() == Some(&report) {
            return;
        }
        consultation.last = Some(report.clone());
        out.push(ProviderEvent::Call(Box::new(report)));
    }

    /// The consultation appearance as it stands now.
    fn consult_report(&self, transferer: &str) -> Option<CallReport> {
        let consultation = self.consultations.get(transferer)?;
        let channel = self.channels.get(transferer)?;
        let device = channel.device.clone()?;
        let target = consultation
            .target
            .as_ref()
            .and_then(|t| self.channels.get(t));
        let state = if channel.cause.is_some() {
            CallState::Disconnected(DisconnectMode::Normal)
        } else {
            match target {
                None => CallState::Dialing,
                Some(t) if t.is_up() => CONNECTED,
                Some(t) if t.snapshot.state == channel_state::RINGING => CallState::Ringback,
                Some(_) => CallState::Proceeding,
            }
        };
        let connected = match state {
            CallState::Connected(_) => target
                .map(|t| t.snapshot.caller.clone())
                .filter(|p| !p.is_unknown())
                .unwrap_or_else(|| channel.snapshot.connected.clone()),
            CallState::Disconnected(_) => consultation
                .last
                .as_ref()
                .map(|last| last.connected.clone())
                .unwrap_or_default(),
            _ => Party::default(),
        };
        let related =
            (consultation.phase == Phase::Consulting).then(|| CallRef(transferer.to_string()));
        Some(CallReport {
            device,
            call: CallRef(consultation.call.clone()),
            state,
            origin: CallOrigin::Outbound,
            reason: CallReason::Direct,
            caller: channel.own_party(),
            called: Party::number(consultation.to.clone()),
            connected,
            redirecting: Party::default(),
            redirection: Party::default(),
            related,
            conference: None,
        })
    }
}
