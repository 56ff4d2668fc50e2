//! [`SipConfig`]: the SIP provider's settings as read from tapir's config file, with their
//! validation.
//!
//! The digest password never appears in logs: `Debug` prints it redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tapir_provider::ProviderError;

/// The SIP transport used towards the registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS: one connection from the provider to the registrar, which carries the
    /// registrar's NOTIFYs back too.
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The registrar's port when none is configured (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }
}

/// The registrar and proxy every request goes through (Kamailio in the test bed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RegistrarSettings")]
pub struct Registrar {
    /// An IP address literal: the provider never resolves names.
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// With `transport = "tls"`: a PEM file of CA certificates to trust besides the system's
    /// (e.g. a private CA). The same setting as the AMI and CSTA drivers'.
    pub tls_ca_file: Option<PathBuf>,
    /// With `transport = "tls"`: the name the registrar's certificate must carry; default
    /// `host` (an IP address, which certificates seldom name).
    pub tls_server_name: Option<String>,
}

/// [`Registrar`] as written in the file, where the port's default depends on the transport.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistrarSettings {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default = "default_transport")]
    transport: Transport,
    #[serde(default)]
    tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    tls_server_name: Option<String>,
}

impl From<RegistrarSettings> for Registrar {
    fn from(settings: RegistrarSettings) -> Registrar {
        Registrar {
            port: settings
                .port
                .unwrap_or_else(|| settings.transport.default_port()),
            host: settings.host,
            transport: settings.transport,
            tls_ca_file: settings.tls_ca_file,
            tls_server_name: settings.tls_server_name,
        }
    }
}

impl Registrar {
    /// Whom the TLS link trusts and which name the registrar's certificate must carry.
    pub(crate) fn tls_target(&self) -> tapir_provider::tls::TlsTarget {
        tapir_provider::tls::TlsTarget::new(
            &self.host,
            self.tls_server_name.as_deref(),
            self.tls_ca_file.as_deref(),
        )
    }
}

/// One monitored line: a SIP address of record and an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// `sip:201@127.0.0.1`
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    /// A key of `phone_types`: what the line's phone understands. Absent: no remote
    /// control, and the instance's auto-answer hints.
    #[serde(default)]
    pub phone_type: Option<String>,
}

/// A block of consecutive extensions on one domain: `first..=last` as `sip:<n>@<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRange {
    pub first: u64,
    pub last: u64,
    pub domain: String,
    /// The phone type of every line of the range, as for [`LineConfig::phone_type`].
    #[serde(default)]
    pub phone_type: Option<String>,
}

/// How the provider asks a phone to answer, hold and resume its calls. SIP has no standard
/// request for that: each works only on phones that implement it (and often only once it is
/// enabled on the phone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteControl {
    /// None: answer and hold are not offered on the phone's lines.
    #[default]
    None,
    /// A NOTIFY with `Event: talk` (answer a ringing call, resume a held one) or
    /// `Event: hold` (Broadsoft's remote control events, as Yealink, Snom and Polycom take
    /// them).
    NotifyTalk,
    /// An INFO whose `application/csta+xml` body is ECMA-323's `AnswerCall`, `HoldCall` or
    /// `RetrieveCall` (uaCSTA, ECMA TR/87).
    Uacsta,
}

/// What one kind of phone understands: remote control and the auto-answer hints of made
/// calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneType {
    #[serde(default)]
    pub control: RemoteControl,
    /// `Alert-Info` of the INVITE that makes a call; absent: the instance's `alert_info`.
    /// Empty for none.
    #[serde(default)]
    pub alert_info: Option<String>,
    /// Whether that INVITE carries `Call-Info: <sip:domain>;answer-after=0` (default yes).
    #[serde(default)]
    pub answer_after: Option<bool>,
}

/// The settings that apply to one line's phone, its type's and the instance's together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneSettings {
    pub control: RemoteControl,
    /// Empty for none.
    pub alert_info: String,
    pub answer_after: bool,
}

/// Digest credentials for Kamailio's challenges (`WITH_AUTH`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub realm: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish()
    }
}

