//! The commands clients send, in one shape for the WebSocket and the REST bodies, and their
//! conversion into the model.

use serde::{Deserialize, Serialize};
use tapir_model::{
    CallId, Command, ErrorKind, Forward, ForwardMode, LineId, PbxSimAction, PickupTarget,
    SimAction, TapiError,
};
use utoipa::ToSchema;

/// One forwarding rule of a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardDto {
    /// `unconditional`, `busy` or `no_answer`.
    pub mode: String,
    pub destination: String,
}

impl From<&Forward> for ForwardDto {
    fn from(f: &Forward) -> ForwardDto {
        ForwardDto {
            mode: f.mode.as_str().into(),
            destination: f.destination.clone(),
        }
    }
}

impl ForwardDto {
    pub fn to_model(&self) -> Result<Forward, TapiError> {
        let mode = ForwardMode::from_name(&self.mode).ok_or_else(|| {
            TapiError::new(
                ErrorKind::InvalidParam,
                format!(
                    "unknown forward mode {:?}; use unconditional, busy or no_answer",
                    self.mode
                ),
            )
        })?;
        Ok(Forward {
            mode,
            destination: self.destination.clone(),
        })
    }
}

/// What a person at a phone, or the outside world, does (simulated PBX only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimActionDto {
    /// Lift the handset: answers a ringing call, or gets dial tone.
    OffHook {},
    /// Put the handset down.
    OnHook {},
    /// Dial digits on the handset.
    Dial { digits: String },
    /// Press the hold key.
    Hold {},
    /// An outside caller calls the line.
    Incoming {
        from: String,
        #[serde(default)]
        name: Option<String>,
    },
    /// The far end of the line's call hangs up.
    RemoteHangup {},
}

/// A command, named by its `command` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandDto {
    MakeCall {
        line: u32,
        to: String,
    },
    Accept {
        call: u64,
    },
    Answer {
        call: u64,
    },
    Drop {
        call: u64,
    },
    Hold {
        call: u64,
    },
    Unhold {
        call: u64,
    },
    /// Swap the active call and a held one on the same line.
    Swap {
        call: u64,
        #[serde(default)]
        with: Option<u64>,
    },
    /// Blind transfer.
    Transfer {
        call: u64,
        to: String,
    },
    /// Hold the call for transfer and dial a consultation call.
    Consult {
        call: u64,
        to: String,
    },
    /// Complete a consultation transfer (name either call).
    CompleteTransfer {
        call: u64,
    },
    /// Join a consultation into a three-party conference (name either call).
    Conference {
        call: u64,
    },
    Redirect {
        call: u64,
        to: String,
    },
    /// Send DTMF tones on a connected call.
    GenerateDigits {
        call: u64,
        digits: String,
    },
    /// Pick up onto `line` either the ringing `call` or whatever rings at `from_line`.
    Pickup {
        line: u32,
        #[serde(default)]
        call: Option<u64>,
        #[serde(default)]
        from_line: Option<u32>,
    },
    /// Park a connected call at `to`, or where the PBX chooses (the result says where).
    Park {
        call: u64,
        #[serde(default)]
        to: Option<String>,
    },
    /// Take the call parked at `from` onto `line`.
    Unpark {
        line: u32,
        from: String,
    },
    SetForwards {
        line: u32,
        forwards: Vec<ForwardDto>,
    },
    SetDnd {
        line: u32,
        enabled: bool,
    },
    /// Simulated PBX: lift the handset of `line` (answers a ringing call or gets dial tone).
    SimOffHook {
        line: u32,
    },
    /// Simulated PBX: put the handset of `line` down.
    SimOnHook {
        line: u32,
    },
    /// Simulated PBX: dial digits on the handset of `line`.
    SimDial {
        line: u32,
        digits: String,
    },
    /// Simulated PBX: press the hold key of `line`.
    SimHold {
        line: u32,
    },
    /// Simulated PBX: an outside caller calls `line`.
    SimIncoming {
        line: u32,
        from: String,
        #[serde(default)]
        name: Option<String>,
    },
    /// Simulated PBX: the far end of the call on `line` hangs up.
    SimRemoteHangup {
        line: u32,
    },
    /// Simulated PBX: a new extension appears on `instance`.
    SimAddExtension {
        instance: String,
        number: String,
        #[serde(default)]
        name: Option<String>,
    },
    /// Simulated PBX: an extension disappears from `instance`.
    SimRemoveExtension {
        instance: String,
        number: String,
    },
}

/// What the administrator of a simulated PBX does to it as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PbxSimActionDto {
    AddExtension {
        number: String,
        #[serde(default)]
        name: Option<String>,
    },
    RemoveExtension {
        number: String,
    },
}

fn sim(line: u32, action: SimAction) -> Command {
    Command::Simulate {
        line: LineId(line),
        action,
    }
}

impl CommandDto {
    /// The same command as a simulated handset action on `line`.
    pub fn sim(line: u32, action: SimActionDto) -> CommandDto {
        match action {
            SimActionDto::OffHook {} => CommandDto::SimOffHook { line },
            SimActionDto::OnHook {} => CommandDto::SimOnHook { line },
            SimActionDto::Dial { digits } => CommandDto::SimDial { line, digits },
            SimActionDto::Hold {} => CommandDto::SimHold { line },
            SimActionDto::Incoming { from, name } => CommandDto::SimIncoming { line, from, name },
            SimActionDto::RemoteHangup {} => CommandDto::SimRemoteHangup { line },
        }
    }

