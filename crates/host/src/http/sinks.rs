//! Webhook sinks over HTTP (`/api/admin/sinks`): list them with their
//! counters, pause and resume one.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::AppState;
use super::admin::host_error;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::config::SinkId;
use crate::host::SinkView;

/// The `{id}` of `/api/admin/sinks/{id}/...`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SinkPath {
    /// The sink's id.
    #[param(value_type = String)]
    id: SinkId,
}

/// Webhook sinks
///
/// Every sink with its counters: delivered, failed attempts, dead letters,
/// the last error.
#[utoipa::path(get, path = "/api/admin/sinks",
    responses((status = 200, description = "The sinks", body = [SinkView])))]
pub async fn list_sinks(State(app): State<AppState>) -> ApiResult<Json<Vec<SinkView>>> {
    Ok(Json(app.host.sinks().list().await.map_err(host_error)?))
}

/// Pause a sink
///
/// Events wait (JetStream) or are not taken (memory) until it is resumed.
#[utoipa::path(post, path = "/api/admin/sinks/{id}/pause", params(SinkPath),
    responses(
        (status = 200, description = "The sink, paused", body = SinkView),
        (status = 404, description = "No sink has this id", body = ErrorBody),
    ))]
pub async fn pause_sink(
    State(app): State<AppState>,
    Path(SinkPath { id }): Path<SinkPath>,
) -> ApiResult<Json<SinkView>> {
    sink_action(app, id, true).await
}

/// Resume a paused sink
#[utoipa::path(post, path = "/api/admin/sinks/{id}/resume", params(SinkPath),
    responses(
        (status = 200, description = "The sink, delivering", body = SinkView),
        (status = 404, description = "No sink has this id", body = ErrorBody),
    ))]
pub async fn resume_sink(
    State(app): State<AppState>,
    Path(SinkPath { id }): Path<SinkPath>,
) -> ApiResult<Json<SinkView>> {
    sink_action(app, id, false).await
}

async fn sink_action(app: AppState, id: SinkId, pause: bool) -> ApiResult<Json<SinkView>> {
    let unknown = || ApiError::not_found(format!("no sink with id `{id}`"));
    let sinks = app.host.sinks();
    if !sinks.set_paused(&id, pause).await.map_err(host_error)? {
        return Err(unknown());
    }
    let views = app.host.sinks().list().await.map_err(host_error)?;
    let view = views.into_iter().find(|v| v.id == id);
    view.map(Json).ok_or_else(unknown)
}
