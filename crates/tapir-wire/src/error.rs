//! The one shape of every error a client receives.

use serde::{Deserialize, Serialize};
use tapir_model::{ErrorKind, TapiError};
use utoipa::ToSchema;

/// An error: a stable name, TAPI's `LINEERR_*` code where one applies, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDto {
    /// Stable machine-readable name, e.g. `invalid_call_state`, `bad_request`.
    pub error: String,
    /// TAPI's `LINEERR_*` value for call-control errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineerr: Option<u32>,
    pub message: String,
}

impl ErrorDto {
    /// An error about the request itself (malformed JSON, unknown fields, bad values).
    pub fn bad_request(message: impl Into<String>) -> ErrorDto {
        ErrorDto {
            error: "bad_request".into(),
            lineerr: None,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ErrorDto {
        ErrorDto {
            error: "not_found".into(),
            lineerr: None,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ErrorDto {
        ErrorDto {
            error: "unavailable".into(),
            lineerr: None,
            message: message.into(),
        }
    }

    /// The model error kind this names, if it names one.
    pub fn kind(&self) -> Option<ErrorKind> {
        ALL_KINDS.iter().copied().find(|k| k.as_str() == self.error)
    }
}

const ALL_KINDS: &[ErrorKind] = &[
    ErrorKind::InvalidLine,
    ErrorKind::InvalidCall,
    ErrorKind::InvalidCallState,
    ErrorKind::InvalidLineState,
    ErrorKind::InvalidConsultCall,
    ErrorKind::InvalidAddress,
    ErrorKind::InvalidParam,
    ErrorKind::TargetNotFound,
    ErrorKind::TargetSelf,
    ErrorKind::OperationUnavailable,
    ErrorKind::OperationFailed,
    ErrorKind::ResourceUnavailable,
    ErrorKind::NotOwner,
    ErrorKind::OutcomeUnknown,
];

impl From<&TapiError> for ErrorDto {
    fn from(e: &TapiError) -> ErrorDto {
        ErrorDto {
            error: e.kind.as_str().into(),
            lineerr: Some(e.kind.lineerr()),
            message: e.message.clone(),
        }
    }
}

impl std::fmt::Display for ErrorDto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}
