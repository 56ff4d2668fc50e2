//! SIP final responses (and their absence) as typed call-control errors.
//!
//! TAPI has no `busy` or `no answer` error of its own: busy is `resource_unavailable` (the
//! command may work later) and a rejection or no answer is `operation_failed`, each with a
//! sentence that names the SIP status.

use tapir_model::{ErrorKind, TapiError};

/// What a failed request of a made call or drop means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A final response of 300 or more, from `who` (e.g. "the phone of 201").
    Status { code: u16, reason: String },
    /// No final answer in time: the request may or may not have taken effect.
    Timeout(String),
    /// The request could not be sent at all.
    Transport(String),
}

/// The error a SIP final status means for a command.
pub fn error_for_status(code: u16, reason: &str, what: &str) -> TapiError {
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    };
    let (kind, meaning) = match code {
        404 | 484 | 604 | 416 => (ErrorKind::InvalidAddress, "invalid address"),
        486 | 600 => (ErrorKind::ResourceUnavailable, "busy"),
        603 => (ErrorKind::OperationFailed, "rejected"),
        408 | 480 => (ErrorKind::OperationFailed, "no answer"),
        487 => (ErrorKind::OperationFailed, "cancelled"),
        401 | 403 | 407 => (ErrorKind::OperationFailed, "not authorised"),
        _ => (ErrorKind::OperationFailed, "refused"),
    };
    TapiError::new(kind, format!("{what}: {meaning} ({code}{reason})"))
}

impl Failure {
    /// The error this failure means for a command; `what` names the step.
    pub fn to_error(&self, what: &str) -> TapiError {
        match self {
            Failure::Status { code, reason } => error_for_status(*code, reason, what),
            Failure::Timeout(detail) => TapiError::new(
                ErrorKind::OutcomeUnknown,
                format!("{what}: no final answer in time ({detail})"),
            ),
            Failure::Transport(detail) => {
                TapiError::new(ErrorKind::OperationFailed, format!("{what}: {detail}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let cases = [
            (404, ErrorKind::InvalidAddress, "invalid address"),
            (484, ErrorKind::InvalidAddress, "invalid address"),
            (486, ErrorKind::ResourceUnavailable, "busy"),
            (600, ErrorKind::ResourceUnavailable, "busy"),
            (603, ErrorKind::OperationFailed, "rejected"),
            (408, ErrorKind::OperationFailed, "no answer"),
            (480, ErrorKind::OperationFailed, "no answer"),
            (500, ErrorKind::OperationFailed, "refused"),
        ];
        for (code, kind, meaning) in cases {
            let error = error_for_status(code, "Reason", "transfer to 203");
            assert_eq!(error.kind, kind, "{code}");
            assert!(error.message.contains(meaning), "{}", error.message);
            assert!(error.message.contains(&code.to_string()));
        }
    }

    #[test]
    fn timeouts_are_outcome_unknown() {
        let error = Failure::Timeout("REFER".into()).to_error("transfer");
        assert_eq!(error.kind, ErrorKind::OutcomeUnknown);
        let error = Failure::Transport("socket closed".into()).to_error("INVITE");
        assert_eq!(error.kind, ErrorKind::OperationFailed);
    }
}
