//! The TLS client every driver uses towards its PBX: rustls on `ring`, trusting the system's
//! certificates plus an optional PEM file of CA certificates (a driver's `tls_ca_file`), and
//! checking the certificate against a server name (a driver's `tls_server_name`, else the
//! host it connects to). Certificate verification cannot be turned off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Where a driver's TLS link points and whom it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// The name the server's certificate must carry (a DNS name or an IP address).
    pub server_name: String,
    /// CA certificates (PEM) to trust besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl TlsTarget {
    /// The target for `host`, or for `server_name` when the certificate names something else
    /// (e.g. `host` is an IP address and the certificate a DNS name).
    pub fn new(host: &str, server_name: Option<&str>, ca_file: Option<&Path>) -> TlsTarget {
        TlsTarget {
            server_name: server_name.unwrap_or(host).to_owned(),
            ca_file: ca_file.map(Path::to_path_buf),
        }
    }

    /// The server name as rustls checks it; an error when it is neither a DNS name nor an
    /// IP address.
    pub fn server_name(&self) -> Result<ServerName<'static>, TlsError> {
        let name = &self.server_name;
        ServerName::try_from(name.clone()).map_err(|e| TlsError::ServerName {
            name: name.clone(),
            reason: e.to_string(),
        })
    }
}

/// Why a TLS link could not be set up. The messages are for people reading a line's or an
/// instance's status.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Protocol(tokio_rustls::rustls::Error),
    #[error("{name:?} is not a valid server name: {reason}")]
    ServerName { name: String, reason: String },
    #[error("cannot read {}: {reason}", file.display())]
    UnreadableCaFile { file: PathBuf, reason: String },
    #[error("bad certificate in {}: {reason}", file.display())]
    BadCertificate { file: PathBuf, reason: String },
    #[error("unusable certificate in {}: {reason}", file.display())]
    UnusableCertificate { file: PathBuf, reason: String },
    #[error("no trusted certificates: the system has none and tls_ca_file is not set")]
    NoTrustAnchors,
    #[error("handshake with {name} failed: {source}")]
    Handshake {
        name: String,
        source: std::io::Error,
    },
}

/// A client configuration trusting the system's certificates and `ca_file`'s.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = trust_anchors(ca_file)?;
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsError::Protocol)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Wraps a connected socket in TLS, checking the server's certificate against `target`.
pub async fn connect(
    target: &TlsTarget,
    stream: TcpStream,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let config = client_config(target.ca_file.as_deref())?;
    TlsConnector::from(config)
        .connect(target.server_name()?, stream)
        .await
        .map_err(|source| TlsError::Handshake {
            name: target.server_name.clone(),
            source,
        })
}

fn trust_anchors(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a CA file may be all that is needed.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(file) = ca_file {
        let certs =
            CertificateDer::pem_file_iter(file).map_err(|e| TlsError::UnreadableCaFile {
                file: file.to_path_buf(),
                reason: e.to_string(),
            })?;
        for cert in certs {
            let cert = cert.map_err(|e| TlsError::BadCertificate {
                file: file.to_path_buf(),
                reason: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| TlsError::UnusableCertificate {
                file: file.to_path_buf(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoTrustAnchors);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host() {
        assert_eq!(
            TlsTarget::new("127.0.0.1", None, None).server_name,
            "127.0.0.1"
        );
        let named = TlsTarget::new("127.0.0.1", Some("pbx.example"), Some(Path::new("ca.pem")));
        assert_eq!(named.server_name, "pbx.example");
        assert_eq!(named.ca_file.as_deref(), Some(Path::new("ca.pem")));
        assert!(named.server_name().is_ok());
        let bad = TlsTarget::new("127.0.0.1", Some("not a name"), None);
        assert!(matches!(
            bad.server_name(),
            Err(TlsError::ServerName { .. })
        ));
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let error = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
