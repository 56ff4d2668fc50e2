//! tapir's commands as AMI actions.
//!
//! [`plan`] checks a command against what the mapping knows and builds the actions; it does no
//! I/O. Call references are channel `Uniqueid`s; actions address channels by name, which the
//! mapping keeps current through renames.

use tapir_model::{CallReason, Capabilities, ErrorKind, Forward, ForwardMode, TapiError};
use tapir_provider::{CallRef, DeviceKey, PickupFrom, ProviderCommand, ProviderRequest};

use crate::config::{AmiConfig, FeatureStore, PhoneControl, is_header_safe};
use crate::mapping::consultation::PendingConsult;
use crate::mapping::{PendingOriginate, PendingPark, Tracker};
use crate::message::Action;

/// What to send for one request, and how its answer completes it.
#[derive(Debug)]
pub enum Plan {
    /// One action; `Success` completes the request.
    Single(Action),
    /// An Originate: the request completes when its channel appears (see
    /// [`Tracker::expect_originate`]) or when Asterisk reports the failure.
    Originate(Action, PendingOriginate),
    /// Several actions that must all succeed; `tolerated` errors (removing an absent AstDB
    /// key) count as success.
    Batch(Vec<(Action, Tolerate)>),
    /// A Park: only a refusal completes at the response; success waits for `ParkedCall`,
    /// which names the space.
    Park(Action, PendingPark),
    /// An Atxfer: the request completes at the response, with the consultation's call when
    /// Asterisk accepted it (see [`Tracker::start_consultation`]).
    Consult(Action, PendingConsult),
}

/// Whether an `Error` response still counts as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerate {
    Nothing,
    MissingEntry,
}

/// The capabilities this configuration offers.
pub fn capabilities(config: &AmiConfig) -> Capabilities {
    // Consultation transfer is Asterisk's Atxfer, shown as two appearances (see
    // `mapping::consultation`); conference is not offered: joining all three is a DTMF
    // feature of the transferring channel that no AMI action triggers.
    let mut caps = Capabilities::MAKE_CALL
        | Capabilities::DROP
        | Capabilities::BLIND_TRANSFER
        | Capabilities::CONSULT_TRANSFER
        | Capabilities::REDIRECT
        | Capabilities::PICKUP
        | Capabilities::PARK
        | Capabilities::GENERATE_DIGITS;
    if config.phone_control != PhoneControl::None {
        caps |= Capabilities::ANSWER | Capabilities::HOLD;
    }
    if config.feature_store != FeatureStore::None {
        caps |= Capabilities::FORWARD | Capabilities::DO_NOT_DISTURB;
    }
    caps
}

