//! The API's request bodies and query strings read with limits, failures
//! as JSON errors ([`ApiError`]), and error answers in the OpenAPI document.

pub use crate::app::{ApiError, ErrorBody};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use utoipa::openapi::{RefOr, ResponseBuilder, ResponsesBuilder};

/// `axum::extract::Query` whose rejection is a 400 `{"error": "..."}`
/// naming what is wrong with the query string.
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// An error answer in the OpenAPI document: `description`, with an
/// [`ErrorBody`].
pub fn error_response(description: &str) -> ResponseBuilder {
    let body = utoipa::openapi::ContentBuilder::new()
        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
}

/// The errors of reading a JSON request body ([`read_body`],
/// [`parse_json_object`]), for the `responses` of every route that takes
/// one.
pub struct JsonBodyErrors;

impl utoipa::IntoResponses for JsonBodyErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        ResponsesBuilder::new()
            .response("400", error_response("The body is not valid JSON"))
            .response(
                "408",
                error_response("The body did not arrive within `[server] body_timeout`"),
            )
            .response(
                "413",
                error_response("The body is larger than the body limit"),
            )
            .response(
                "415",
                error_response("The body is not sent as `Content-Type: application/json`"),
            )
            .build()
            .into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Reads at most `limit` bytes of body; more is a 413.
pub async fn read_limited(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    })
}

/// For `#[serde(default, deserialize_with = "present")]`: a key given, even
/// as `null`, is `Some` (`Option`'s own deserializer makes `null` `None`),
/// so that a handler can tell a missing key from a bad value.
pub fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<Value>, D::Error> {
    use serde::Deserialize;
    Value::deserialize(value).map(Some)
}

/// Whether the body is sent as `Content-Type: application/json`.
pub fn is_json(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a JSON object body, insisting on `Content-Type: application/json`.
pub fn parse_json_object(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<serde_json::Map<String, Value>> {
    if !is_json(headers) {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected `Content-Type: application/json`, got `{content_type}`"),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
    }
}
