//! How errors become HTTP responses: one JSON shape ([`ErrorDto`]) for all of them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tapir_core::EngineStopped;
use tapir_model::{ErrorKind, TapiError};
use tapir_wire::ErrorDto;

/// Any failure of a request.
#[derive(Debug)]
pub(crate) enum ApiError {
    Tapi(TapiError),
    BadRequest(String),
    NotFound(String),
    /// The request is well-formed but cannot be carried out as asked (e.g. a bad config).
    Unprocessable(String),
    NotImplemented(String),
    Stopped,
}

impl From<TapiError> for ApiError {
    fn from(e: TapiError) -> ApiError {
        ApiError::Tapi(e)
    }
}

impl From<EngineStopped> for ApiError {
    fn from(_: EngineStopped) -> ApiError {
        ApiError::Stopped
    }
}

/// The HTTP status for a call-control error.
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidLine | ErrorKind::InvalidCall => StatusCode::NOT_FOUND,
        ErrorKind::InvalidCallState
        | ErrorKind::InvalidLineState
        | ErrorKind::InvalidConsultCall
        | ErrorKind::TargetNotFound => StatusCode::CONFLICT,
        ErrorKind::InvalidAddress | ErrorKind::InvalidParam | ErrorKind::TargetSelf => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorKind::NotOwner => StatusCode::FORBIDDEN,
        ErrorKind::OperationUnavailable => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::OperationFailed => StatusCode::BAD_GATEWAY,
        ErrorKind::ResourceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::OutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Tapi(e) => (status_of(e.kind), ErrorDto::from(&e)),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, ErrorDto::bad_request(m)),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, ErrorDto::not_found(m)),
            ApiError::Unprocessable(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorDto {
                    error: "invalid".into(),
                    lineerr: None,
                    message: m,
                },
            ),
            ApiError::NotImplemented(m) => (
                StatusCode::NOT_IMPLEMENTED,
                ErrorDto {
                    error: "not_implemented".into(),
                    lineerr: None,
                    message: m,
                },
            ),
            ApiError::Stopped => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorDto::unavailable("the server is shutting down"),
            ),
        };
        (status, Json(body)).into_response()
    }
}
