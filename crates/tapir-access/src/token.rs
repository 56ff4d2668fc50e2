//! Bearer tokens: `tapir_<id>_<secret>`. The id finds the stored record; only a SHA-256 hash
//! of the secret is stored, and it is compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "tapir_";
const SECRET_BYTES: usize = 32;

/// A token as the client holds it, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerToken {
    pub id: i64,
    secret: String,
}

/// Why a token could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the system's random source failed: {0}")]
pub struct RandomError(String);

/// A new random secret, in the text form a token carries.
pub fn new_secret() -> Result<String, RandomError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of a secret.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl BearerToken {
    pub fn new(id: i64, secret: String) -> BearerToken {
        BearerToken { id, secret }
    }

    /// Reads a token as a client sent it; `None` for anything not shaped like one.
    pub fn parse(text: &str) -> Option<BearerToken> {
        let rest = text.trim().strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id = id.parse().ok()?;
        let valid_secret = !secret.is_empty()
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid_secret.then(|| BearerToken {
            id,
            secret: secret.to_owned(),
        })
    }

    /// True when this token's secret is the one whose hash is `stored`.
    pub fn matches(&self, stored: &[u8]) -> bool {
        secret_hash(&self.secret).ct_eq(stored).into()
    }

    /// The text a client sends.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_matches_only_its_own_hash() {
        let secret = new_secret().unwrap();
        let stored = secret_hash(&secret);
        let token = BearerToken::new(42, secret);
        let parsed = BearerToken::parse(&token.expose()).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&stored));
        let other = BearerToken::new(42, new_secret().unwrap());
        assert!(!other.matches(&stored));
    }

    #[test]
    fn malformed_tokens_are_not_tokens() {
        for text in [
            "",
            "tapir_",
            "tapir_x_abc",
            "tapir_1_",
            "bearer abc",
            "tapir_1_a b",
            "tapir_1_é",
        ] {
            assert_eq!(BearerToken::parse(text), None, "{text:?}");
        }
    }
}
