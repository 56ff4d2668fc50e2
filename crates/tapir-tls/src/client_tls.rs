//! TLS for tapir's own client (the CLI talking to a server): the public web
//! PKI, plus an optional CA file so a self-signed server can be trusted by
//! pointing at its certificate.
//!
//! The configuration offers no ALPN protocols, so servers speak HTTP/1.1 over
//! it: WebSocket clients need exactly that, and reqwest uses a preconfigured
//! config as it is (a caller wanting HTTP/2 adds `h2` to a clone).

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use crate::server_tls::{TlsSetupError, read_certificates};

/// Trusts the Mozilla root program (webpki-roots, the same everywhere,
/// unlike the system store) and every certificate in `extra_ca`.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        for cert in read_certificates(path)? {
            roots
                .add(cert)
                .map_err(|source| TlsSetupError::BadCertificate {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
    }
    // Named rather than taken from the process default, which nobody installs.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Provider)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::self_signed::{generate, write_pair};

    #[test]
    fn offers_no_alpn_with_or_without_an_extra_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(&generate(&[]).unwrap(), dir.path()).unwrap();
        let config = client_config(Some(&cert)).unwrap();
        assert!(config.alpn_protocols.is_empty());
        // The store itself is not exposed; the end-to-end tests show it is used.
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn names_an_extra_ca_file_that_holds_no_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(&generate(&[]).unwrap(), dir.path()).unwrap();
        let error = client_config(Some(&key)).unwrap_err();
        assert!(
            matches!(error, TlsSetupError::NoCertificate { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&key.display().to_string()));
    }

    #[test]
    fn names_a_missing_extra_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("ca.pem");
        let error = client_config(Some(&absent)).unwrap_err();
        assert!(matches!(error, TlsSetupError::Missing { .. }), "{error}");
        assert!(error.to_string().contains(&absent.display().to_string()));
    }
}