    /// The same command as a change to the simulated PBX `instance`.
    pub fn sim_pbx(instance: String, action: PbxSimActionDto) -> CommandDto {
        match action {
            PbxSimActionDto::AddExtension { number, name } => CommandDto::SimAddExtension {
                instance,
                number,
                name,
            },
            PbxSimActionDto::RemoveExtension { number } => {
                CommandDto::SimRemoveExtension { instance, number }
            }
        }
    }

    /// The model command, or why the request is malformed.
    pub fn into_model(self) -> Result<Command, TapiError> {
        let call = CallId;
        let line = LineId;
        Ok(match self {
            CommandDto::MakeCall { line: l, to } => Command::MakeCall { line: line(l), to },
            CommandDto::Accept { call: c } => Command::Accept { call: call(c) },
            CommandDto::Answer { call: c } => Command::Answer { call: call(c) },
            CommandDto::Drop { call: c } => Command::Drop { call: call(c) },
            CommandDto::Hold { call: c } => Command::Hold { call: call(c) },
            CommandDto::Unhold { call: c } => Command::Unhold { call: call(c) },
            CommandDto::Swap { call: c, with } => Command::Swap {
                call: call(c),
                with: with.map(call),
            },
            CommandDto::Transfer { call: c, to } => Command::BlindTransfer { call: call(c), to },
            CommandDto::Consult { call: c, to } => Command::Consult { call: call(c), to },
            CommandDto::CompleteTransfer { call: c } => Command::CompleteTransfer { call: call(c) },
            CommandDto::Conference { call: c } => Command::Conference { call: call(c) },
            CommandDto::Redirect { call: c, to } => Command::Redirect { call: call(c), to },
            CommandDto::GenerateDigits { call: c, digits } => Command::GenerateDigits {
                call: call(c),
                digits,
            },
            CommandDto::Pickup {
                line: l,
                call: c,
                from_line,
            } => {
                let target = match (c, from_line) {
                    (Some(c), None) => PickupTarget::Call(call(c)),
                    (None, Some(f)) => PickupTarget::Line(line(f)),
                    _ => {
                        return Err(TapiError::new(
                            ErrorKind::InvalidParam,
                            "pickup needs exactly one of `call` and `from_line`",
                        ));
                    }
                };
                Command::Pickup {
                    line: line(l),
                    target,
                }
            }
            CommandDto::Park { call: c, to } => Command::Park { call: call(c), to },
            CommandDto::Unpark { line: l, from } => Command::Unpark {
                line: line(l),
                from,
            },
            CommandDto::SetForwards { line: l, forwards } => Command::SetForwards {
                line: line(l),
                forwards: forwards
                    .iter()
                    .map(ForwardDto::to_model)
                    .collect::<Result<_, _>>()?,
            },
            CommandDto::SetDnd { line: l, enabled } => Command::SetDoNotDisturb {
                line: line(l),
                enabled,
            },
            CommandDto::SimOffHook { line: l } => sim(l, SimAction::OffHook),
            CommandDto::SimOnHook { line: l } => sim(l, SimAction::OnHook),
            CommandDto::SimDial { line: l, digits } => sim(l, SimAction::Dial(digits)),
            CommandDto::SimHold { line: l } => sim(l, SimAction::Hold),
            CommandDto::SimIncoming {
                line: l,
                from,
                name,
            } => sim(l, SimAction::IncomingCall { from, name }),
            CommandDto::SimRemoteHangup { line: l } => sim(l, SimAction::RemoteHangup),
            CommandDto::SimAddExtension {
                instance,
                number,
                name,
            } => Command::SimulatePbx {
                instance,
                action: PbxSimAction::AddExtension { number, name },
            },
            CommandDto::SimRemoveExtension { instance, number } => Command::SimulatePbx {
                instance,
                action: PbxSimAction::RemoveExtension { number },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<CommandDto, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn commands_parse_and_convert() {
        let c = parse(r#"{"command":"make_call","line":3,"to":"202"}"#).unwrap();
        assert_eq!(
            c.into_model().unwrap(),
            Command::MakeCall {
                line: LineId(3),
                to: "202".into()
            }
        );
        let c = parse(r#"{"command":"sim_dial","line":1,"digits":"202"}"#).unwrap();
        assert_eq!(
            c.into_model().unwrap(),
            Command::Simulate {
                line: LineId(1),
                action: SimAction::Dial("202".into())
            }
        );
        let c = parse(r#"{"command":"pickup","line":1,"from_line":2}"#).unwrap();
        assert_eq!(
            c.into_model().unwrap(),
            Command::Pickup {
                line: LineId(1),
                target: PickupTarget::Line(LineId(2))
            }
        );
    }

    #[test]
    fn sim_action_bodies_parse_strictly() {
        let a: SimActionDto =
            serde_json::from_str(r#"{"action":"incoming","from":"555"}"#).unwrap();
        assert_eq!(
            a,
            SimActionDto::Incoming {
                from: "555".into(),
                name: None
            }
        );
        let err = serde_json::from_str::<SimActionDto>(r#"{"action":"hold","x":1}"#).unwrap_err();
        assert!(err.to_string().contains('x'), "{err}");
    }

    #[test]
    fn malformed_commands_are_refused_with_reasons() {
        let err = parse(r#"{"command":"answer","call":1,"extra":true}"#).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
        let err = parse(r#"{"command":"teleport","call":1}"#).unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
        let pickup = parse(r#"{"command":"pickup","line":1}"#).unwrap();
        assert_eq!(
            pickup.into_model().unwrap_err().kind,
            ErrorKind::InvalidParam
        );
        let fwd = parse(
            r#"{"command":"set_forwards","line":1,"forwards":[{"mode":"sometimes","destination":"1"}]}"#,
        )
        .unwrap();
        let err = fwd.into_model().unwrap_err();
        assert!(err.message.contains("sometimes"));
    }
}
