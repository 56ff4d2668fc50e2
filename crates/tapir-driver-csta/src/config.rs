//! [`CstaConfig`]: the CSTA provider's settings as read from tapir's config file, with their
//! validation. The password never appears in logs: `Debug` prints it redacted.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tapir_provider::ProviderError;

/// The usual CSTA-XML port (OpenScape Business/Office and asterisk-csp listen on 8800;
/// csta-xml.md §2.3).
pub const DEFAULT_PORT: u16 = 8800;

/// How the application session is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// Wait briefly for the switch's SystemStatus (OSV style); without one, use ECMA-354.
    Auto,
    /// `StartApplicationSession`, kept alive with `ResetApplicationSessionTimer`.
    Ecma354,
    /// The switch sends `SystemStatus`, tapir answers and sends `SystemRegister`; kept alive
    /// with `SystemStatus` both ways.
    Osv,
}

/// Settings of one CSTA-XML switch.
///
/// CSTA has no standard way to list a switch's devices, so the lines are the configured
/// `devices`, each monitored with `MonitorStart` under exactly the identifier given here.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CstaConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// CSTA over TLS (e.g. Avaya AES on 4722). The switch's certificate is checked against
    /// the system's trust store and `tls_ca_file`.
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of CA certificates to trust besides the system's (e.g. a private CA).
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// The name the certificate must carry; default `host`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    #[serde(default = "default_dialect")]
    pub dialect: Dialect,
    /// The devices to monitor, as the switch names them (e.g. `"201"`, `"+15619231000"`).
    pub devices: Vec<String>,
    #[serde(default = "default_application_id")]
    pub application_id: String,
    /// Login sent in `StartApplicationSession` (ECMA-354 dialect), when both are given.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Interval of keep-alives; two unanswered ones declare the link dead.
    #[serde(default = "default_keepalive_ms")]
    pub keepalive_ms: u64,
    /// How long connecting and each request may take.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The ECMA-354 session duration asked for.
    #[serde(default = "default_session_duration_s")]
    pub session_duration_s: u32,
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_dialect() -> Dialect {
    Dialect::Auto
}
fn default_application_id() -> String {
    "tapir".into()
}
fn default_keepalive_ms() -> u64 {
    30_000
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_session_duration_s() -> u32 {
    180
}
fn default_reconnect_min_ms() -> u64 {
    500
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}

impl fmt::Debug for CstaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CstaConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("dialect", &self.dialect)
            .field("devices", &self.devices)
            .field("application_id", &self.application_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl CstaConfig {
    /// A configuration with every default, for `host` and `devices`.
    pub fn new(host: impl Into<String>, devices: &[&str]) -> CstaConfig {
        CstaConfig {
            host: host.into(),
            port: DEFAULT_PORT,
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
            dialect: Dialect::Auto,
            devices: devices.iter().map(|d| d.to_string()).collect(),
            application_id: default_application_id(),
            username: None,
            password: None,
            keepalive_ms: default_keepalive_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            session_duration_s: default_session_duration_s(),
            reconnect_min_ms: default_reconnect_min_ms(),
            reconnect_max_ms: default_reconnect_max_ms(),
        }
    }

    /// Checks the settings; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), ProviderError> {
        let error = |m: String| Err(ProviderError::Config(m));
        if let Some(file) = &self.tls_ca_file
            && !file.is_file()
        {
            return error(format!(
                "tls_ca_file: {} is not a readable file",
                file.display()
            ));
        }
        if self.host.trim().is_empty() {
            return error("host must not be empty".into());
        }
        if self.devices.is_empty() {
            return error("devices must list at least one device to monitor".into());
        }
        if let Some(bad) = self.devices.iter().find(|d| d.trim().is_empty()) {
            return error(format!("devices: `{bad}` is empty"));
        }
        if self.username.is_some() != self.password.is_some() {
            return error("username and password must be given together".into());
        }
        for (name, value) in [
            ("keepalive_ms", self.keepalive_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("reconnect_min_ms", self.reconnect_min_ms),
            ("session_duration_s", u64::from(self.session_duration_s)),
        ] {
            if value == 0 {
                return error(format!("{name} must be more than 0"));
            }
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return error("reconnect_max_ms must be at least reconnect_min_ms".into());
        }
        Ok(())
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whom the TLS link trusts and which name the switch's certificate must carry.
    pub(crate) fn tls_target(&self) -> tapir_provider::tls::TlsTarget {
        tapir_provider::tls::TlsTarget::new(
            &self.host,
            self.tls_server_name.as_deref(),
            self.tls_ca_file.as_deref(),
        )
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_host_and_devices() {
        let config: CstaConfig =
            toml::from_str("host = \"pbx\"\ndevices = [\"201\", \"202\"]\n").unwrap();
        assert_eq!(config, CstaConfig::new("pbx", &["201", "202"]));
        assert_eq!(config.port, 8800);
        assert_eq!(config.dialect, Dialect::Auto);
        assert_eq!(config.validate(), Ok(()));
        let osv: CstaConfig =
            toml::from_str("host = \"pbx\"\ndevices = [\"1\"]\ndialect = \"osv\"\n").unwrap();
        assert_eq!(osv.dialect, Dialect::Osv);
        assert!(toml::from_str::<CstaConfig>("host = \"pbx\"\ndevices = []\nprot = 1\n").is_err());
    }

    #[test]
    fn tls_is_read_like_the_ami_driver_s() {
        let config: CstaConfig = toml::from_str(
            "host = \"pbx\"\ndevices = [\"1\"]\ntls = true\ntls_ca_file = \"Cargo.toml\"\ntls_server_name = \"pbx.example\"\n",
        )
        .unwrap();
        assert!(config.tls);
        assert_eq!(config.tls_server_name.as_deref(), Some("pbx.example"));
        assert_eq!(
            config.validate(),
            Ok(()),
            "a readable CA file and TLS are accepted"
        );
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let mut config = CstaConfig::new("pbx", &["201"]);
        config.username = Some("cti".into());
        config.password = Some("topsecret".into());
        let text = format!("{config:?}");
        assert!(
            !text.contains("topsecret") && text.contains("<redacted>"),
            "{text}"
        );
    }

    #[test]
    fn validation_names_the_setting_at_fault() {
        type Spoil = fn(&mut CstaConfig);
        let cases: [(Spoil, &str); 5] = [
            (
                |c| c.tls_ca_file = Some("/nonexistent/ca.pem".into()),
                "tls_ca_file",
            ),
            (|c| c.devices.clear(), "devices"),
            (|c| c.password = Some("x".into()), "username"),
            (|c| c.keepalive_ms = 0, "keepalive_ms"),
            (|c| c.reconnect_max_ms = 1, "reconnect_max_ms"),
        ];
        for (spoil, name) in cases {
            let mut config = CstaConfig::new("pbx", &["201"]);
            spoil(&mut config);
            let Err(ProviderError::Config(message)) = config.validate() else {
                panic!("{name} should be refused");
            };
            assert!(message.contains(name), "{message}");
        }
    }
}