/// How the provider reaches Kamailio's JSON-RPC (module `jsonrpcs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RpcEndpoint {
    /// One JSON document per UDP datagram (`dgram_socket`), e.g. `127.0.0.1:5072`.
    Datagram { address: SocketAddr },
    /// `POST` to `http://<address><path>` (xhttp), e.g. `127.0.0.1:5071` and `/RPC`.
    Http {
        address: SocketAddr,
        #[serde(default = "default_rpc_path")]
        path: String,
    },
}

/// Where Kamailio's evapi module listens (`modparam("evapi", "bind_addr", ...)`): an
/// optional feed of the in-dialog events dialog-info cannot show (hold, resume, transfer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvapiEndpoint {
    /// An IP address literal, as for the registrar.
    pub host: String,
    /// evapi's own default.
    #[serde(default = "default_evapi_port")]
    pub port: u16,
}

impl EvapiEndpoint {
    /// `host:port`, for connecting and for messages.
    pub fn address(&self) -> String {
        match self.host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// Settings of one SIP instance.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    pub registrar: Registrar,
    /// Where the provider's own SIP socket binds; port 0 picks a free one.
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    #[serde(default)]
    pub ranges: Vec<NumberRange>,
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Drop goes through this; without it drop is not offered.
    #[serde(default)]
    pub rpc: Option<RpcEndpoint>,
    /// How often the lines' registrations are read from Kamailio's usrloc (`ul.dump` over
    /// `rpc`); a line whose phone is not registered is out of service. Absent: registrations
    /// are not followed (a registrar without JSON-RPC cannot tell).
    #[serde(default)]
    pub registration_poll_ms: Option<u64>,
    /// Kamailio's evapi feed of hold, resume and transfer events (see the README for the
    /// routing-script snippet that sends them). Absent: dialog-info only.
    #[serde(default)]
    pub evapi: Option<EvapiEndpoint>,
    /// The user part the provider calls from in 3PCC (its dialogs are hidden from lines).
    #[serde(default = "default_controller_user")]
    pub controller_user: String,
    /// `Alert-Info` sent with the INVITE to the line's phone; empty for none. A phone type
    /// may say otherwise.
    #[serde(default = "default_alert_info")]
    pub alert_info: String,
    /// Kinds of phones by name, which lines name in `phone_type`.
    #[serde(default)]
    pub phone_types: BTreeMap<String, PhoneType>,
    /// The `Expires` asked for on each dialog subscription; refreshed at 80 %.
    #[serde(default = "default_subscription_expires_s")]
    pub subscription_expires_s: u32,
    /// How often an OPTIONS checks that the registrar is alive.
    #[serde(default = "default_keepalive_interval_ms")]
    pub keepalive_interval_ms: u64,
    /// How long one request (SUBSCRIBE, OPTIONS, REFER, an RPC) may wait for its answer.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long the line's phone may take to answer the first leg of a made call, and the
    /// destination to answer the transfer.
    #[serde(default = "default_answer_timeout_ms")]
    pub answer_timeout_ms: u64,
    /// How long a drop waits for the dialog-info to show both sides gone.
    #[serde(default = "default_drop_verify_ms")]
    pub drop_verify_ms: u64,
    /// How long an answer through the phone waits for the dialog-info to show the call
    /// connected once the phone took the request.
    #[serde(default = "default_answer_verify_ms")]
    pub answer_verify_ms: u64,
    #[serde(default = "default_retry_min_ms")]
    pub retry_min_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

fn default_transport() -> Transport {
    Transport::Udp
}
fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
fn default_rpc_path() -> String {
    "/RPC".into()
}
fn default_evapi_port() -> u16 {
    8448
}
fn default_controller_user() -> String {
    "tapir".into()
}
fn default_alert_info() -> String {
    "<http://127.0.0.1/autoanswer>;info=alert-autoanswer".into()
}
fn default_subscription_expires_s() -> u32 {
    600
}
fn default_keepalive_interval_ms() -> u64 {
    10_000
}
fn default_request_timeout_ms() -> u64 {
    4_000
}
fn default_answer_timeout_ms() -> u64 {
    30_000
}
fn default_drop_verify_ms() -> u64 {
    5_000
}
fn default_answer_verify_ms() -> u64 {
    5_000
}
fn default_retry_min_ms() -> u64 {
    500
}
fn default_retry_max_ms() -> u64 {
    30_000
}

impl fmt::Debug for SipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipConfig")
            .field("registrar", &self.registrar)
            .field("bind", &self.bind)
            .field("lines", &self.lines)
            .field("ranges", &self.ranges)
            .field("credentials", &self.credentials)
            .field("rpc", &self.rpc)
            .field("registration_poll_ms", &self.registration_poll_ms)
            .field("evapi", &self.evapi)
            .field("controller_user", &self.controller_user)
            .field("phone_types", &self.phone_types)
            .finish_non_exhaustive()
    }
}

