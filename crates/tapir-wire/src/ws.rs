//! The WebSocket protocol at `/api/v1/ws`.
//!
//! A client sends `subscribe` (optionally with the `since` sequence number it saw last) and
//! receives either a `snapshot` followed by `event`s, or the missed `event`s and then the live
//! ones. A `snapshot` may arrive again at any time (after falling too far behind); it
//! replaces everything the client knew. Commands carry a client-chosen `id` and are answered
//! by exactly one `result` with that id. For a command that creates a call, the `result`
//! (with the new call id) arrives before any event about that call.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CommandDto, ErrorDto, SequencedDto, SnapshotDto};

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Start (or restart) the event stream.
    Subscribe {
        /// The last sequence number seen; missed events are replayed when still buffered.
        #[serde(default)]
        since: Option<u64>,
        /// The epoch of the snapshot `since` belongs to; when the server's differs (it
        /// restarted), a fresh snapshot comes instead of a replay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<u64>,
        /// Only events about these lines (and instance events); all lines when absent.
        #[serde(default)]
        lines: Option<Vec<u32>>,
    },
    /// Stop the event stream; commands still work.
    Unsubscribe,
    /// Ask for a `pong`: browsers cannot see WebSocket ping frames, so a client that must
    /// notice a dead connection (a sleeping laptop, a dropped NAT entry) asks itself.
    Ping {
        /// Chosen by the client, echoed in the pong.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Carry out a command.
    Command {
        /// Chosen by the client, echoed in the result.
        id: String,
        #[serde(flatten)]
        command: CommandDto,
    },
}

/// The envelope fields of a client message; the command's own fields are checked separately,
/// strictly, because serde cannot deny unknown fields next to a flattened command.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Envelope {
    Subscribe {
        #[serde(default)]
        since: Option<u64>,
        #[serde(default)]
        epoch: Option<u64>,
        #[serde(default)]
        lines: Option<Vec<u32>>,
    },
    Unsubscribe {},
    Ping {
        #[serde(default)]
        id: Option<String>,
    },
}

impl ClientMessage {
    /// Parses one client message, refusing unknown message types and unknown fields with a
    /// sentence that names them.
    pub fn from_json(text: &str) -> Result<ClientMessage, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let object = value
            .as_object_mut()
            .ok_or("a message must be a JSON object")?;
        if object.get("type").and_then(|t| t.as_str()) != Some("command") {
            return match serde_json::from_value::<Envelope>(value) {
                Ok(Envelope::Subscribe {
                    since,
                    epoch,
                    lines,
                }) => Ok(ClientMessage::Subscribe {
                    since,
                    epoch,
                    lines,
                }),
                Ok(Envelope::Unsubscribe {}) => Ok(ClientMessage::Unsubscribe),
                Ok(Envelope::Ping { id }) => Ok(ClientMessage::Ping { id }),
                Err(e) => Err(format!("invalid message: {e}")),
            };
        }
        object.remove("type");
        let id = match object.remove("id") {
            Some(serde_json::Value::String(id)) => id,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => return Err("a command's `id` must be a string or a number".into()),
            None => return Err("a command needs an `id` to match its result".into()),
        };
        let command = serde_json::from_value::<CommandDto>(value)
            .map_err(|e| format!("invalid command {id:?}: {e}"))?;
        Ok(ClientMessage::Command { id, command })
    }
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Snapshot(SnapshotDto),
    /// Boxed: an event is much larger than the other messages.
    Event(Box<SequencedDto>),
    Result {
        id: String,
        ok: bool,
        /// The server's request id (for logs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<u64>,
        /// The call the command created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<u64>,
        /// Where a park put the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parked_at: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorDto>,
    },
    /// A message the server could not accept; the connection stays open.
    Error {
        error: ErrorDto,
    },
    /// The answer to a `ping`, after everything the server sent before it.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The last event sequence number sent on this connection.
        seq: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_messages_flatten_the_command() {
        let m =
            ClientMessage::from_json(r#"{"type":"command","id":"a1","command":"drop","call":4}"#)
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::Command {
                id: "a1".into(),
                command: CommandDto::Drop { call: 4 }
            }
        );
    }

    #[test]
    fn bad_client_messages_are_explained() {
        let cases = [
            ("not json", "invalid JSON"),
            ("[1]", "JSON object"),
            (r#"{"type":"dance"}"#, "dance"),
            (r#"{"type":"subscribe","sincee":3}"#, "sincee"),
            (
                r#"{"type":"command","command":"drop","call":4}"#,
                "needs an `id`",
            ),
            (
                r#"{"type":"command","id":"x","command":"drop","call":"four"}"#,
                "invalid command",
            ),
            (
                r#"{"type":"command","id":"x","command":"drop","call":4,"y":1}"#,
                "`y`",
            ),
        ];
        for (input, expected) in cases {
            let err = ClientMessage::from_json(input).unwrap_err();
            assert!(err.contains(expected), "{input}: {err}");
        }
        let round = ClientMessage::Subscribe {
            since: Some(4),
            epoch: Some(17),
            lines: None,
        };
        let text = serde_json::to_string(&round).unwrap();
        assert_eq!(ClientMessage::from_json(&text).unwrap(), round);
    }

    #[test]
    fn events_round_trip() {
        let json =
            r#"{"type":"event","seq":7,"at":1,"event":"line_removed","line":3,"instance":"sim"}"#;
        let m: ServerMessage = serde_json::from_str(json).unwrap();
        let ServerMessage::Event(e) = &m else {
            panic!("not an event: {m:?}")
        };
        assert_eq!(e.seq, 7);
        assert_eq!(e.event.line(), Some(3));
        let back: ServerMessage =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
