//! Typed errors of call control, each mapping onto one TAPI `LINEERR_*` code.

use std::fmt;

/// What went wrong, in TAPI's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No line with this id (`LINEERR_BADDEVICEID`).
    InvalidLine,
    /// No call with this id (`LINEERR_INVALCALLHANDLE`).
    InvalidCall,
    /// The call is not in a state that allows this action (`LINEERR_INVALCALLSTATE`).
    InvalidCallState,
    /// The line cannot do this now, e.g. its PBX is unreachable (`LINEERR_INVALLINESTATE`).
    InvalidLineState,
    /// The consultation call given does not belong to this call (`LINEERR_INVALCONSULTCALLHANDLE`).
    InvalidConsultCall,
    /// The number cannot be dialled (`LINEERR_INVALADDRESS`).
    InvalidAddress,
    /// A parameter is missing or malformed (`LINEERR_INVALPARAM`).
    InvalidParam,
    /// A pickup or redirect found nothing to act on (`LINEERR_TARGETNOTFOUND`).
    TargetNotFound,
    /// A line tried to call or redirect to itself (`LINEERR_TARGETSELF`).
    TargetSelf,
    /// The PBX or driver does not support this (`LINEERR_OPERATIONUNAVAIL`).
    OperationUnavailable,
    /// The PBX refused or failed the command (`LINEERR_OPERATIONFAILED`).
    OperationFailed,
    /// The PBX is busy or out of resources; the command may work later (`LINEERR_RESOURCEUNAVAIL`).
    ResourceUnavailable,
    /// The caller may not act on this line (`LINEERR_NOTOWNER`).
    NotOwner,
    /// The PBX did not answer in time: the command may or may not have taken effect, and it is
    /// not repeated. TAPI has no code of its own for this; it reports `LINEERR_OPERATIONFAILED`.
    OutcomeUnknown,
}

impl ErrorKind {
    /// TAPI's `LINEERR_*` value.
    pub fn lineerr(self) -> u32 {
        match self {
            ErrorKind::InvalidLine => 0x8000_0002,
            ErrorKind::InvalidCall => 0x8000_0018,
            ErrorKind::InvalidCallState => 0x8000_001C,
            ErrorKind::InvalidLineState => 0x8000_002C,
            ErrorKind::InvalidConsultCall => 0x8000_0021,
            ErrorKind::InvalidAddress => 0x8000_0010,
            ErrorKind::InvalidParam => 0x8000_0032,
            ErrorKind::TargetNotFound => 0x8000_004E,
            ErrorKind::TargetSelf => 0x8000_004F,
            ErrorKind::OperationUnavailable => 0x8000_0049,
            ErrorKind::OperationFailed | ErrorKind::OutcomeUnknown => 0x8000_0048,
            ErrorKind::ResourceUnavailable => 0x8000_004B,
            ErrorKind::NotOwner => 0x8000_0046,
        }
    }

    /// The stable name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidLine => "invalid_line",
            ErrorKind::InvalidCall => "invalid_call",
            ErrorKind::InvalidCallState => "invalid_call_state",
            ErrorKind::InvalidLineState => "invalid_line_state",
            ErrorKind::InvalidConsultCall => "invalid_consult_call",
            ErrorKind::InvalidAddress => "invalid_address",
            ErrorKind::InvalidParam => "invalid_param",
            ErrorKind::TargetNotFound => "target_not_found",
            ErrorKind::TargetSelf => "target_self",
            ErrorKind::OperationUnavailable => "operation_unavailable",
            ErrorKind::OperationFailed => "operation_failed",
            ErrorKind::ResourceUnavailable => "resource_unavailable",
            ErrorKind::NotOwner => "not_owner",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call-control error: its kind and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TapiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TapiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TapiError {
        TapiError {
            kind,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_tapis() {
        assert_eq!(ErrorKind::InvalidCallState.lineerr(), 0x8000_001C);
        assert_eq!(ErrorKind::OperationUnavailable.lineerr(), 0x8000_0049);
        assert_eq!(ErrorKind::ResourceUnavailable.lineerr(), 0x8000_004B);
        assert_eq!(ErrorKind::InvalidLine.lineerr(), 0x8000_0002);
    }

    #[test]
    fn display_names_kind_and_reason() {
        let e = TapiError::new(ErrorKind::InvalidCallState, "call 7 is idle");
        assert_eq!(e.to_string(), "invalid_call_state: call 7 is idle");
    }
}
