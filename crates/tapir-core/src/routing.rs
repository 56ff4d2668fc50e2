//! Checks a client command against the model and turns it into a provider command.
//!
//! A command that the model already knows to be impossible (unknown line, wrong call state,
//! a feature the driver lacks) is refused here with a precise error and never reaches the PBX.

use tapir_model::{
    Call, CallFeatures, CallId, CallState, Capabilities, Command, ErrorKind, Forward, InstanceId,
    LineId, LineStatus, PickupTarget, TapiError,
};
use tapir_provider::{CallRef, DeviceKey, PickupFrom, ProviderCommand};

use crate::tables::Tables;

/// What routing needs to know about an instance.
pub(crate) trait InstanceLookup {
    /// The capabilities of an instance whose PBX link is up, or why it cannot take commands.
    fn ready(&self, instance: InstanceId) -> Result<Capabilities, TapiError>;

    /// The instance with this name.
    fn by_name(&self, name: &str) -> Option<InstanceId>;

    /// A client's number as the instance's PBX must receive it.
    fn dialable(&self, instance: InstanceId, number: &str) -> Result<String, TapiError>;
}

/// The provider command for `command`, and the instance that must carry it out.
pub(crate) fn route(
    tables: &Tables,
    instances: &impl InstanceLookup,
    command: &Command,
) -> Result<(InstanceId, ProviderCommand), TapiError> {
    let r = Router { tables, instances };
    match command {
        Command::MakeCall { line, to } => {
            let (instance, device) = r.line(*line, Capabilities::MAKE_CALL, "making calls")?;
            Ok((
                instance,
                ProviderCommand::MakeCall {
                    device,
                    to: instances.dialable(instance, to)?,
                },
            ))
        }
        Command::Accept { call } => r.on_call(*call, CallFeatures::ACCEPT, |call| {
            ProviderCommand::Accept { call }
        }),
        Command::Answer { call } => r.on_call(*call, CallFeatures::ANSWER, |call| {
            ProviderCommand::Answer { call }
        }),
        Command::Drop { call } => r.on_call(*call, CallFeatures::DROP, |call| {
            ProviderCommand::Drop { call }
        }),
        Command::Hold { call } => r.on_call(*call, CallFeatures::HOLD, |call| {
            ProviderCommand::Hold { call }
        }),
        Command::Unhold { call } => r.on_call(*call, CallFeatures::UNHOLD, |call| {
            ProviderCommand::Unhold { call }
        }),
        Command::BlindTransfer { call, to } => {
            r.dialling(*call, CallFeatures::BLIND_TRANSFER, to, |call, to| {
                ProviderCommand::BlindTransfer { call, to }
            })
        }
        Command::Consult { call, to } => {
            r.dialling(*call, CallFeatures::CONSULT, to, |call, to| {
                ProviderCommand::Consult { call, to }
            })
        }
        Command::Redirect { call, to } => {
            r.dialling(*call, CallFeatures::REDIRECT, to, |call, to| {
                ProviderCommand::Redirect { call, to }
            })
        }
        Command::GenerateDigits { call, digits } => {
            let digits = dtmf_digits(digits)?;
            r.on_call(*call, CallFeatures::GENERATE_DIGITS, |call| {
                ProviderCommand::GenerateDigits { call, digits }
            })
        }
        Command::Swap { call, with } => r.swap(*call, *with),
        Command::CompleteTransfer { call } => {
            r.consultation(*call, CallFeatures::COMPLETE_TRANSFER, |held, consult| {
                ProviderCommand::CompleteTransfer { held, consult }
            })
        }
        Command::Conference { call } => {
            r.consultation(*call, CallFeatures::CONFERENCE, |held, consult| {
                ProviderCommand::Conference { held, consult }
            })
        }
        Command::Pickup { line, target } => r.pickup(*line, target),
        Command::Park { call, to } => {
            let to = to.as_deref().map(park_place).transpose()?;
            r.on_call(*call, CallFeatures::PARK, |call| ProviderCommand::Park {
                call,
                to,
            })
        }
        Command::Unpark { line, from } => {
            let from = park_place(from)?;
            let (instance, device) = r.line(*line, Capabilities::PARK, "parking")?;
            Ok((instance, ProviderCommand::Unpark { device, from }))
        }
        Command::SetForwards { line, forwards } => {
            let (instance, device) = r.line(*line, Capabilities::FORWARD, "call forwarding")?;
            let forwards = forwards
                .iter()
                .map(|f| {
                    let destination = instances.dialable(instance, &f.destination)?;
                    Ok(Forward {
                        mode: f.mode,
                        destination,
                    })
                })
                .collect::<Result<_, TapiError>>()?;
            Ok((instance, ProviderCommand::SetForwards { device, forwards }))
        }
        Command::SetDoNotDisturb { line, enabled } => {
            let (instance, device) =
                r.line(*line, Capabilities::DO_NOT_DISTURB, "do-not-disturb")?;
            Ok((
                instance,
                ProviderCommand::SetDoNotDisturb {
                    device,
                    enabled: *enabled,
                },
            ))
        }
        Command::SimulatePbx { instance, action } => {
            let id = instances.by_name(instance).ok_or_else(|| {
                TapiError::new(
                    ErrorKind::InvalidParam,
                    format!("no instance named {instance:?}"),
                )
            })?;
            if !instances.ready(id)?.contains(Capabilities::SIMULATE) {
                return Err(TapiError::new(
                    ErrorKind::OperationUnavailable,
                    format!("instance {instance} is not a simulated PBX"),
                ));
            }
            Ok((id, ProviderCommand::SimulatePbx(action.clone())))
        }
        Command::Simulate { line, action } => {
            let (instance, device) =
                r.line(*line, Capabilities::SIMULATE, "simulated handset actions")?;
            Ok((
                instance,
                ProviderCommand::Simulate {
                    device,
                    action: action.clone(),
                },
            ))
        }
    }
}

