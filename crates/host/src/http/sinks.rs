//! Webhook sinks over HTTP (`/api/admin/sinks`): list them with their
//! counters, pause and resume one.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::AppState;
use super::admin::host_error;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::host::SinkView;

/// The `{id}` of `/api/admin/sinks/{id}/...`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SinkId {
    /// The sink's id.
    id: String,
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
#[utoipa::path(post, path = "/api/admin/sinks/{id}/pause", params(SinkId),
    responses(
        (status = 200, description = "The sink, paused", body = SinkView),
        (status = 404, description = "No sink has this id", body = ErrorBody),
    ))]
pub async fn pause_sink(
    State(app): State<AppState>,
    Path(SinkId { id }): Path<SinkId>,
) -> ApiResult<Json<SinkView>> {
    sink_action(app, id, true).await
}

/// Resume a paused sink
#[utoipa::path(post, path = "/api/admin/sinks/{id}/resume", params(SinkId),
    responses(
        (status = 200, description = "The sink, delivering", body = SinkView),
        (status = 404, description = "No sink has this id", body = ErrorBody),
    ))]
pub async fn resume_sink(
    State(app): State<AppState>,
    Path(SinkId { id }): Path<SinkId>,
) -> ApiResult<Json<SinkView>> {
    sink_action(app, id, false).await
}

async fn sink_action(app: AppState, id: String, pause: bool) -> ApiResult<Json<SinkView>> {
    let unknown = || ApiError::not_found(format!("no sink with id `{id}`"));
    if !app.host.sinks().has(&id) {
        return Err(unknown());
    }
    let trigger = crate::sink::trigger_id(&id);
    let changed = match pause {
        true => app.host.triggers().pause(&trigger).await,
        false => app.host.triggers().resume(&trigger).await,
    };
    changed.map_err(host_error)?;
    let views = app.host.sinks().list().await.map_err(host_error)?;
    let view = views.into_iter().find(|v| v.id == id);
    view.map(Json).ok_or_else(unknown)
}
