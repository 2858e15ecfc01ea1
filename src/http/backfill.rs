//! Backfills over HTTP (`/api/admin/triggers/{id}/backfill`): start one
//! over a range, watch its progress, cancel it.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::AppState;
use super::admin::host_error;
use super::error::{ApiError, ApiResult, parse_json_object};
use crate::host::BackfillView;

/// A `POST .../backfill` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: String,
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

/// Starts a backfill: 202 with its progress.
pub async fn start(
    State(app): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<(StatusCode, Json<BackfillView>)> {
    let (parts, body) = request.into_parts();
    let body = app.read_body(body).await?;
    let object = parse_json_object(&parts.headers, &body)?;
    let range: Range = serde_json::from_value(Value::Object(object)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid backfill: {e}"),
        )
    })?;
    let (from, to) = (instant("from", &range.from)?, instant("to", &range.to)?);
    let view = app
        .host
        .start_backfill(&id, from, to, range.rate.unwrap_or(10.0))
        .await
        .map_err(host_error)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// The trigger's last backfill.
pub async fn progress(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BackfillView>> {
    app.host
        .backfill(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("trigger `{id}` has no backfill")))
}

/// Cancels the trigger's running backfill.
pub async fn cancel(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BackfillView>> {
    app.host
        .cancel_backfill(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("trigger `{id}` has no backfill")))
}
