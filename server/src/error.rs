//! The one error type of the HTTP API: every failure becomes `{"error": code, "message": ...}`
//! with the status a client can act on. Client mistakes are 4xx; only the server's own
//! failures are 500, and their details go to the log, not to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::logsafe::untrusted;

/// An API failure, mapped onto an HTTP status and a stable machine-readable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, bad parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or credentials that are not valid (unknown token, bad signature).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the request body arrived too slowly.
    #[error("{0}")]
    RequestTimeout(String),
    /// 409: conflicts with existing state (duplicate, replay, version not newer).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than this route accepts.
    #[error("{0}")]
    TooLarge(String),
    /// 416: a `Range` the resource cannot satisfy.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// 422: well-formed but refused (signature does not verify, wrong hardware).
    #[error("{0}")]
    Unprocessable(String),
    /// 503: the server cannot take this request now (at its connection limit).
    #[error("{0}")]
    Unavailable(String),
    /// 500: the server failed; the cause is logged, the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`.
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// The HTTP status and the stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::RangeNotSatisfiable(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Wraps a server-side failure (database, storage, signing) as a 500.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(detail = %untrusted(detail), "internal error");
                "the server failed to handle this request; see its log".to_owned()
            }
            other => other.to_string(),
        };
        (
            status,
            Json(ErrorBody {
                error: code,
                message,
            }),
        )
            .into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(format_args!("database: {e}"))
    }
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;
