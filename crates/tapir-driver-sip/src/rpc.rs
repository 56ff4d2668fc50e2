//! Kamailio JSON-RPC (module `jsonrpcs`): one request, one reply, over a UDP datagram or
//! an HTTP POST. Only what the provider needs: `dlg.list` and `dlg.end_dlg` for drop, and
//! `ul.dump brief` for the lines' registrations.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::config::RpcEndpoint;

/// The largest reply read (a `dlg.list` of a busy system is large, but bounded).
const MAX_REPLY: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach Kamailio JSON-RPC at {address}: {reason}")]
    Io { address: String, reason: String },
    #[error("Kamailio JSON-RPC did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Kamailio JSON-RPC error {code}: {message}")]
    Remote { code: i64, message: String },
    #[error("unreadable JSON-RPC reply: {0}")]
    Malformed(String),
}

/// One dialog of `dlg.list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlgEntry {
    pub h_entry: u64,
    pub h_id: u64,
    pub call_id: String,
    /// Kamailio's dialog state: 1 unconfirmed, 2 early, 3 confirmed-no-ack, 4 confirmed,
    /// 5 deleted.
    pub state: u64,
}

/// A JSON-RPC client for one endpoint.
#[derive(Debug, Clone)]
pub struct Rpc {
    endpoint: RpcEndpoint,
    limit: Duration,
}

impl Rpc {
    pub fn new(endpoint: RpcEndpoint, limit: Duration) -> Rpc {
        Rpc { endpoint, limit }
    }

    /// Calls `method` with `params`, returning its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let request = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let body = request.to_string();
        let reply = match timeout(self.limit, self.exchange(&body)).await {
            Ok(reply) => reply?,
            Err(_) => return Err(RpcError::Timeout(self.limit)),
        };
        read_reply(&reply)
    }

    async fn exchange(&self, body: &str) -> Result<Vec<u8>, RpcError> {
        match &self.endpoint {
            RpcEndpoint::Datagram { address } => {
                let io = |e: std::io::Error| RpcError::Io {
                    address: address.to_string(),
                    reason: e.to_string(),
                };
                let local: std::net::SocketAddr = if address.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let socket = UdpSocket::bind(local).await.map_err(io)?;
                socket.connect(address).await.map_err(io)?;
                socket.send(body.as_bytes()).await.map_err(io)?;
                let mut buf = vec![0u8; 65_535];
                let n = socket.recv(&mut buf).await.map_err(io)?;
                buf.truncate(n);
                Ok(buf)
            }
            RpcEndpoint::Http { address, path } => {
                let io = |e: std::io::Error| RpcError::Io {
                    address: address.to_string(),
                    reason: e.to_string(),
                };
                let mut stream = TcpStream::connect(address).await.map_err(io)?;
                let head = format!(
                    "POST {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await.map_err(io)?;
                stream.write_all(body.as_bytes()).await.map_err(io)?;
                let mut reply = Vec::new();
                let mut limited = (&mut stream).take(MAX_REPLY as u64);
                limited.read_to_end(&mut reply).await.map_err(io)?;
                let split = reply
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .ok_or_else(|| RpcError::Malformed("no end of HTTP headers".into()))?;
                Ok(reply.split_off(split + 4))
            }
        }
    }

    /// Every dialog Kamailio tracks.
    pub async fn dlg_list(&self) -> Result<Vec<DlgEntry>, RpcError> {
        let result = self.call("dlg.list", json!([])).await?;
        parse_dlg_list(&result)
    }

    /// Ends a dialog (BYE to both legs).
    pub async fn end_dlg(&self, entry: &DlgEntry) -> Result<(), RpcError> {
        self.call("dlg.end_dlg", json!([entry.h_entry, entry.h_id]))
            .await
            .map(|_| ())
    }
}

impl Rpc {
    /// The addresses of record registered in usrloc (`ul.dump brief`), lowercased: the bare
    /// user (`201`) or `user@domain` when the registrar keys them with domains.
    pub async fn registered(&self) -> Result<BTreeSet<String>, RpcError> {
        let result = self.call("ul.dump", json!(["brief"])).await?;
        parse_ul_dump(&result)
    }
}

