//! The connection to the tapir server, on the TSP's own thread.
//!
//! TAPISRV's threads never wait on the network: TSPI functions update [`Devices`] under a
//! short lock and hand commands to this thread through a channel. This thread owns the
//! WebSocket, applies what the server sends, and is the only one that calls TAPISRV back, so
//! callbacks never overlap and arrive in order. When the server is unreachable it retries with
//! capped, jittered backoff, and resumes the event stream from the last sequence number (or
//! takes a fresh snapshot when the server restarted).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tapir_wire::{ClientMessage, LoginDto, ServerMessage};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tracing::{debug, info, warn};
use windows_sys::Win32::Devices::Tapi::{
    LINE_CALLINFO, LINE_CALLSTATE, LINE_GENERATE, LINE_LINEDEVSTATE, LINEMEDIAMODE_INTERACTIVEVOICE,
};

use crate::config::{Credentials, TspConfig};
use crate::devices::{CallHandle, DeviceId, Devices, LineErr, Notice, OpenLine, Outgoing};

/// How TAPISRV is called back. On Windows these are the procedures TAPISRV handed over; in
/// tests, a recorder.
pub trait Tapisrv: Send + Sync + 'static {
    /// `ASYNC_COMPLETION`.
    fn completion(&self, request: u32, result: LineErr);
    /// `LINEEVENT` on an open line.
    fn line_event(&self, line: OpenLine, tapi_call: usize, message: u32, params: [usize; 3]);
    /// `LINE_NEWCALL`: returns TAPISRV's handle for the call, 0 when it could not take it.
    fn new_call(&self, line: OpenLine, call: CallHandle) -> usize;
    /// `LINE_CREATE` through the procedure given at `providerEnumDevices`.
    fn line_create(&self, temp_id: usize);
    /// `LINE_REMOVE` through the same procedure.
    fn line_remove(&self, device: DeviceId);
}

enum EngineMessage {
    Send(Outgoing),
    Deliver(Vec<Notice>),
    Shutdown,
}

/// The running connection thread.
pub struct Engine {
    messages: mpsc::UnboundedSender<EngineMessage>,
    thread: Option<JoinHandle<()>>,
    first_snapshot: Arc<(Mutex<bool>, Condvar)>,
}

