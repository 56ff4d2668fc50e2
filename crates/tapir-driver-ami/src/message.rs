//! AMI messages: the raw [`Message`] (ordered headers), the [`Action`]s tapir sends, and the
//! typed [`AmiEvent`]s the mapping understands.
//!
//! Channel events carry a snapshot of one or more channels, each field name prefixed by the
//! channel's role (`DestChannel`, `TransfererUniqueid`, ...); [`ChannelSnapshot::read`] takes
//! the prefix. Asterisk writes `<unknown>` for an unknown caller id; it becomes `None`.

use bytes::{BufMut, BytesMut};
use tapir_model::Party;

/// One AMI message: its headers in order, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    headers: Vec<(String, String)>,
}

impl Message {
    pub fn new(headers: Vec<(String, String)>) -> Message {
        Message { headers }
    }

    /// The first value of `key`; AMI keys are case-insensitive.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or `""` when absent.
    pub fn text(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// The event name, when this is an event.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// The `Response` header (`Success`, `Error`, `Goodbye`...), when this is a response.
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// True for the event that closes a list action's items.
    pub fn is_list_end(&self) -> bool {
        self.get("EventList")
            .is_some_and(|v| v.eq_ignore_ascii_case("Complete"))
    }

    /// True for a response that announces list items to follow.
    pub fn starts_list(&self) -> bool {
        self.get("EventList")
            .is_some_and(|v| v.eq_ignore_ascii_case("start"))
    }
}

/// An action for Asterisk, with its correlation id.
#[derive(Clone, PartialEq, Eq)]
pub struct Action {
    headers: Vec<(String, String)>,
}

impl Action {
    /// An action named `name` carrying `ActionID: id`.
    pub fn new(name: &str, id: &str) -> Action {
        Action {
            headers: vec![
                ("Action".into(), name.into()),
                ("ActionID".into(), id.into()),
            ],
        }
    }

    /// Adds a header. Callers pass only values checked for line breaks.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Action {
        self.headers.push((key.into(), value.into()));
        self
    }

    pub fn id(&self) -> &str {
        &self.headers[1].1
    }

    /// Writes the action as it goes on the wire.
    pub fn write_to(&self, dst: &mut BytesMut) {
        for (key, value) in &self.headers {
            dst.put_slice(key.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(value.as_bytes());
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
    }
}

/// Secrets stay out of logs.
impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_map();
        for (key, value) in &self.headers {
            if key.eq_ignore_ascii_case("Secret") {
                list.entry(key, &"<redacted>");
            } else {
                list.entry(key, value);
            }
        }
        list.finish()
    }
}

/// One channel as an event describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSnapshot {
    pub name: String,
    pub uniqueid: String,
    pub linkedid: String,
    /// Asterisk's channel state: 0 down, 4 ring, 5 ringing, 6 up, ...
    pub state: u8,
    pub caller: Party,
    pub connected: Party,
    pub exten: String,
}

/// Asterisk's `AST_STATE_*` values used by the mapping.
pub mod channel_state {
    pub const RING: u8 = 4;
    pub const RINGING: u8 = 5;
    pub const UP: u8 = 6;
}

impl ChannelSnapshot {
    /// The snapshot whose fields start with `prefix` (`""` for the event's own channel);
    /// `None` when the event has no such channel.
    pub fn read(message: &Message, prefix: &str) -> Option<ChannelSnapshot> {
        let field = |name: &str| message.get(&format!("{prefix}{name}"));
        let name = field("Channel")?.to_string();
        let uniqueid = field("Uniqueid")?.to_string();
        Some(ChannelSnapshot {
            linkedid: field("Linkedid").unwrap_or(&uniqueid).to_string(),
            state: field("ChannelState")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            caller: party(field("CallerIDNum"), field("CallerIDName")),
            connected: party(field("ConnectedLineNum"), field("ConnectedLineName")),
            exten: field("Exten").unwrap_or("").to_string(),
            name,
            uniqueid,
        })
    }
}

