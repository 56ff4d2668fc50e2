//! [`AmiConfig`]: the Asterisk provider's settings as read from tapir's config file, with
//! their validation.
//!
//! The AMI secret never appears in logs: `Debug` prints it redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use tapir_provider::ProviderError;

/// How answer and hold reach a phone. AMI has no action that answers or holds a PJSIP call,
/// so these work only where the phone accepts a remote-control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneControl {
    /// No remote control: answer and hold are not offered to clients.
    None,
    /// A SIP NOTIFY with `Event: talk` / `Event: hold` sent through the `PJSIPNotify` action
    /// (honoured by many Yealink, Snom and Grandstream phones when enabled on them).
    PjsipNotify,
    /// The same NOTIFY through chan_sip's `SIPnotify` action (`endpoint_technology = "SIP"`).
    SipNotify,
}

/// The channel driver of the phones that become lines. Each has its own list action; its
/// channels are named `<prefix>/<endpoint>-<unique>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Technology {
    /// res_pjsip endpoints (`PJSIPShowEndpoints`), the only SIP driver since Asterisk 21.
    #[default]
    #[serde(rename = "PJSIP")]
    Pjsip,
    /// chan_sip peers (`SIPpeers`), up to Asterisk 20.
    #[serde(rename = "SIP")]
    Sip,
    /// chan_iax2 peers (`IAXpeerlist`).
    #[serde(rename = "IAX2")]
    Iax2,
}

impl Technology {
    /// The channel name prefix, e.g. `PJSIP` in `PJSIP/201-00000010`.
    pub fn prefix(self) -> &'static str {
        match self {
            Technology::Pjsip => "PJSIP",
            Technology::Sip => "SIP",
            Technology::Iax2 => "IAX2",
        }
    }

    /// The action that lists the endpoints, and the event of each entry in its answer (whose
    /// `ObjectName` is the endpoint).
    pub fn endpoint_list(self) -> (&'static str, &'static str) {
        match self {
            Technology::Pjsip => ("PJSIPShowEndpoints", "EndpointList"),
            Technology::Sip => ("SIPpeers", "PeerEntry"),
            Technology::Iax2 => ("IAXpeerlist", "PeerEntry"),
        }
    }

    /// The Originate `Variable` that adds `header` (`Name: value`) to the INVITE sent to the
    /// line's phone; IAX2 has no headers.
    pub fn header_variable(self, header: &str) -> Option<String> {
        let (name, value) = header.split_once(':')?;
        match self {
            Technology::Pjsip => Some(format!(
                "PJSIP_HEADER(add,{})={}",
                name.trim(),
                value.trim()
            )),
            Technology::Sip => Some(format!("SIPADDHEADER={}: {}", name.trim(), value.trim())),
            Technology::Iax2 => None,
        }
    }
}

/// Where call forwarding and do-not-disturb live on the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureStore {
    /// Not managed: forwarding and do-not-disturb are not offered to clients.
    None,
    /// AstDB keys as FreePBX's feature codes use them: `CF/<ext>` (unconditional),
    /// `CFB/<ext>` (busy), `CFU/<ext>` (no answer or unavailable) and `DND/<ext>` = `YES`.
    Astdb,
}

/// Settings of one Asterisk instance reached over AMI.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmiConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub username: String,
    pub secret: String,
    /// AMI over TLS (Asterisk's `tlsenable`, port 5039). The server certificate is checked
    /// against the system's trust store and `tls_ca_file`.
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of CA certificates to trust besides the system's (e.g. a private CA).
    #[serde(default)]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// The name the certificate must carry; default `host`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// The dialplan context in which made calls dial their destination.
    #[serde(default = "default_context")]
    pub context: String,
    /// The channel driver of the phones that become lines (`PJSIP`, `SIP` or `IAX2`).
    #[serde(default)]
    pub endpoint_technology: Technology,
    /// Endpoint name → extension, for endpoints whose extension is not given by a hint.
    #[serde(default)]
    pub extension_map: BTreeMap<String, String>,
    /// How long the calling phone may ring when a call is made from a line.
    #[serde(default = "default_originate_timeout_ms")]
    pub originate_timeout_ms: u64,
    /// A header added to made calls so that phones answer them by themselves, e.g.
    /// `Call-Info: answer-after=0` (sent as the `PJSIP_HEADER(add,...)` channel variable).
    #[serde(default)]
    pub auto_answer_header: Option<String>,
    /// Idle time after which a `Ping` checks the link; a second interval without an answer
    /// declares it lost.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// How long connecting, logging in and each status query may take.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// The AMI event classes asked for at login.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    #[serde(default = "default_phone_control")]
    pub phone_control: PhoneControl,
    #[serde(default = "default_feature_store")]
    pub feature_store: FeatureStore,
}

