//! The words of the rights model: what a user may do on a line, why, and how an instance
//! decides it.

use std::fmt;
use std::str::FromStr;

/// What a user may do on a line. Ordered: each right includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Right {
    /// The line does not exist for this user.
    #[default]
    None,
    /// See the line's state and events.
    Monitor,
    /// Monitor, and act on the line and its calls.
    Control,
}

/// Why a user has a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The user's own line: full control.
    Own,
    /// A line assigned to the user (TAPI's line assignment, tsecimp), with a given right.
    Assigned,
    /// The own line of a teammate, with the team's right.
    Team,
}

/// How an instance decides who sees its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OperatingMode {
    /// One user's desk: own lines with full rights, teammates' lines with the team's right.
    #[default]
    Workstation,
    /// Many users on one server: each uses only the lines assigned to him.
    TerminalServer,
    /// A CRM or call-centre server: every user of the tenant sees and controls every line.
    ServerApplication,
}

/// What an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Administers users, lines and the server for its tenant, or for all tenants.
    Admin,
    /// Uses the lines its rights give it.
    User,
}

/// A word that names none of the choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub choices: &'static [&'static str],
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?}; use {}",
            self.what,
            self.word,
            self.choices.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

/// Spelling of the access words on the wire, in config and in the store.
macro_rules! words {
    ($type:ty, $what:literal, $($variant:path => $word:literal),+ $(,)?) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $word),+ }
            }
        }

        impl FromStr for $type {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok($variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        word: word.to_owned(),
                        choices: &[$($word),+],
                    }),
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(Right, "right", Right::None => "none", Right::Monitor => "monitor", Right::Control => "control");
words!(Relation, "relation", Relation::Own => "own", Relation::Assigned => "assigned", Relation::Team => "team");
words!(OperatingMode, "operating mode",
    OperatingMode::Workstation => "workstation",
    OperatingMode::TerminalServer => "terminal_server",
    OperatingMode::ServerApplication => "server_application");
words!(Role, "role", Role::Admin => "admin", Role::User => "user");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_list_the_choices() {
        for mode in [
            OperatingMode::Workstation,
            OperatingMode::TerminalServer,
            OperatingMode::ServerApplication,
        ] {
            assert_eq!(mode.as_str().parse::<OperatingMode>(), Ok(mode));
        }
        let error = "root".parse::<Role>().unwrap_err();
        assert_eq!(error.to_string(), "unknown role \"root\"; use admin, user");
        assert!(Right::Control > Right::Monitor && Right::Monitor > Right::None);
    }
}