/// A line after the configuration was expanded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The address of record, normalised: `sip:<user>@<host>[:port]`.
    pub aor: String,
    pub user: String,
    /// The host part (with port if given), used as the domain of dialled numbers.
    pub domain: String,
    pub name: Option<String>,
    /// A key of [`SipConfig::phone_types`] (checked).
    pub phone_type: Option<String>,
}

/// The most lines one range may expand to.
const MAX_RANGE: u64 = 10_000;

impl SipConfig {
    /// A configuration with every default, for the registrar at `host:port` and these lines.
    pub fn new(host: impl Into<String>, port: u16, lines: &[&str]) -> SipConfig {
        SipConfig {
            registrar: Registrar {
                host: host.into(),
                port,
                transport: Transport::Udp,
                tls_ca_file: None,
                tls_server_name: None,
            },
            bind: default_bind(),
            lines: lines
                .iter()
                .map(|a| LineConfig {
                    address: (*a).to_owned(),
                    name: None,
                    phone_type: None,
                })
                .collect(),
            ranges: Vec::new(),
            credentials: None,
            rpc: None,
            registration_poll_ms: None,
            evapi: None,
            controller_user: default_controller_user(),
            alert_info: default_alert_info(),
            phone_types: BTreeMap::new(),
            subscription_expires_s: default_subscription_expires_s(),
            keepalive_interval_ms: default_keepalive_interval_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            answer_timeout_ms: default_answer_timeout_ms(),
            drop_verify_ms: default_drop_verify_ms(),
            answer_verify_ms: default_answer_verify_ms(),
            retry_min_ms: default_retry_min_ms(),
            retry_max_ms: default_retry_max_ms(),
        }
    }

