//! One WebSocket session: a subscription with ordered events, and commands with results.
//!
//! The session task reads client messages, the subscription and command results in one
//! `select!`, results first: the engine answers a command before it publishes the events
//! the command caused, so a client always learns a new call's id before its first event.
//! A client that falls behind the broadcast is resumed from the engine's buffer (or sent a
//! fresh snapshot) instead of silently losing events.
//!
//! The caller authenticates at the upgrade (bearer header, or `access_token` in the query for
//! browsers, which cannot set headers on a WebSocket). Every event passes the caller's
//! [`Gate`]; when accounts or rights change, or every minute, the session checks the token
//! again: a revoked token ends the session, changed rights send a fresh snapshot.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use tapir_access::Accounts;
use tapir_core::{EngineHandle, Sequenced, Subscription, SubscriptionStart};
use tapir_wire::{ClientMessage, CommandDto, ErrorDto, ServerMessage};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::ApiState;
use crate::auth::{self, Gate, bearer, missing_credentials};
use crate::convert;
use crate::encoded::EncodedEvents;
use crate::error::ApiError;

/// The largest client message accepted; commands are small.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How much one socket read asks for. tungstenite zero-fills this much before every read
/// attempt, and a session tries to read each time it wakes for events: its default of
/// 128 KiB cost a third of the server's CPU under load. Client messages are small; a larger
/// one is simply read in several chunks.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// The most queued events one write carries; a bound, so that a client's own messages and
/// results are never held back long behind a flood of events.
const WRITE_BATCH: usize = 256;

/// How often a session checks that its token is still valid, changes or not.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// `?access_token=` on the upgrade request.
#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    access_token: Option<String>,
}

pub(crate) async fn upgrade(
    State(state): State<ApiState>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let token = bearer(&headers).map(str::to_owned).or(query.access_token);
    let Some(token) = token else {
        return missing_credentials().into_response();
    };
    let principal = match state.accounts.authenticate(&token).await {
        Ok(principal) => Arc::new(principal),
        Err(error) => return ApiError::from(error).into_response(),
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_CHUNK_BYTES)
        .on_upgrade(move |socket| async move {
            metrics::gauge!("tapir_ws_sessions").increment(1);
            let shutdown = state.shutdown.clone();
            let session = Session::new(state, token, principal, socket);
            if let Err(error) = session.run(shutdown).await {
                tracing::debug!(%error, "WebSocket session ended");
            }
            metrics::gauge!("tapir_ws_sessions").decrement(1);
        })
}

type Pending = Pin<Box<dyn Future<Output = ServerMessage> + Send>>;

struct Session {
    state: ApiState,
    engine: EngineHandle,
    /// The caller's token, to check again when accounts change.
    token: String,
    accounts: Arc<Accounts>,
    changes: watch::Receiver<u64>,
    gate: Gate,
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
    #[error("the caller's credentials are no longer valid")]
    CredentialsRevoked,
}

impl Session {
    fn new(
        state: ApiState,
        token: String,
        principal: Arc<tapir_access::Principal>,
        socket: WebSocket,
    ) -> Session {
        let accounts = state.accounts.clone();
        let mut changes = accounts.watch();
        changes.mark_unchanged();
        let gate = Gate::new(principal, accounts.policies(), &[]);
        Session {
            engine: state.engine.clone(),
            encoded: state.encoded.clone(),
            state,
            token,
            accounts,
            changes,
            gate,
            socket,
            events: None,
            lines: None,
            last_seq: 0,
            results: FuturesUnordered::new(),
        }
    }

