//! One CSTA connection: TCP (or TLS), framing, invoke ids, the protocol trace, the session
//! handshake of either dialect, and the set-up requests (snapshots, segmented or not).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tapir_provider::{PROTOCOL_TRACE, TraceSwitch};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Framed;

use crate::codec::{CstaCodec, Decoded, EVENT_INVOKE, Frame};
use crate::config::{CstaConfig, Dialect};
use crate::message::{self, CSTA_ED4, Incoming, Request, SnapshotCall};

/// A byte stream the link runs over: plain TCP or TLS.
trait CstaStream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> CstaStream for T {}

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
    #[error("TLS: {0}")]
    Tls(String),
}

/// A connected, established CSTA link.
pub struct Link {
    framed: Framed<Box<dyn CstaStream>, CstaCodec>,
    next_invoke: u16,
    /// The CSTA namespace requests are written in.
    ns: String,
    pub dialect: Dialect,
    pub session_id: Option<String>,
    /// What the switch called itself (session id or register id), for the connection test.
    pub switch: String,
    trace: TraceSwitch,
    /// What arrived while set-up waited for an answer and still matters: events (applied to
    /// the mapping in order), monitors the switch ended, snapshot segments.
    early: Vec<Incoming>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("dialect", &self.dialect)
            .field("session_id", &self.session_id)
            .field("switch", &self.switch)
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connects and establishes the session.
    pub async fn open(config: &CstaConfig, trace: TraceSwitch) -> Result<Link, LinkError> {
        let stream = connect(config).await?;
        let mut link = Link {
            framed: Framed::new(stream, CstaCodec::default()),
            next_invoke: 0,
            ns: CSTA_ED4.into(),
            dialect: config.dialect,
            session_id: None,
            switch: String::new(),
            trace,
            early: Vec::new(),
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
    /// polls and keeping what else arrives in [`Link::take_early`].
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
            if let Some(answer) = self.keep_or_answer(id, incoming).await?
                && id == invoke
            {
                return Ok(answer);
            }
        }
    }

    /// Answers the switch's own requests and keeps events, ended monitors and snapshot
    /// segments; returns anything else (an answer) for the caller to match.
    async fn keep_or_answer(
        &mut self,
        invoke: u16,
        incoming: Incoming,
    ) -> Result<Option<Incoming>, LinkError> {
        match incoming {
            Incoming::SystemStatus { .. } | Incoming::RequestSystemStatus => {
                self.send(invoke, &Request::SystemStatusResponse).await?;
            }
            Incoming::MonitorEnded { .. } => {
                self.send(invoke, &Request::MonitorStopResponse).await?;
                self.early.push(incoming);
            }
            Incoming::Event(_) | Incoming::SnapshotSegment { .. } => self.early.push(incoming),
            answer => return Ok(Some(answer)),
        }
        Ok(None)
    }

    /// Events and ended monitors that arrived during set-up, oldest first.
    pub fn take_early(&mut self) -> Vec<Incoming> {
        std::mem::take(&mut self.early)
    }

    /// The calls at `device` (`None` when the switch refused the snapshot). A switch may
    /// answer with a `serviceCrossRefID` and deliver the calls in `SnapshotDeviceData`
    /// segments; all of them are read, in segment order, before anything is rebuilt.
    pub async fn snapshot(
        &mut self,
        device: &str,
        config: &CstaConfig,
    ) -> Result<Option<Vec<SnapshotCall>>, LinkError> {
        let request = Request::SnapshotDevice {
            device: device.to_owned(),
        };
        match self.call(&request, config).await? {
            Incoming::Snapshot {
                calls,
                segmented: None,
            } => Ok(Some(calls)),
            Incoming::Snapshot {
                segmented: Some(cross_ref),
                ..
            } => self.segments(&cross_ref, config).await.map(Some),
            other => {
                tracing::warn!(device, answer = ?other, "SnapshotDevice refused");
                Ok(None)
            }
        }
    }

    /// Collects the segments of snapshot `cross_ref` up to the one marked last; each may take
    /// the request timeout.
    async fn segments(
        &mut self,
        cross_ref: &str,
        config: &CstaConfig,
    ) -> Result<Vec<SnapshotCall>, LinkError> {
        let mut segments = BTreeMap::new();
        let mut complete = false;
        loop {
            // Segments may have come before the response, or while waiting for the next one.
            let (mine, rest): (Vec<Incoming>, Vec<Incoming>) = self.early.drain(..).partition(
                |i| matches!(i, Incoming::SnapshotSegment { cross_ref: c, .. } if c == cross_ref),
            );
            self.early = rest;
            for segment in mine {
                if let Incoming::SnapshotSegment {
                    segment,
                    last,
                    calls,
                    ..
                } = segment
                {
                    complete |= last;
                    segments.insert(segment, calls);
                }
            }
            if complete {
                return Ok(segments.into_values().flatten().collect());
            }
            let (id, incoming) = timeout(config.request_timeout(), self.recv())
                .await
                .map_err(|_| LinkError::Timeout("SnapshotDeviceData"))??;
            if let Some(other) = self.keep_or_answer(id, incoming).await? {
                tracing::debug!(invoke = id, answer = ?other, "an answer nobody waits for");
            }
        }
    }
}

/// TCP to the switch, wrapped in TLS when configured; within the request timeout.
async fn connect(config: &CstaConfig) -> Result<Box<dyn CstaStream>, LinkError> {
    let address = config.address();
    let limit = config.request_timeout();
    let stream = timeout(limit, TcpStream::connect(&address))
        .await
        .map_err(|_| LinkError::Connect {
            address: address.clone(),
            reason: "timed out".into(),
        })?
        .map_err(|e| LinkError::Connect {
            address: address.clone(),
            reason: e.to_string(),
        })?;
    // Requests are small and a command's latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    if !config.tls {
        return Ok(Box::new(stream));
    }
    let tls = timeout(
        limit,
        tapir_provider::tls::connect(&config.tls_target(), stream),
    )
    .await
    .map_err(|_| LinkError::Timeout("the TLS handshake"))?
    .map_err(|e| LinkError::Tls(e.to_string()))?;
    Ok(Box::new(tls))
}
