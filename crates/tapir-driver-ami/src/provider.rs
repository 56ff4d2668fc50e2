//! [`AmiProvider`]: the Asterisk provider as tapir's core sees it, and its connection test.

use tapir_model::Capabilities;
use tapir_provider::{
    BoxFuture, PbxIdentity, Provider, ProviderContext, ProviderError, TestReport,
};

use crate::commands;
use crate::config::AmiConfig;
use crate::connection::{Connection, LinkError};
use crate::message::Action;
use crate::session;

/// An Asterisk PBX reached over AMI.
#[derive(Debug, Clone)]
pub struct AmiProvider {
    config: AmiConfig,
}

impl AmiProvider {
    /// A provider for `config`, which is checked first.
    pub fn new(config: AmiConfig) -> Result<AmiProvider, ProviderError> {
        config.validate()?;
        Ok(AmiProvider { config })
    }
}

impl Provider for AmiProvider {
    fn kind(&self) -> &'static str {
        "asterisk"
    }

    fn capabilities(&self) -> Capabilities {
        commands::capabilities(&self.config)
    }

    fn identity(&self) -> PbxIdentity {
        PbxIdentity {
            host: Some(self.config.host.clone()),
            port: Some(self.config.port),
            default_port: Some(5038),
            name: Some("Asterisk".into()),
        }
    }

    fn run(self: Box<Self>, cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>> {
        Box::pin(session::run(self.config, cx))
    }

    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>> {
        let config = self.config.clone();
        Box::pin(async move {
            test_connection(&config)
                .await
                .map_err(|e| provider_error(&config, e))
        })
    }
}

/// Connects, logs in without events, reads the versions and counts the endpoints.
async fn test_connection(config: &AmiConfig) -> Result<TestReport, LinkError> {
    let limit = config.connect_timeout();
    let mut connection = Connection::open(config).await?;
    connection.login(config, "off").await?;
    let settings = Action::new("CoreSettings", &connection.next_id());
    let settings = connection.call(settings, limit).await?;
    let technology = config.endpoint_technology;
    let (list_endpoints, entry) = technology.endpoint_list();
    let endpoints = Action::new(list_endpoints, &connection.next_id());
    let endpoints = connection.call(endpoints, limit).await?;
    let count = endpoints
        .items
        .iter()
        .filter(|item| item.event() == Some(entry))
        .count();
    let logoff = Action::new("Logoff", &connection.next_id());
    // The test is over either way; a failed goodbye changes nothing.
    let _ = connection.send(logoff).await;
    let asterisk = settings
        .response
        .get("AsteriskVersion")
        .unwrap_or("(version not given)");
    let ami = settings
        .response
        .get("AMIversion")
        .unwrap_or(&connection.version);
    Ok(TestReport {
        summary: format!(
            "connected to Asterisk {asterisk} (AMI {ami}) at {}, {count} {} endpoints",
            config.address(),
            technology.prefix()
        ),
        devices: count,
    })
}

fn provider_error(config: &AmiConfig, error: LinkError) -> ProviderError {
    match error {
        LinkError::Auth(message) => {
            ProviderError::Auth(format!("user `{}`: {message}", config.username))
        }
        LinkError::Connect { address, reason } => ProviderError::Connect { address, reason },
        LinkError::Timeout(..) | LinkError::Closed => ProviderError::Connect {
            address: config.address(),
            reason: error.to_string(),
        },
        other => ProviderError::Protocol(other.to_string()),
    }
}
