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
    /// No valid credentials (401).
    Unauthenticated(String),
    /// Valid credentials without the right (403).
    Forbidden(String),
    /// Too many failed logins; retry after this many seconds (429).
    RateLimited(u64),
    Conflict(String),
    Internal(String),
    Stopped,
}

impl From<tapir_access::AccessError> for ApiError {
    fn from(e: tapir_access::AccessError) -> ApiError {
        use tapir_access::AccessError;
        match e {
            AccessError::Unauthenticated(m) => ApiError::Unauthenticated(m),
            AccessError::RateLimited { seconds } => ApiError::RateLimited(seconds),
            AccessError::Forbidden(m) => ApiError::Forbidden(m),
            AccessError::NotFound(m) => ApiError::NotFound(m),
            AccessError::Invalid(m) => ApiError::Unprocessable(m),
            AccessError::Conflict(m) => ApiError::Conflict(m),
            AccessError::Import(problems) => ApiError::Unprocessable(format!(
                "the file is invalid; nothing was imported:\n{}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            AccessError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl ApiError {
    /// The stable name clients see in `error`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ApiError::Tapi(e) => e.kind.as_str(),
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unprocessable(_) => "invalid",
            ApiError::NotImplemented(_) => "not_implemented",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Conflict(_) => "conflict",
            ApiError::Internal(_) => "internal",
            ApiError::Stopped => "unavailable",
        }
    }

    /// The error as clients receive it, with its HTTP status.
    pub(crate) fn to_dto(&self) -> (StatusCode, ErrorDto) {
        let plain = |status, message: &str| {
            (
                status,
                ErrorDto {
                    error: self.name().into(),
                    lineerr: None,
                    message: message.to_owned(),
                },
            )
        };
        match self {
            ApiError::Tapi(e) => (status_of(e.kind), ErrorDto::from(e)),
            ApiError::BadRequest(m) => plain(StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => plain(StatusCode::NOT_FOUND, m),
            ApiError::Unprocessable(m) => plain(StatusCode::UNPROCESSABLE_ENTITY, m),
            ApiError::NotImplemented(m) => plain(StatusCode::NOT_IMPLEMENTED, m),
            ApiError::Unauthenticated(m) => plain(StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => plain(StatusCode::FORBIDDEN, m),
            ApiError::RateLimited(seconds) => plain(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many failed logins; try again in {seconds} s"),
            ),
            ApiError::Conflict(m) => plain(StatusCode::CONFLICT, m),
            ApiError::Internal(m) => plain(StatusCode::INTERNAL_SERVER_ERROR, m),
            ApiError::Stopped => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ),
        }
    }
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
        let (status, body) = self.to_dto();
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited(seconds) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if let ApiError::Unauthenticated(_) = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"tapir\""),
            );
        }
        response
    }
}
