//! Starts the real `tapir` binary on an ephemeral port and talks to it like a client would.

#![allow(dead_code)] // Each test file uses a different part of the harness.

pub mod wine;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tapir_wire::{CallDto, LineDto, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_tapir");

/// How long any single wait in a test may take before the test fails (not a measurement).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A running `tapir serve`, stopped when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    /// The administrator token the server leaves for the CLI on this machine.
    pub token: String,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// The embedded default (no config file) in a fresh data directory.
    pub fn start() -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Server::start_in(&dir, None);
        server._temp = Some(temp);
        server
    }

    /// A server with this config text in a fresh data directory.
    pub fn with_config(config: &str) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let path = dir.join("tapir.toml");
        std::fs::write(&path, config).expect("write config");
        let mut server = Server::start_in(&dir, Some(&path));
        server._temp = Some(temp);
        server
    }

    /// A server on HTTPS with a fresh self-signed certificate (`tapir tls self-signed`) and
    /// this config text after `[server.tls]`; also the certificate's file, for clients to
    /// trust, in a directory that lives as long as the returned guard.
    pub fn with_self_signed_tls(config: &str) -> (Server, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = Command::new(BIN)
            .args(["tls", "self-signed", "--dir"])
            .arg(dir.path())
            .output()
            .expect("run tapir tls self-signed");
        assert!(made.status.success(), "{made:?}");
        let cert = dir.path().join("tapir-cert.pem");
        let key = dir.path().join("tapir-key.pem");
        let text = format!(
            "[server.tls]\ncert = {:?}\nkey = {:?}\n{config}",
            cert.display().to_string(),
            key.display().to_string()
        );
        let server = Server::with_config(&text);
        assert!(server.url.starts_with("https://"), "{}", server.url);
        (server, cert, dir)
    }

    /// A server on `data_dir`, which the caller keeps (to restart on it).
    pub fn start_in(data_dir: &Path, config: Option<&Path>) -> Server {
        Server::start_on(data_dir, config, "127.0.0.1:0")
    }

    /// A server on `data_dir` listening on `listen` (e.g. the address of a previous run, so
    /// that clients reconnect to the same place).
    pub fn start_on(data_dir: &Path, config: Option<&Path>, listen: &str) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .env_remove("TAPIR_CONFIG")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn().expect("start tapir serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))
            .unwrap_or_else(|| panic!("tapir serve did not say where it listens: {line:?}"))
            .to_owned();
        let token = std::fs::read_to_string(data_dir.join("cli-token"))
            .expect("the server writes its CLI token before it listens")
            .trim()
            .to_owned();
        Server {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            token,
            _temp: None,
        }
    }

    /// Where the server listens, `host:port`.
    pub fn listen_address(&self) -> &str {
        self.url
            .split("://")
            .nth(1)
            .unwrap_or(&self.url)
            .trim_end_matches('/')
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.url)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/api/v1/ws", self.url.replacen("http", "ws", 1))
    }

    /// Runs the CLI against this server as its administrator.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.token, args)
    }

    /// Runs the CLI against this server with `token`.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("TAPIR_SERVER", &self.url)
            .env("TAPIR_TOKEN", token)
            .env_remove("TAPIR_CA_FILE")
            .output()
            .expect("run the tapir CLI")
    }

    /// An HTTP client that authenticates as the server's administrator.
    pub fn http(&self) -> reqwest::Client {
        http_as(&self.token)
    }

    /// Runs the CLI and returns its stdout, failing the test if it failed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "tapir {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI with `--json` and parses its output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.cli_ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("tapir {args:?}: {e}: {text}"))
    }

    /// How many events the server has published so far: the sequence number of a fresh
    /// snapshot (`watch --count 0` prints the snapshot and stops).
    pub fn event_count(&self) -> u64 {
        let snapshot = self.cli_json(&["watch", "--count", "0"]);
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        snapshot["seq"].as_u64().expect("snapshot seq")
    }

    /// Every event so far, replayed with `watch --json --since 0`.
    pub fn all_events(&self) -> Vec<Value> {
        let count = self.event_count().to_string();
        let text = self.cli_ok(&["watch", "--json", "--since", "0", "--count", &count]);
        text.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
            .collect()
    }

    /// The server's process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM, as an operator would, and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "tapir serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tapir serve did not stop after SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client without credentials.
pub fn http() -> reqwest::Client {
    // The workspace builds reqwest with rustls but no default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// An HTTP client that sends `token` with every request.
pub fn http_as(token: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}")
        .parse()
        .expect("a token is a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("HTTP client")
}

/// Any request as `token`: the status and the JSON body (`null` when there is none).
pub async fn request_as(
    token: &str,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http_as(token).request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

pub async fn get_json(server: &Server, url: &str) -> (u16, Value) {
    let response = server.http().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

pub async fn post_json(server: &Server, url: &str, body: Value) -> (u16, Value) {
    let response = server
        .http()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

pub async fn post_raw(server: &Server, url: &str, body: &'static str) -> (u16, Value) {
    let response = server
        .http()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

pub async fn lines(server: &Server) -> Vec<LineDto> {
    let (status, body) = get_json(server, &server.api("/lines")).await;
    assert_eq!(status, 200);
    serde_json::from_value(body).expect("lines")
}

/// The line id of an extension.
pub async fn line_of(server: &Server, extension: &str) -> u32 {
    lines(server)
        .await
        .into_iter()
        .find(|l| l.address == extension)
        .unwrap_or_else(|| panic!("no line {extension}"))
        .id
}

pub async fn calls(server: &Server) -> Vec<CallDto> {
    let (status, body) = get_json(server, &server.api("/calls")).await;
    assert_eq!(status, 200);
    serde_json::from_value(body).expect("calls")
}

/// Waits until some call satisfies `check`, returning it.
pub async fn wait_for_call(
    server: &Server,
    what: &str,
    check: impl Fn(&CallDto) -> bool,
) -> CallDto {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = calls(server).await;
        if let Some(call) = all.iter().find(|c| check(c)) {
            return call.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no call is {what}; calls now: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no call satisfies `check`.
pub async fn wait_until_gone(server: &Server, what: &str, check: impl Fn(&CallDto) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = calls(server).await;
        if !all.iter().any(&check) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a call is still {what}: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client.
pub struct Ws {
    pub socket: Socket,
}

impl Ws {
    /// Connects as the server's administrator.
    pub async fn connect(server: &Server) -> Ws {
        Ws::connect_as(server, &server.token).await
    }

    /// Connects with `token` in the `Authorization` header.
    pub async fn connect_as(server: &Server, token: &str) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server
            .ws_url()
            .into_client_request()
            .expect("WebSocket URL");
        let value = format!("Bearer {token}")
            .parse()
            .expect("a token is a header value");
        request.headers_mut().insert("authorization", value);
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connect");
        Ws { socket }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("WebSocket send");
    }

    /// The next server message.
    pub async fn next(&mut self) -> ServerMessage {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("no WebSocket message in time")
                .expect("WebSocket closed")
                .expect("WebSocket error");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("unreadable server message {text}: {e}"));
            }
        }
    }

    /// Messages until one satisfies `stop` (included).
    pub async fn until(&mut self, stop: impl Fn(&ServerMessage) -> bool) -> Vec<ServerMessage> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            let done = stop(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}
