//! The configuration: where an instance's PBX is (a [`Location`]) and how numbers are shown
//! to clients (a [`NumberFormat`]).

use serde::Deserialize;

/// Where a PBX is, and how it dials out. One per instance, read from the config file.
///
/// Only `country` is required. The prefixes default to the country's phone number metadata.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// ISO 3166 alpha-2 country code, e.g. `"DE"`; case does not matter.
    pub country: String,
    /// The area (city) code without the national prefix, e.g. `"30"` for Berlin. Used to
    /// complete subscriber numbers that the PBX or a client sends without it. Empty or
    /// absent: numbers are never completed this way.
    #[serde(default)]
    pub area_code: Option<String>,
    /// The code for an outside line, e.g. `"0"` or `"9"`; dialled before every external
    /// number. Empty or absent: the PBX needs none.
    #[serde(default)]
    pub access_code: Option<String>,
    /// The trunk prefix before national numbers, e.g. `"0"`; the US uses `"1"`. Absent: the
    /// country's default from the metadata. Empty: the country has none.
    #[serde(default)]
    pub national_prefix: Option<String>,
    /// The prefix before a country code, e.g. `"00"`; the US uses `"011"`, Australia
    /// `"0011"`. Absent: the country's default from the metadata.
    #[serde(default)]
    pub international_prefix: Option<String>,
    /// Numbers of at most this many digits, without `+`, are internal extensions.
    #[serde(default = "default_internal_max_digits")]
    pub internal_max_digits: u8,
}

/// Five digits cover the extension plans of nearly all PBXs while staying below the length
/// of any external subscriber number with its area code.
fn default_internal_max_digits() -> u8 {
    5
}

impl Location {
    /// A location in `country` with every other setting at its default.
    pub fn new(country: impl Into<String>) -> Self {
        Self {
            country: country.into(),
            area_code: None,
            access_code: None,
            national_prefix: None,
            international_prefix: None,
            internal_max_digits: default_internal_max_digits(),
        }
    }
}

/// How numbers in events (caller, called, connected, redirecting) are shown to clients.
///
/// The examples show +49 30 3514911705 seen from a location in Germany.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberFormat {
    /// E.164 with plus: `+49303514911705`. The default: unambiguous wherever it is read.
    #[default]
    International,
    /// E.164 without plus: `49303514911705`.
    InternationalNoPlus,
    /// As dialled from the location, without the access code: `0303514911705` for numbers
    /// in the location's country, `0061292507111` for numbers abroad.
    Phonebook,
    /// Always with the international prefix: `0049303514911705`.
    PhonebookInternational,
    /// Exactly as the PBX sent it.
    Raw,
}