/// A party from caller-id fields; `<unknown>` and empty values are not known.
pub fn party(number: Option<&str>, name: Option<&str>) -> Party {
    Party {
        number: known(number),
        name: known(name),
    }
}

fn known(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "<unknown>")
        .map(str::to_string)
}

/// The events that change what tapir reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiEvent {
    /// `Newchannel`.
    NewChannel(ChannelSnapshot),
    /// `Newstate`, `NewConnectedLine`, `NewCallerid`: a fresh snapshot of a known channel.
    ChannelUpdate(ChannelSnapshot),
    Rename {
        uniqueid: String,
        new_name: String,
    },
    /// `DialBegin`; `source` is absent when Asterisk itself dials (an Originate's first leg).
    DialBegin {
        source: Option<ChannelSnapshot>,
        dest: ChannelSnapshot,
    },
    /// `DialState` and `DialEnd`, with `DialStatus` (`RINGING`, `ANSWER`, `BUSY`, ...).
    DialProgress {
        source: Option<ChannelSnapshot>,
        dest: ChannelSnapshot,
        status: String,
        end: bool,
    },
    Hangup {
        channel: ChannelSnapshot,
        cause: u32,
    },
    BridgeEnter {
        bridge: String,
        channel: ChannelSnapshot,
    },
    BridgeLeave {
        bridge: String,
        channel: ChannelSnapshot,
    },
    /// `Hold` / `Unhold` on the channel of the party that pressed hold.
    Hold {
        channel: ChannelSnapshot,
        held: bool,
    },
    BlindTransfer {
        transferer: ChannelSnapshot,
        transferee: Option<ChannelSnapshot>,
    },
    AttendedTransfer {
        transferer: ChannelSnapshot,
        transferee: Option<ChannelSnapshot>,
    },
    OriginateResponse {
        action_id: String,
        success: bool,
        reason: u32,
        uniqueid: Option<String>,
    },
    /// `ParkedCall` (parked) and `UnParkedCall`, `ParkedCallGiveUp`, `ParkedCallTimeOut`
    /// (left the lot).
    Parked {
        parkee: String,
        parked: bool,
        /// The lot's space (`ParkingSpace`) where the call waits.
        space: Option<String>,
    },
    /// `UnParkedCall`: the channel that took the parked call.
    Retrieved {
        retriever: String,
    },
    /// `DeviceStateChange` (also each item of `DeviceStateList`): `device` is a device-state
    /// name (`PJSIP/201`, `Queue:support`), `state` Asterisk's (`NOT_INUSE`, `UNAVAILABLE`).
    DeviceState {
        device: String,
        state: String,
    },
    FullyBooted,
    /// `Reload` or `Shutdown`: configuration or the PBX itself is changing.
    Reload,
    Shutdown,
}

