//! One provider instance's settings: which tapir server, as whom, and how to log.
//!
//! Several instances of the TSP may be installed (each with its own permanent provider id),
//! pointing at different servers or tenants. Settings are stored per provider id (in the
//! registry on Windows, see `registry`); `TapirConfigure` writes them from a command line.

use std::path::PathBuf;

use thiserror::Error;

/// Whose lines the TSP shows (README: "Users, rights and operating modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A workstation: the lines of the configured user (by default the logged-in Windows
    /// user's name).
    #[default]
    User,
    /// A terminal server: the lines assigned to the configured account; TAPI's own line
    /// assignment (tsec) hands them to each session's user.
    TerminalServer,
    /// A server application: every line the configured account may see.
    All,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::User => "user",
            Mode::TerminalServer => "terminal_server",
            Mode::All => "all",
        }
    }

    pub fn parse(text: &str) -> Result<Mode, ConfigError> {
        match text {
            "user" => Ok(Mode::User),
            "terminal_server" => Ok(Mode::TerminalServer),
            "all" => Ok(Mode::All),
            other => Err(ConfigError::BadValue {
                setting: "mode",
                value: other.into(),
                expected: "user, terminal_server or all",
            }),
        }
    }
}

/// How the TSP proves who it is to the server.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An application token (`POST /api/v1/tokens`).
    Token(String),
    /// A user's name and password, exchanged for a session token at each connect.
    Password { user: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log.
        match self {
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
        }
    }
}

/// A provider instance's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TspConfig {
    /// The server's WebSocket URL, `ws://host:port` or `wss://host:port` (the path
    /// `/api/v1/ws` is added when missing).
    pub server: String,
    pub credentials: Credentials,
    /// A PEM file of extra certificate authorities to trust for `wss://`.
    pub ca_file: Option<PathBuf>,
    pub mode: Mode,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: String,
    /// Where the rotating log files go.
    pub log_dir: Option<PathBuf>,
    /// How long `providerEnumDevices` waits for the server's first snapshot.
    pub startup_wait_ms: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("no tapir server configured (--server ws://host:port)")]
    NoServer,
    #[error("no credentials configured (--token, or --user with --password)")]
    NoCredentials,
    #[error("{setting} {value:?} is not valid; expected {expected}")]
    BadValue {
        setting: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error(
        "TAPI assigns the permanent provider id when it adds the provider; leave out --provider"
    )]
    ProviderAssignedByTapi,
    #[error("the settings store failed: {0}")]
    Store(String),
}

impl TspConfig {
    /// The WebSocket URL of the event stream.
    pub fn ws_url(&self) -> String {
        let base = self.server.trim_end_matches('/');
        if base.ends_with("/api/v1/ws") {
            base.to_owned()
        } else {
            format!("{base}/api/v1/ws")
        }
    }

    /// The HTTP base URL of the same server (for logging in).
    pub fn http_base(&self) -> String {
        let url = self.ws_url();
        let url = url.trim_end_matches("/api/v1/ws");
        if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            url.to_owned()
        }
    }
}

/// Where the log files go without `--log-dir`: `%ProgramData%\tapir\logs` (the temporary
/// directory where there is no ProgramData).
pub fn default_log_dir() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("tapir")
        .join("logs")
}

/// The settings as stored: plain values by name, secrets separately (protected at rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSettings {
    pub values: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
}

impl StoredSettings {
    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn secret(&self, name: &str) -> Option<&str> {
        self.secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The settings as a configuration; `default_user` names the user in `user` mode when
    /// none is stored.
    pub fn to_config(&self, default_user: Option<&str>) -> Result<TspConfig, ConfigError> {
        let server = self
            .value("Server")
            .ok_or(ConfigError::NoServer)?
            .to_owned();
        if !(server.starts_with("ws://") || server.starts_with("wss://")) {
            return Err(ConfigError::BadValue {
                setting: "server",
                value: server,
                expected: "a ws:// or wss:// URL",
            });
        }
        let mode = self
            .value("Mode")
            .map(Mode::parse)
            .transpose()?
            .unwrap_or_default();
        let credentials = match (self.secret("Token"), self.secret("Password")) {
            (Some(token), _) => Credentials::Token(token.to_owned()),
            (None, Some(password)) => {
                let user = self
                    .value("User")
                    .or(default_user.filter(|_| mode == Mode::User))
                    .ok_or(ConfigError::NoCredentials)?;
                Credentials::Password {
                    user: user.to_owned(),
                    password: password.to_owned(),
                }
            }
            (None, None) => return Err(ConfigError::NoCredentials),
        };
        let startup_wait_ms = match self.value("StartupWaitMs") {
            Some(text) => text.parse().map_err(|_| ConfigError::BadValue {
                setting: "startup wait",
                value: text.into(),
                expected: "milliseconds",
            })?,
            None => 3000,
        };
        Ok(TspConfig {
            server,
            credentials,
            ca_file: self.value("CaFile").map(PathBuf::from),
            mode,
            log_level: self.value("LogLevel").unwrap_or("info").to_owned(),
            log_dir: self.value("LogDir").map(PathBuf::from),
            startup_wait_ms,
        })
    }
}

/// `TapirConfigure`'s command line: `--provider N` and the settings to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigureArgs {
    pub provider: u32,
    pub settings: StoredSettings,
}

/// Parses `--provider 1 --server ws://... --token T --user U --password P --ca-file F
/// --mode M --log-level L --log-dir D --startup-wait-ms N`; see `parse_options` for the
/// `--name=value` form.
pub fn parse_configure_args(line: &str) -> Result<ConfigureArgs, ConfigError> {
    let (provider, settings) = parse_options(line)?;
    let provider = provider.ok_or(ConfigError::MissingValue("--provider".into()))?;
    Ok(ConfigureArgs { provider, settings })
}

