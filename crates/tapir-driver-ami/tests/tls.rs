//! AMI over TLS: the connection test reaches a TLS peer whose certificate a configured CA
//! file vouches for, and refuses one it cannot trust.

use std::sync::Arc;

use tapir_driver_ami::{AmiConfig, AmiProvider};
use tapir_provider::{Provider, ProviderError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A one-connection AMI peer behind TLS that answers every action with success.
async fn tls_peer(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> u16 {
    let config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let Ok(stream) = acceptor.accept(socket).await else {
            return;
        };
        let (read, mut write) = tokio::io::split(stream);
        let _ = write.write_all(b"Asterisk Call Manager/11.0.0\r\n").await;
        let mut lines = BufReader::new(read).lines();
        let mut action_id = String::new();
        let mut action = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(id) = line.strip_prefix("ActionID: ") {
                action_id = id.to_owned();
            } else if let Some(name) = line.strip_prefix("Action: ") {
                action = name.to_owned();
            } else if line.is_empty() {
                let extra = if action == "CoreSettings" {
                    "AsteriskVersion: 22.10.1\r\nAMIversion: 11.0.0\r\n"
                } else {
                    ""
                };
                let reply = format!(
                    "Response: Success\r\nActionID: {action_id}\r\n{extra}Message: ok\r\n\r\n"
                );
                if write.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    });
    port
}

fn certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>, String) {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = issued.cert.pem();
    let cert = issued.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.signing_key.serialize_der()));
    (cert, key, pem)
}

fn config(port: u16, ca_file: Option<std::path::PathBuf>) -> AmiConfig {
    let mut config = AmiConfig::new("localhost", "tapir", "s3cret");
    config.port = port;
    config.tls = true;
    config.tls_ca_file = ca_file;
    config
}

#[tokio::test]
async fn a_trusted_tls_peer_is_reached() {
    let (cert, key, pem) = certificate();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let port = tls_peer(cert, key).await;
    let provider = AmiProvider::new(config(port, Some(ca))).unwrap();
    let report = provider.test_connection().await.unwrap();
    assert!(
        report.summary.contains("Asterisk 22.10.1"),
        "{}",
        report.summary
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let (cert, key, _) = certificate();
    let port = tls_peer(cert, key).await;
    let provider = AmiProvider::new(config(port, None)).unwrap();
    let error = provider.test_connection().await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Protocol(ref m) if m.contains("TLS")),
        "{error}"
    );
}
