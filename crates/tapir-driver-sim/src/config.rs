//! The simulated PBX's settings, as read from tapir's config file, and their validation.

use serde::Deserialize;
use tapir_provider::ProviderError;

use crate::dial;

/// The most extensions one simulated PBX may have.
const MAX_EXTENSIONS: u32 = 1_000_000;

/// How an outside number answers when the switch calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalBehaviour {
    /// Rings for `external_answer_delay_ms`, then answers.
    Answer,
    /// The trunk reports busy.
    Busy,
    /// Rings for ever.
    NoAnswer,
    /// Refuses the call: the caller's call is disconnected with reason "reject".
    Reject,
}

/// How outside numbers starting with `prefix` behave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalRule {
    pub prefix: String,
    pub behaviour: ExternalBehaviour,
    /// The name the switch shows for these numbers.
    #[serde(default)]
    pub name: Option<String>,
}

/// The simulated PBX: `extensions` extensions numbered from `first_extension`, and a trunk
/// for every other number.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub extensions: u32,
    pub first_extension: u32,
    /// Time between a dialled call reaching its destination and the destination ringing.
    pub ring_delay_ms: u64,
    /// How long an extension rings before its "forward on no answer" takes effect.
    pub no_answer_timeout_ms: u64,
    /// Extensions that answer their ringing calls by themselves.
    pub auto_answer: Vec<String>,
    pub auto_answer_delay_ms: u64,
    /// How long an answering outside number rings before it answers.
    pub external_answer_delay_ms: u64,
    /// Behaviour of outside numbers by prefix; the first matching rule wins.
    pub external: Vec<ExternalRule>,
    /// Behaviour of outside numbers that no rule matches.
    pub external_default: ExternalBehaviour,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            extensions: 20,
            first_extension: 201,
            ring_delay_ms: 0,
            no_answer_timeout_ms: 15_000,
            auto_answer: Vec::new(),
            auto_answer_delay_ms: 0,
            external_answer_delay_ms: 0,
            external: Vec::new(),
            external_default: ExternalBehaviour::Answer,
        }
    }
}

impl SimConfig {
    /// Checks the settings; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), ProviderError> {
        self.last_extension()?;
        for extension in &self.auto_answer {
            if self.extension_index(extension).is_none() {
                return Err(config_error(format!(
                    "auto_answer names {extension:?}, which is not an extension ({})",
                    self.range_text()
                )));
            }
        }
        for (i, rule) in self.external.iter().enumerate() {
            validate_prefix(i, &rule.prefix)?;
        }
        Ok(())
    }

    /// The highest extension number, checking the range fits.
    fn last_extension(&self) -> Result<u32, ProviderError> {
        if !(1..=MAX_EXTENSIONS).contains(&self.extensions) {
            return Err(config_error(format!(
                "extensions must be between 1 and {MAX_EXTENSIONS}, not {}",
                self.extensions
            )));
        }
        self.first_extension
            .checked_add(self.extensions - 1)
            .ok_or_else(|| {
                config_error(format!(
                    "{} extensions from {} go past the highest extension number {}",
                    self.extensions,
                    self.first_extension,
                    u32::MAX
                ))
            })
    }

    /// The position of extension `number` in the range, if it is one of ours. Only the
    /// canonical decimal form counts ("0201" and "+201" are outside numbers).
    pub(crate) fn extension_index(&self, number: &str) -> Option<usize> {
        let canonical = !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && (number.len() == 1 || !number.starts_with('0'));
        if !canonical {
            return None;
        }
        let value: u32 = number.parse().ok()?;
        let offset = value.checked_sub(self.first_extension)?;
        (offset < self.extensions).then_some(offset as usize)
    }

    /// "201-220", for messages.
    pub(crate) fn range_text(&self) -> String {
        let last = u64::from(self.first_extension) + u64::from(self.extensions) - 1;
        format!("{}-{last}", self.first_extension)
    }

    /// How calls to the outside number `number` (already normalised) behave, and the name
    /// shown for it.
    pub(crate) fn external_for(&self, number: &str) -> (ExternalBehaviour, Option<String>) {
        self.external
            .iter()
            .find(|rule| number.starts_with(&rule.prefix))
            .map(|rule| (rule.behaviour, rule.name.clone()))
            .unwrap_or((self.external_default, None))
    }
}

