//! Reading a string of digits as an international number, given the location's prefixes.
//!
//! A PBX or a client may send a number with or without the access code, with the
//! international or the national prefix, or as a bare subscriber number. This module lists
//! the readings that the location allows, in order of preference, and asks the phone number
//! metadata which of them is a real number. The location's own conventions (access code,
//! area code, prefixes) are handled here; everything about the destination country (code
//! length, number lengths, number ranges) comes from the `phonenumber` metadata.

use phonenumber::metadata::DATABASE;

use crate::error::Impossible;

/// More digits than any dial string with prefixes can have; longer input is refused before it
/// reaches the parser.
const MAX_DIGITS: usize = 30;

/// The longest subscriber number (without area code) that is completed with the location's
/// area code. Ten digits hold the longest direct-dial numbers (`3514911705` in Berlin); longer
/// strings without prefix are international numbers without `+` (`49894531234`), which the
/// lenient German metadata would otherwise also accept as Berlin subscriber numbers.
const MAX_SUBSCRIBER_DIGITS: usize = 10;

/// A number split the E.164 way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Number {
    /// Country calling code, e.g. 49.
    pub(crate) code: u16,
    /// National significant number, e.g. `303514911705`, with any leading zeros that belong
    /// to it (as in Italy).
    pub(crate) national: String,
}

/// The location's conventions, resolved and checked by [`NumberPlan::new`](crate::NumberPlan::new).
/// Every field holds only ASCII digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    /// The location's country calling code.
    pub(crate) code: u16,
    /// Area code without national prefix; empty when not configured.
    pub(crate) area: String,
    /// Outside-line access code; empty when the PBX needs none.
    pub(crate) access: String,
    /// National (trunk) prefix; empty in countries that have none.
    pub(crate) national: String,
    /// International prefix; never empty.
    pub(crate) international: String,
    /// Whether national numbers are commonly written without the national prefix (the US
    /// writes `212 736 3100`; Germany always writes `030 …`). Then a number without prefix
    /// may be a national significant number.
    pub(crate) prefix_optional: bool,
}

/// One way to read the input: the E.164 digits it would stand for.
struct Candidate {
    e164: String,
    kind: Kind,
}

/// How much a reading may be trusted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Follows from the prefixes or the area code; a possible length is enough.
    Plain,
    /// An international number without any prefix (`4930…`). Taken only when the metadata
    /// calls it valid: as a mere length match it would swallow junk. `foreign` readings
    /// count only for another country than the location's.
    Bare { foreign: bool },
}

impl Candidate {
    fn plain(e164: String) -> Self {
        Self {
            e164,
            kind: Kind::Plain,
        }
    }
}

/// What the metadata says about one reading.
enum Verdict {
    Valid(Number),
    Possible(Number),
    Impossible(Impossible),
}

/// Reads `digits` (ASCII digits; `plus` when the input began with `+`) as a number.
///
/// The first reading that the metadata calls valid wins. If none is valid, the first one of a
/// possible length is taken, because the metadata lags behind newly opened number ranges.
/// Otherwise the reason why the first reading is impossible is returned, or
/// [`Impossible::Incomplete`] when the location allows no reading at all.
pub(crate) fn read(rules: &Rules, digits: &str, plus: bool) -> Result<Number, Impossible> {
    if digits.len() > MAX_DIGITS {
        return Err(Impossible::TooLong);
    }
    let candidates = if plus {
        vec![Candidate::plain(digits.to_owned())]
    } else {
        candidates(rules, digits)
    };
    choose(rules, &candidates)
}

/// Picks the winning reading, see [`read`].
fn choose(rules: &Rules, candidates: &[Candidate]) -> Result<Number, Impossible> {
    let mut possible = None;
    let mut first_reason = None;
    for candidate in candidates {
        match (judge(&candidate.e164), candidate.kind) {
            (Verdict::Valid(number), Kind::Bare { foreign: true }) if number.code == rules.code => {
            }
            (Verdict::Valid(number), _) => return Ok(number),
            // A bare reading is a guess; its faults say nothing about the input.
            (_, Kind::Bare { .. }) => {}
            (Verdict::Possible(number), Kind::Plain) => {
                possible.get_or_insert(number);
            }
            (Verdict::Impossible(reason), Kind::Plain) => {
                first_reason.get_or_insert(reason);
            }
        }
    }
    possible.ok_or(first_reason.unwrap_or(Impossible::Incomplete))
}

