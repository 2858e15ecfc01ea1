//! The JSON error every failure of the web surface answers with:
//! `{"error": "..."}`, with its status (and a bearer challenge on 401).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An HTTP error answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    /// A 4xx or 5xx status.
    pub status: StatusCode,
    /// The `error` text.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
}

/// The challenge every 401 carries (RFC 9110 §15.5.2, RFC 6750 §3): a
/// bearer token, as the token-guarded routes and api triggers ask for (an
/// api trigger that checks a signature says which header in the body).
const CHALLENGE: &str = "Bearer realm=\"wasmsched\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(CHALLENGE),
            );
        }
        response
    }
}