fn validate_prefix(index: usize, prefix: &str) -> Result<(), ProviderError> {
    if prefix.is_empty() {
        return Err(config_error(format!(
            "external rule {} has an empty prefix; use external_default for all numbers",
            index + 1
        )));
    }
    // A prefix that is no dialable number could never match a normalised number.
    if !dial::normalize(prefix).is_ok_and(|normal| normal == prefix) {
        return Err(config_error(format!(
            "external rule {} has prefix {prefix:?}; a prefix may hold only digits, '*', '#' \
             and a leading '+'",
            index + 1
        )));
    }
    Ok(())
}

fn config_error(message: String) -> ProviderError {
    ProviderError::Config(format!("sim: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SimConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_are_twenty_extensions_from_201() {
        let config = parse("").expect("empty config parses");
        assert_eq!(config.extensions, 20);
        assert_eq!(config.first_extension, 201);
        assert_eq!(config.no_answer_timeout_ms, 15_000);
        assert_eq!(config.external_default, ExternalBehaviour::Answer);
        assert!(config.validate().is_ok());
        assert_eq!(config.range_text(), "201-220");
    }

    #[test]
    fn parses_every_setting_from_toml() {
        let config = parse(
            r#"
            extensions = 5
            first_extension = 100
            ring_delay_ms = 250
            no_answer_timeout_ms = 1000
            auto_answer = ["101"]
            auto_answer_delay_ms = 50
            external_answer_delay_ms = 300
            external_default = "no_answer"
            [[external]]
            prefix = "0800"
            behaviour = "busy"
            name = "Hotline"
            [[external]]
            prefix = "+49"
            behaviour = "reject"
            "#,
        )
        .expect("valid config parses");
        assert!(config.validate().is_ok());
        assert_eq!(config.extensions, 5);
        assert_eq!(config.auto_answer, ["101"]);
        assert_eq!(config.external_default, ExternalBehaviour::NoAnswer);
        assert_eq!(
            config.external_for("08001234"),
            (ExternalBehaviour::Busy, Some("Hotline".to_string()))
        );
        assert_eq!(
            config.external_for("+4930"),
            (ExternalBehaviour::Reject, None)
        );
        assert_eq!(
            config.external_for("555"),
            (ExternalBehaviour::NoAnswer, None)
        );
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name() {
        let error = parse("extensions = 3\nring_delay = 5\n").expect_err("unknown key");
        assert!(error.to_string().contains("ring_delay"), "{error}");
        let error = parse("[[external]]\nprefix = \"0\"\nbehavior = \"busy\"\n")
            .expect_err("unknown rule key");
        assert!(error.to_string().contains("behavior"), "{error}");
    }

    #[test]
    fn bad_settings_are_rejected_with_a_reason() {
        let message = |config: SimConfig| match config.validate() {
            Err(ProviderError::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        };
        let zero = SimConfig {
            extensions: 0,
            ..SimConfig::default()
        };
        assert!(message(zero).contains("between 1 and 1000000"));
        let overflow = SimConfig {
            first_extension: u32::MAX - 5,
            ..SimConfig::default()
        };
        assert!(message(overflow).contains("go past"));
        let stranger = SimConfig {
            auto_answer: vec!["999".into()],
            ..SimConfig::default()
        };
        assert!(message(stranger).contains("\"999\""));
        let empty = SimConfig {
            external: vec![ExternalRule {
                prefix: String::new(),
                behaviour: ExternalBehaviour::Busy,
                name: None,
            }],
            ..SimConfig::default()
        };
        assert!(message(empty).contains("empty prefix"));
        let letters = SimConfig {
            external: vec![ExternalRule {
                prefix: "0x".into(),
                behaviour: ExternalBehaviour::Busy,
                name: None,
            }],
            ..SimConfig::default()
        };
        assert!(message(letters).contains("\"0x\""));
    }

    #[test]
    fn only_canonical_numbers_are_extensions() {
        let config = SimConfig::default();
        assert_eq!(config.extension_index("201"), Some(0));
        assert_eq!(config.extension_index("220"), Some(19));
        assert_eq!(config.extension_index("221"), None);
        assert_eq!(config.extension_index("200"), None);
        assert_eq!(config.extension_index("0201"), None);
        assert_eq!(config.extension_index("+201"), None);
        assert_eq!(config.extension_index(""), None);
    }
}
