//! [`NumberPlan`]: a checked location with a chosen format, turning numbers from the PBX into
//! what clients see and numbers from clients into what the PBX dials.

use phonenumber::metadata::DATABASE;

use crate::error::{DialError, PlanError};
use crate::location::{Location, NumberFormat};
use crate::read::{self, Number, Rules};
use crate::text;

/// The largest accepted `internal_max_digits`: longer "extensions" would swallow national
/// numbers in most countries.
const MAX_INTERNAL_DIGITS: u8 = 10;

/// A location checked against the phone number metadata, with the format numbers are shown in.
///
/// Build one per instance at config load with [`NumberPlan::new`]; it is immutable and cheap
/// to share.
///
/// Numbers in the location's *country* (same country calling code; the US and Canada share
/// +1) are national calls: dialled with the national prefix and shown in national form by
/// [`NumberFormat::Phonebook`]. All others are dialled with the international prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberPlan {
    location: Location,
    format: NumberFormat,
    rules: Rules,
}

impl NumberPlan {
    /// Checks `location` and fills in the prefixes it leaves out from the country's metadata.
    ///
    /// Fails on an unknown country, on codes that are not all digits (naming the key), on an
    /// area code that starts with the national prefix (`"030"` instead of `"30"`), and on an
    /// `internal_max_digits` above 10. An empty `international_prefix` counts as absent; an
    /// empty `national_prefix` means the country has none.
    pub fn new(location: Location, format: NumberFormat) -> Result<Self, PlanError> {
        let rules = resolve(&location)?;
        Ok(Self {
            location,
            format,
            rules,
        })
    }

    /// The location as configured.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The format numbers are shown in.
    pub fn format(&self) -> NumberFormat {
        self.format
    }

    /// The national prefix in use (configured or from the metadata); may be empty.
    pub fn national_prefix(&self) -> &str {
        &self.rules.national
    }

    /// The international prefix in use (configured or from the metadata).
    pub fn international_prefix(&self) -> &str {
        &self.rules.international
    }

    /// Whether `number` is an internal extension: only digits (formatting aside), no `+`, and
    /// at most `internal_max_digits` of them. Short service numbers such as `112` count as
    /// internal too; PBXs route those themselves.
    pub fn is_internal(&self, number: &str) -> bool {
        text::clean_present(number)
            .is_some_and(|n| !n.plus && text::is_extension(&n.digits, self.max_internal()))
    }

    /// Shows a number the PBX sent (caller, called, connected, redirecting) in the plan's
    /// format.
    ///
    /// Accepted: with or without the access code, national with prefix, a subscriber number
    /// without area code, international with `+` or the international prefix, with
    /// formatting characters. Internal extensions come back as their digits. Anything that
    /// is not a number the metadata accepts (names, `anonymous`, service codes, wrong lengths)
    /// comes back trimmed but otherwise unchanged, so no number is ever lost.
    /// [`NumberFormat::Raw`] returns the input untouched.
    pub fn present(&self, from_pbx: &str) -> String {
        if self.format == NumberFormat::Raw {
            return from_pbx.to_owned();
        }
        let trimmed = from_pbx.trim();
        let Some(cleaned) = text::clean_present(trimmed) else {
            return trimmed.to_owned();
        };
        if !cleaned.plus && text::is_extension(&cleaned.digits, self.max_internal()) {
            return cleaned.digits;
        }
        match read::read(&self.rules, &cleaned.digits, cleaned.plus) {
            Ok(number) => self.render(&number),
            Err(_) => trimmed.to_owned(),
        }
    }

    /// Turns a number a client wants to dial into the string the PBX expects.
    ///
    /// Accepted: TAPI canonical (`+49 (30) 3514911705`), E.164, international with the
    /// international prefix, national, a subscriber number without area code, any of these
    /// with the access code already in front, and internal extensions; spaces, dashes, dots,
    /// slashes and brackets are ignored. Internal extensions and service codes containing
    /// `*` or `#` are passed on as they are (without formatting). External numbers become
    /// access code + national prefix + national significant number inside the location's
    /// country, and access code + international prefix + country code + national
    /// significant number abroad.
    ///
    /// Digits without `+` can often be read several ways (with access code `0` and
    /// international prefix `00`, `0015123456789` is the German mobile 0151 23456789 behind
    /// the access code, and also +1 512 345 6789). The readings are tried in this order, and
    /// the first the metadata calls valid wins: with a prefix as written; with a prefix after
    /// the access code; without prefix as a national significant number (only in countries
    /// that write numbers so, like the US); as an international number without `+` in another
    /// country; as a subscriber number of at most ten digits with the area code; as an
    /// international number without `+` at home. If none is valid, the first of a possible
    /// length is taken, since the metadata lags behind new number ranges. [`present`] reads
    /// PBX numbers the same way.
    ///
    /// [`present`]: NumberPlan::present
    pub fn dialable(&self, from_client: &str) -> Result<String, DialError> {
        let cleaned = text::clean_dial(from_client)?;
        if cleaned.service
            || (!cleaned.plus && text::is_extension(&cleaned.digits, self.max_internal()))
        {
            return Ok(cleaned.digits);
        }
        let number = read::read(&self.rules, &cleaned.digits, cleaned.plus).map_err(|reason| {
            DialError::Invalid {
                number: from_client.trim().to_owned(),
                reason,
            }
        })?;
        Ok(format!(
            "{}{}",
            self.rules.access,
            self.dialled_from_here(&number)
        ))
    }