/// The longest park place accepted.
const MAX_PARK_PLACE: usize = 32;

/// A park place (slot or orbit number) as the PBX knows it: `0-9 * #`, never rewritten by
/// the instance's dialling rules, since it is a PBX-internal address.
fn park_place(place: &str) -> Result<String, TapiError> {
    let place = place.trim();
    if place.is_empty() {
        return Err(TapiError::new(
            ErrorKind::InvalidAddress,
            "no park place given",
        ));
    }
    if place.len() > MAX_PARK_PLACE {
        return Err(TapiError::new(
            ErrorKind::InvalidAddress,
            format!("a park place has at most {MAX_PARK_PLACE} characters"),
        ));
    }
    if let Some((position, other)) = place
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '*' || *c == '#'))
    {
        return Err(TapiError::new(
            ErrorKind::InvalidAddress,
            format!(
                "{other:?} at position {} cannot be in a park place (0-9 * #)",
                position + 1
            ),
        ));
    }
    Ok(place.to_owned())
}

/// DTMF digits as a PBX sends them: `0-9 * # A-D`, spaces ignored.
fn dtmf_digits(digits: &str) -> Result<String, TapiError> {
    let mut clean = String::new();
    for (position, c) in digits.chars().enumerate() {
        match c.to_ascii_uppercase() {
            ' ' => {}
            d @ ('0'..='9' | '*' | '#' | 'A'..='D') => clean.push(d),
            other => {
                return Err(TapiError::new(
                    ErrorKind::InvalidParam,
                    format!(
                        "{other:?} at position {} is not a DTMF digit (0-9 * # A-D)",
                        position + 1
                    ),
                ));
            }
        }
    }
    if clean.is_empty() {
        return Err(TapiError::new(ErrorKind::InvalidParam, "no digits to send"));
    }
    Ok(clean)
}