    /// Checks the settings; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), ProviderError> {
        if self.registrar.host.parse::<std::net::IpAddr>().is_err() {
            return Err(config_error(format!(
                "registrar.host `{}` must be an IP address (names are never resolved)",
                self.registrar.host
            )));
        }
        if self.registrar.port == 0 {
            return Err(config_error("registrar.port must not be 0"));
        }
        self.validate_tls()?;
        if let Some(credentials) = &self.credentials {
            for (name, value) in [
                ("credentials.username", &credentials.username),
                ("credentials.password", &credentials.password),
            ] {
                if value.is_empty() || value.chars().any(char::is_control) {
                    return Err(config_error(format!(
                        "{name} must not be empty or contain control characters"
                    )));
                }
            }
        }
        if !is_user_part(&self.controller_user) {
            return Err(config_error(format!(
                "controller_user `{}` must be a plain SIP user part",
                self.controller_user
            )));
        }
        if self.alert_info.chars().any(char::is_control) {
            return Err(config_error("alert_info must not contain line breaks"));
        }
        for (name, phone_type) in &self.phone_types {
            if let Some(alert_info) = &phone_type.alert_info
                && alert_info.chars().any(char::is_control)
            {
                return Err(config_error(format!(
                    "phone_types.{name}.alert_info must not contain line breaks"
                )));
            }
        }
        if let Some(RpcEndpoint::Http { path, .. }) = &self.rpc
            && (!path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' '))
        {
            return Err(config_error(format!(
                "rpc.path `{path}` must start with `/` and contain no spaces"
            )));
        }
        match self.registration_poll_ms {
            Some(0) => return Err(config_error("registration_poll_ms must be more than 0")),
            Some(_) if self.rpc.is_none() => {
                return Err(config_error(
                    "registration_poll_ms needs `rpc` (registrations are read with ul.dump)",
                ));
            }
            _ => {}
        }
        if let Some(evapi) = &self.evapi {
            if evapi.host.parse::<std::net::IpAddr>().is_err() {
                return Err(config_error(format!(
                    "evapi.host `{}` must be an IP address (names are never resolved)",
                    evapi.host
                )));
            }
            if evapi.port == 0 {
                return Err(config_error("evapi.port must not be 0"));
            }
        }
        if self.subscription_expires_s < 10 {
            return Err(config_error(
                "subscription_expires_s must be at least 10 (Kamailio's minimum)",
            ));
        }
        for (name, value) in [
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("answer_timeout_ms", self.answer_timeout_ms),
            ("drop_verify_ms", self.drop_verify_ms),
            ("answer_verify_ms", self.answer_verify_ms),
            ("retry_min_ms", self.retry_min_ms),
        ] {
            if value == 0 {
                return Err(config_error(format!("{name} must be more than 0")));
            }
        }
        if self.retry_max_ms < self.retry_min_ms {
            return Err(config_error("retry_max_ms must be at least retry_min_ms"));
        }
        self.expand_lines().map(|_| ())
    }

    /// Every configured line, from `lines` then `ranges`, checked and without duplicates.
    pub fn expand_lines(&self) -> Result<Vec<Line>, ProviderError> {
        let mut lines = Vec::new();
        for (index, line) in self.lines.iter().enumerate() {
            let parsed = parse_aor(&line.address).map_err(|reason| {
                config_error(format!(
                    "lines[{index}].address `{}`: {reason}",
                    line.address
                ))
            })?;
            if let Some(name) = &line.name
                && name.chars().any(char::is_control)
            {
                return Err(config_error(format!(
                    "lines[{index}].name must not contain control characters"
                )));
            }
            self.check_phone_type(line.phone_type.as_deref(), || format!("lines[{index}]"))?;
            lines.push(Line {
                name: line.name.clone(),
                phone_type: line.phone_type.clone(),
                ..parsed
            });
        }
        for (index, range) in self.ranges.iter().enumerate() {
            if range.last < range.first {
                return Err(config_error(format!(
                    "ranges[{index}]: last {} is below first {}",
                    range.last, range.first
                )));
            }
            self.check_phone_type(range.phone_type.as_deref(), || format!("ranges[{index}]"))?;
            if range.last - range.first >= MAX_RANGE {
                return Err(config_error(format!(
                    "ranges[{index}]: more than {MAX_RANGE} numbers"
                )));
            }
            for number in range.first..=range.last {
                let address = format!("sip:{number}@{}", range.domain);
                let parsed = parse_aor(&address).map_err(|reason| {
                    config_error(format!(
                        "ranges[{index}].domain `{}`: {reason}",
                        range.domain
                    ))
                })?;
                lines.push(Line {
                    phone_type: range.phone_type.clone(),
                    ..parsed
                });
            }
        }
        if lines.is_empty() {
            return Err(config_error("no lines: give `lines` or `ranges`"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for line in &lines {
            if !seen.insert(line.aor.clone()) {
                return Err(config_error(format!(
                    "line {} is configured twice",
                    line.aor
                )));
            }
        }
        Ok(lines)
    }

    /// A line's (or range's, named by `owner`) phone type must be one of `phone_types`.
    fn check_phone_type(
        &self,
        phone_type: Option<&str>,
        owner: impl Fn() -> String,
    ) -> Result<(), ProviderError> {
        match phone_type {
            Some(name) if !self.phone_types.contains_key(name) => Err(config_error(format!(
                "{}.phone_type `{name}` is not one of phone_types",
                owner()
            ))),
            _ => Ok(()),
        }
    }

    /// Whether every line's phone takes remote control, so that answer and hold can be
    /// offered: capabilities are the instance's, not a line's.
    pub fn every_phone_is_remote_controlled(&self) -> bool {
        self.expand_lines().is_ok_and(|lines| {
            lines
                .iter()
                .all(|line| self.phone_of(line).control != RemoteControl::None)
        })
    }

    /// What `line`'s phone understands: its type's settings, the instance's where the type
    /// says nothing.
    pub fn phone_of(&self, line: &Line) -> PhoneSettings {
        let phone_type = line
            .phone_type
            .as_ref()
            .and_then(|name| self.phone_types.get(name))
            .cloned()
            .unwrap_or_default();
        PhoneSettings {
            control: phone_type.control,
            alert_info: phone_type
                .alert_info
                .unwrap_or_else(|| self.alert_info.clone()),
            answer_after: phone_type.answer_after.unwrap_or(true),
        }
    }

    /// The TLS settings are only for `transport = "tls"`, and the CA file must be there.
    fn validate_tls(&self) -> Result<(), ProviderError> {
        let registrar = &self.registrar;
        let has_tls_settings =
            registrar.tls_ca_file.is_some() || registrar.tls_server_name.is_some();
        if has_tls_settings && registrar.transport != Transport::Tls {
            return Err(config_error(
                "registrar.tls_ca_file and registrar.tls_server_name need registrar.transport = \"tls\"",
            ));
        }
        if let Some(file) = &registrar.tls_ca_file
            && !file.is_file()
        {
            return Err(config_error(format!(
                "registrar.tls_ca_file: {} is not a readable file",
                file.display()
            )));
        }
        if let Some(name) = &registrar.tls_server_name
            && tapir_provider::tls::TlsTarget::new(&registrar.host, Some(name), None)
                .server_name()
                .is_err()
        {
            return Err(config_error(format!(
                "registrar.tls_server_name `{name}` is not a DNS name or IP address"
            )));
        }
        Ok(())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// `host:port` of the registrar, for messages.
    pub fn registrar_address(&self) -> String {
        format!("{}:{}", self.registrar.host, self.registrar.port)
    }
}

/// Reads `sip:user@host[:port]` (no parameters, no display name).
fn parse_aor(address: &str) -> Result<Line, String> {
    let rest = address
        .strip_prefix("sip:")
        .ok_or_else(|| "must start with `sip:`".to_string())?;
    let (user, domain) = rest
        .split_once('@')
        .ok_or_else(|| "must be `sip:user@host`".to_string())?;
    if !is_user_part(user) {
        return Err(format!(
            "user part `{user}` is empty or has characters SIP does not allow here"
        ));
    }
    let valid_domain = !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid_domain {
        return Err(format!("host `{domain}` is not a plain host[:port]"));
    }
    Ok(Line {
        aor: format!("sip:{user}@{domain}"),
        user: user.to_owned(),
        domain: domain.to_owned(),
        name: None,
        phone_type: None,
    })
}

/// True for a user part made of unreserved characters (no escapes, no parameters).
pub(crate) fn is_user_part(user: &str) -> bool {
    !user.is_empty()
        && user.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '!' | '~' | '*' | '+')
        })
}