/// Builds the actions for `request`; `next_id` gives fresh ActionIDs.
pub fn plan(
    config: &AmiConfig,
    tracker: &Tracker,
    request: &ProviderRequest,
    next_id: &mut impl FnMut() -> String,
) -> Result<Plan, TapiError> {
    let planner = Planner { config, tracker };
    planner.consultation_allows(&request.command)?;
    match &request.command {
        ProviderCommand::MakeCall { device, to } => {
            planner.make_call(request, device, to, CallReason::Direct, next_id())
        }
        ProviderCommand::Drop { call } => planner.drop(call, next_id),
        ProviderCommand::Redirect { call, to } => planner.redirect(call, to, next_id()),
        ProviderCommand::GenerateDigits { call, digits } => {
            // PlayDTMF sends one digit per action, in order.
            let channel = planner.channel_name(call)?;
            let actions = digits
                .chars()
                .map(|digit| {
                    let action = Action::new("PlayDTMF", &next_id())
                        .with("Channel", channel.clone())
                        .with("Digit", digit.to_string());
                    (action, Tolerate::Nothing)
                })
                .collect();
            Ok(Plan::Batch(actions))
        }
        ProviderCommand::BlindTransfer { call, to } => {
            let channel = planner.channel_name(call)?;
            let to = dialable(to)?;
            Ok(Plan::Single(
                Action::new("BlindTransfer", &next_id())
                    .with("Channel", channel)
                    .with("Context", &config.context)
                    .with("Exten", to),
            ))
        }
        ProviderCommand::Pickup { device, from } => planner.pickup(request, device, from, next_id),
        ProviderCommand::Answer { call } => planner.phone_event(call, "talk", next_id()),
        ProviderCommand::Hold { call } => planner.phone_event(call, "hold", next_id()),
        ProviderCommand::Unhold { call } => planner.phone_event(call, "talk", next_id()),
        ProviderCommand::SetForwards { device, forwards } => {
            planner.forwards(device, forwards, next_id)
        }
        ProviderCommand::SetDoNotDisturb { device, enabled } => {
            planner.dnd(device, *enabled, next_id())
        }
        ProviderCommand::Swap { .. } => Err(unavailable(
            "swapping calls needs the phone's hold, which AMI cannot operate",
        )),
        ProviderCommand::Consult { call, to } => planner.consult(request, call, to, next_id()),
        ProviderCommand::CompleteTransfer { held, consult } => {
            planner.complete_transfer(held, consult, next_id())
        }
        ProviderCommand::Conference { .. } => Err(unavailable(
            "Asterisk joins a consultation into a conference only by a DTMF feature of the \
             transferring phone; complete the transfer or drop the consultation instead",
        )),
        ProviderCommand::Accept { .. } => Err(unavailable(
            "Asterisk has no accept without answering; answer the call instead",
        )),
        ProviderCommand::Simulate { .. } | ProviderCommand::SimulatePbx(_) => Err(unavailable(
            "simulated handset actions exist only on the simulated PBX",
        )),
        ProviderCommand::Park { call, to } => planner.park(request, call, to.as_deref(), next_id()),
        // Dialling a space of the parking lot takes the call waiting there.
        ProviderCommand::Unpark { device, from } => {
            planner.make_call(request, device, from, CallReason::Unpark, next_id())
        }
    }
}

struct Planner<'a> {
    config: &'a AmiConfig,
    tracker: &'a Tracker,
}

