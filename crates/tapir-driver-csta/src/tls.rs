//! CSTA over TLS: rustls on `ring`, trusting the system's certificates and an optional CA
//! file (the same shape as the AMI driver's, so both read the same settings the same way).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::config::CstaConfig;
use crate::link::LinkError;

/// Wraps a connected socket in TLS, checking the switch's certificate against
/// `tls_server_name` (default: `host`).
pub(crate) async fn connect(
    config: &CstaConfig,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, LinkError> {
    let roots = trust_anchors(config)?;
    let client = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LinkError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = config
        .tls_server_name
        .clone()
        .unwrap_or_else(|| config.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| LinkError::Tls(format!("{name:?} is not a valid server name: {e}")))?;
    TlsConnector::from(Arc::new(client))
        .connect(server_name, stream)
        .await
        .map_err(|e| LinkError::Tls(format!("handshake with {name} failed: {e}")))
}

fn trust_anchors(config: &CstaConfig) -> Result<RootCertStore, LinkError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a CA file may be all that is needed.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(file) = &config.tls_ca_file {
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| LinkError::Tls(format!("cannot read {}: {e}", file.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                LinkError::Tls(format!("bad certificate in {}: {e}", file.display()))
            })?;
            roots.add(cert).map_err(|e| {
                LinkError::Tls(format!("unusable certificate in {}: {e}", file.display()))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(LinkError::Tls(
            "no trusted certificates: the system has none and tls_ca_file is not set".into(),
        ));
    }
    Ok(roots)
}
