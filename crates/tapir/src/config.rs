//! The config file: the server's settings and the PBX instances it serves.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:5380"
//!
//! [[instances]]
//! name = "office"
//! [instances.driver]
//! type = "sim"
//! extensions = 50
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tapir_access::{DEFAULT_TENANT, InstancePolicy, Policies};
use tapir_core::{LineNameTemplate, Presentation, TemplateError};
use tapir_driver_ami::{AmiConfig, AmiProvider};
use tapir_driver_csta::{CstaConfig, CstaProvider};
use tapir_driver_sim::{SimConfig, SimProvider};
use tapir_driver_sip::{SipConfig, SipProvider};
use tapir_model::OperatingMode;
use tapir_numbers::{Location, NumberFormat, NumberPlan, PlanError};
use tapir_provider::{Provider, ProviderError};

/// The default API address: loopback only, so a fresh install exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5380";

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    /// How long a command may wait for the PBX before it completes as `outcome_unknown`.
    pub command_timeout_ms: Option<u64>,
    /// How many past events are kept for clients that reconnect (default 100,000).
    pub resume_buffer: Option<usize>,
    /// How many events a WebSocket client may fall behind before it is resumed from the
    /// buffer (default 16,384).
    pub subscriber_backlog: Option<usize>,
    /// Serve the API over TLS with this certificate and key.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: PEM files (`tapir tls self-signed` makes a pair to try it out).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One `[[instances]]` entry: a PBX connection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub name: String,
    /// The template (or preset name) that builds each line's name; default `%d`, the name
    /// the PBX gives.
    #[serde(default)]
    pub line_name: Option<String>,
    /// Log level of this instance's driver: error, warn, info, debug or trace.
    #[serde(default)]
    pub log_level: Option<String>,
    /// How numbers in events are shown: international, international_no_plus, phonebook,
    /// phonebook_international or raw. Needs `location`.
    #[serde(default)]
    pub number_format: Option<NumberFormat>,
    /// Where the PBX is (country, area code, access code, prefixes): how to read the numbers
    /// it sends and dial the ones clients give. Without it numbers pass through unchanged.
    #[serde(default)]
    pub location: Option<Location>,
    /// The customer this PBX belongs to; users of other tenants never see its lines
    /// (default `default`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Who sees the lines: workstation (default), terminal_server or server_application.
    #[serde(default)]
    pub mode: Option<String>,
    /// terminal_server only: placing and dropping calls is reserved to users allowed to dial.
    #[serde(default)]
    pub restrict_dialing: bool,
    pub driver: DriverConfig,
}