/// Why the TSP could not start its connection thread.
#[derive(Debug, Error)]
#[error("cannot start the connection thread: {0}")]
pub struct StartError(#[from] std::io::Error);

/// How long the server may stay silent (pings go every `PING_EVERY`) before the connection
/// counts as dead.
const PING_EVERY: Duration = Duration::from_secs(15);
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

impl Engine {
    pub fn start(
        config: TspConfig,
        devices: Arc<Mutex<Devices>>,
        tapisrv: Arc<dyn Tapisrv>,
    ) -> Result<Engine, StartError> {
        let (messages, inbox) = mpsc::unbounded_channel();
        let first_snapshot = Arc::new((Mutex::new(false), Condvar::new()));
        let link = Link {
            config,
            devices,
            tapisrv,
            first_snapshot: first_snapshot.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("tapir-tsp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        warn!("cannot build the runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(link.run(inbox));
            })?;
        Ok(Engine {
            messages,
            thread: Some(thread),
            first_snapshot,
        })
    }

    /// Waits (bounded) until the server's first snapshot is applied; false on timeout.
    pub fn wait_for_snapshot(&self, timeout: Duration) -> bool {
        let (lock, ready) = &*self.first_snapshot;
        let guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = ready
            .wait_timeout_while(guard, timeout, |seen| !*seen)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard
    }

    /// Queues a command for the server (never blocks).
    pub fn send(&self, outgoing: Outgoing) {
        let _ = self.messages.send(EngineMessage::Send(outgoing));
    }

    /// Queues notices for delivery on the engine's thread (never blocks).
    pub fn deliver(&self, notices: Vec<Notice>) {
        if !notices.is_empty() {
            let _ = self.messages.send(EngineMessage::Deliver(notices));
        }
    }

    /// Closes the connection and waits for the thread to end.
    pub fn shutdown(mut self) {
        let _ = self.messages.send(EngineMessage::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How a session with the server ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

#[derive(Debug, Error)]
enum ConnectError {
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("login failed: {0}")]
    Login(String),
    #[error("connect failed: {0}")]
    Connect(String),
}

struct Link {
    config: TspConfig,
    devices: Arc<Mutex<Devices>>,
    tapisrv: Arc<dyn Tapisrv>,
    first_snapshot: Arc<(Mutex<bool>, Condvar)>,
}

impl Link {
    fn devices(&self) -> MutexGuard<'_, Devices> {
        self.devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn run(self, mut inbox: mpsc::UnboundedReceiver<EngineMessage>) {
        let mut failures = 0u32;
        loop {
            match self.session(&mut inbox, &mut failures).await {
                SessionEnd::Shutdown => return,
                SessionEnd::Lost(reason) => {
                    warn!(server = %self.config.server, "connection to tapir lost: {reason}");
                    let notices = self.devices().connection_lost();
                    self.deliver(notices);
                }
            }
            failures = failures.saturating_add(1);
            let pause = backoff(failures);
            debug!("reconnecting in {} ms", pause.as_millis());
            if self.idle(&mut inbox, pause).await {
                return;
            }
        }
    }

    /// Waits out a backoff pause while still answering TSPI traffic; true on shutdown.
    async fn idle(
        &self,
        inbox: &mut mpsc::UnboundedReceiver<EngineMessage>,
        pause: Duration,
    ) -> bool {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                message = inbox.recv() => match message {
                    None | Some(EngineMessage::Shutdown) => return true,
                    Some(EngineMessage::Send(outgoing)) => {
                        let notices = self.devices().unsent(&outgoing.id);
                        self.deliver(notices);
                    }
                    Some(EngineMessage::Deliver(notices)) => self.deliver(notices),
                },
            }
        }
    }

    async fn session(
        &self,
        inbox: &mut mpsc::UnboundedReceiver<EngineMessage>,
        failures: &mut u32,
    ) -> SessionEnd {
        let socket = match connect(&self.config).await {
            Ok(socket) => socket,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        info!(server = %self.config.server, "connected to tapir");
        let (mut sink, mut stream) = socket.split();
        let resume = self.devices().resume_point();
        let subscribe = ClientMessage::Subscribe {
            since: resume.map(|(seq, _)| seq),
            epoch: resume.map(|(_, epoch)| epoch),
            lines: None,
        };
        // The pong comes after the replay (or snapshot): when nothing was missed, it is what
        // tells that the stream resumed.
        let ping = ClientMessage::Ping { id: None };
        for message in [subscribe, ping] {
            if let Err(e) = sink.send(text(&message)).await {
                return SessionEnd::Lost(e.to_string());
            }
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(body))) => {
                        last_heard = Instant::now();
                        *failures = 0;
                        self.on_server_message(body.as_str());
                    }
                    Some(Ok(Message::Close(_))) | None => return SessionEnd::Lost("the server closed the connection".into()),
                    Some(Ok(_)) => last_heard = Instant::now(),
                    Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                },
                message = inbox.recv() => match message {
                    None | Some(EngineMessage::Shutdown) => {
                        let _ = sink.send(Message::Close(None)).await;
                        return SessionEnd::Shutdown;
                    }
                    Some(EngineMessage::Send(outgoing)) => {
                        let command = ClientMessage::Command { id: outgoing.id.clone(), command: outgoing.command };
                        if let Err(e) = sink.send(text(&command)).await {
                            let notices = self.devices().unsent(&outgoing.id);
                            self.deliver(notices);
                            return SessionEnd::Lost(e.to_string());
                        }
                    }
                    Some(EngineMessage::Deliver(notices)) => self.deliver(notices),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENCE_LIMIT {
                        return SessionEnd::Lost("the server stopped answering".into());
                    }
                    if let Err(e) = sink.send(text(&ClientMessage::Ping { id: None })).await {
                        return SessionEnd::Lost(e.to_string());
                    }
                }
            }
        }
    }

    fn on_server_message(&self, body: &str) {
        let message: ServerMessage = match serde_json::from_str(body) {
            Ok(message) => message,
            Err(e) => {
                warn!("unreadable message from the server: {e}");
                return;
            }
        };
        // Events and pongs after a reconnect mean the stream resumed (a snapshot says so
        // itself); an error does not.
        let resumes = matches!(
            message,
            ServerMessage::Event(_) | ServerMessage::Pong { .. }
        );
        let notices = {
            let mut devices = self.devices();
            let mut notices = match message {
                ServerMessage::Snapshot(snapshot) => {
                    let notices = devices.apply_snapshot(snapshot);
                    self.snapshot_seen();
                    notices
                }
                ServerMessage::Event(event) => devices.apply_event(event.seq, event.event),
                ServerMessage::Result {
                    id,
                    ok,
                    call,
                    parked_at,
                    error,
                    ..
                } => devices.result(&id, ok, call, parked_at.as_deref(), error.as_ref()),
                ServerMessage::Error { error } => {
                    warn!("the server refused a message: {}", error.message);
                    Vec::new()
                }
                ServerMessage::Pong { .. } => Vec::new(),
            };
            if resumes && !devices.connected() {
                notices.extend(devices.resumed());
            }
            notices
        };
        self.deliver(notices);
    }

    fn snapshot_seen(&self) {
        let (lock, ready) = &*self.first_snapshot;
        *lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        ready.notify_all();
    }

    /// Calls TAPISRV back, one notice after the other, without holding the lock.
    fn deliver(&self, notices: Vec<Notice>) {
        for notice in notices {
            self.deliver_one(notice);
        }
    }

    fn deliver_one(&self, notice: Notice) {
        let tapisrv = &*self.tapisrv;
        match notice {
            Notice::Completion { request, result } => tapisrv.completion(request, result),
            Notice::Parked { buffer, place } => buffer.write(&place),
            Notice::LineCreate { temp_id } => tapisrv.line_create(temp_id),
            Notice::LineRemove { device } => tapisrv.line_remove(device),
            Notice::LineDevState { line, state } => {
                let open = self.devices().open_line(line);
                if let Some(open) = open {
                    tapisrv.line_event(open, 0, LINE_LINEDEVSTATE as u32, [state as usize, 0, 0]);
                }
            }
            Notice::NewCall { line, call } => {
                let open = self.devices().open_line(line);
                if let Some(open) = open {
                    let tapi_call = tapisrv.new_call(open, call);
                    self.devices().bind_tapi_call(call, tapi_call);
                }
            }
            Notice::CallState {
                line,
                call,
                state,
                mode,
                conference,
            } => {
                let (target, parent) = {
                    let devices = self.devices();
                    (
                        devices.tapi_target(line, call),
                        conference.and_then(|parent| devices.tapi_target(line, parent)),
                    )
                };
                if let Some((open, tapi_call)) = target {
                    // A conferenced call names its conference's handle instead of a mode.
                    let detail = parent.map(|(_, handle)| handle).unwrap_or(mode as usize);
                    let params = [
                        state as usize,
                        detail,
                        LINEMEDIAMODE_INTERACTIVEVOICE as usize,
                    ];
                    tapisrv.line_event(open, tapi_call, LINE_CALLSTATE as u32, params);
                }
            }
            Notice::CallInfo {
                line,
                call,
                changed,
            } => {
                let target = self.devices().tapi_target(line, call);
                if let Some((open, tapi_call)) = target {
                    tapisrv.line_event(
                        open,
                        tapi_call,
                        LINE_CALLINFO as u32,
                        [changed as usize, 0, 0],
                    );
                }
            }
            Notice::Generate {
                line,
                call,
                termination,
                end_to_end,
            } => {
                let target = self.devices().tapi_target(line, call);
                if let Some((open, tapi_call)) = target {
                    let params = [termination as usize, end_to_end as usize, 0];
                    tapisrv.line_event(open, tapi_call, LINE_GENERATE as u32, params);
                }
            }
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket: TLS with tapir's client trust for `wss://`, a session token from the
/// user's password when no application token is configured.
async fn connect(config: &TspConfig) -> Result<Socket, ConnectError> {
    let url = config.ws_url();
    let tls = if url.starts_with("wss://") {
        Some(
            tapir_tls::client_tls::client_config(config.ca_file.as_deref())
                .map_err(|e| ConnectError::Tls(e.to_string()))?,
        )
    } else {
        None
    };
    let token = match &config.credentials {
        Credentials::Token(token) => token.clone(),
        Credentials::Password { user, password } => {
            login(config, user, password, tls.clone()).await?
        }
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectError::Connect("the token is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", bearer);
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    let (socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| ConnectError::Connect("timed out".into()))?
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    Ok(socket)
}

/// Exchanges a user's name and password for a session token.
async fn login(
    config: &TspConfig,
    user: &str,
    password: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<String, ConnectError> {
    let mut client = reqwest::Client::builder().timeout(CONNECT_TIMEOUT);
    if let Some(tls) = tls {
        client = client.tls_backend_preconfigured(Arc::unwrap_or_clone(tls));
    }
    let client = client
        .build()
        .map_err(|e| ConnectError::Login(e.to_string()))?;
    let url = format!("{}/api/v1/login", config.http_base());
    let response = client
        .post(url)
        .json(&serde_json::json!({ "user": user, "password": password }))
        .send()
        .await
        .map_err(|e| ConnectError::Login(e.to_string()))?;
    if !response.status().is_success() {
        return Err(ConnectError::Login(format!(
            "the server answered {}",
            response.status()
        )));
    }
    let login: LoginDto = response
        .json()
        .await
        .map_err(|e| ConnectError::Login(e.to_string()))?;
    Ok(login.token)
}

/// What "Test connection" found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReport {
    /// PBX links and their state, e.g. `sim (sim): up`.
    pub instances: Vec<String>,
    /// Lines the configured account sees, and how many of them are in service.
    pub lines: usize,
    pub lines_in_service: usize,
}

impl std::fmt::Display for ConnectionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connected: {} lines ({} in service); PBX links: {}",
            self.lines,
            self.lines_in_service,
            if self.instances.is_empty() {
                "none visible".to_owned()
            } else {
                self.instances.join(", ")
            }
        )
    }
}