impl Planner<'_> {
    fn device(&self, device: &DeviceKey) -> Result<&tapir_provider::Device, TapiError> {
        self.tracker.lines().get(device).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidLine,
                format!("{} is not an endpoint of this Asterisk", device.0),
            )
        })
    }

    /// During a consultation only dropping either appearance and completing the transfer
    /// reach Asterisk: the original's channel is the consultation's too, so anything else on
    /// it would act on the wrong party.
    fn consultation_allows(&self, command: &ProviderCommand) -> Result<(), TapiError> {
        let call = match command {
            ProviderCommand::Drop { .. } | ProviderCommand::CompleteTransfer { .. } => {
                return Ok(());
            }
            ProviderCommand::Answer { call }
            | ProviderCommand::Hold { call }
            | ProviderCommand::Unhold { call }
            | ProviderCommand::BlindTransfer { call, .. }
            | ProviderCommand::Consult { call, .. }
            | ProviderCommand::Redirect { call, .. }
            | ProviderCommand::GenerateDigits { call, .. }
            | ProviderCommand::Park { call, .. } => call,
            _ => return Ok(()),
        };
        let in_consultation = self.tracker.transferer_of(&call.0).is_some()
            || self
                .tracker
                .consultation(&call.0)
                .is_some_and(|c| !c.is_settled());
        if in_consultation {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                "during an Asterisk consultation a call can only be dropped or the transfer \
                 completed",
            ));
        }
        Ok(())
    }

    /// Hangs up a call. Dropping a consultation hangs up its target leg (Asterisk then puts
    /// the transferer back with the transferee); dropping the original of a consultation hangs
    /// up the transferee, since hanging up the transferer's channel would complete the
    /// transfer.
    fn drop(
        &self,
        call: &CallRef,
        next_id: &mut impl FnMut() -> String,
    ) -> Result<Plan, TapiError> {
        let hangup = |channel: &str, id: String| {
            Action::new("Hangup", &id)
                .with("Channel", channel)
                .with("Cause", "16")
        };
        if let Some(transferer) = self.tracker.transferer_of(&call.0) {
            let target = self
                .tracker
                .consultation(transferer)
                .and_then(|c| c.target())
                .and_then(|t| self.tracker.channel(t))
                .ok_or_else(|| {
                    TapiError::new(
                        ErrorKind::InvalidCallState,
                        "Asterisk has not dialled the consultation yet; drop it again in a moment",
                    )
                })?;
            return Ok(Plan::Single(hangup(&target.snapshot.name, next_id())));
        }
        if let Some(consultation) = self.tracker.consultation(&call.0)
            && consultation.is_active()
        {
            let actions: Vec<(Action, Tolerate)> = consultation
                .transferees()
                .iter()
                .filter_map(|t| self.tracker.channel(t))
                .map(|t| (hangup(&t.snapshot.name, next_id()), Tolerate::Nothing))
                .collect();
            if actions.is_empty() {
                return Err(TapiError::new(
                    ErrorKind::InvalidCallState,
                    "the held party of this consultation is already gone",
                ));
            }
            return Ok(Plan::Batch(actions));
        }
        let channel = self.channel_name(call)?;
        Ok(Plan::Single(hangup(&channel, next_id())))
    }

    /// Starts a consultation with Asterisk's attended transfer of the line's channel.
    fn consult(
        &self,
        request: &ProviderRequest,
        call: &CallRef,
        to: &str,
        id: String,
    ) -> Result<Plan, TapiError> {
        let channel = self.tracker.channel(&call.0).ok_or_else(|| no_call(call))?;
        let device = channel.device.as_ref().ok_or_else(|| no_call(call))?;
        let to = dialable(to)?;
        if to == self.device(device)?.address {
            return Err(TapiError::new(
                ErrorKind::TargetSelf,
                "a line cannot consult itself",
            ));
        }
        if self.tracker.bridge_mates(&call.0).is_empty() {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                "only a call talking to another party can be put on hold for a consultation",
            ));
        }
        let action = Action::new("Atxfer", &id)
            .with("Channel", &channel.snapshot.name)
            .with("Exten", to)
            .with("Context", &self.config.context);
        let pending = PendingConsult {
            request: request.id,
            action_id: id,
            transferer: call.0.clone(),
            to: to.to_string(),
        };
        Ok(Plan::Consult(action, pending))
    }

    /// Completes a consultation: the transferer's channel hangs up, which Asterisk takes as
    /// the transfer's completion (even while the target still rings).
    fn complete_transfer(
        &self,
        held: &CallRef,
        consult: &CallRef,
        id: String,
    ) -> Result<Plan, TapiError> {
        let consultation = self
            .tracker
            .consultation(&held.0)
            .filter(|c| c.call == consult.0)
            .ok_or_else(|| {
                TapiError::new(
                    ErrorKind::InvalidConsultCall,
                    format!("{} is not the consultation of {}", consult.0, held.0),
                )
            })?;
        if !consultation.is_active() {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                "the consultation has ended; there is nothing to complete",
            ));
        }
        let channel = self.channel_name(held)?;
        Ok(Plan::Single(
            Action::new("Hangup", &id)
                .with("Channel", channel)
                .with("Cause", "16"),
        ))
    }

    fn channel_name(&self, call: &CallRef) -> Result<String, TapiError> {
        self.tracker
            .channel(&call.0)
            .map(|c| c.snapshot.name.clone())
            .ok_or_else(|| no_call(call))
    }

    fn make_call(
        &self,
        request: &ProviderRequest,
        device: &DeviceKey,
        to: &str,
        reason: CallReason,
        id: String,
    ) -> Result<Plan, TapiError> {
        let line = self.device(device)?;
        let to = dialable(to)?;
        if to == line.address {
            return Err(TapiError::new(
                ErrorKind::TargetSelf,
                "a line cannot call itself",
            ));
        }
        let caller_id = format!("\"{}\" <{}>", line.name.replace('"', ""), line.address);
        let action = self
            .originate_base(device, &id, &caller_id)
            .with("Context", &self.config.context)
            .with("Exten", to)
            .with("Priority", "1");
        let pending = PendingOriginate {
            request: request.id,
            device: device.clone(),
            action_id: id,
            to: to.to_string(),
            reason,
        };
        Ok(Plan::Originate(action, pending))
    }

    /// An Originate of the line's phone with the settings common to made calls and pickups.
    fn originate_base(&self, device: &DeviceKey, id: &str, caller_id: &str) -> Action {
        let mut action = Action::new("Originate", id)
            .with("Channel", self.tracker.lines().dial_string(device))
            .with("CallerID", caller_id)
            .with("Timeout", self.config.originate_timeout_ms.to_string())
            .with("Async", "true");
        if let Some(variable) = self
            .config
            .auto_answer_header
            .as_ref()
            .and_then(|header| self.config.endpoint_technology.header_variable(header))
        {
            action = action.with("Variable", variable);
        }
        action
    }

    /// Deflects a ringing call: the party calling it is sent to `to`, which ends the ringing.
    fn redirect(&self, call: &CallRef, to: &str, id: String) -> Result<Plan, TapiError> {
        self.tracker.channel(&call.0).ok_or_else(|| no_call(call))?;
        let to = dialable(to)?;
        let peer = self.tracker.peer(&call.0).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidCallState,
                "the call has no other party to redirect",
            )
        })?;
        Ok(Plan::Single(
            Action::new("Redirect", &id)
                .with("Channel", &peer.snapshot.name)
                .with("Context", &self.config.context)
                .with("Exten", to)
                .with("Priority", "1"),
        ))
    }

    /// Parks the line's far end in the default lot; the line's own channel is where a park
    /// that times out rings back (`TimeoutChannel`). Asterisk's Park action picks the space
    /// itself, so a directed park cannot be honoured.
    fn park(
        &self,
        request: &ProviderRequest,
        call: &CallRef,
        to: Option<&str>,
        id: String,
    ) -> Result<Plan, TapiError> {
        let own = self.channel_name(call)?;
        if let Some(place) = to {
            return Err(unavailable(&format!(
                "Asterisk chooses the parking space itself; park without a place (not {place})"
            )));
        }
        let peer = self.tracker.peer(&call.0).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidCallState,
                "the call has no other party to park",
            )
        })?;
        let action = Action::new("Park", &id)
            .with("Channel", &peer.snapshot.name)
            .with("TimeoutChannel", own);
        let pending = PendingPark {
            request: request.id,
            action_id: id,
            parkee: peer.snapshot.uniqueid.clone(),
        };
        Ok(Plan::Park(action, pending))
    }

    /// Picks up a ringing call onto `device` by originating the phone into `PickupChan`.
    fn pickup(
        &self,
        request: &ProviderRequest,
        device: &DeviceKey,
        from: &PickupFrom,
        next_id: &mut impl FnMut() -> String,
    ) -> Result<Plan, TapiError> {
        let line = self.device(device)?;
        let target = match from {
            PickupFrom::Call(call) => self.channel_name(call)?,
            PickupFrom::Device(other) => {
                let ringing = self.tracker.ringing_on(other);
                let first = ringing.first().ok_or_else(|| {
                    TapiError::new(
                        ErrorKind::TargetNotFound,
                        format!("nothing rings at {}", other.0),
                    )
                })?;
                first.snapshot.name.clone()
            }
        };
        let id = next_id();
        let caller_id = format!("\"{}\" <{}>", line.name.replace('"', ""), line.address);
        let action = self
            .originate_base(device, &id, &caller_id)
            .with("Application", "PickupChan")
            .with("Data", target.clone());
        let pending = PendingOriginate {
            request: request.id,
            device: device.clone(),
            action_id: id,
            to: target,
            reason: CallReason::Pickup,
        };
        Ok(Plan::Originate(action, pending))
    }

    /// Answer and hold through the phone: a SIP NOTIFY the phone turns into a key press.
    fn phone_event(&self, call: &CallRef, event: &str, id: String) -> Result<Plan, TapiError> {
        let notify = match self.config.phone_control {
            PhoneControl::None => {
                return Err(unavailable(
                    "answer and hold need phone_control; AMI cannot operate a phone",
                ));
            }
            PhoneControl::PjsipNotify => "PJSIPNotify",
            PhoneControl::SipNotify => "SIPnotify",
        };
        let channel = self.tracker.channel(&call.0).ok_or_else(|| no_call(call))?;
        let device = channel.device.as_ref().ok_or_else(|| no_call(call))?;
        let action = Action::new(notify, &id);
        let action = if self.config.phone_control == PhoneControl::SipNotify {
            action.with("Channel", self.tracker.lines().dial_string(device))
        } else {
            action.with("Endpoint", &device.0)
        };
        Ok(Plan::Single(
            action.with("Variable", format!("Event={event}")),
        ))
    }

    fn extension(&self, device: &DeviceKey) -> Result<String, TapiError> {
        if self.config.feature_store == FeatureStore::None {
            return Err(unavailable("no feature_store is configured"));
        }
        Ok(self.device(device)?.address.clone())
    }

    fn forwards(
        &self,
        device: &DeviceKey,
        forwards: &[Forward],
        next_id: &mut impl FnMut() -> String,
    ) -> Result<Plan, TapiError> {
        let extension = self.extension(device)?;
        let mut actions = Vec::new();
        for mode in ForwardMode::ALL {
            let family = forward_family(*mode);
            match forwards.iter().find(|f| f.mode == *mode) {
                Some(forward) => {
                    let to = dialable(&forward.destination)?;
                    actions.push((
                        db_put(&next_id(), family, &extension, to),
                        Tolerate::Nothing,
                    ));
                }
                None => actions.push((
                    db_del(&next_id(), family, &extension),
                    Tolerate::MissingEntry,
                )),
            }
        }
        Ok(Plan::Batch(actions))
    }

    fn dnd(&self, device: &DeviceKey, enabled: bool, id: String) -> Result<Plan, TapiError> {
        let extension = self.extension(device)?;
        Ok(if enabled {
            Plan::Single(db_put(&id, DND_FAMILY, &extension, "YES"))
        } else {
            Plan::Batch(vec![(
                db_del(&id, DND_FAMILY, &extension),
                Tolerate::MissingEntry,
            )])
        })
    }
}