/// Why an instance's presentation settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PresentationError {
    #[error("line_name: {0}")]
    Template(#[from] TemplateError),
    #[error("location: {0}")]
    Location(#[from] PlanError),
    #[error("number_format needs a [instances.location] to read numbers in")]
    FormatWithoutLocation,
}

impl InstanceConfig {
    /// True when going from `self` to `new` needs the instance restarted; a new log level
    /// or new rights settings alone do not.
    pub fn restart_needed(&self, new: &InstanceConfig) -> bool {
        let link_only = |c: &InstanceConfig| InstanceConfig {
            log_level: None,
            tenant: None,
            mode: None,
            restrict_dialing: false,
            ..c.clone()
        };
        link_only(self) != link_only(new)
    }

    /// Who may see and use this instance's lines.
    pub fn policy(&self) -> Result<InstancePolicy, String> {
        let mode = match &self.mode {
            Some(mode) => mode
                .parse::<OperatingMode>()
                .map_err(|e| format!("mode: {e}"))?,
            None => OperatingMode::default(),
        };
        if self.restrict_dialing && mode != OperatingMode::TerminalServer {
            return Err("restrict_dialing applies to mode = \"terminal_server\" only".into());
        }
        let tenant = self.tenant.as_deref().unwrap_or(DEFAULT_TENANT);
        if tenant.trim().is_empty() || tenant.trim() != tenant {
            return Err(format!(
                "tenant {tenant:?} must be non-empty without surrounding spaces"
            ));
        }
        Ok(InstancePolicy {
            tenant: tenant.to_owned(),
            mode,
            restrict_dialing: self.restrict_dialing,
        })
    }

    /// How the instance's lines and numbers are presented.
    pub fn presentation(&self) -> Result<Presentation, PresentationError> {
        let line_name = match &self.line_name {
            Some(template) => LineNameTemplate::parse(template)?,
            None => LineNameTemplate::default(),
        };
        let numbers = match (&self.location, self.number_format) {
            (Some(location), format) => Some(NumberPlan::new(
                location.clone(),
                format.unwrap_or_default(),
            )?),
            (None, Some(_)) => return Err(PresentationError::FormatWithoutLocation),
            (None, None) => None,
        };
        Ok(Presentation { line_name, numbers })
    }
}

/// The log levels an instance may have.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// `[instances.driver]`: which driver, and its own settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DriverConfig {
    /// The built-in simulated PBX.
    Sim(SimConfig),
    /// Asterisk (and FreePBX) over the Asterisk Manager Interface.
    Asterisk(AmiConfig),
    /// A PBX that speaks CSTA Phase III over XML (OpenScape Voice, MX-ONE, Avaya DMCC, ...).
    Csta(CstaConfig),
    /// Lines of a SIP registrar (Kamailio), watched by dialog subscriptions (RFC 4235).
    /// Boxed: its phone types and lines make it several times the size of the others.
    Sip(Box<SipConfig>),
}

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: instance {name:?}: {source}")]
    Driver {
        path: String,
        name: String,
        source: ProviderError,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    /// Every instance's rights policy (the config is validated, so each has one).
    pub fn policies(&self) -> Policies {
        self.instances
            .iter()
            .filter_map(|i| i.policy().ok().map(|p| (i.name.clone(), p)))
            .collect()
    }

    /// The embedded default: one simulated PBX with 20 extensions.
    pub fn embedded_default() -> Config {
        Config {
            server: ServerConfig::default(),
            instances: vec![InstanceConfig {
                name: "sim".into(),
                line_name: None,
                log_level: None,
                number_format: None,
                location: None,
                tenant: None,
                mode: None,
                restrict_dialing: false,
                driver: DriverConfig::Sim(SimConfig::default()),
            }],
        }
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            source: Box::new(e),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.into(),
            message,
        };
        if self.instances.is_empty() {
            return Err(invalid(
                "no [[instances]]: tapir needs at least one PBX instance".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (index, instance) in self.instances.iter().enumerate() {
            let name = instance.name.trim();
            if name.is_empty() || name.contains('/') {
                return Err(invalid(format!(
                    "instances[{index}].name {:?} must be non-empty and contain no '/'",
                    instance.name
                )));
            }
            if !names.insert(name) {
                return Err(invalid(format!(
                    "instances[{index}].name {name:?} is used twice; instance names are unique"
                )));
            }
            if let Err(error) = instance.presentation() {
                return Err(invalid(format!("instances[{index}].{error}")));
            }
            if let Err(error) = instance.policy() {
                return Err(invalid(format!("instances[{index}].{error}")));
            }
            if let Some(level) = &instance.log_level
                && !LOG_LEVELS.contains(&level.as_str())
            {
                return Err(invalid(format!(
                    "instances[{index}].log_level {level:?} is not one of {}",
                    LOG_LEVELS.join(", ")
                )));
            }
            instance
                .driver
                .validate()
                .map_err(|source| ConfigError::Driver {
                    path: origin.into(),
                    name: instance.name.clone(),
                    source,
                })?;
        }
        if self.server.subscriber_backlog == Some(0) {
            return Err(invalid(
                "server.subscriber_backlog must be greater than 0".into(),
            ));
        }
        if self.server.command_timeout_ms == Some(0) {
            return Err(invalid(
                "server.command_timeout_ms must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

impl DriverConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DriverConfig::Sim(_) => "sim",
            DriverConfig::Asterisk(_) => "asterisk",
            DriverConfig::Csta(_) => "csta",
            DriverConfig::Sip(_) => "sip",
        }
    }

    fn validate(&self) -> Result<(), ProviderError> {
        match self {
            DriverConfig::Sim(sim) => sim.validate(),
            DriverConfig::Asterisk(ami) => ami.validate(),
            DriverConfig::Csta(csta) => csta.validate(),
            DriverConfig::Sip(sip) => sip.validate(),
        }
    }

    /// The provider for this driver: the one place that names drivers.
    pub fn build(&self) -> Result<Box<dyn Provider>, ProviderError> {
        match self {
            DriverConfig::Sim(sim) => Ok(Box::new(SimProvider::new(sim.clone())?)),
            DriverConfig::Asterisk(ami) => Ok(Box::new(AmiProvider::new(ami.clone())?)),
            DriverConfig::Csta(csta) => Ok(Box::new(CstaProvider::new(csta.clone())?)),
            DriverConfig::Sip(sip) => Ok(Box::new(SipProvider::new(sip.as_ref().clone())?)),
        }
    }

    /// One line for people: what this instance is.
    pub fn describe(&self) -> String {
        match self {
            DriverConfig::Sim(sim) => format!(
                "simulated PBX, {} extensions from {}",
                sim.extensions, sim.first_extension
            ),
            DriverConfig::Asterisk(ami) => {
                format!(
                    "Asterisk AMI at {}:{} as {}",
                    ami.host, ami.port, ami.username
                )
            }
            DriverConfig::Csta(csta) => format!(
                "CSTA XML at {}:{}, {} devices",
                csta.host,
                csta.port,
                csta.devices.len()
            ),
            DriverConfig::Sip(sip) => format!(
                "SIP registrar at {}:{} ({}), {} line(s) and {} range(s)",
                sip.registrar.host,
                sip.registrar.port,
                sip.registrar.transport.as_str(),
                sip.lines.len(),
                sip.ranges.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config = Config::parse(
            r#"
            [server]
            listen = "127.0.0.1:9999"
            command_timeout_ms = 2000

            [[instances]]
            name = "office"
            [instances.driver]
            type = "sim"
            extensions = 5
            first_extension = 100
            "#,
            "test.toml",
        )
        .unwrap();
        assert_eq!(config.instances.len(), 1);
        assert_eq!(
            config.instances[0].driver.describe(),
            "simulated PBX, 5 extensions from 100"
        );
        assert_eq!(config.server.listen, "127.0.0.1:9999".parse().ok());
    }

    fn error_of(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().to_string()
    }

    #[test]
    fn errors_point_at_the_bad_key() {
        let unknown_top = error_of("[sever]\nlisten = \"127.0.0.1:1\"\n");
        assert!(
            unknown_top.contains("sever") && unknown_top.contains("line 1"),
            "{unknown_top}"
        );

        let unknown_driver_key = error_of(
            "[[instances]]\nname = \"a\"\n[instances.driver]\ntype = \"sim\"\nextensionz = 3\n",
        );
        assert!(
            unknown_driver_key.contains("extensionz"),
            "{unknown_driver_key}"
        );

        let unknown_driver =
            error_of("[[instances]]\nname = \"a\"\n[instances.driver]\ntype = \"pbx9000\"\n");
        assert!(unknown_driver.contains("pbx9000"), "{unknown_driver}");

        let bad_listen = error_of("[server]\nlisten = \"localhost\"\n");
        assert!(
            bad_listen.contains("listen") || bad_listen.contains("line 2"),
            "{bad_listen}"
        );
    }

    #[test]
    fn semantic_errors_are_named() {
        let dup = error_of(
            "[[instances]]\nname = \"a\"\n[instances.driver]\ntype = \"sim\"\n\
             [[instances]]\nname = \"a\"\n[instances.driver]\ntype = \"sim\"\n",
        );
        assert!(dup.contains("\"a\" is used twice"), "{dup}");
        assert!(error_of("").contains("at least one PBX instance"));
        let template = error_of(
            "[[instances]]\nname = \"a\"\nline_name = \"%e %q\"\n[instances.driver]\ntype = \"sim\"\n",
        );
        assert!(
            template.contains("instances[0].line_name") && template.contains("%q at position 4"),
            "{template}"
        );
        let country = error_of(
            "[[instances]]\nname = \"a\"\n[instances.location]\ncountry = \"XX\"\n[instances.driver]\ntype = \"sim\"\n",
        );
        assert!(
            country.contains("instances[0].location") && country.contains("XX"),
            "{country}"
        );
        let lonely = error_of(
            "[[instances]]\nname = \"a\"\nnumber_format = \"phonebook\"\n[instances.driver]\ntype = \"sim\"\n",
        );
        assert!(lonely.contains("needs a [instances.location]"), "{lonely}");
        let level = error_of(
            "[[instances]]\nname = \"a\"\nlog_level = \"loud\"\n[instances.driver]\ntype = \"sim\"\n",
        );
        assert!(level.contains("log_level \"loud\""), "{level}");
        let zero = error_of(
            "[[instances]]\nname = \"a\"\n[instances.driver]\ntype = \"sim\"\nextensions = 0\n",
        );
        assert!(zero.contains("instance \"a\""), "{zero}");
    }
}
