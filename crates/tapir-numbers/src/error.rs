//! Typed errors: a bad location in the config, and a number a client cannot dial.

use thiserror::Error;

/// A [`Location`](crate::Location) that cannot be used; raised once, at config load.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The country is not an ISO 3166 alpha-2 code known to the phone number metadata.
    #[error("unknown country {country:?}: expected an ISO 3166 alpha-2 code such as \"DE\"")]
    UnknownCountry {
        /// The country as configured.
        country: String,
    },
    /// A code that is dialled (area code, access code, prefixes) contains something other
    /// than the digits 0-9.
    #[error("{field} must contain only the digits 0-9, got {value:?}")]
    NotDigits {
        /// The config key, e.g. `access_code`.
        field: &'static str,
        /// The value as configured.
        value: String,
    },
    /// The area code starts with the national prefix (`"030"` instead of `"30"`).
    #[error("area_code {area_code:?} must not start with the national prefix {national_prefix:?}")]
    AreaCodeWithNationalPrefix {
        /// The area code as configured.
        area_code: String,
        /// The national prefix in use.
        national_prefix: String,
    },
    /// The international prefix is empty, and the metadata has no single default for the
    /// country (some countries know several carriers' prefixes).
    #[error("international_prefix must be set for country {country:?}")]
    NoInternationalPrefix {
        /// The country as configured.
        country: String,
    },
    /// `internal_max_digits` is outside the supported range.
    #[error("internal_max_digits must be between 0 and {max}, got {value}")]
    InternalMaxDigits {
        /// The value as configured.
        value: u8,
        /// The largest accepted value.
        max: u8,
    },
}

/// Why a number that a client asked to dial is refused. Raised before anything reaches the PBX.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DialError {
    /// Nothing to dial (empty, or only spaces and brackets).
    #[error("the number to dial is empty")]
    Empty,
    /// A character that a PBX cannot dial, such as a letter, `,`, `W`, `@`, `$`, `?`, `!`,
    /// `;` or a `+` that is not the first character.
    #[error("character {character:?} at position {position} cannot be dialled")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its position in the input, counted in characters from 0.
        position: usize,
    },
    /// The digits cannot be a telephone number, according to the phone number metadata.
    #[error("{number:?} cannot be dialled: {reason}")]
    Invalid {
        /// The number as the client sent it.
        number: String,
        /// What is wrong with it.
        reason: Impossible,
    },
}

/// Why the phone number metadata rules a number out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Impossible {
    /// No country uses this country calling code.
    #[error("unknown country calling code")]
    UnknownCountryCode,
    /// Fewer digits than any number of the country has.
    #[error("too short for its country")]
    TooShort,
    /// More digits than any number of the country has.
    #[error("too long for its country")]
    TooLong,
    /// Neither international nor national, and the location has no area code to complete
    /// it as a subscriber number.
    #[error("neither international nor national, and no area code is configured to complete it")]
    Incomplete,
    /// Between the shortest and the longest, but no number of the country has this length.
    #[error("wrong length for its country")]
    InvalidLength,
}