/// Connects with `config` as the TSP would and reads one snapshot: the configuration
/// dialog's "Test connection" and `TapirTestConnection`. Runs on its own thread and runtime,
/// so it may be called from any thread.
pub fn test_connection(config: &TspConfig) -> Result<ConnectionReport, String> {
    let config = config.clone();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut socket = connect(&config).await.map_err(|e| e.to_string())?;
            let subscribe = ClientMessage::Subscribe {
                since: None,
                epoch: None,
                lines: None,
            };
            socket
                .send(text(&subscribe))
                .await
                .map_err(|e| e.to_string())?;
            let snapshot = tokio::time::timeout(CONNECT_TIMEOUT, first_snapshot(&mut socket))
                .await
                .map_err(|_| "connected, but no snapshot came".to_owned())??;
            let _ = socket.send(Message::Close(None)).await;
            Ok(ConnectionReport {
                instances: snapshot
                    .instances
                    .iter()
                    .map(|i| format!("{} ({}): {}", i.name, i.driver, i.status))
                    .collect(),
                lines: snapshot.lines.len(),
                lines_in_service: snapshot
                    .lines
                    .iter()
                    .filter(|l| l.status == "in_service")
                    .count(),
            })
        })
    });
    worker
        .join()
        .unwrap_or_else(|_| Err("the test failed unexpectedly".into()))
}