/// The AMI event classes the provider needs: channels and bridges (`call`), `FullyBooted`
/// and reloads (`system`), and queue members (`agent`).
pub const NEEDED_EVENT_CLASSES: [&str; 3] = ["call", "system", "agent"];

/// Event classes Asterisk knows (`manager.conf`'s `read=`).
const KNOWN_EVENT_CLASSES: [&str; 14] = [
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "security",
    "all",
];

fn default_port() -> u16 {
    5038
}
fn default_context() -> String {
    "from-internal".into()
}
fn default_originate_timeout_ms() -> u64 {
    30_000
}
fn default_ping_interval_ms() -> u64 {
    20_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_reconnect_min_ms() -> u64 {
    500
}
fn default_reconnect_max_ms() -> u64 {
    30_000
}
fn default_events() -> Vec<String> {
    NEEDED_EVENT_CLASSES.iter().map(|c| c.to_string()).collect()
}
fn default_phone_control() -> PhoneControl {
    PhoneControl::None
}
fn default_feature_store() -> FeatureStore {
    FeatureStore::Astdb
}

impl fmt::Debug for AmiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("context", &self.context)
            .field("endpoint_technology", &self.endpoint_technology)
            .field("extension_map", &self.extension_map)
            .field("phone_control", &self.phone_control)
            .field("feature_store", &self.feature_store)
            .finish_non_exhaustive()
    }
}

impl AmiConfig {
    /// A configuration with every default, for `host`, `username` and `secret`.
    pub fn new(
        host: impl Into<String>,
        username: impl Into<String>,
        secret: impl Into<String>,
    ) -> AmiConfig {
        AmiConfig {
            host: host.into(),
            port: default_port(),
            username: username.into(),
            secret: secret.into(),
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
            context: default_context(),
            endpoint_technology: Technology::default(),
            extension_map: BTreeMap::new(),
            originate_timeout_ms: default_originate_timeout_ms(),
            auto_answer_header: None,
            ping_interval_ms: default_ping_interval_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            reconnect_min_ms: default_reconnect_min_ms(),
            reconnect_max_ms: default_reconnect_max_ms(),
            events: default_events(),
            phone_control: default_phone_control(),
            feature_store: default_feature_store(),
        }
    }