/// `TapirInstall`'s command line: the settings of `parse_configure_args` without
/// `--provider`, which TAPI assigns when it adds the provider.
pub fn parse_install_args(line: &str) -> Result<StoredSettings, ConfigError> {
    match parse_options(line)? {
        (Some(_), _) => Err(ConfigError::ProviderAssignedByTapi),
        (None, settings) => Ok(settings),
    }
}

/// The options of both command lines. Each is `--name value` or `--name=value`; in the
/// second form an empty value leaves the setting unset, so an installer can pass every
/// property it has (`--user=[USER]`) whether it was given or not.
fn parse_options(line: &str) -> Result<(Option<u32>, StoredSettings), ConfigError> {
    let mut words = line.split_whitespace();
    let mut provider = None;
    let mut settings = StoredSettings::default();
    while let Some(word) = words.next() {
        let (option, inline_value) = match word.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value)),
            _ => (word, None),
        };
        let value = match inline_value {
            Some("") => continue,
            Some(value) => value.to_owned(),
            None => words
                .next()
                .map(str::to_owned)
                .ok_or_else(|| ConfigError::MissingValue(option.to_owned()))?,
        };
        match option {
            "--provider" => {
                provider = Some(value.parse().map_err(|_| ConfigError::BadValue {
                    setting: "provider",
                    value,
                    expected: "the permanent provider id (a number)",
                })?);
            }
            "--token" => settings.secrets.push(("Token".into(), value)),
            "--password" => settings.secrets.push(("Password".into(), value)),
            "--mode" => {
                Mode::parse(&value)?;
                settings.values.push(("Mode".into(), value));
            }
            other => {
                let name = match other {
                    "--server" => "Server",
                    "--user" => "User",
                    "--ca-file" => "CaFile",
                    "--log-level" => "LogLevel",
                    "--log-dir" => "LogDir",
                    "--startup-wait-ms" => "StartupWaitMs",
                    _ => return Err(ConfigError::UnknownOption(other.to_owned())),
                };
                settings.values.push((name.into(), value));
            }
        }
    }
    Ok((provider, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_becomes_settings_and_a_config() {
        let args = parse_configure_args(
            "--provider 3 --server ws://10.0.0.5:5380 --token tapir_1_abc --mode all --log-level debug",
        )
        .unwrap();
        assert_eq!(args.provider, 3);
        let config = args.settings.to_config(None).unwrap();
        assert_eq!(config.ws_url(), "ws://10.0.0.5:5380/api/v1/ws");
        assert_eq!(config.http_base(), "http://10.0.0.5:5380");
        assert_eq!(config.credentials, Credentials::Token("tapir_1_abc".into()));
        assert_eq!(config.mode, Mode::All);
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.startup_wait_ms, 3000);
        assert!(
            !format!("{config:?}").contains("abc"),
            "secrets stay out of logs"
        );
    }

    #[test]
    fn a_password_needs_a_user_except_for_the_logged_in_user() {
        let args =
            parse_configure_args("--provider 1 --server wss://pbx:5381 --password pw").unwrap();
        assert_eq!(
            args.settings.to_config(Some("ada")).unwrap().credentials,
            Credentials::Password {
                user: "ada".into(),
                password: "pw".into()
            }
        );
        let all = parse_configure_args("--provider 1 --server wss://pbx --password pw --mode all")
            .unwrap();
        assert_eq!(
            all.settings.to_config(Some("ada")),
            Err(ConfigError::NoCredentials)
        );
    }

    #[test]
    fn bad_settings_are_named() {
        assert_eq!(
            parse_configure_args("--server ws://x"),
            Err(ConfigError::MissingValue("--provider".into()))
        );
        assert_eq!(
            parse_configure_args("--provider 1 --colour red"),
            Err(ConfigError::UnknownOption("--colour".into()))
        );
        assert!(matches!(
            parse_configure_args("--provider 1 --mode everyone"),
            Err(ConfigError::BadValue {
                setting: "mode",
                ..
            })
        ));
        let http = parse_configure_args("--provider 1 --server http://x --token t").unwrap();
        assert!(matches!(
            http.settings.to_config(None),
            Err(ConfigError::BadValue {
                setting: "server",
                ..
            })
        ));
        let none = parse_configure_args("--provider 1 --server ws://x").unwrap();
        assert_eq!(
            none.settings.to_config(None),
            Err(ConfigError::NoCredentials)
        );
    }

    #[test]
    fn an_install_line_takes_inline_values_and_skips_empty_ones() {
        // As the MSI passes them: every property, given or not.
        let settings = parse_install_args(
            "--server=ws://pbx:5380 --token=tapir_1_abc --user= --password= --mode=",
        )
        .unwrap();
        let config = settings.to_config(None).unwrap();
        assert_eq!(config.server, "ws://pbx:5380");
        assert_eq!(config.credentials, Credentials::Token("tapir_1_abc".into()));
        assert_eq!(config.mode, Mode::User);
        assert_eq!(
            parse_install_args("--server ws://pbx --token t --provider 2"),
            Err(ConfigError::ProviderAssignedByTapi)
        );
        let no_server = parse_install_args("--server= --token=t").unwrap();
        assert_eq!(no_server.to_config(None), Err(ConfigError::NoServer));
        assert!(matches!(
            parse_install_args("--server=ws://pbx --token=t --mode=everyone"),
            Err(ConfigError::BadValue {
                setting: "mode",
                ..
            })
        ));
    }
}