/// FreePBX's AstDB family for do-not-disturb.
pub const DND_FAMILY: &str = "DND";

/// FreePBX's AstDB family for each forwarding mode.
pub fn forward_family(mode: ForwardMode) -> &'static str {
    match mode {
        ForwardMode::Unconditional => "CF",
        ForwardMode::Busy => "CFB",
        ForwardMode::NoAnswer => "CFU",
    }
}

fn db_put(id: &str, family: &str, key: &str, value: &str) -> Action {
    Action::new("DBPut", id)
        .with("Family", family)
        .with("Key", key)
        .with("Val", value)
}

fn db_del(id: &str, family: &str, key: &str) -> Action {
    Action::new("DBDel", id)
        .with("Family", family)
        .with("Key", key)
}

/// A number fit for the dialplan: no spaces, line breaks or other control characters.
fn dialable(to: &str) -> Result<&str, TapiError> {
    let to = to.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "*#+-_.@".contains(c);
    if to.is_empty() || !to.chars().all(allowed) || !is_header_safe(to) {
        return Err(TapiError::new(
            ErrorKind::InvalidAddress,
            format!("`{to}` cannot be dialled"),
        ));
    }
    Ok(to)
}

fn no_call(call: &CallRef) -> TapiError {
    TapiError::new(
        ErrorKind::InvalidCall,
        format!("no channel {} on this Asterisk", call.0),
    )
}

