//! The CLI's connection to a tapir server: REST for queries and commands, the WebSocket for
//! `watch`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tapir_wire::{
    CallDto, CommandResultDto, DialBody, DigitsBody, DndBody, ErrorDto, ForwardDto, ForwardsBody,
    InstanceDto, InstanceTestDto, LineDto, LogLevelBody, ParkBody, PbxSimActionDto,
    PickupOntoLineBody, PurgeBody, PurgedDto, ReloadDto, SimActionDto, SwapBody, TraceBody,
    UnparkBody,
};

/// The server address used when none is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:5380";

/// Why a request to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{0}")]
    Server(ErrorDto),
    #[error(
        "{0} (log in with `tapir login`, pass --token or TAPIR_TOKEN, or run the CLI as the \
         user who runs `tapir serve` on this machine)"
    )]
    Unauthorized(ErrorDto),
    #[error(
        "cannot reach the tapir server at {server}: {reason} (is `tapir serve` running? \
             set --server or TAPIR_SERVER)"
    )]
    Unreachable { server: String, reason: String },
    #[error("unexpected answer from the server ({status}): {body}")]
    Unexpected { status: StatusCode, body: String },
    #[error("{0}")]
    Usage(String),
}

/// `text` as one URL path segment or query value: user names like `DOMAIN\\user` keep their
/// backslash instead of becoming a path separator.
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An error with its causes, which carry the useful part (e.g. a certificate problem).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A call action without parameters.
#[derive(Debug, Clone, Copy)]
pub enum CallAction {
    Accept,
    Answer,
    Drop,
    Hold,
    Unhold,
    CompleteTransfer,
    Conference,
}

impl CallAction {
    fn path(self) -> &'static str {
        match self {
            CallAction::Accept => "accept",
            CallAction::Answer => "answer",
            CallAction::Drop => "drop",
            CallAction::Hold => "hold",
            CallAction::Unhold => "unhold",
            CallAction::CompleteTransfer => "complete-transfer",
            CallAction::Conference => "conference",
        }
    }
}

/// A call action that dials a number.
#[derive(Debug, Clone, Copy)]
pub enum DialAction {
    Transfer,
    Consult,
    Redirect,
}

