//! `tapir watch`: prints events live, resuming after a lost connection without a gap.

use std::time::Duration;

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tapir_wire::{ClientMessage, ServerMessage};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::output;

/// Where and as whom to connect.
pub struct Connection {
    pub url: String,
    pub token: Option<String>,
    pub tls: Arc<rustls::ClientConfig>,
}

pub struct WatchOptions {
    pub lines: Option<Vec<u32>>,
    pub since: Option<u64>,
    pub json: bool,
    /// Stop after this many events.
    pub count: Option<u64>,
}

/// Why one connection ended.
enum Ended {
    /// Enough events were printed.
    Done,
    /// The connection dropped; resume after the last event seen.
    Lost(String),
}

pub async fn run(connection: &Connection, options: WatchOptions) -> Result<()> {
    let ws_url = connection.url.as_str();
    let mut position = Position {
        since: options.since,
        epoch: None,
    };
    let mut printed = 0u64;
    let mut failures = 0u32;
    loop {
        match watch_once(connection, &options, &mut position, &mut printed).await {
            Ok(Ended::Done) => return Ok(()),
            Ok(Ended::Lost(reason)) => {
                failures = 0;
                eprintln!(
                    "connection lost ({reason}); resuming after event {}",
                    position.since.unwrap_or(0)
                );
            }
            Err(error) => {
                failures += 1;
                if failures == 1 && position.since.is_none() {
                    bail!("cannot watch {ws_url}: {error}");
                }
                eprintln!("cannot reconnect ({error}); retrying");
            }
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(10)))).await;
    }
}

async fn connect(
    connection: &Connection,
) -> Result<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>> {
    let mut request = connection.url.as_str().into_client_request()?;
    if let Some(token) = &connection.token {
        request
            .headers_mut()
            .insert(AUTHORIZATION, format!("Bearer {token}").parse()?);
    }
    let connector = Connector::Rustls(connection.tls.clone());
    match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
        .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            bail!("the server refused ({}): {body}", response.status())
        }
        Err(error) => Err(error.into()),
    }
}

/// Where the stream stands: the last event seen, in which run of the server.
#[derive(Default)]
struct Position {
    since: Option<u64>,
    epoch: Option<u64>,
}

async fn watch_once(
    connection: &Connection,
    options: &WatchOptions,
    position: &mut Position,
    printed: &mut u64,
) -> Result<Ended> {
    let mut socket = connect(connection).await?;
    let subscribe = ClientMessage::Subscribe {
        since: position.since,
        epoch: position.epoch,
        lines: options.lines.clone(),
    };
    socket
        .send(Message::Text(serde_json::to_string(&subscribe)?.into()))
        .await?;
    while let Some(message) = socket.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => return Ok(Ended::Lost("server closed the connection".into())),
            Ok(_) => continue,
            Err(error) => return Ok(Ended::Lost(error.to_string())),
        };
        let message: ServerMessage = match serde_json::from_str(&text) {
            Ok(message) => message,
            Err(error) => {
                eprintln!("unreadable message from the server ({error}): {text}");
                continue;
            }
        };
        match &message {
            ServerMessage::Snapshot(snapshot) => {
                position.since = Some(snapshot.seq);
                position.epoch = Some(snapshot.epoch);
                if options.json {
                    output::json(&message)?;
                } else {
                    output::line(&format!(
                        "watching {} lines with {} calls (at event {})",
                        snapshot.lines.len(),
                        snapshot.calls.len(),
                        snapshot.seq
                    ))?;
                }
            }
            ServerMessage::Event(event) => {
                position.since = Some(event.seq);
                if options.json {
                    output::json(&message)?;
                } else {
                    output::line(&output::event(event))?;
                }
                *printed += 1;
            }
            ServerMessage::Error { error } => eprintln!("server: {error}"),
            ServerMessage::Result { .. } | ServerMessage::Pong { .. } => {}
        }
        if options.count.is_some_and(|count| *printed >= count) {
            return Ok(Ended::Done);
        }
    }
    Ok(Ended::Lost("connection closed".into()))
}
