//! One CSTA connection: TCP, framing, invoke ids, the protocol trace, and the session
//! handshake of either dialect.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tapir_provider::{PROTOCOL_TRACE, TraceSwitch};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Framed;

use crate::codec::{CstaCodec, Decoded, EVENT_INVOKE, Frame};
use crate::config::{CstaConfig, Dialect};
use crate::message::{self, CSTA_ED4, Incoming, Request};

/// How long `auto` waits for an OSV switch's SystemStatus before trying ECMA-354.
const AUTO_WAIT: Duration = Duration::from_millis(1_500);

/// Why the link failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("no answer to {0} in time")]
    Timeout(&'static str),
    #[error("the switch closed the connection")]
    Closed,
    #[error("i/o error: {0}")]
    Io(String),
    #[error("the switch refused the session: {0}")]
    Refused(String),
    #[error("keep-alive not answered twice")]
    Dead,
}

/// A connected, established CSTA link.
#[derive(Debug)]
pub struct Link {
    framed: Framed<TcpStream, CstaCodec>,
    next_invoke: u16,
    /// The CSTA namespace requests are written in.
    ns: String,
    pub dialect: Dialect,
    pub session_id: Option<String>,
    /// What the switch called itself (session id or register id), for the connection test.
    pub switch: String,
    trace: TraceSwitch,
}

impl Link {
    /// Connects and establishes the session.
    pub async fn open(config: &CstaConfig, trace: TraceSwitch) -> Result<Link, LinkError> {
        let address = config.address();
        let connect = TcpStream::connect(&address);
        let stream = timeout(config.request_timeout(), connect)
            .await
            .map_err(|_| LinkError::Connect {
                address: address.clone(),
                reason: "timed out".into(),
            })?
            .map_err(|e| LinkError::Connect {
                address: address.clone(),
                reason: e.to_string(),
            })?;
        let mut link = Link {
            framed: Framed::new(stream, CstaCodec::default()),
            next_invoke: 0,
            ns: CSTA_ED4.into(),
            dialect: config.dialect,
            session_id: None,
            switch: String::new(),
            trace,
        };
        link.establish(config).await?;
        Ok(link)
    }

    async fn establish(&mut self, config: &CstaConfig) -> Result<(), LinkError> {
        let osv_wait = match config.dialect {
            Dialect::Ecma354 => None,
            Dialect::Osv => Some(config.request_timeout()),
            Dialect::Auto => Some(AUTO_WAIT.min(config.request_timeout())),
        };
        if let Some(wait) = osv_wait {
            let deadline = Instant::now() + wait;
            loop {
                match timeout_at(deadline, self.recv()).await {
                    Ok(Ok((invoke, Incoming::SystemStatus { .. }))) => {
                        self.send(invoke, &Request::SystemStatusResponse).await?;
                        return self.register(config).await;
                    }
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => return Err(e),
                    Err(_) if config.dialect == Dialect::Osv => {
                        return Err(LinkError::Timeout("waiting for the switch's SystemStatus"));
                    }
                    Err(_) => break,
                }
            }
        }
        self.start_session(config).await
    }

    async fn register(&mut self, config: &CstaConfig) -> Result<(), LinkError> {
        self.dialect = Dialect::Osv;
        match self.call(&Request::SystemRegister, config).await? {
            Incoming::SystemRegistered { register_id } => {
                self.switch = register_id.unwrap_or_else(|| "(no register id)".into());
                Ok(())
            }
            Incoming::Error(e) => Err(LinkError::Refused(format!("{} {}", e.category, e.value))),
            _ => Err(LinkError::Refused(
                "unexpected answer to SystemRegister".into(),
            )),
        }
    }

    async fn start_session(&mut self, config: &CstaConfig) -> Result<(), LinkError> {
        self.dialect = Dialect::Ecma354;
        let request = Request::StartApplicationSession {
            application_id: config.application_id.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            duration_s: config.session_duration_s,
        };
        match self.call(&request, config).await? {
            Incoming::SessionStarted {
                session_id,
                version,
                ..
            } => {
                if let Some(version) = version {
                    self.ns = version;
                }
                self.switch = format!("session {session_id}");
                self.session_id = Some(session_id);
                Ok(())
            }
            Incoming::SessionRefused { reason } => Err(LinkError::Refused(reason)),
            Incoming::Error(e) => Err(LinkError::Refused(format!("{} {}", e.category, e.value))),
            _ => Err(LinkError::Refused(
                "unexpected answer to StartApplicationSession".into(),
            )),
        }
    }

    /// The next free invoke id (0..=9998), skipping ids still outstanding.
    pub fn allocate<V>(&mut self, outstanding: &HashMap<u16, V>) -> u16 {
        loop {
            let id = self.next_invoke;
            self.next_invoke = (self.next_invoke + 1) % EVENT_INVOKE;
            if !outstanding.contains_key(&id) {
                return id;
            }
        }
    }

    /// Sends one request (or response) with `invoke`.
    pub async fn send(&mut self, invoke: u16, request: &Request) -> Result<(), LinkError> {
        let xml = request.to_xml(&self.ns);
        if self.trace.is_on() {
            let redacted = message::redact(&xml);
            tracing::trace!(target: PROTOCOL_TRACE, direction = "out", invoke, "{redacted}");
        }
        let frame = Frame {
            invoke,
            body: Bytes::from(xml),
        };
        self.framed
            .send(frame)
            .await
            .map_err(|e| LinkError::Io(e.to_string()))
    }

    /// The next message, skipping (and logging) bad frames and documents.
    pub async fn recv(&mut self) -> Result<(u16, Incoming), LinkError> {
        loop {
            let frame = match self.framed.next().await {
                None => return Err(LinkError::Closed),
                Some(Err(e)) => return Err(LinkError::Io(e.to_string())),
                Some(Ok(Decoded::Skipped { bytes, error })) => {
                    tracing::warn!(bytes, %error, "skipped bytes that are not a CSTA frame");
                    continue;
                }
                Some(Ok(Decoded::Frame(frame))) => frame,
            };
            if self.trace.is_on() {
                let text = String::from_utf8_lossy(&frame.body);
                tracing::trace!(target: PROTOCOL_TRACE, direction = "in", invoke = frame.invoke, "{text}");
            }
            match message::parse(&frame.body) {
                Ok(incoming) => return Ok((frame.invoke, incoming)),
                Err(error) => {
                    tracing::warn!(invoke = frame.invoke, %error, "skipped a malformed CSTA message");
                }
            }
        }
    }

    /// Sends `request` and waits for its answer during set-up, answering the switch's status
    /// polls and dropping events (the snapshot that follows covers them).
    pub async fn call(
        &mut self,
        request: &Request,
        config: &CstaConfig,
    ) -> Result<Incoming, LinkError> {
        let invoke = self.allocate(&HashMap::<u16, ()>::new());
        self.send(invoke, request).await?;
        let deadline = Instant::now() + config.request_timeout();
        loop {
            let (id, incoming) = timeout_at(deadline, self.recv())
                .await
                .map_err(|_| LinkError::Timeout(request.name()))??;
            match incoming {
                Incoming::SystemStatus { .. } => {
                    self.send(id, &Request::SystemStatusResponse).await?;
                }
                answer if id == invoke => return Ok(answer),
                _ => {}
            }
        }
    }
}