fn unavailable(why: &str) -> TapiError {
    TapiError::new(ErrorKind::OperationUnavailable, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_and_hold_are_offered_only_with_phone_control() {
        let mut config = AmiConfig::new("pbx", "u", "s");
        let caps = capabilities(&config);
        assert!(!caps.contains(Capabilities::ANSWER));
        assert!(!caps.contains(Capabilities::HOLD));
        assert!(caps.contains(Capabilities::CONSULT_TRANSFER));
        assert!(!caps.contains(Capabilities::CONFERENCE));
        assert!(caps.contains(Capabilities::MAKE_CALL | Capabilities::FORWARD));
        config.phone_control = PhoneControl::PjsipNotify;
        assert!(capabilities(&config).contains(Capabilities::ANSWER | Capabilities::HOLD));
        config.feature_store = FeatureStore::None;
        assert!(!capabilities(&config).contains(Capabilities::DO_NOT_DISTURB));
    }

    #[test]
    fn header_injection_is_refused() {
        assert!(dialable("203").is_ok());
        assert!(dialable("+49 30 1234").is_err());
        assert!(dialable("203\r\nAction: Logoff").is_err());
        assert_eq!(
            dialable("").map_err(|e| e.kind),
            Err(ErrorKind::InvalidAddress)
        );
    }
}
