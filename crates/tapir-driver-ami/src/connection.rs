//! One AMI connection: connect, read the banner, log in, send actions and read messages.
//!
//! [`Connection::call`] sends an action and waits for its response and, for list actions, the
//! items up to the closing `...Complete` event, all correlated by ActionID. Messages that
//! arrive meanwhile are kept in order and handed out by [`Connection::recv`] afterwards, so
//! no event is lost while a status query runs.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tapir_provider::{PROTOCOL_TRACE, TraceSwitch};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Framed;

use crate::codec::{AmiCodec, CodecError, Frame};
use crate::config::AmiConfig;
use crate::message::{Action, Message};

/// Why a connection failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("Asterisk refused the login: {0}")]
    Auth(String),
    #[error("no answer from Asterisk within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("Asterisk closed the connection")]
    Closed,
    #[error("Asterisk restarted (it sent its banner again)")]
    Restarted,
    #[error("unexpected AMI traffic: {0}")]
    Protocol(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("TLS: {0}")]
    Tls(#[from] tapir_provider::tls::TlsError),
}

/// The answer to one action.
#[derive(Debug, Clone)]
pub struct Reply {
    pub response: Message,
    /// The items of a list action, without the closing event.
    pub items: Vec<Message>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.response
            .response()
            .is_some_and(|r| r.eq_ignore_ascii_case("Success"))
    }

    /// Asterisk's explanation (`Message:` header).
    pub fn message(&self) -> &str {
        self.response.text("Message")
    }
}

/// A byte stream to Asterisk: plain TCP or TLS.
trait AmiStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AmiStream for T {}

/// An open AMI connection.
pub struct Connection {
    framed: Framed<Box<dyn AmiStream>, AmiCodec>,
    /// Whether raw traffic goes to the protocol trace.
    trace: TraceSwitch,
    backlog: VecDeque<Message>,
    next_id: u64,
    /// The AMI protocol version from the banner.
    pub version: String,
}

impl Connection {
    /// Traces this connection's traffic while `trace` is on.
    pub fn traced(mut self, trace: TraceSwitch) -> Connection {
        self.trace = trace;
        self
    }

    /// Connects and reads the banner, within the configured timeout.
    pub async fn open(config: &AmiConfig) -> Result<Connection, LinkError> {
        let address = config.address();
        let limit = config.connect_timeout();
        let stream = timeout(limit, TcpStream::connect(&address))
            .await
            .map_err(|_| LinkError::Timeout(limit, "connecting"))?
            .map_err(|e| LinkError::Connect {
                address: address.clone(),
                reason: e.to_string(),
            })?;
        // Actions are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn AmiStream> = if config.tls {
            Box::new(
                timeout(
                    limit,
                    tapir_provider::tls::connect(&config.tls_target(), stream),
                )
                .await
                .map_err(|_| LinkError::Timeout(limit, "negotiating TLS"))??,
            )
        } else {
            Box::new(stream)
        };
        let mut framed = Framed::new(stream, AmiCodec::default());
        let first = timeout(limit, framed.next())
            .await
            .map_err(|_| LinkError::Timeout(limit, "waiting for the banner"))?;
        let version = match first {
            Some(Ok(Frame::Banner(version))) => version,
            Some(Ok(other)) => {
                return Err(LinkError::Protocol(format!(
                    "{address} is not an Asterisk manager (first frame {other:?})"
                )));
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(LinkError::Closed),
        };
        Ok(Connection {
            framed,
            trace: TraceSwitch::default(),
            backlog: VecDeque::new(),
            next_id: 0,
            version,
        })
    }

    /// A fresh ActionID.
    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("tapir-{}", self.next_id)
    }

    /// Logs in, asking for `events` (`"off"` for none).
    pub async fn login(&mut self, config: &AmiConfig, events: &str) -> Result<(), LinkError> {
        let id = self.next_id();
        let action = Action::new("Login", &id)
            .with("Username", &config.username)
            .with("Secret", &config.secret)
            .with("Events", events);
        let reply = self.call(action, config.connect_timeout()).await?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(LinkError::Auth(reply.message().to_string()))
        }
    }

    pub async fn send(&mut self, action: Action) -> Result<(), LinkError> {
        if self.trace.is_on() {
            // Action's Debug redacts the secret.
            tracing::trace!(target: PROTOCOL_TRACE, direction = "out", "{action:?}");
        }
        self.framed.send(action).await?;
        Ok(())
    }

    /// The next message: kept ones first, then from the socket. Garbage is logged and skipped.
    /// Cancel-safe: nothing is lost when the future is dropped.
    pub async fn recv(&mut self) -> Result<Message, LinkError> {
        if let Some(message) = self.backlog.pop_front() {
            return Ok(message);
        }
        self.read().await
    }

    async fn read(&mut self) -> Result<Message, LinkError> {
        loop {
            match self.framed.next().await {
                Some(Ok(Frame::Message(message))) => {
                    if self.trace.is_on() {
                        tracing::trace!(target: PROTOCOL_TRACE, direction = "in", "{message:?}");
                    }
                    return Ok(message);
                }
                Some(Ok(Frame::Garbage(error))) => {
                    tracing::warn!(%error, "skipping a malformed AMI message");
                }
                Some(Ok(Frame::Banner(_))) => return Err(LinkError::Restarted),
                Some(Err(error)) => return Err(error.into()),
                None => return Err(LinkError::Closed),
            }
        }
    }

    /// Sends `action` and waits up to `limit` for its response and list items.
    pub async fn call(&mut self, action: Action, limit: Duration) -> Result<Reply, LinkError> {
        let id = action.id().to_string();
        let what = "waiting for a response";
        self.send(action).await?;
        timeout(limit, self.collect(&id))
            .await
            .map_err(|_| LinkError::Timeout(limit, what))?
    }

    /// Sends several actions at once and collects their replies in order.
    pub async fn call_all(
        &mut self,
        actions: Vec<Action>,
        limit: Duration,
    ) -> Result<Vec<Reply>, LinkError> {
        let ids: Vec<String> = actions.iter().map(|a| a.id().to_string()).collect();
        for action in actions {
            self.framed.feed(action).await?;
        }
        self.framed.flush().await?;
        let mut replies = Vec::with_capacity(ids.len());
        for id in ids {
            let reply = timeout(limit, self.collect(&id))
                .await
                .map_err(|_| LinkError::Timeout(limit, "waiting for a response"))??;
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Reads until the response to `id` (and its list) is complete; other messages, and
    /// replies to other ids, are kept for later.
    async fn collect(&mut self, id: &str) -> Result<Reply, LinkError> {
        let mut kept = VecDeque::new();
        let mut response: Option<Message> = None;
        let mut items = Vec::new();
        // Replies read earlier by another `collect` wait in the backlog.
        let mut earlier: VecDeque<Message> = std::mem::take(&mut self.backlog);
        loop {
            let message = match earlier.pop_front() {
                Some(message) => message,
                None => self.read().await?,
            };
            if message.action_id() != Some(id) || message.event() == Some("OriginateResponse") {
                kept.push_back(message);
                continue;
            }
            match &response {
                None if message.response().is_some() => {
                    let is_list = message.starts_list();
                    response = Some(message);
                    if !is_list {
                        break;
                    }
                }
                Some(_) if message.is_list_end() => break,
                Some(_) => items.push(message),
                None => kept.push_back(message),
            }
        }
        kept.extend(earlier);
        self.backlog = kept;
        let response = response.ok_or_else(|| LinkError::Protocol("no response".into()))?;
        Ok(Reply { response, items })
    }
}