    fn max_internal(&self) -> usize {
        usize::from(self.location.internal_max_digits)
    }

    /// The number as dialled from the location without access code.
    fn dialled_from_here(&self, number: &Number) -> String {
        if number.code == self.rules.code {
            format!("{}{}", self.rules.national, number.national)
        } else {
            self.with_international_prefix(number)
        }
    }

    fn with_international_prefix(&self, number: &Number) -> String {
        format!(
            "{}{}{}",
            self.rules.international, number.code, number.national
        )
    }

    fn render(&self, number: &Number) -> String {
        match self.format {
            NumberFormat::International => format!("+{}{}", number.code, number.national),
            NumberFormat::InternationalNoPlus => format!("{}{}", number.code, number.national),
            NumberFormat::Phonebook => self.dialled_from_here(number),
            NumberFormat::PhonebookInternational => self.with_international_prefix(number),
            // Handled before parsing; kept total so a new format cannot be forgotten here.
            NumberFormat::Raw => format!("+{}{}", number.code, number.national),
        }
    }
}

/// Checks a location and resolves its defaults, see [`NumberPlan::new`].
fn resolve(location: &Location) -> Result<Rules, PlanError> {
    let country = location.country.trim().to_ascii_uppercase();
    let meta = lookup_country(&country).ok_or_else(|| PlanError::UnknownCountry {
        country: location.country.clone(),
    })?;
    if location.internal_max_digits > MAX_INTERNAL_DIGITS {
        return Err(PlanError::InternalMaxDigits {
            value: location.internal_max_digits,
            max: MAX_INTERNAL_DIGITS,
        });
    }
    let national = match &location.national_prefix {
        Some(value) => digits("national_prefix", value)?,
        None => meta.national_prefix().unwrap_or_default().to_owned(),
    };
    let area = digits(
        "area_code",
        location.area_code.as_deref().unwrap_or_default(),
    )?;
    if !national.is_empty() && area.starts_with(&national) {
        return Err(PlanError::AreaCodeWithNationalPrefix {
            area_code: area,
            national_prefix: national,
        });
    }
    let code = meta.country_code();
    Ok(Rules {
        code,
        prefix_optional: read::prefix_optional(code, &national),
        area,
        access: digits(
            "access_code",
            location.access_code.as_deref().unwrap_or_default(),
        )?,
        international: international_prefix(location, meta, &country)?,
        national,
    })
}

/// Metadata of a geographic country. Only two-letter codes are looked up, so the
/// non-geographic entries ("001") are not mistaken for countries.
fn lookup_country(country: &str) -> Option<&'static phonenumber::Metadata> {
    let is_alpha2 = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    if !is_alpha2 {
        return None;
    }
    DATABASE.by_id(country)
}

/// The configured international prefix, else the country's preferred one, else its only one.
fn international_prefix(
    location: &Location,
    meta: &phonenumber::Metadata,
    country: &str,
) -> Result<String, PlanError> {
    let configured = location.international_prefix.as_deref().map(str::trim);
    if let Some(value) = configured.filter(|v| !v.is_empty()) {
        return digits("international_prefix", value);
    }
    let from_meta = meta
        .preferred_international_prefix()
        .or_else(|| meta.international_prefix().map(|regex| regex.as_str()));
    match from_meta {
        // The metadata holds a pattern when a country has several prefixes; only a plain one
        // can be dialled.
        Some(prefix) if is_digits(prefix) => Ok(prefix.to_owned()),
        _ => Err(PlanError::NoInternationalPrefix {
            country: country.to_owned(),
        }),
    }
}

/// `value` trimmed, if it is empty or all ASCII digits.
fn digits(field: &'static str, value: &str) -> Result<String, PlanError> {
    let value = value.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(PlanError::NotDigits {
            field,
            value: value.to_owned(),
        })
    }
}

fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}