    async fn run(mut self, shutdown: CancellationToken) -> Result<(), SessionEnd> {
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = self.socket.send(Message::Close(None)).await;
                    return Ok(());
                }
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return Err(SessionEnd::EngineStopped);
                    }
                    self.recheck().await?;
                }
                _ = recheck.tick() => self.recheck().await?,
                Some(result) = self.results.next(), if !self.results.is_empty() => {
                    self.send(&result).await?;
                }
                event = next_event(&mut self.events) => {
                    match event {
                        Ok(event) => {
                            self.forward(&event).await?;
                            self.forward_queued().await?;
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => self.resume(missed).await?,
                        Err(broadcast::error::RecvError::Closed) => return Err(SessionEnd::EngineStopped),
                    }
                    self.socket.flush().await?;
                }
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

    /// Forwards the events already waiting, up to a batch, so that a busy stream goes out in
    /// few writes (one flush for the batch) rather than one write per event.
    async fn forward_queued(&mut self) -> Result<(), SessionEnd> {
        for _ in 0..WRITE_BATCH {
            let Some(events) = self.events.as_mut() else {
                return Ok(());
            };
            match events.try_recv() {
                Ok(event) => self.forward(&event).await?,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(()),
                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                    return self.resume(missed).await;
                }
                Err(broadcast::error::TryRecvError::Closed) => {
                    return Err(SessionEnd::EngineStopped);
                }
            }
        }
        Ok(())
    }

    async fn resume(&mut self, missed: u64) -> Result<(), SessionEnd> {
        tracing::info!(missed, "WebSocket client fell behind; resuming");
        self.subscribe(Some(self.last_seq)).await
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
            Ok(ClientMessage::Subscribe {
                since,
                epoch,
                lines,
            }) => {
                self.lines = lines.map(|l| l.into_iter().collect());
                // Sequence numbers of an earlier run of the server mean nothing now.
                let since = since.filter(|_| epoch.is_none_or(|e| e == self.engine.epoch()));
                self.subscribe(since).await
            }
            Ok(ClientMessage::Ping { id }) => {
                let seq = self.last_seq;
                self.send(&ServerMessage::Pong { id, seq }).await
            }
            Ok(ClientMessage::Unsubscribe) => {
                self.events = None;
                Ok(())
            }
            Ok(ClientMessage::Command { id, command }) => {
                let principal = self.gate.principal().clone();
                self.results.push(Box::pin(execute(
                    self.state.clone(),
                    principal,
                    id,
                    command,
                )));
                Ok(())
            }
        }
    }

    /// Checks the token again; on changed rights, sends a fresh snapshot of what the caller
    /// now sees.
    async fn recheck(&mut self) -> Result<(), SessionEnd> {
        let principal = match self.accounts.authenticate(&self.token).await {
            Ok(principal) => Arc::new(principal),
            Err(error) => {
                let (_, dto) = ApiError::from(error).to_dto();
                self.send(&ServerMessage::Error { error: dto }).await?;
                let _ = self.socket.send(Message::Close(None)).await;
                return Err(SessionEnd::CredentialsRevoked);
            }
        };
        let policies = self.accounts.policies();
        if self.gate.same_view(&principal, &policies) {
            return Ok(());
        }
        self.gate = self.gate.renewed(principal, policies);
        if self.events.is_some() {
            self.subscribe(None).await?;
        }
        Ok(())
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
                self.gate.know(&snapshot.instances);
                if self.lines.is_none() && self.gate.sees_all() {
                    let text = self.encoded.snapshot_text(&snapshot);
                    self.socket.send(Message::Text(text)).await?;
                    return Ok(());
                }
                let visible = self.gate.filter(&snapshot);
                let filter = self.lines.clone();
                let keep = move |id: u32| filter.as_ref().is_none_or(|f| f.contains(&id));
                let dto = convert::snapshot(&visible, Some(&keep));
                self.send(&ServerMessage::Snapshot(dto)).await
            }
            SubscriptionStart::Replay(missed) => {
                // A resumed session has no snapshot to learn the instances' names from.
                let instances = self
                    .engine
                    .instances()
                    .await
                    .map_err(|_| SessionEnd::EngineStopped)?;
                self.gate.know(&instances);
                for event in missed {
                    self.forward(&event).await?;
                }
                self.socket.flush().await?;
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
        self.gate.learn(&event.event);
        let wanted = match (&self.lines, event.event.line()) {
            (Some(lines), Some(line)) => lines.contains(&line.0),
            _ => true,
        } && self.gate.event_visible(&event.event);
        if wanted {
            // A replay after falling behind sends many events in one go: results that are
            // ready must still go first, as the engine answered them before publishing.
            self.send_ready_results().await?;
            let text = self.encoded.text(event);
            // Written out by the caller's flush, with the rest of its batch.
            self.socket.feed(Message::Text(text)).await?;
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

async fn execute(
    state: ApiState,
    principal: Arc<tapir_access::Principal>,
    id: String,
    command: CommandDto,
) -> ServerMessage {
    let result = match command.into_model() {
        Ok(command) => auth::execute(&state, &principal, command).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(outcome) => ServerMessage::Result {
            id,
            ok: true,
            request: Some(outcome.request.0),
            call: outcome.call.map(|c| c.0),
            parked_at: outcome.parked_at,
            error: None,
        },
        Err(error) => ServerMessage::Result {
            id,
            ok: false,
            request: None,
            call: None,
            parked_at: None,
            error: Some(error.to_dto().1),
        },
    }
}
