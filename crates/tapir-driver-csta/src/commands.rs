//! tapir's commands as CSTA requests, CSTA errors as TAPI errors, and the capabilities.

use tapir_model::{Capabilities, ErrorKind, ForwardMode, TapiError};
use tapir_provider::{CallRef, PickupFrom, ProviderCommand};

use crate::mapping::Mapping;
use crate::message::{ConnectionId, CstaError, ForwardingType, Request};

/// The requests for one command, and the device whose new call it creates (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub requests: Vec<Request>,
    pub creates_on: Option<String>,
}

pub fn capabilities() -> Capabilities {
    Capabilities::MAKE_CALL
        | Capabilities::ANSWER
        | Capabilities::DROP
        | Capabilities::HOLD
        | Capabilities::SWAP
        | Capabilities::BLIND_TRANSFER
        | Capabilities::CONSULT_TRANSFER
        | Capabilities::CONFERENCE
        | Capabilities::REDIRECT
        | Capabilities::PICKUP
        | Capabilities::FORWARD
        | Capabilities::DO_NOT_DISTURB
        | Capabilities::GENERATE_DIGITS
}

fn connection(mapping: &Mapping, call: &CallRef) -> Result<ConnectionId, TapiError> {
    mapping
        .connection(call)
        .cloned()
        .ok_or_else(|| TapiError::new(ErrorKind::InvalidCall, format!("no call {}", call.0)))
}

fn device_of(mapping: &Mapping, call: &CallRef) -> Result<String, TapiError> {
    mapping
        .device_of(call)
        .map(|d| d.0.clone())
        .ok_or_else(|| TapiError::new(ErrorKind::InvalidCall, format!("no call {}", call.0)))
}

fn one(request: Request) -> Plan {
    Plan {
        requests: vec![request],
        creates_on: None,
    }
}

/// The requests that carry out `command`.
pub fn plan(command: &ProviderCommand, mapping: &Mapping) -> Result<Plan, TapiError> {
    let conn = |call| connection(mapping, call);
    Ok(match command {
        ProviderCommand::MakeCall { device, to } => Plan {
            requests: vec![Request::MakeCall {
                from: device.0.clone(),
                to: to.clone(),
            }],
            creates_on: Some(device.0.clone()),
        },
        ProviderCommand::Answer { call } => one(Request::AnswerCall { call: conn(call)? }),
        ProviderCommand::Drop { call } => one(Request::ClearConnection { call: conn(call)? }),
        ProviderCommand::Hold { call } => one(Request::HoldCall { call: conn(call)? }),
        ProviderCommand::Unhold { call } => one(Request::RetrieveCall { call: conn(call)? }),
        ProviderCommand::Swap { active, held } => one(Request::AlternateCall {
            held: conn(held)?,
            active: conn(active)?,
        }),
        ProviderCommand::BlindTransfer { call, to } => one(Request::SingleStepTransferCall {
            call: conn(call)?,
            to: to.clone(),
        }),
        ProviderCommand::Consult { call, to } => Plan {
            requests: vec![Request::ConsultationCall {
                existing: conn(call)?,
                to: to.clone(),
            }],
            creates_on: Some(device_of(mapping, call)?),
        },
        ProviderCommand::CompleteTransfer { held, consult } => one(Request::TransferCall {
            held: conn(held)?,
            active: conn(consult)?,
        }),
        ProviderCommand::Conference { held, consult } => one(Request::ConferenceCall {
            held: conn(held)?,
            active: conn(consult)?,
        }),
        ProviderCommand::Redirect { call, to } => one(Request::DeflectCall {
            call: conn(call)?,
            to: to.clone(),
        }),
        ProviderCommand::GenerateDigits { call, digits } => one(Request::GenerateDigits {
            call: conn(call)?,
            digits: digits.clone(),
        }),
        ProviderCommand::Pickup { device, from } => {
            let target = match from {
                PickupFrom::Call(call) => call.clone(),
                PickupFrom::Device(other) => mapping.alerting_at(&other.0).ok_or_else(|| {
                    TapiError::new(
                        ErrorKind::TargetNotFound,
                        format!("nothing rings at {}", other.0),
                    )
                })?,
            };
            Plan {
                requests: vec![Request::DirectedPickupCall {
                    call: conn(&target)?,
                    device: device.0.clone(),
                }],
                creates_on: Some(device.0.clone()),
            }
        }
        ProviderCommand::SetForwards { device, forwards } => {
            // CSTA sets one rule per request; every mode is written so the set is replaced.
            let requests = [
                (ForwardMode::Unconditional, ForwardingType::Immediate),
                (ForwardMode::Busy, ForwardingType::Busy),
                (ForwardMode::NoAnswer, ForwardingType::NoAnswer),
            ]
            .into_iter()
            .map(|(mode, kind)| {
                let to = forwards
                    .iter()
                    .find(|f| f.mode == mode)
                    .map(|f| f.destination.clone());
                Request::SetForwarding {
                    device: device.0.clone(),
                    kind,
                    on: to.is_some(),
                    to,
                }
            })
            .collect();
            Plan {
                requests,
                creates_on: None,
            }
        }
        ProviderCommand::SetDoNotDisturb { device, enabled } => one(Request::SetDoNotDisturb {
            device: device.0.clone(),
            on: *enabled,
        }),
        ProviderCommand::Accept { .. } => {
            return Err(TapiError::new(
                ErrorKind::OperationUnavailable,
                "CSTA has no accept without answering; answer the call instead",
            ));
        }
        ProviderCommand::Simulate { .. } | ProviderCommand::SimulatePbx(_) => {
            return Err(TapiError::new(
                ErrorKind::OperationUnavailable,
                "a CSTA switch cannot simulate phones",
            ));
        }
        ProviderCommand::Park { .. } | ProviderCommand::Unpark { .. } => {
            return Err(TapiError::new(
                ErrorKind::OperationUnavailable,
                "the CSTA provider does not park calls yet",
            ));
        }
    })
}

/// A `CSTAErrorCode` in TAPI's terms (csta-xml.md §4.5).
pub fn tapi_error(error: &CstaError) -> TapiError {
    let kind = match (error.category.as_str(), error.value.as_str()) {
        (_, "invalidDeviceID" | "invalidCalledDeviceID" | "invalidForwardingDestination") => {
            ErrorKind::InvalidAddress
        }
        (_, "invalidCallID" | "invalidConnectionID") => ErrorKind::InvalidCall,
        ("stateIncompatibility", _) => ErrorKind::InvalidCallState,
        (_, "serviceNotSupported" | "requestIncompatibleWithObject") => {
            ErrorKind::OperationUnavailable
        }
        (_, "privilegeViolationSpecifiedDevice" | "privilegeViolationRequestingDevice") => {
            ErrorKind::NotOwner
        }
        ("systemResourceAvailibility" | "systemResourceAvailability", _)
        | ("subscribedResourceAvailability" | "performanceManagement", _) => {
            ErrorKind::ResourceUnavailable
        }
        (_, "invalidParameterValue" | "valueOutOfRange") => ErrorKind::InvalidParam,
        _ => ErrorKind::OperationFailed,
    };
    TapiError::new(
        kind,
        format!("the switch answered {} {}", error.category, error.value),
    )
}