impl DialAction {
    fn path(self) -> &'static str {
        match self {
            DialAction::Transfer => "transfer",
            DialAction::Consult => "consult",
            DialAction::Redirect => "redirect",
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The bearer token sent with every request, if any.
    token: Option<String>,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    /// A client of `server` that authenticates with `token` and also trusts the
    /// certificates in `ca_file` (for a server with a self-signed certificate).
    pub fn new(
        server: &str,
        token: Option<String>,
        ca_file: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "--server must be an http:// or https:// URL, not {server:?}"
            )));
        }
        let tls = tapir_tls::client_tls::client_config(ca_file)
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(Arc::unwrap_or_clone(tls.clone()))
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            http,
            base,
            token,
            tls,
        })
    }

    /// The token the client sends, for the WebSocket.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The TLS settings, for the WebSocket.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The WebSocket URL of the server.
    pub fn ws_url(&self) -> String {
        let rest = self.base.strip_prefix("http").unwrap_or(&self.base);
        format!("ws{rest}{}/ws", tapir_wire::API_PREFIX)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, tapir_wire::API_PREFIX)
    }

    /// Sends a request with the caller's token and returns the body of a success.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Bytes, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            server: self.base.clone(),
            reason: error_chain(&e.without_url()),
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                server: self.base.clone(),
                reason: e.to_string(),
            })?;
        if status.is_success() {
            return Ok(body);
        }
        match serde_json::from_slice::<ErrorDto>(&body) {
            Ok(error) if status == StatusCode::UNAUTHORIZED => {
                Err(ClientError::Unauthorized(error))
            }
            Ok(error) => Err(ClientError::Server(error)),
            Err(_) => Err(ClientError::Unexpected {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let body = self.exchange(request).await?;
        serde_json::from_slice(&body).map_err(|_| ClientError::Unexpected {
            status: StatusCode::OK,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// A request whose success has no body (204), or whose body is not JSON.
    pub(crate) async fn request_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        content_type: &str,
    ) -> Result<String, ClientError> {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let bytes = self.exchange(request).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    pub(crate) async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    /// A JSON request whose success has no body.
    pub(crate) async fn call_empty<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ClientError> {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.exchange(request).await.map(|_| ())
    }

    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub(crate) async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub async fn instances(&self) -> Result<Vec<InstanceDto>, ClientError> {
        self.get("/instances").await
    }

    pub async fn lines(&self) -> Result<Vec<LineDto>, ClientError> {
        self.get("/lines").await
    }

    pub async fn calls(&self, line: Option<u32>) -> Result<Vec<CallDto>, ClientError> {
        match line {
            Some(line) => self.get(&format!("/calls?line={line}")).await,
            None => self.get("/calls").await,
        }
    }

    /// The id of the line a user names: an extension (`201`), `instance/extension`
    /// (`office/201`), or a permanent id written `#7`.
    pub async fn resolve_line(&self, name: &str) -> Result<u32, ClientError> {
        if let Some(id) = name.strip_prefix('#') {
            return id
                .parse()
                .map_err(|_| ClientError::Usage(format!("invalid line id {name:?}")));
        }
        let lines = self.lines().await?;
        let (instance, address) = match name.split_once('/') {
            Some((instance, address)) => (Some(instance), address),
            None => (None, name),
        };
        let matches: Vec<&LineDto> = lines
            .iter()
            .filter(|l| l.address == address && instance.is_none_or(|i| i == l.instance))
            .collect();
        match matches.as_slice() {
            [line] => Ok(line.id),
            [] => Err(ClientError::Usage(format!(
                "no line {name:?}; `tapir lines` lists them (use an extension, \
                 instance/extension or #id)"
            ))),
            several => Err(ClientError::Usage(format!(
                "{name:?} names {} lines ({}); write instance/extension or #id",
                several.len(),
                several
                    .iter()
                    .map(|l| format!("{}/{} = #{}", l.instance, l.address, l.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    pub async fn make_call(&self, line: u32, to: &str) -> Result<CommandResultDto, ClientError> {
        self.post(&format!("/lines/{line}/calls"), &DialBody { to: to.into() })
            .await
    }

    pub async fn call_action(
        &self,
        call: u64,
        action: CallAction,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(
            &format!("/calls/{call}/{}", action.path()),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn dial_action(
        &self,
        call: u64,
        action: DialAction,
        to: &str,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(
            &format!("/calls/{call}/{}", action.path()),
            &DialBody { to: to.into() },
        )
        .await
    }

    pub async fn digits(&self, call: u64, digits: &str) -> Result<CommandResultDto, ClientError> {
        self.post(
            &format!("/calls/{call}/digits"),
            &DigitsBody {
                digits: digits.into(),
            },
        )
        .await
    }

    pub async fn swap(
        &self,
        call: u64,
        with: Option<u64>,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(&format!("/calls/{call}/swap"), &SwapBody { with })
            .await
    }

    pub async fn pickup(
        &self,
        line: u32,
        body: PickupOntoLineBody,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(&format!("/lines/{line}/pickup"), &body).await
    }

    pub async fn park(
        &self,
        call: u64,
        to: Option<String>,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(&format!("/calls/{call}/park"), &ParkBody { to })
            .await
    }

    pub async fn unpark(&self, line: u32, from: &str) -> Result<CommandResultDto, ClientError> {
        self.post(
            &format!("/lines/{line}/unpark"),
            &UnparkBody { from: from.into() },
        )
        .await
    }

    pub async fn set_forwards(
        &self,
        line: u32,
        forwards: Vec<ForwardDto>,
    ) -> Result<CommandResultDto, ClientError> {
        self.put(
            &format!("/lines/{line}/forwards"),
            &ForwardsBody { forwards },
        )
        .await
    }

    pub async fn set_dnd(&self, line: u32, enabled: bool) -> Result<CommandResultDto, ClientError> {
        self.put(&format!("/lines/{line}/dnd"), &DndBody { enabled })
            .await
    }

    pub async fn purge(&self, lines: Vec<u32>) -> Result<PurgedDto, ClientError> {
        self.post("/lines/purge", &PurgeBody { lines }).await
    }

    pub async fn reload(&self) -> Result<ReloadDto, ClientError> {
        self.post("/reload", &serde_json::json!({})).await
    }

    pub async fn test_instance(&self, name: &str) -> Result<InstanceTestDto, ClientError> {
        self.post(&format!("/instances/{name}/test"), &serde_json::json!({}))
            .await
    }

    pub async fn set_log_level(
        &self,
        name: &str,
        level: &str,
    ) -> Result<LogLevelBody, ClientError> {
        self.put(
            &format!("/instances/{name}/log"),
            &LogLevelBody {
                level: level.into(),
            },
        )
        .await
    }

    pub async fn set_trace(&self, name: &str, enabled: bool) -> Result<TraceBody, ClientError> {
        self.put(&format!("/instances/{name}/trace"), &TraceBody { enabled })
            .await
    }

    pub async fn simulate_pbx(
        &self,
        instance: &str,
        action: &PbxSimActionDto,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(&format!("/instances/{instance}/sim"), action)
            .await
    }

    pub async fn simulate(
        &self,
        line: u32,
        action: &SimActionDto,
    ) -> Result<CommandResultDto, ClientError> {
        self.post(&format!("/lines/{line}/sim"), action).await
    }
}