/// The readings of a number without `+`, most plausible first. Each step is tried first on
/// the number as given, then on the number without the access code.
///
/// 1. With an international or national prefix. Trying the number as given first means that
///    a number in the usual written form (`0061 2 9250 7111` in Germany) keeps its meaning
///    even when the access code `0` could be split off; the access code is split off when
///    that reading is not valid (`0030 3514911705` → `030 3514911705`, since +30 351… is no
///    Greek number).
/// 2. Where the country writes national numbers without prefix (the metadata marks the
///    prefix optional, as in the US, or there is none, as in Italy): a national significant
///    number. Elsewhere the metadata is too lenient (every German digit string of 5 to 15
///    digits is "valid"), so this reading would hide the next ones.
/// 3. An international number without prefix (`61292507111`, as some PBXs send it and as
///    [`InternationalNoPlus`](crate::NumberFormat::InternationalNoPlus) shows it), if it is
///    valid and in another country.
/// 4. A subscriber number of at most ten digits in the location's area (area code
///    prepended).
/// 5. An international number without prefix in the location's own country, if valid.
fn candidates(rules: &Rules, digits: &str) -> Vec<Candidate> {
    let mut forms = vec![digits];
    if let Some(rest) = strip_access(rules, digits) {
        forms.push(rest);
    }
    let unprefixed: Vec<&str> = forms
        .iter()
        .copied()
        .filter(|form| !has_prefix(rules, form))
        .collect();
    let mut out: Vec<Candidate> = forms
        .iter()
        .filter_map(|form| with_prefix(rules, form))
        .map(Candidate::plain)
        .collect();
    if rules.prefix_optional {
        let national = unprefixed
            .iter()
            .map(|form| format!("{}{form}", rules.code));
        out.extend(national.map(Candidate::plain));
    }
    let bare = !has_prefix(rules, digits);
    if bare {
        out.push(bare_candidate(digits, true));
    }
    if !rules.area.is_empty() {
        let local = unprefixed
            .iter()
            .filter(|form| form.len() <= MAX_SUBSCRIBER_DIGITS)
            .map(|form| format!("{}{}{form}", rules.code, rules.area));
        out.extend(local.map(Candidate::plain));
    }
    if bare {
        out.push(bare_candidate(digits, false));
    }
    out
}

fn bare_candidate(digits: &str, foreign: bool) -> Candidate {
    Candidate {
        e164: digits.to_owned(),
        kind: Kind::Bare { foreign },
    }
}

/// The number without the access code, if it starts with one and something is left.
fn strip_access<'a>(rules: &Rules, digits: &'a str) -> Option<&'a str> {
    if rules.access.is_empty() {
        return None;
    }
    digits
        .strip_prefix(rules.access.as_str())
        .filter(|rest| !rest.is_empty())
}

/// The E.164 digits of a number that starts with the international or national prefix.
/// The international prefix is checked first: it is the longer one where they share digits
/// (Australia: `0011` and `0`).
fn with_prefix(rules: &Rules, form: &str) -> Option<String> {
    if let Some(rest) = form.strip_prefix(rules.international.as_str()) {
        return Some(rest.to_owned());
    }
    if rules.national.is_empty() {
        return None;
    }
    form.strip_prefix(rules.national.as_str())
        .map(|rest| format!("{}{}", rules.code, rest))
}

fn has_prefix(rules: &Rules, form: &str) -> bool {
    form.starts_with(rules.international.as_str())
        || (!rules.national.is_empty() && form.starts_with(rules.national.as_str()))
}

/// Asks the metadata about one reading, given as E.164 digits without `+`.
fn judge(e164: &str) -> Verdict {
    let parsed = match phonenumber::parse(None, format!("+{e164}")) {
        Ok(parsed) => parsed,
        Err(error) => return Verdict::Impossible(parse_reason(&error)),
    };
    let number = Number {
        code: parsed.code().value(),
        national: parsed.national().to_string(),
    };
    if parsed.is_valid() {
        return Verdict::Valid(number);
    }
    match length_check(&number) {
        Ok(()) => Verdict::Possible(number),
        Err(reason) => Verdict::Impossible(reason),
    }
}

fn parse_reason(error: &phonenumber::ParseError) -> Impossible {
    use phonenumber::ParseError as E;
    match error {
        E::InvalidCountryCode => Impossible::UnknownCountryCode,
        E::TooLong => Impossible::TooLong,
        _ => Impossible::TooShort,
    }
}

/// Whether any region with the number's country code has national numbers of its length.
fn length_check(number: &Number) -> Result<(), Impossible> {
    let regions = DATABASE
        .by_code(&number.code)
        .ok_or(Impossible::UnknownCountryCode)?;
    let length = u16::try_from(number.national.len()).unwrap_or(u16::MAX);
    let mut reason = Impossible::UnknownCountryCode;
    for meta in regions {
        let lengths = possible_lengths(meta);
        match (lengths.first(), lengths.last()) {
            // No length data: the metadata cannot rule the number out.
            (None, _) | (_, None) => return Ok(()),
            _ if lengths.contains(&length) => return Ok(()),
            (Some(&min), _) if length < min => reason = Impossible::TooShort,
            (_, Some(&max)) if length > max => reason = Impossible::TooLong,
            _ => reason = Impossible::InvalidLength,
        }
    }
    Err(reason)
}

/// The lengths of national significant numbers in a region, sorted. The general descriptor
/// of the bundled metadata carries no lengths, so they are gathered from the number types.
fn possible_lengths(meta: &phonenumber::Metadata) -> Vec<u16> {
    let all = meta.descriptors();
    let general = all.general().possible_length();
    if !general.is_empty() {
        return general.to_vec();
    }
    let types = [
        all.fixed_line(),
        all.mobile(),
        all.toll_free(),
        all.premium_rate(),
        all.shared_cost(),
        all.personal_number(),
        all.voip(),
        all.pager(),
        all.uan(),
        all.voicemail(),
    ];
    let mut lengths: Vec<u16> = types
        .into_iter()
        .flatten()
        .flat_map(|descriptor| descriptor.possible_length().iter().copied())
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Whether the country of `code` writes national numbers without the national prefix. True
/// when it has none, or when any of its formats (those of all regions sharing the code: Canada
/// has none of its own) marks the prefix optional.
pub(crate) fn prefix_optional(code: u16, national_prefix: &str) -> bool {
    if national_prefix.is_empty() {
        return true;
    }
    DATABASE.by_code(&code).is_some_and(|regions| {
        regions.iter().any(|meta| {
            meta.formats()
                .iter()
                .any(|f| f.is_national_prefix_optional())
        })
    })
}