async fn first_snapshot(socket: &mut Socket) -> Result<tapir_wire::SnapshotDto, String> {
    while let Some(frame) = socket.next().await {
        match frame.map_err(|e| e.to_string())? {
            Message::Text(body) => match serde_json::from_str::<ServerMessage>(body.as_str()) {
                Ok(ServerMessage::Snapshot(snapshot)) => return Ok(snapshot),
                Ok(ServerMessage::Error { error }) => return Err(error.message),
                _ => {}
            },
            Message::Close(_) => break,
            _ => {}
        }
    }
    Err("the server closed the connection".into())
}

fn text(message: &ClientMessage) -> Message {
    // Serialising our own message types cannot fail.
    Message::text(serde_json::to_string(message).unwrap_or_default())
}

/// Capped exponential backoff with jitter, so that many TSPs do not reconnect in step after a
/// server restart.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(8);
    let base = BACKOFF_FIRST.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Up to a quarter more, from the clock's low bits.
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 4000.0);
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let first = backoff(1);
        assert!(first >= BACKOFF_FIRST && first <= BACKOFF_FIRST.mul_f64(1.25));
        let fourth = backoff(4);
        assert!(fourth >= BACKOFF_FIRST * 8 && fourth <= (BACKOFF_FIRST * 8).mul_f64(1.25));
        let late = backoff(40);
        assert!(late >= BACKOFF_CAP && late <= BACKOFF_CAP.mul_f64(1.25));
    }
}