struct Router<'a, I> {
    tables: &'a Tables,
    instances: &'a I,
}

impl<I: InstanceLookup> Router<'_, I> {
    fn line(
        &self,
        line: LineId,
        needed: Capabilities,
        what: &str,
    ) -> Result<(InstanceId, DeviceKey), TapiError> {
        let (instance, device) = self
            .tables
            .device_of(line)
            .ok_or_else(|| TapiError::new(ErrorKind::InvalidLine, format!("no line {line}")))?;
        let status = self.tables.line(line).map(|l| l.line.status);
        if status == Some(LineStatus::Defunct) {
            return Err(TapiError::new(
                ErrorKind::InvalidLineState,
                format!("line {line} is defunct: its device is no longer on the PBX"),
            ));
        }
        let capabilities = self.instances.ready(instance)?;
        if status == Some(LineStatus::OutOfService) {
            return Err(TapiError::new(
                ErrorKind::InvalidLineState,
                format!("line {line} is out of service"),
            ));
        }
        if !capabilities.contains(needed) {
            return Err(TapiError::new(
                ErrorKind::OperationUnavailable,
                format!("the PBX of line {line} does not support {what}"),
            ));
        }
        Ok((instance, device.clone()))
    }

    fn call(&self, id: CallId) -> Result<(Call, CallFeatures, InstanceId, CallRef), TapiError> {
        let snapshot = self
            .tables
            .call(id)
            .ok_or_else(|| TapiError::new(ErrorKind::InvalidCall, format!("no call {id}")))?;
        let (instance, call_ref) = self
            .tables
            .call_ref_of(id)
            .ok_or_else(|| TapiError::new(ErrorKind::InvalidCall, format!("no call {id}")))?;
        Ok((snapshot.call, snapshot.features, instance, call_ref.clone()))
    }

    /// Checks that `call` offers `feature` now, explaining why not otherwise.
    fn require(
        &self,
        call: &Call,
        features: CallFeatures,
        instance: InstanceId,
        feature: CallFeatures,
    ) -> Result<(), TapiError> {
        let capabilities = self.instances.ready(instance)?;
        if features.contains(feature) {
            return Ok(());
        }
        let action = feature.names().first().copied().unwrap_or("this action");
        let all =
            tapir_model::call_features(call, self.tables.line_mates(call), Capabilities::all());
        if all.contains(feature) && !capabilities.allowed_features().contains(feature) {
            return Err(TapiError::new(
                ErrorKind::OperationUnavailable,
                format!("the PBX of call {} does not support {action}", call.id),
            ));
        }
        let possible = features.names();
        let hint = if possible.is_empty() {
            "nothing is possible in this state".to_owned()
        } else {
            format!("possible now: {}", possible.join(", "))
        };
        Err(TapiError::new(
            ErrorKind::InvalidCallState,
            format!(
                "cannot {action} call {} while it is {}; {hint}",
                call.id,
                call.state.name()
            ),
        ))
    }

    fn on_call(
        &self,
        id: CallId,
        feature: CallFeatures,
        build: impl FnOnce(CallRef) -> ProviderCommand,
    ) -> Result<(InstanceId, ProviderCommand), TapiError> {
        let (call, features, instance, call_ref) = self.call(id)?;
        self.require(&call, features, instance, feature)?;
        Ok((instance, build(call_ref)))
    }

    /// A call action that dials: the call must offer `feature`, and the number must be
    /// dialable on the call's PBX.
    fn dialling(
        &self,
        id: CallId,
        feature: CallFeatures,
        to: &str,
        build: impl FnOnce(CallRef, String) -> ProviderCommand,
    ) -> Result<(InstanceId, ProviderCommand), TapiError> {
        let (call, features, instance, call_ref) = self.call(id)?;
        self.require(&call, features, instance, feature)?;
        let to = self.instances.dialable(instance, to)?;
        Ok((instance, build(call_ref, to)))
    }

    fn swap(
        &self,
        id: CallId,
        with: Option<CallId>,
    ) -> Result<(InstanceId, ProviderCommand), TapiError> {
        let (call, features, instance, call_ref) = self.call(id)?;
        self.require(&call, features, instance, CallFeatures::SWAP)?;
        let wants_held = !call.state.is_held();
        let mates = self.tables.line_mates(&call);
        let partner = match with {
            Some(with) => mates.into_iter().find(|c| c.id == with).ok_or_else(|| {
                TapiError::new(
                    ErrorKind::InvalidCall,
                    format!("call {with} is not on the line of call {id}"),
                )
            })?,
            None => {
                let mut candidates = mates.into_iter().filter(|c| {
                    if wants_held {
                        c.state == CallState::OnHold
                    } else {
                        c.state.is_active()
                    }
                });
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => only,
                    (None, _) => {
                        return Err(TapiError::new(
                            ErrorKind::InvalidCallState,
                            format!("no call to swap call {id} with"),
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(TapiError::new(
                            ErrorKind::InvalidParam,
                            format!("more than one call to swap call {id} with; name one"),
                        ));
                    }
                }
            }
        };
        if partner.state.is_held() == call.state.is_held() {
            return Err(TapiError::new(
                ErrorKind::InvalidCallState,
                format!(
                    "swap needs one held and one active call; calls {id} and {} are both {}",
                    partner.id,
                    call.state.name()
                ),
            ));
        }
        let partner_ref = self.call(partner.id)?.3;
        let (active, held) = if wants_held {
            (call_ref, partner_ref)
        } else {
            (partner_ref, call_ref)
        };
        Ok((instance, ProviderCommand::Swap { active, held }))
    }

    /// A transfer or conference completion, named by either half of the consultation.
    fn consultation(
        &self,
        id: CallId,
        feature: CallFeatures,
        build: impl FnOnce(CallRef, CallRef) -> ProviderCommand,
    ) -> Result<(InstanceId, ProviderCommand), TapiError> {
        let (call, features, instance, call_ref) = self.call(id)?;
        self.require(&call, features, instance, feature)?;
        let partner = call.info.related.ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidConsultCall,
                format!("call {id} has no consultation"),
            )
        })?;
        let partner_ref = self.call(partner)?.3;
        let (held, consult) = if call.state == CallState::OnHoldPendTransfer {
            (call_ref, partner_ref)
        } else {
            (partner_ref, call_ref)
        };
        Ok((instance, build(held, consult)))
    }

    fn pickup(
        &self,
        line: LineId,
        target: &PickupTarget,
    ) -> Result<(InstanceId, ProviderCommand), TapiError> {
        let (instance, device) = self.line(line, Capabilities::PICKUP, "call pickup")?;
        let from = match target {
            PickupTarget::Call(id) => {
                let (call, _, call_instance, call_ref) = self.call(*id)?;
                if call_instance != instance {
                    return Err(TapiError::new(
                        ErrorKind::OperationUnavailable,
                        format!("call {id} is on another PBX than line {line}"),
                    ));
                }
                if !call.state.is_alerting() {
                    return Err(TapiError::new(
                        ErrorKind::InvalidCallState,
                        format!(
                            "call {id} is {}, only a ringing call can be picked up",
                            call.state.name()
                        ),
                    ));
                }
                PickupFrom::Call(call_ref)
            }
            PickupTarget::Line(target) => {
                let (target_instance, key) = self.tables.device_of(*target).ok_or_else(|| {
                    TapiError::new(ErrorKind::InvalidLine, format!("no line {target}"))
                })?;
                if target_instance != instance {
                    return Err(TapiError::new(
                        ErrorKind::OperationUnavailable,
                        format!("line {target} is on another PBX than line {line}"),
                    ));
                }
                PickupFrom::Device(key.clone())
            }
        };
        Ok((instance, ProviderCommand::Pickup { device, from }))
    }
}
