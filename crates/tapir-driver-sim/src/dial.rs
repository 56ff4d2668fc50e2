//! Dialled numbers: what a user may type, and the one normal form the switch compares.

use tapir_model::{ErrorKind, TapiError};

/// Characters people write inside numbers for readability; the switch ignores them.
const SEPARATORS: &[char] = &[' ', '-', '.', '(', ')', '[', ']'];

/// Turns `raw` into the switch's normal form: separators removed, then digits, `*` and `#`,
/// optionally after one leading `+`. Anything else cannot be dialled.
pub(crate) fn normalize(raw: &str) -> Result<String, TapiError> {
    let number: String = raw.chars().filter(|c| !SEPARATORS.contains(c)).collect();
    let digits = number.strip_prefix('+').unwrap_or(&number);
    let dialable = !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
    if dialable {
        Ok(number)
    } else {
        Err(TapiError::new(
            ErrorKind::InvalidAddress,
            format!("{raw:?} is not a dialable number (digits, '*', '#' and a leading '+')"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_removed() {
        assert_eq!(
            normalize("+49 (89) 1234-100").ok(),
            Some("+49891234100".into())
        );
        assert_eq!(normalize("0.800 [123]").ok(), Some("0800123".into()));
        assert_eq!(normalize("*21#").ok(), Some("*21#".into()));
    }

    #[test]
    fn undialable_numbers_are_invalid_addresses() {
        for raw in ["", " ", "+", "12a", "1+2", "++1", "sip:201"] {
            let error = normalize(raw).expect_err(raw);
            assert_eq!(error.kind, ErrorKind::InvalidAddress, "{raw:?}");
        }
    }
}