/// Reads `ul.dump brief`: `{"Domains":[{"Domain":{"Domain":"location","AoRs":[{"AoR":"201"}]}}]}`.
/// A table without registrations may list no `AoRs` at all.
fn parse_ul_dump(result: &Value) -> Result<BTreeSet<String>, RpcError> {
    let domains = result
        .get("Domains")
        .and_then(Value::as_array)
        .ok_or_else(|| RpcError::Malformed(format!("ul.dump returned {}", kind_of(result))))?;
    let mut aors = BTreeSet::new();
    for domain in domains {
        let table = domain.get("Domain").unwrap_or(domain);
        let Some(items) = table.get("AoRs").and_then(Value::as_array) else {
            continue;
        };
        for item in items {
            if let Some(aor) = item.get("AoR").and_then(Value::as_str) {
                aors.insert(aor.to_ascii_lowercase());
            }
        }
    }
    Ok(aors)
}

/// The `result` of a reply, or its `error`.
fn read_reply(reply: &[u8]) -> Result<Value, RpcError> {
    let value: Value =
        serde_json::from_slice(reply).map_err(|e| RpcError::Malformed(e.to_string()))?;
    if let Some(error) = value.get("error") {
        return Err(RpcError::Remote {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_owned(),
        });
    }
    value
        .get("result")
        .cloned()
        .ok_or_else(|| RpcError::Malformed("neither result nor error".into()))
}

/// Reads `dlg.list`'s result: a list of dialog objects (an empty list may come as null).
fn parse_dlg_list(result: &Value) -> Result<Vec<DlgEntry>, RpcError> {
    let items = match result {
        Value::Array(items) => items.as_slice(),
        Value::Null => &[],
        other => {
            return Err(RpcError::Malformed(format!(
                "dlg.list returned {}",
                kind_of(other)
            )));
        }
    };
    let mut entries = Vec::new();
    for item in items {
        let number = |name: &str| item.get(name).and_then(Value::as_u64);
        let (Some(h_entry), Some(h_id), Some(call_id)) = (
            number("h_entry"),
            number("h_id"),
            item.get("call-id").and_then(Value::as_str),
        ) else {
            tracing::warn!(%item, "dlg.list item without h_entry, h_id or call-id, skipped");
            continue;
        };
        entries.push(DlgEntry {
            h_entry,
            h_id,
            call_id: call_id.to_owned(),
            state: number("state").unwrap_or(0),
        });
    }
    Ok(entries)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_errors_are_read() {
        let ok = br#"{"jsonrpc":"2.0","result":[{"h_entry":1042,"h_id":7,"call-id":"abc","state":4,"from_uri":"sip:201@127.0.0.1"}],"id":1}"#;
        let result = read_reply(ok).unwrap();
        let list = parse_dlg_list(&result).unwrap();
        assert_eq!(
            list,
            [DlgEntry {
                h_entry: 1042,
                h_id: 7,
                call_id: "abc".into(),
                state: 4
            }]
        );
        let error = br#"{"jsonrpc":"2.0","error":{"code":404,"message":"Not found"},"id":1}"#;
        assert_eq!(
            read_reply(error),
            Err(RpcError::Remote {
                code: 404,
                message: "Not found".into()
            })
        );
        assert!(matches!(read_reply(b"<html>"), Err(RpcError::Malformed(_))));
        assert!(matches!(
            parse_dlg_list(&json!({"x": 1})),
            Err(RpcError::Malformed(_))
        ));
        assert_eq!(parse_dlg_list(&json!([{"h_entry": 1}])), Ok(Vec::new()));
    }

    #[test]
    fn registrations_are_read_from_ul_dump() {
        let reply = br#"{"jsonrpc":"2.0","result":{"Domains":[{"Domain":{"Domain":"location","Size":1024,"AoRs":[{"AoR":"302"},{"AoR":"Alice@Example.org"}],"Stats":{"Records":2,"Max-Slots":1}}}]},"id":1}"#;
        let aors = parse_ul_dump(&read_reply(reply).unwrap()).unwrap();
        assert_eq!(
            aors.into_iter().collect::<Vec<_>>(),
            ["302", "alice@example.org"]
        );
        let empty =
            json!({"Domains":[{"Domain":{"Domain":"location","Size":1024,"Stats":{"Records":0}}}]});
        assert_eq!(parse_ul_dump(&empty), Ok(BTreeSet::new()));
        assert!(matches!(
            parse_ul_dump(&json!([1])),
            Err(RpcError::Malformed(_))
        ));
    }
}