impl AmiEvent {
    /// The typed form of `message`, or `None` for events the mapping ignores.
    pub fn from_message(message: &Message) -> Option<AmiEvent> {
        let snapshot = |prefix| ChannelSnapshot::read(message, prefix);
        Some(match message.event()? {
            "Newchannel" => AmiEvent::NewChannel(snapshot("")?),
            "Newstate" | "NewConnectedLine" | "NewCallerid" => {
                AmiEvent::ChannelUpdate(snapshot("")?)
            }
            "Rename" => AmiEvent::Rename {
                uniqueid: message.get("Uniqueid")?.to_string(),
                new_name: message.get("Newname")?.to_string(),
            },
            "DialBegin" => AmiEvent::DialBegin {
                source: snapshot(""),
                dest: snapshot("Dest")?,
            },
            "DialState" | "DialEnd" => AmiEvent::DialProgress {
                source: snapshot(""),
                dest: snapshot("Dest")?,
                status: message.text("DialStatus").to_string(),
                end: message.event() == Some("DialEnd"),
            },
            "Hangup" => AmiEvent::Hangup {
                channel: snapshot("")?,
                cause: message.text("Cause").parse().unwrap_or(0),
            },
            "BridgeEnter" | "BridgeLeave" => {
                let bridge = message.get("BridgeUniqueid")?.to_string();
                let channel = snapshot("")?;
                if message.event() == Some("BridgeEnter") {
                    AmiEvent::BridgeEnter { bridge, channel }
                } else {
                    AmiEvent::BridgeLeave { bridge, channel }
                }
            }
            "Hold" | "Unhold" => AmiEvent::Hold {
                channel: snapshot("")?,
                held: message.event() == Some("Hold"),
            },
            "BlindTransfer" | "AttendedTransfer" => return transfer(message),
            "OriginateResponse" => AmiEvent::OriginateResponse {
                action_id: message.get("ActionID")?.to_string(),
                success: message.text("Response").eq_ignore_ascii_case("Success"),
                reason: message.text("Reason").parse().unwrap_or(0),
                uniqueid: known(message.get("Uniqueid")),
            },
            "ParkedCall" | "UnParkedCall" | "ParkedCallGiveUp" | "ParkedCallTimeOut" => {
                AmiEvent::Parked {
                    parkee: message.get("ParkeeUniqueid")?.to_string(),
                    parked: message.event() == Some("ParkedCall"),
                    space: known(message.get("ParkingSpace")),
                }
            }
            "DeviceStateChange" => AmiEvent::DeviceState {
                device: message.get("Device")?.to_string(),
                state: message.get("State")?.to_string(),
            },
            "FullyBooted" => AmiEvent::FullyBooted,
            "Reload" => AmiEvent::Reload,
            "Shutdown" => AmiEvent::Shutdown,
            _ => return None,
        })
    }

    /// The extra event an `UnParkedCall` carries besides the parkee leaving the lot.
    pub fn retrieval(message: &Message) -> Option<AmiEvent> {
        (message.event()? == "UnParkedCall").then_some(())?;
        Some(AmiEvent::Retrieved {
            retriever: message.get("RetrieverUniqueid")?.to_string(),
        })
    }
}

/// A successful transfer; failed ones change nothing.
fn transfer(message: &Message) -> Option<AmiEvent> {
    if !message.text("Result").eq_ignore_ascii_case("Success") {
        return None;
    }
    if message.event() == Some("BlindTransfer") {
        Some(AmiEvent::BlindTransfer {
            transferer: ChannelSnapshot::read(message, "Transferer")?,
            transferee: ChannelSnapshot::read(message, "Transferee"),
        })
    } else {
        Some(AmiEvent::AttendedTransfer {
            transferer: ChannelSnapshot::read(message, "OrigTransferer")?,
            transferee: ChannelSnapshot::read(message, "Transferee"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(pairs: &[(&str, &str)]) -> Message {
        Message::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn unknown_caller_ids_are_not_parties() {
        let m = message(&[
            ("Event", "Newchannel"),
            ("Channel", "PJSIP/201-00000006"),
            ("ChannelState", "0"),
            ("CallerIDNum", "201"),
            ("CallerIDName", "Phone 201"),
            ("ConnectedLineNum", "<unknown>"),
            ("ConnectedLineName", "<unknown>"),
            ("Exten", "s"),
            ("Uniqueid", "1.6"),
            ("Linkedid", "1.6"),
        ]);
        let Some(AmiEvent::NewChannel(snapshot)) = AmiEvent::from_message(&m) else {
            panic!("a new channel");
        };
        assert_eq!(snapshot.caller, Party::named("201", "Phone 201"));
        assert!(snapshot.connected.is_unknown());
    }

    #[test]
    fn a_dial_without_source_is_asterisk_dialling() {
        let m = message(&[
            ("Event", "DialBegin"),
            ("DestChannel", "PJSIP/201-00000006"),
            ("DestUniqueid", "1.6"),
        ]);
        let Some(AmiEvent::DialBegin { source, dest }) = AmiEvent::from_message(&m) else {
            panic!("a dial");
        };
        assert!(source.is_none());
        assert_eq!(dest.linkedid, "1.6");
    }

    #[test]
    fn the_secret_is_redacted_in_debug() {
        let action = Action::new("Login", "1").with("Secret", "hunter2");
        assert!(!format!("{action:?}").contains("hunter2"));
    }
}
