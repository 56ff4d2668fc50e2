//! One WebSocket session: a subscription with ordered events, and commands with results.
//!
//! The session task reads client messages, the subscription and command results in one
//! `select!`, results first: the engine answers a command before it publishes the events
//! the command caused, so a client always learns a new call's id before its first event.
//! A client that falls behind the broadcast is resumed from the engine's buffer (or sent a
//! fresh snapshot) instead of silently losing events.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tapir_core::{EngineHandle, Sequenced, Subscription, SubscriptionStart};
use tapir_wire::{ClientMessage, CommandDto, ErrorDto, ServerMessage};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::convert;
use crate::encoded::EncodedEvents;

/// The largest client message accepted; commands are small.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub(crate) async fn upgrade(State(state): State<ApiState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("tapir_ws_sessions").increment(1);
            let session = Session::new(state.engine, state.encoded, socket);
            if let Err(error) = session.run(state.shutdown).await {
                tracing::debug!(%error, "WebSocket session ended");
            }
            metrics::gauge!("tapir_ws_sessions").decrement(1);
        })
}

type Pending = Pin<Box<dyn Future<Output = ServerMessage> + Send>>;

struct Session {
    engine: EngineHandle,
    /// Event text shared with the other sessions.
    encoded: Arc<EncodedEvents>,
    socket: WebSocket,
    events: Option<broadcast::Receiver<Arc<Sequenced>>>,
    lines: Option<HashSet<u32>>,
    /// The last sequence number sent, for resuming after falling behind.
    last_seq: u64,
    results: FuturesUnordered<Pending>,
}

#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    #[error("the engine stopped")]
    EngineStopped,
}

impl Session {
    fn new(engine: EngineHandle, encoded: Arc<EncodedEvents>, socket: WebSocket) -> Session {
        Session {
            engine,
            encoded,
            socket,
            events: None,
            lines: None,
            last_seq: 0,
            results: FuturesUnordered::new(),
        }
    }

    async fn run(mut self, shutdown: CancellationToken) -> Result<(), SessionEnd> {
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = self.socket.send(Message::Close(None)).await;
                    return Ok(());
                }
                Some(result) = self.results.next(), if !self.results.is_empty() => {
                    self.send(&result).await?;
                }
                event = next_event(&mut self.events) => match event {
                    Ok(event) => self.forward(&event).await?,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "WebSocket client fell behind; resuming");
                        self.subscribe(Some(self.last_seq)).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(SessionEnd::EngineStopped),
                },
                incoming = self.socket.recv() => match incoming {
                    None | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str()).await?,
                    Some(Ok(Message::Binary(_))) => {
                        self.reject("binary messages are not supported; send JSON text").await?;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(error)) => return Err(error.into()),
                },
            }
        }
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), SessionEnd> {
        let text = serde_json::to_string(message).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","error":{{"error":"internal","message":"{e}"}}}}"#)
        });
        self.socket.send(Message::Text(text.into())).await?;
        Ok(())
    }

    async fn reject(&mut self, message: impl Into<String>) -> Result<(), SessionEnd> {
        self.send(&ServerMessage::Error {
            error: ErrorDto::bad_request(message),
        })
        .await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), SessionEnd> {
        match ClientMessage::from_json(text) {
            Err(reason) => self.reject(reason).await,
            Ok(ClientMessage::Subscribe { since, lines }) => {
                self.lines = lines.map(|l| l.into_iter().collect());
                self.subscribe(since).await
            }
            Ok(ClientMessage::Unsubscribe) => {
                self.events = None;
                Ok(())
            }
            Ok(ClientMessage::Command { id, command }) => {
                self.results
                    .push(Box::pin(execute(self.engine.clone(), id, command)));
                Ok(())
            }
        }
    }

    async fn subscribe(&mut self, since: Option<u64>) -> Result<(), SessionEnd> {
        let Subscription { start, events } = self
            .engine
            .subscribe(since)
            .await
            .map_err(|_| SessionEnd::EngineStopped)?;
        self.events = Some(events);
        match start {
            SubscriptionStart::Snapshot(snapshot) => {
                self.last_seq = snapshot.seq;
                let Some(filter) = self.lines.clone() else {
                    let text = self.encoded.snapshot_text(&snapshot);
                    self.socket.send(Message::Text(text)).await?;
                    return Ok(());
                };
                let keep = move |id: u32| filter.contains(&id);
                let dto = convert::snapshot(&snapshot, Some(&keep));
                self.send(&ServerMessage::Snapshot(dto)).await
            }
            SubscriptionStart::Replay(missed) => {
                for event in missed {
                    self.forward(&event).await?;
                }
                Ok(())
            }
        }
    }

    async fn send_ready_results(&mut self) -> Result<(), SessionEnd> {
        while let Some(Some(result)) = self.results.next().now_or_never() {
            self.send(&result).await?;
        }
        Ok(())
    }

    async fn forward(&mut self, event: &Sequenced) -> Result<(), SessionEnd> {
        if event.seq <= self.last_seq {
            return Ok(());
        }
        self.last_seq = event.seq;
        let wanted = match (&self.lines, event.event.line()) {
            (Some(lines), Some(line)) => lines.contains(&line.0),
            _ => true,
        };
        if wanted {
            // A replay after falling behind sends many events in one go: results that are
            // ready must still go first, as the engine answered them before publishing.
            self.send_ready_results().await?;
            let text = self.encoded.text(event);
            self.socket.send(Message::Text(text)).await?;
        }
        Ok(())
    }
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<Arc<Sequenced>>>,
) -> Result<Arc<Sequenced>, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn execute(engine: EngineHandle, id: String, command: CommandDto) -> ServerMessage {
    let result = match command.into_model() {
        Ok(command) => engine.execute(command).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(outcome) => ServerMessage::Result {
            id,
            ok: true,
            request: Some(outcome.request.0),
            call: outcome.call.map(|c| c.0),
            error: None,
        },
        Err(error) => ServerMessage::Result {
            id,
            ok: false,
            request: None,
            call: None,
            error: Some(ErrorDto::from(&error)),
        },
    }
}
