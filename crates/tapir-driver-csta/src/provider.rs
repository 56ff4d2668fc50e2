//! [`CstaProvider`]: the CSTA provider as tapir's core sees it, and its connection test.

use tapir_model::Capabilities;
use tapir_provider::{
    BoxFuture, PbxIdentity, Provider, ProviderContext, ProviderError, TestReport, TraceSwitch,
};

use crate::commands;
use crate::config::{CstaConfig, DEFAULT_PORT};
use crate::link::{Link, LinkError};
use crate::session;

/// A switch reached over CSTA XML.
#[derive(Debug, Clone)]
pub struct CstaProvider {
    config: CstaConfig,
}

impl CstaProvider {
    /// A provider for `config`, which is checked first.
    pub fn new(config: CstaConfig) -> Result<CstaProvider, ProviderError> {
        config.validate()?;
        Ok(CstaProvider { config })
    }
}

impl Provider for CstaProvider {
    fn kind(&self) -> &'static str {
        "csta"
    }

    fn capabilities(&self) -> Capabilities {
        commands::capabilities()
    }

    fn identity(&self) -> PbxIdentity {
        PbxIdentity {
            host: Some(self.config.host.clone()),
            port: Some(self.config.port),
            default_port: Some(DEFAULT_PORT),
            name: Some("CSTA".into()),
        }
    }

    fn run(self: Box<Self>, cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>> {
        Box::pin(session::run(self.config, cx))
    }

    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>> {
        let config = self.config.clone();
        Box::pin(async move {
            let link = Link::open(&config, TraceSwitch::default())
                .await
                .map_err(|e| provider_error(&config, e))?;
            Ok(TestReport {
                summary: format!(
                    "connected to {} ({:?} dialect, switch {}), {} devices configured",
                    config.address(),
                    link.dialect,
                    link.switch,
                    config.devices.len()
                ),
                devices: config.devices.len(),
            })
        })
    }
}

fn provider_error(config: &CstaConfig, error: LinkError) -> ProviderError {
    match error {
        LinkError::Connect { address, reason } => ProviderError::Connect { address, reason },
        LinkError::Refused(reason) => ProviderError::Auth(reason),
        LinkError::Timeout(..) | LinkError::Closed | LinkError::Dead => ProviderError::Connect {
            address: config.address(),
            reason: error.to_string(),
        },
        LinkError::Io(_) => ProviderError::Protocol(error.to_string()),
        LinkError::Tls(reason) => ProviderError::Connect {
            address: config.address(),
            reason: format!("TLS: {reason}"),
        },
    }
}