    /// Checks the settings; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), ProviderError> {
        if let Some(file) = &self.tls_ca_file
            && !file.is_file()
        {
            return Err(config_error(format!(
                "tls_ca_file: {} is not a readable file",
                file.display()
            )));
        }
        for (name, value) in [
            ("host", &self.host),
            ("username", &self.username),
            ("secret", &self.secret),
            ("context", &self.context),
        ] {
            if value.trim().is_empty() {
                return Err(config_error(format!("{name} must not be empty")));
            }
            if !is_header_safe(value) {
                return Err(config_error(format!(
                    "{name} must not contain line breaks or control characters"
                )));
            }
        }
        self.validate_technology()?;
        self.validate_durations()?;
        self.validate_events()?;
        if let Some(header) = &self.auto_answer_header
            && (!header.contains(':') || !is_header_safe(header))
        {
            return Err(config_error(
                "auto_answer_header must be one `Name: value` SIP header",
            ));
        }
        Ok(())
    }

    /// Phone control and the auto-answer header go through the line's own channel driver.
    fn validate_technology(&self) -> Result<(), ProviderError> {
        let technology = self.endpoint_technology;
        let needs = match self.phone_control {
            PhoneControl::None => None,
            PhoneControl::PjsipNotify => Some(Technology::Pjsip),
            PhoneControl::SipNotify => Some(Technology::Sip),
        };
        if let Some(needed) = needs
            && needed != technology
        {
            return Err(config_error(format!(
                "phone_control {:?} needs endpoint_technology = \"{}\", not \"{}\"",
                self.phone_control,
                needed.prefix(),
                technology.prefix()
            )));
        }
        if self.auto_answer_header.is_some() && technology == Technology::Iax2 {
            return Err(config_error(
                "auto_answer_header is a SIP header; IAX2 phones have none (endpoint_technology)",
            ));
        }
        Ok(())
    }

    fn validate_durations(&self) -> Result<(), ProviderError> {
        for (name, value) in [
            ("originate_timeout_ms", self.originate_timeout_ms),
            ("ping_interval_ms", self.ping_interval_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("reconnect_min_ms", self.reconnect_min_ms),
        ] {
            if value == 0 {
                return Err(config_error(format!("{name} must be more than 0")));
            }
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(config_error(
                "reconnect_max_ms must be at least reconnect_min_ms",
            ));
        }
        Ok(())
    }

    fn validate_events(&self) -> Result<(), ProviderError> {
        if let Some(unknown) = self
            .events
            .iter()
            .find(|c| !KNOWN_EVENT_CLASSES.contains(&c.as_str()))
        {
            return Err(config_error(format!("events: unknown class `{unknown}`")));
        }
        let has = |class: &str| self.events.iter().any(|c| c == class || c == "all");
        if let Some(missing) = NEEDED_EVENT_CLASSES.iter().find(|c| !has(c)) {
            return Err(config_error(format!(
                "events must include `{missing}`: the provider cannot follow calls without it"
            )));
        }
        Ok(())
    }

    /// `host:port`, for connecting and for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whom the TLS link trusts and which name the server's certificate must carry.
    pub(crate) fn tls_target(&self) -> tapir_provider::tls::TlsTarget {
        tapir_provider::tls::TlsTarget::new(
            &self.host,
            self.tls_server_name.as_deref(),
            self.tls_ca_file.as_deref(),
        )
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// The name the PBX side gives a line (placeholder `%d`). Asterisk endpoints carry no
    /// display name of their own; the instance's `line_name` template builds what clients
    /// see, with the endpoint as `%h`.
    pub(crate) fn line_name(&self, _endpoint: &str, extension: &str) -> String {
        format!("Extension {extension}")
    }
}

/// True when `value` can be sent as one AMI header value.
pub(crate) fn is_header_safe(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

fn config_error(message: impl Into<String>) -> ProviderError {
    ProviderError::Config(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AmiConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_fill_everything_but_the_credentials() {
        let config = parse("host = \"pbx\"\nusername = \"u\"\nsecret = \"s\"\n").unwrap();
        assert_eq!(config.port, 5038);
        assert_eq!(config.context, "from-internal");
        assert_eq!(config.endpoint_technology, Technology::Pjsip);
        assert_eq!(config.events, ["call", "system", "agent"]);
        assert_eq!(config.phone_control, PhoneControl::None);
        assert_eq!(config.feature_store, FeatureStore::Astdb);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn the_technology_names_its_list_action_and_header_variable() {
        let sip =
            "host = \"pbx\"\nusername = \"u\"\nsecret = \"s\"\nendpoint_technology = \"SIP\"\n";
        let config = parse(sip).unwrap();
        assert_eq!(
            config.endpoint_technology.endpoint_list(),
            ("SIPpeers", "PeerEntry")
        );
        let header = "Call-Info: answer-after=0";
        assert_eq!(
            Technology::Pjsip.header_variable(header).as_deref(),
            Some("PJSIP_HEADER(add,Call-Info)=answer-after=0")
        );
        assert_eq!(
            Technology::Sip.header_variable(header).as_deref(),
            Some("SIPADDHEADER=Call-Info: answer-after=0")
        );
        assert_eq!(Technology::Iax2.header_variable(header), None);
        let dahdi = sip.replace("SIP", "DAHDI");
        let error = parse(&dahdi).unwrap_err().to_string();
        assert!(error.contains("PJSIP") && error.contains("IAX2"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = parse("host = \"pbx\"\nusername = \"u\"\nsecret = \"s\"\nprot = 1\n");
        assert!(error.is_err());
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let config = AmiConfig::new("pbx", "ctiuser", "topsecret");
        let text = format!("{config:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn validation_names_the_setting_at_fault() {
        type Spoil = fn(&mut AmiConfig);
        let cases: [(Spoil, &str); 7] = [
            (
                |c| c.tls_ca_file = Some("/nonexistent/ca.pem".into()),
                "tls_ca_file",
            ),
            (|c| c.secret = String::new(), "secret"),
            (|c| c.context = "a\r\nAction: Logoff".into(), "context"),
            (
                |c| c.phone_control = PhoneControl::SipNotify,
                "endpoint_technology",
            ),
            (
                |c| {
                    c.endpoint_technology = Technology::Iax2;
                    c.auto_answer_header = Some("Call-Info: answer-after=0".into());
                },
                "auto_answer_header",
            ),
            (|c| c.reconnect_max_ms = 1, "reconnect_max_ms"),
            (|c| c.events = vec!["call".into()], "system"),
        ];
        for (spoil, name) in cases {
            let mut config = AmiConfig::new("pbx", "u", "s");
            spoil(&mut config);
            let Err(ProviderError::Config(message)) = config.validate() else {
                panic!("{name} should be refused");
            };
            assert!(message.contains(name), "{message}");
        }
    }
}