fn config_error(message: impl Into<String>) -> ProviderError {
    ProviderError::Config(message.into())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<SipConfig, toml::de::Error> {
        toml::from_str(text)
    }

    const MINIMAL: &str = "registrar = { host = \"127.0.0.1\" }\n\
        lines = [{ address = \"sip:201@127.0.0.1\", name = \"Ada\" }]\n";

    #[test]
    fn defaults_fill_everything_but_registrar_and_lines() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.registrar.port, 5060);
        assert_eq!(config.registrar.transport, Transport::Udp);
        assert_eq!(config.subscription_expires_s, 600);
        assert_eq!(config.controller_user, "tapir");
        assert_eq!(config.rpc, None);
        assert_eq!(config.validate(), Ok(()));
        let lines = config.expand_lines().unwrap();
        assert_eq!(lines[0].aor, "sip:201@127.0.0.1");
        assert_eq!(lines[0].user, "201");
        assert_eq!(lines[0].name.as_deref(), Some("Ada"));
    }

    #[test]
    fn every_setting_parses() {
        let text = "registrar = { host = \"127.0.0.1\", port = 5070, transport = \"tcp\" }\n\
            bind = \"127.0.0.1:5999\"\n\
            ranges = [{ first = 201, last = 203, domain = \"127.0.0.1\" }]\n\
            credentials = { username = \"tapir\", password = \"secret\" }\n\
            rpc = { type = \"http\", address = \"127.0.0.1:5071\" }\n\
            subscription_expires_s = 120\nretry_min_ms = 100\nretry_max_ms = 1000\n\
            registration_poll_ms = 5000\n";
        let config = parse(text).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.registration_poll_ms, Some(5000));
        let lines: Vec<String> = config
            .expand_lines()
            .unwrap()
            .into_iter()
            .map(|l| l.aor)
            .collect();
        assert_eq!(
            lines,
            [
                "sip:201@127.0.0.1",
                "sip:202@127.0.0.1",
                "sip:203@127.0.0.1"
            ]
        );
        assert_eq!(
            config.rpc,
            Some(RpcEndpoint::Http {
                address: "127.0.0.1:5071".parse().unwrap(),
                path: "/RPC".into()
            })
        );
        let datagram = parse(&format!(
            "{MINIMAL}rpc = {{ type = \"datagram\", address = \"127.0.0.1:5072\" }}\n"
        ))
        .unwrap();
        assert!(matches!(datagram.rpc, Some(RpcEndpoint::Datagram { .. })));
    }

    #[test]
    fn the_evapi_feed_is_optional_with_evapis_default_port() {
        assert_eq!(parse(MINIMAL).unwrap().evapi, None);
        let config = parse(&format!("{MINIMAL}evapi = {{ host = \"127.0.0.1\" }}\n")).unwrap();
        assert_eq!(config.validate(), Ok(()));
        let evapi = config.evapi.clone().unwrap();
        assert_eq!(evapi.address(), "127.0.0.1:8448");
        let v6 = parse(&format!(
            "{MINIMAL}evapi = {{ host = \"::1\", port = 9000 }}\n"
        ))
        .unwrap();
        assert_eq!(v6.evapi.unwrap().address(), "[::1]:9000");
        for (text, error) in [
            ("evapi = { host = \"kamailio.example\" }", "evapi.host"),
            ("evapi = { host = \"127.0.0.1\", port = 0 }", "evapi.port"),
        ] {
            let config = parse(&format!("{MINIMAL}{text}\n")).unwrap();
            let Err(ProviderError::Config(message)) = config.validate() else {
                panic!("{text} must be refused");
            };
            assert!(message.contains(error), "{message}");
        }
        assert!(
            parse(&format!(
                "{MINIMAL}evapi = {{ host = \"127.0.0.1\", tls = true }}\n"
            ))
            .is_err()
        );
    }

    #[test]
    fn tls_is_read_like_the_ami_and_csta_drivers() {
        let text = "registrar = { host = \"127.0.0.1\", transport = \"tls\", \
            tls_ca_file = \"Cargo.toml\", tls_server_name = \"sip.example\" }\n\
            lines = [{ address = \"sip:201@127.0.0.1\" }]\n";
        let config = parse(text).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.registrar.transport, Transport::Tls);
        assert_eq!(config.registrar.port, 5061, "TLS's own default port");
        let target = config.registrar.tls_target();
        assert_eq!(target.server_name, "sip.example");
        assert_eq!(target.ca_file.as_deref(), Some(Path::new("Cargo.toml")));
        let plain = parse(MINIMAL).unwrap();
        assert_eq!(plain.registrar.tls_target().server_name, "127.0.0.1");
        assert_eq!(plain.registrar.tls_target().ca_file, None);
    }

    #[test]
    fn phone_types_give_lines_remote_control_and_their_own_hints() {
        let text = "registrar = { host = \"127.0.0.1\" }\n\
            alert_info = \"<urn:alert:service:auto-answer>\"\n\
            lines = [{ address = \"sip:201@127.0.0.1\", phone_type = \"yealink\" },\n\
                     { address = \"sip:202@127.0.0.1\" }]\n\
            ranges = [{ first = 210, last = 211, domain = \"127.0.0.1\", phone_type = \"snom\" }]\n\
            [phone_types.yealink]\ncontrol = \"notify_talk\"\n\
            [phone_types.snom]\ncontrol = \"uacsta\"\nalert_info = \"\"\nanswer_after = false\n";
        let config = parse(text).unwrap();
        assert_eq!(config.validate(), Ok(()));
        let phones: Vec<PhoneSettings> = config
            .expand_lines()
            .unwrap()
            .iter()
            .map(|line| config.phone_of(line))
            .collect();
        let instance_hint = "<urn:alert:service:auto-answer>".to_string();
        assert_eq!(
            phones[0],
            PhoneSettings {
                control: RemoteControl::NotifyTalk,
                alert_info: instance_hint.clone(),
                answer_after: true
            }
        );
        assert_eq!(
            phones[1],
            PhoneSettings {
                control: RemoteControl::None,
                alert_info: instance_hint,
                answer_after: true
            }
        );
        for snom in &phones[2..] {
            assert_eq!(
                *snom,
                PhoneSettings {
                    control: RemoteControl::Uacsta,
                    alert_info: String::new(),
                    answer_after: false
                }
            );
        }
        assert!(parse(&format!("{MINIMAL}[phone_types.x]\ncontrol = \"csta\"\n")).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse(&format!("{MINIMAL}expires = 5\n")).is_err());
        assert!(parse("registrar = { host = \"127.0.0.1\", prot = 1 }\nlines = []\n").is_err());
        assert!(parse(&format!("{MINIMAL}rpc = {{ type = \"fifo\" }}\n")).is_err());
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let mut config = SipConfig::new("127.0.0.1", 5060, &["sip:201@127.0.0.1"]);
        config.credentials = Some(Credentials {
            username: "tapir".into(),
            password: "topsecret".into(),
            realm: None,
        });
        let text = format!("{config:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn validation_names_the_setting_at_fault() {
        type Spoil = fn(&mut SipConfig);
        let cases: [(Spoil, &str); 18] = [
            (
                |c| c.lines[0].phone_type = Some("unknown".into()),
                "lines[0].phone_type `unknown`",
            ),
            (
                |c| {
                    c.phone_types.insert(
                        "desk".into(),
                        PhoneType {
                            alert_info: Some("a\r\nb".into()),
                            ..PhoneType::default()
                        },
                    );
                },
                "phone_types.desk.alert_info",
            ),
            (
                |c| c.registrar.tls_ca_file = Some("Cargo.toml".into()),
                "need registrar.transport = \"tls\"",
            ),
            (
                |c| {
                    c.registrar.transport = Transport::Tls;
                    c.registrar.tls_ca_file = Some("/nonexistent/ca.pem".into());
                },
                "registrar.tls_ca_file",
            ),
            (
                |c| {
                    c.registrar.transport = Transport::Tls;
                    c.registrar.tls_server_name = Some("not a name".into());
                },
                "registrar.tls_server_name",
            ),
            (
                |c| c.registration_poll_ms = Some(1000),
                "registration_poll_ms needs `rpc`",
            ),
            (
                |c| c.registrar.host = "kamailio.example".into(),
                "registrar.host",
            ),
            (|c| c.registrar.port = 0, "registrar.port"),
            (
                |c| c.lines[0].address = "201@127.0.0.1".into(),
                "lines[0].address",
            ),
            (
                |c| c.lines[0].address = "sip:@127.0.0.1".into(),
                "user part",
            ),
            (
                |c| c.lines[0].address = "sip:201@127.0.0.1;transport=tcp".into(),
                "host",
            ),
            (|c| c.lines.push(c.lines[0].clone()), "configured twice"),
            (|c| c.lines.clear(), "no lines"),
            (
                |c| {
                    c.ranges.push(NumberRange {
                        first: 300,
                        last: 200,
                        domain: "127.0.0.1".into(),
                        phone_type: None,
                    })
                },
                "ranges[0]",
            ),
            (|c| c.subscription_expires_s = 5, "subscription_expires_s"),
            (|c| c.retry_max_ms = 1, "retry_max_ms"),
            (|c| c.controller_user = "ta pir".into(), "controller_user"),
            (
                |c| {
                    c.rpc = Some(RpcEndpoint::Http {
                        address: "127.0.0.1:5071".parse().unwrap(),
                        path: "RPC".into(),
                    })
                },
                "rpc.path",
            ),
        ];
        for (spoil, name) in cases {
            let mut config = SipConfig::new("127.0.0.1", 5060, &["sip:201@127.0.0.1"]);
            spoil(&mut config);
            let Err(ProviderError::Config(message)) = config.validate() else {
                panic!("{name} should be refused");
            };
            assert!(message.contains(name), "{name}: {message}");
        }
    }
}
