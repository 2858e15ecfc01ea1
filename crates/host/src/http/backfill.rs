//! Backfills over HTTP (`/api/admin/triggers/{id}/backfill`): start one
//! over a range, watch its progress, cancel it.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::admin::{TriggerId, host_error};
use super::error::{ApiError, ApiResult, ErrorBody, JsonBodyErrors, parse_json_object};
use crate::host::BackfillView;

/// A `POST .../backfill` body: the range of instants to fire.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// The range's start (exclusive), RFC 3339.
    #[schema(format = DateTime, example = "2030-01-07T00:00:00Z")]
    from: String,
    /// Its end (inclusive), RFC 3339.
    #[schema(format = DateTime, example = "2030-01-08T00:00:00Z")]
    to: String,
    /// Firings per second (default 10).
    rate: Option<f64>,
}

fn instant(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "`{field}`: `{text}` is not an RFC 3339 instant (e.g. 2030-01-07T09:00:00Z)"
                ),
            )
        })
}

/// Start a backfill of a cron trigger
///
/// Fires the trigger for every scheduled instant in (`from`, `to`], oldest
/// first, `rate` per second, each run marked as a backfill.
#[utoipa::path(post, path = "/api/admin/triggers/{id}/backfill", params(TriggerId),
    operation_id = "start_backfill",
    request_body = Range,
    responses(
        (status = 202, description = "Started: its progress", body = BackfillView),
        (status = 404, description = "No trigger has this id", body = ErrorBody),
        (status = 409, description = "A backfill of the trigger is running", body = ErrorBody),
        (status = 422, description = "Not a cron trigger, or not a valid range", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn start(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
    request: Request,
) -> ApiResult<(StatusCode, Json<BackfillView>)> {
    let (parts, body) = request.into_parts();
    let body = super::read_body(&app, body).await?;
    let object = parse_json_object(&parts.headers, &body)?;
    let range: Range = crate::config::deserialize_named(Value::Object(object)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid backfill: {e}"),
        )
    })?;
    let (from, to) = (instant("from", &range.from)?, instant("to", &range.to)?);
    let view = app
        .host
        .backfills()
        .start(&id, from, to, range.rate.unwrap_or(10.0))
        .await
        .map_err(host_error)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The trigger's last backfill
#[utoipa::path(get, path = "/api/admin/triggers/{id}/backfill", params(TriggerId),
    operation_id = "backfill_progress",
    responses(
        (status = 200, description = "Its progress", body = BackfillView),
        (status = 404, description = "The trigger has no backfill", body = ErrorBody),
    ))]
pub async fn progress(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
) -> ApiResult<Json<BackfillView>> {
    app.host
        .backfills()
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("trigger `{id}` has no backfill")))
}

/// Cancel the trigger's running backfill
#[utoipa::path(delete, path = "/api/admin/triggers/{id}/backfill", params(TriggerId),
    operation_id = "cancel_backfill",
    responses(
        (status = 200, description = "Its progress, cancelled", body = BackfillView),
        (status = 404, description = "The trigger has no backfill", body = ErrorBody),
    ))]
pub async fn cancel(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
) -> ApiResult<Json<BackfillView>> {
    app.host
        .backfills()
        .cancel(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("trigger `{id}` has no backfill")))
}
