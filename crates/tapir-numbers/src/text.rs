//! Taking numbers apart as text: which characters are formatting, which are dialled.

use crate::error::DialError;

/// A number with its formatting removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cleaned {
    /// Began with `+`.
    pub(crate) plus: bool,
    /// Digits, and `*` / `#` when `service` is set.
    pub(crate) digits: String,
    /// Contains `*` or `#`: a PBX service code such as `*21*200#`, passed on unchanged.
    pub(crate) service: bool,
}

/// Characters that only make a number readable: spaces, dashes, dots, slashes and brackets
/// (TAPI's canonical form puts the area code in brackets).
fn is_formatting(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '.' | '/' | '(' | ')')
}

/// Cleans a number a client wants to dial, refusing any character a PBX cannot dial.
///
/// TAPI's dial-control characters (`,` `!` `W` `@` `$` `?` `;` `T` `P` …) are refused too:
/// a PBX dials a number in one go and has no dial tone, billing tone or prompt to wait for.
/// `+` is accepted only in front; `*` and `#` only without `+`.
pub(crate) fn clean_dial(input: &str) -> Result<Cleaned, DialError> {
    let mut out = Cleaned {
        plus: false,
        digits: String::new(),
        service: false,
    };
    for (position, character) in input.chars().enumerate() {
        match character {
            c if c.is_ascii_digit() => out.digits.push(c),
            c if is_formatting(c) => {}
            '+' if !out.plus && out.digits.is_empty() => out.plus = true,
            '*' | '#' if !out.plus => {
                out.service = true;
                out.digits.push(character);
            }
            _ => {
                return Err(DialError::InvalidCharacter {
                    character,
                    position,
                });
            }
        }
    }
    if out.digits.is_empty() {
        return Err(DialError::Empty);
    }
    Ok(out)
}

/// Cleans a number the PBX sent. `None` when it is not a plain number (names, `anonymous`,
/// service codes, SIP URIs): such text is shown as it came.
pub(crate) fn clean_present(input: &str) -> Option<Cleaned> {
    let rest = input.trim();
    let (plus, rest) = match rest.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let mut digits = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !is_formatting(c) {
            return None;
        }
    }
    if digits.is_empty() {
        return None;
    }
    Some(Cleaned {
        plus,
        digits,
        service: false,
    })
}

/// Whether `digits` (no `+`) is short enough to be an internal extension.
pub(crate) fn is_extension(digits: &str, max_digits: usize) -> bool {
    !digits.is_empty() && digits.len() <= max_digits && digits.bytes().all(|b| b.is_ascii_digit())
}
