//! The seed's api trigger routes, served for every api trigger at its path:
//! `POST {path}/trigger` and `GET {path}/status`.
//!
//! Paths are looked up per request, so triggers registered at run time are
//! served at once. The OpenAPI document describes them at the default
//! path, `/api/triggers/{id}` (see [`trigger`] and [`status`]).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tracing::Instrument;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, JsonBodyErrors, parse_json_object};
use crate::config::TriggerConfig;
use wasmsched_core::scheduler::Registration;
use wasmsched_core::trace;
use wasmsched_core::trigger::ApiAuth;
use wasmsched_core::trigger::{ApiSpec, TriggerError, TriggerKind, TriggerSpec};

/// Fallback handler: routes `{path}/trigger` and `{path}/status`.
pub async fn dispatch(State(app): State<AppState>, request: Request) -> Response {
    // Ids are any text: `/api/triggers/caf%C3%A9` serves trigger `café`.
    let raw = request.uri().path();
    let path = super::percent::decoded(raw.as_bytes()).unwrap_or_else(|| raw.to_owned());
    let route = [("/trigger", Method::POST), ("/status", Method::GET)]
        .into_iter()
        .find_map(|(suffix, method)| Some((path.strip_suffix(suffix)?, suffix, method)));
    let Some((base, action, method)) = route else {
        return ApiError::not_found(format!("no route for `{path}`")).into_response();
    };
    let Some(config) = app.host.triggers().at_path(base) else {
        return ApiError::not_found(format!("no api trigger is served at `{base}`"))
            .into_response();
    };
    if request.method() != method {
        let refused = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("use {method} for `{path}`"),
        );
        // What a 405 carries (RFC 9110 §15.5.6).
        let allow =
            axum::http::HeaderValue::from_str(method.as_str()).expect("a method is a value");
        return ([(axum::http::header::ALLOW, allow)], refused).into_response();
    }
    let result = match action {
        "/trigger" => trigger(&app, &config, request).await,
        _ => status(&app, &config).await,
    };
    result.into_response()
}

/// The body of `POST {path}/trigger` (other keys are ignored).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct FireBody {
    /// The payload, handed to the trigger's plugin (or published as is).
    #[serde(default, deserialize_with = "super::error::present")]
    #[schema(value_type = Object, required = true)]
    data: Option<Value>,
}

/// What `POST {path}/trigger` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Triggered {
    /// `Event triggered successfully`.
    pub message: &'static str,
    /// Always `true` (a failed firing is an error answer).
    pub success: bool,
    /// The trigger's firings since the start, this one included.
    pub trigger_count: u64,
}

/// Fire an api trigger
///
/// Served at `{path}/trigger` for each api trigger: `/api/triggers/<id>`
/// unless its `path` says otherwise. A trigger with `[trigger.auth]` asks
/// for `Authorization: Bearer <its token>` or an HMAC-SHA256 signature of
/// the raw body (`X-Hub-Signature-256: sha256=<hex>` by default).
#[utoipa::path(post, path = "/api/triggers/{id}/trigger", operation_id = "fire_api_trigger",
    params(("id" = String, Path, description = "The api trigger's id")),
    request_body = FireBody,
    security((), ("trigger_bearer" = []), ("trigger_signature" = [])),
    responses(
        (status = 200, description = "Fired", body = Triggered),
        (status = 401, description = "Its `auth` refused the request", body = ErrorBody),
        (status = 404, description = "No api trigger is served at this path", body = ErrorBody),
        (status = 405, description = "Not a POST", body = ErrorBody,
            headers(("Allow" = String, description = "`POST`"))),
        (status = 409, description = "The trigger is paused or stopped", body = ErrorBody),
        (status = 422, description = "No `data` object", body = ErrorBody),
        (status = 429, description = "Over the trigger's `rate_limit`", body = ErrorBody),
        (status = 500, description = "The firing failed (the plugin, or what it made)", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub(super) async fn trigger(
    app: &AppState,
    config: &TriggerConfig,
    request: Request,
) -> ApiResult<Response> {
    if let TriggerSpec::Api(ApiSpec {
        rate_limit: Some(rate),
        ..
    }) = &config.spec
        && let Err(limited) = app.rate_limits.check_trigger(&config.id, *rate)
    {
        return Ok(limited.into_response());
    }
    let (parts, body) = request.into_parts();
    let body = super::read_body(app, body).await?;
    if let TriggerSpec::Api(ApiSpec {
        auth: Some(auth), ..
    }) = &config.spec
    {
        authenticate(auth, &parts.headers, &body)?;
    }
    let object = parse_json_object(&parts.headers, &body)?;
    let body: FireBody =
        serde_json::from_value(Value::Object(object)).expect("every key is optional");
    let data = match body.data {
        Some(data @ Value::Object(_)) => data,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "`data` must be a JSON object",
            ));
        }
        None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"the body needs a `data` object: {"data": {...}}"#,
            ));
        }
    };
    let registration = registered(app, &config.id).await?;
    if registration.trigger.kind() != TriggerKind::Api {
        let message = format!("trigger `{}` is not an api trigger", config.id);
        return Err(ApiError::not_found(message));
    }
    let span = trace::api_span(&config.id, &super::trace_context(&parts.headers));
    let count = registration
        .trigger
        .run_now(Some(data))
        .instrument(span)
        .await
        .map_err(|e| fire_error(&config.id, e))?;
    let triggered = Triggered {
        message: "Event triggered successfully",
        success: true,
        trigger_count: count,
    };
    Ok(Json(triggered).into_response())
}

