//! End to end: a self-signed pair on disk, `serve_tls` on loopback, and the
//! two clients tapir's CLI uses (reqwest, tokio-tungstenite) configured from
//! `client_config`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message as AxumMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::Version;
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tapir_tls::client_tls::client_config;
use tapir_tls::self_signed::{generate, write_pair};
use tapir_tls::server_tls::{load_server_config, serve_tls};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

/// Generous bound for things that take milliseconds, well under the 10 s
/// handshake and shutdown limits so a test cannot pass by waiting them out.
const PROMPTLY: Duration = Duration::from_secs(5);

struct Server {
    addr: SocketAddr,
    cert: PathBuf,
    /// Notified when `/slow` has started, so a test can shut down mid-request.
    slow_started: Arc<Notify>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
    _dir: TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate(&["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let (cert, key) = write_pair(&pair, dir.path()).unwrap();
        let config = load_server_config(&cert, &key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow_started = Arc::new(Notify::new());
        let (shutdown, stop) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stop.await;
        };
        let app = router(slow_started.clone());
        let task = tokio::spawn(serve_tls(listener, config, app, signal));
        Server {
            addr,
            cert,
            slow_started,
            shutdown,
            task,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A reqwest client trusting the server's certificate, with `localhost`
    /// pinned to the server so the test does not depend on the resolver.
    fn trusting_client(&self) -> reqwest::Client {
        let config = client_config(Some(&self.cert)).unwrap();
        reqwest_client(Arc::unwrap_or_clone(config), self.addr)
    }

    async fn stop(self) -> io::Result<()> {
        self.shutdown.send(()).unwrap();
        tokio::time::timeout(PROMPTLY, self.task)
            .await
            .expect("serve_tls did not return after shutdown")
            .unwrap()
    }
}

fn router(slow_started: Arc<Notify>) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello over tls" }))
        .route(
            "/version",
            get(|version: Version| async move { format!("{version:?}") }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route("/slow", get(slow))
        .route("/echo", get(|ws: WebSocketUpgrade| async { upgrade(ws) }))
        .with_state(slow_started)
}

async fn slow(State(started): State<Arc<Notify>>) -> &'static str {
    started.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    "slow done"
}

fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if let AxumMessage::Text(_) = message
            && socket.send(message).await.is_err()
        {
            return;
        }
    }
}

/// How reqwest 0.13 takes a rustls config: by value, through
/// `tls_backend_preconfigured` (`use_preconfigured_tls` is its old name),
/// which needs one of reqwest's rustls features.
fn reqwest_client(config: rustls::ClientConfig, server: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve("localhost", server)
        .build()
        .unwrap()
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.unwrap()
}

/// The rustls error behind a failed request, however deeply the layers
/// wrapped it.
fn rustls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        next = match error.downcast_ref::<io::Error>() {
            // io::Error's source() skips its payload, so step into the payload itself.
            Some(wrapper) => wrapper.get_ref().map(|inner| inner as _),
            None => error.source(),
        };
    }
    None
}

#[tokio::test]
async fn serves_https_to_a_client_trusting_the_certificate() {
    let server = Server::start().await;
    let client = server.trusting_client();
    assert_eq!(
        get_text(&client, &server.url("/hello")).await,
        "hello over tls"
    );
    // No ALPN from client_config: HTTP/1.1, which WebSocket clients rely on.
    assert_eq!(get_text(&client, &server.url("/version")).await, "HTTP/1.1");
    let peer = get_text(&client, &server.url("/peer")).await;
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn serves_http2_to_a_client_offering_it() {
    let server = Server::start().await;
    let mut config = Arc::unwrap_or_clone(client_config(Some(&server.cert)).unwrap());
    config.alpn_protocols = vec![b"h2".to_vec()];
    let client = reqwest_client(config, server.addr);
    let response = client.get(server.url("/version")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "HTTP/2.0");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn echoes_over_wss_by_ip_address() {
    let server = Server::start().await;
    let config = client_config(Some(&server.cert)).unwrap();
    // The IP name in the certificate is what makes this address acceptable.
    let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
    let (mut socket, _) =
        connect_async_tls_with_config(url, None, true, Some(Connector::Rustls(config)))
            .await
            .unwrap();
    socket.send(Message::text("ping")).await.unwrap();
    let reply = tokio::time::timeout(PROMPTLY, socket.next()).await.unwrap();
    assert_eq!(reply.unwrap().unwrap(), Message::text("ping"));
    socket.close(None).await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_without_the_certificate_refuses_the_server() {
    let server = Server::start().await;
    let config = client_config(None).unwrap();
    let client = reqwest_client(Arc::unwrap_or_clone(config), server.addr);
    let error = client.get(server.url("/hello")).send().await.unwrap_err();
    assert!(
        matches!(
            rustls_cause(&error),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{error:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_and_stalled_clients_do_not_stop_the_server() {
    let server = Server::start().await;
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The handshake fails on the plain-text request and the server hangs up.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PROMPTLY, garbage.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server kept a plain-text client open");
    // Stays connected through the next request, without ever sending a byte.
    let _stalled = TcpStream::connect(server.addr).await.unwrap();
    let client = server.trusting_client();
    let started = Instant::now();
    assert_eq!(
        get_text(&client, &server.url("/hello")).await,
        "hello over tls"
    );
    assert!(started.elapsed() < PROMPTLY);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_a_request_finish_then_returns() {
    let server = Server::start().await;
    let client = server.trusting_client();
    // A pooled idle connection and a stalled handshake must not hold shutdown up either.
    assert_eq!(
        get_text(&client, &server.url("/hello")).await,
        "hello over tls"
    );
    let _stalled = TcpStream::connect(server.addr).await.unwrap();
    let request = tokio::spawn({
        let (client, url) = (client.clone(), server.url("/slow"));
        async move { get_text(&client, &url).await }
    });
    server.slow_started.notified().await;
    let addr = server.addr;
    let started = Instant::now();
    server.stop().await.unwrap();
    assert!(started.elapsed() < PROMPTLY);
    assert_eq!(request.await.unwrap(), "slow done");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}
