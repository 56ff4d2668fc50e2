//! Why an accounts or rights request failed.

/// One problem in a tsecimp file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ImportProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No valid credentials: a missing, malformed, unknown, expired or revoked token, or a
    /// wrong password. The message never says which, to give guessers nothing.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("too many failed logins; try again in {seconds} s")]
    RateLimited { seconds: u64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the file is invalid; nothing was imported ({} problems)", .0.len())]
    Import(Vec<ImportProblem>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tapir_store::StoreError> for AccessError {
    fn from(error: tapir_store::StoreError) -> AccessError {
        match error {
            tapir_store::StoreError::Conflict(message) => AccessError::Conflict(message),
            other => AccessError::Internal(other.to_string()),
        }
    }
}