/// What `GET {path}/status` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TriggerStatus {
    /// Whether it fires now (not paused, not stopped).
    pub running: bool,
    /// Its firings since the start.
    pub trigger_count: u64,
}

/// An api trigger's status
///
/// Served at `{path}/status` for each api trigger, without its `auth`.
#[utoipa::path(get, path = "/api/triggers/{id}/status", operation_id = "api_trigger_status",
    params(("id" = String, Path, description = "The api trigger's id")),
    responses(
        (status = 200, description = "Its status", body = TriggerStatus),
        (status = 404, description = "No api trigger is served at this path", body = ErrorBody),
        (status = 405, description = "Not a GET", body = ErrorBody,
            headers(("Allow" = String, description = "`GET`"))),
    ))]
pub(super) async fn status(app: &AppState, config: &TriggerConfig) -> ApiResult<Response> {
    let registration = registered(app, &config.id).await?;
    let status = TriggerStatus {
        running: registration.trigger.is_running(),
        trigger_count: registration.trigger.fire_count(),
    };
    Ok(Json(status).into_response())
}

async fn registered(app: &AppState, id: &str) -> ApiResult<Registration> {
    app.host
        .triggers()
        .registration(id)
        .await
        .ok_or_else(|| ApiError::not_found(format!("trigger `{id}` is no longer registered")))
}

/// Maps a failed firing to a status: paused triggers are a conflict, a
/// broker outage is 503, events over the limits 413 (the payload itself
/// without a plugin) or 500 (what a plugin made of it), a failing plugin 500.
pub fn fire_error(id: &str, error: TriggerError) -> ApiError {
    use wasmsched_core::trigger::FireError;
    let status = match &error {
        TriggerError::NotRunning => StatusCode::CONFLICT,
        TriggerError::Broker(_) | TriggerError::Fire(FireError::Publish { .. }) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        TriggerError::Fire(FireError::Limit { plugin: None, .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match error {
        TriggerError::NotRunning => format!("trigger `{id}` is not running (paused or stopped)"),
        other => other.to_string(),
    };
    ApiError::new(status, message)
}

/// Checks a bearer token or an HMAC-SHA256 signature of the raw body, in
/// constant time.
fn authenticate(auth: &ApiAuth, headers: &HeaderMap, body: &[u8]) -> ApiResult<()> {
    if let Some(expected) = &auth.bearer_token {
        let given = crate::app::tokens::bearer(headers)
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))?;
        return match crate::app::same_secret(given, expected) {
            true => Ok(()),
            false => Err(ApiError::unauthorized("wrong bearer token")),
        };
    }
    let secret = auth.hmac_secret.as_deref().unwrap_or_default();
    let header_name = auth.signature_header.as_str();
    let signature = headers
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized(format!("missing signature header `{header_name}`"))
        })?;
    let given = signature
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| ApiError::unauthorized(format!("`{header_name}` must be `sha256=<hex>`")))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| ApiError::unauthorized("signature does not match the body"))
}
