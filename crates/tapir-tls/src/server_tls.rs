//! HTTPS for the API: loading a PEM certificate and key into a rustls server
//! configuration, and serving an axum router over TLS with HTTP/1.1, HTTP/2
//! and WebSocket upgrades.
//!
//! `axum::serve` only takes plain listeners, so the accept loop lives here. It
//! keeps the behaviour of `axum::serve` (`ConnectInfo`, upgrades, graceful
//! shutdown) and adds what TLS needs: every handshake runs in the
//! connection's own task under a deadline, so a slow or hostile client can
//! neither stall the listener nor hold a task for ever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a certificate, key or trust store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {}", path.display(), pem_problem(.source))]
    Unreadable { path: PathBuf, source: pem::Error },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error(
        "the private key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "rustls rejected the certificate in {} with the key in {}: {source}",
        cert.display(),
        key.display()
    )]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        // Boxed: two paths and a rustls error make the enum too large to return by value.
        source: Box<rustls::Error>,
    },
    #[error("rustls rejected a certificate in {}: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("the ring crypto provider cannot be used: {0}")]
    Provider(#[source] rustls::Error),
}

/// Builds the server side of TLS from a PEM certificate chain (leaf first) and
/// its PEM private key, offering HTTP/2 and HTTP/1.1 through ALPN.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let chain = read_certificates(cert)?;
    let private_key = read_private_key(key)?;
    // Named rather than taken from the process default, which nobody installs.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Provider)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|source| match source {
            rustls::Error::InconsistentKeys(_) => TlsSetupError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            },
            source => TlsSetupError::Rejected {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                source: Box::new(source),
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads every certificate in a PEM file, in file order; other PEM sections
/// (a key kept in the same file, say) are skipped.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| read_error(path, error))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsSetupError::NoKey {
            path: path.to_path_buf(),
        },
        error => read_error(path, error),
    })
}

fn read_error(path: &Path, error: pem::Error) -> TlsSetupError {
    match error {
        pem::Error::Io(io) if io.kind() == io::ErrorKind::NotFound => TlsSetupError::Missing {
            path: path.to_path_buf(),
        },
        source => TlsSetupError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// `pem::Error` prints the labels and lines it quotes as lists of byte
/// values; these say them as text.
fn pem_problem(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "its {} section has no END line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {:?}", String::from_utf8_lossy(line))
        }
        other => other.to_string(),
    }
}

/// Serves `router` over TLS until `shutdown` completes, then stops accepting,
/// lets open connections finish for up to 10 s and returns.
///
/// Each handshake runs in its connection's task and gets 10 s; failures are
/// logged at debug level and affect only that connection.
///
/// Accept errors are logged and retried as `axum::serve` does, so the result
/// is `Ok` once shutdown is done. WebSockets, once upgraded, leave hyper and
/// are not waited for here, as with `axum::serve`.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(serve_connection(
                    acceptor.clone(),
                    stream,
                    peer,
                    router.clone(),
                    stop.clone(),
                ));
            }
            Err(error) => pause_after_accept_error(error).await,
        }
        // Reap finished tasks so the set holds only live connections.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    stop.cancel();
    drain(connections).await;
    Ok(())
}

/// Waits for connections to close, then drops (and so aborts) the stragglers.
async fn drain(mut connections: JoinSet<()>) {
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, all_closed)
        .await
        .is_err()
    {
        tracing::info!(
            open = connections.len(),
            "closing connections still open after the shutdown grace period"
        );
    }
}

/// Mirrors `axum::serve`: errors about one connection are not worth a pause,
/// others (out of file descriptors, typically) are, or the loop would spin.
async fn pause_after_accept_error(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
) {
    // Small messages (events, results) must leave at once, not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot disable Nagle's algorithm on a connection");
    }
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let tls = tokio::select! {
        () = stop.cancelled() => return,
        handshake = handshake => match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    // The same extension axum::serve adds, so handlers can take ConnectInfo<SocketAddr>.
    let service = TowerToHyperService::new(Extension(ConnectInfo(peer)).layer(router));
    let mut builder = Builder::new(TokioExecutor::new());
    // Lets axum's WebSocketUpgrade accept RFC 8441 WebSockets over HTTP/2, as under axum::serve.
    builder.http2().enable_connect_protocol();
    let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(tls), service));
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use tempfile::TempDir;

    use super::*;
    use crate::self_signed::{generate, write_pair};

    /// A fresh pair on disk: (directory, certificate, key).
    fn pair_on_disk() -> (TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(&generate(&[]).unwrap(), dir.path()).unwrap();
        (dir, cert, key)
    }

    fn load_error(cert: &Path, key: &Path) -> TlsSetupError {
        load_server_config(cert, key).unwrap_err()
    }

    fn names(error: &TlsSetupError, path: &Path) -> bool {
        error.to_string().contains(&path.display().to_string())
    }

    #[test]
    fn loads_a_pair_and_offers_h2_then_http1() {
        let (_dir, cert, key) = pair_on_disk();
        let config = load_server_config(&cert, &key).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let (dir, _, key) = pair_on_disk();
        let cert = dir.path().join("absent.pem");
        let error = load_error(&cert, &key);
        assert!(matches!(error, TlsSetupError::Missing { .. }), "{error}");
        assert!(names(&error, &cert), "{error}");
    }

    #[test]
    fn a_missing_key_file_is_named() {
        let (dir, cert, _) = pair_on_disk();
        let key = dir.path().join("absent.pem");
        let error = load_error(&cert, &key);
        assert!(matches!(error, TlsSetupError::Missing { .. }), "{error}");
        assert!(names(&error, &key), "{error}");
    }

    #[test]
    fn a_certificate_file_without_certificates_is_named() {
        let (dir, _, key) = pair_on_disk();
        let cert = dir.path().join("notes.txt");
        fs::write(&cert, "not PEM at all\n").unwrap();
        let error = load_error(&cert, &key);
        assert!(
            matches!(error, TlsSetupError::NoCertificate { .. }),
            "{error}"
        );
        assert!(names(&error, &cert), "{error}");
    }

    #[test]
    fn swapped_files_are_reported_as_such() {
        let (_dir, cert, key) = pair_on_disk();
        // The key file holds no certificate section, so the swap is caught there.
        let error = load_error(&key, &cert);
        assert!(
            matches!(error, TlsSetupError::NoCertificate { .. }),
            "{error}"
        );
        assert!(names(&error, &key), "{error}");
    }

    #[test]
    fn a_key_file_without_a_key_is_named() {
        let (_dir, cert, _) = pair_on_disk();
        let error = load_error(&cert, &cert);
        assert!(matches!(error, TlsSetupError::NoKey { .. }), "{error}");
        assert!(names(&error, &cert), "{error}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (_dir, cert, _) = pair_on_disk();
        let (_other_dir, _, other_key) = pair_on_disk();
        let error = load_error(&cert, &other_key);
        assert!(
            matches!(error, TlsSetupError::KeyMismatch { .. }),
            "{error}"
        );
        assert!(names(&error, &cert), "{error}");
        assert!(names(&error, &other_key), "{error}");
    }

    #[test]
    fn a_broken_pem_section_is_named() {
        let (dir, _, key) = pair_on_disk();
        let cert = dir.path().join("cut.pem");
        fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let error = load_error(&cert, &key);
        assert!(matches!(error, TlsSetupError::Unreadable { .. }), "{error}");
        assert!(names(&error, &cert), "{error}");
        assert!(
            error
                .to_string()
                .ends_with("its CERTIFICATE section has no END line"),
            "{error}"
        );
    }
}
