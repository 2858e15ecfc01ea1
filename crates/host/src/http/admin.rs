//! The admin API's triggers (`/api/admin/triggers/...`): list, inspect,
//! add, remove, pause, resume and run them, their run history, which event
//! triggers a topic reaches; and the HTTP answers to host errors.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api_triggers::fire_error;
use super::error::{ApiError, ApiResult, ErrorBody, JsonBodyErrors, Query, parse_json_object};
use crate::app::AppState;
use crate::app::views::{TriggerView, view};
use crate::host::HostError;
use wasmsched_core::broker::BrokerError;
use wasmsched_core::scheduler::SchedulerError;
use wasmsched_core::state::{Run, StateError};
use wasmsched_core::topic::{Topic, TopicPattern};
use wasmsched_core::trigger::{EventSpec, TriggerError, TriggerSpec};

/// The `{id}` of `/api/admin/triggers/{id}/...`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TriggerId {
    /// The trigger's id.
    pub id: String,
}

/// List the triggers
///
/// Every registered trigger with its counters.
#[utoipa::path(get, path = "/api/admin/triggers",
    responses((status = 200, description = "The triggers", body = [TriggerView])))]
pub async fn list_triggers(State(app): State<AppState>) -> Json<Vec<TriggerView>> {
    let mut views = Vec::new();
    for (id, registration) in app.host.triggers().list().await {
        if let Some(config) = app.host.triggers().config(&id) {
            views.push(view(&app, &id, &registration, &config).await);
        }
    }
    Json(views)
}

/// One trigger
#[utoipa::path(get, path = "/api/admin/triggers/{id}", params(TriggerId),
    responses(
        (status = 200, description = "The trigger", body = TriggerView),
        (status = 404, description = "No trigger has this id", body = ErrorBody),
    ))]
pub async fn get_trigger(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
) -> ApiResult<Json<TriggerView>> {
    trigger_view(&app, &id).await
}

async fn trigger_view(app: &AppState, id: &str) -> ApiResult<Json<TriggerView>> {
    let (registration, config) = app
        .host
        .triggers()
        .get(id)
        .await
        .ok_or_else(|| unknown(id))?;
    Ok(Json(view(app, id, &registration, &config).await))
}

/// Register a trigger
///
/// From the same fields as a `[[trigger]]` table; kept in the state store
/// across restarts.
#[utoipa::path(post, path = "/api/admin/triggers",
    request_body = crate::config::TriggerTable,
    responses(
        (status = 201, description = "Registered", body = TriggerView),
        (status = 409, description = "The id or the api path is taken, or its plugin is not loaded", body = ErrorBody),
        (status = 422, description = "Not a valid trigger table (the error names the key)", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn add_trigger(
    State(app): State<AppState>,
    request: Request,
) -> ApiResult<(StatusCode, Json<TriggerView>)> {
    let (parts, body) = request.into_parts();
    let body = super::read_body(&app, body).await?;
    let object = parse_json_object(&parts.headers, &body)?;
    let config = app
        .host
        .triggers()
        .add_admin(Value::Object(object))
        .await
        .map_err(host_error)?;
    trigger_view(&app, &config.id)
        .await
        .map(|json| (StatusCode::CREATED, json))
}

/// What `DELETE /api/admin/triggers/{id}` answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Removed {
    /// The id of the trigger unregistered.
    pub removed: String,
}

/// Unregister a trigger
#[utoipa::path(delete, path = "/api/admin/triggers/{id}", params(TriggerId),
    responses(
        (status = 200, description = "Unregistered (one a file declares comes back at the next reload)", body = Removed),
        (status = 404, description = "No trigger has this id", body = ErrorBody),
    ))]
pub async fn remove_trigger(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
) -> ApiResult<Json<Removed>> {
    app.host.triggers().remove(&id).await.map_err(host_error)?;
    Ok(Json(Removed { removed: id }))
}

/// Pause a trigger
///
/// It stops firing until resumed; a cron trigger's instants meanwhile are
/// recorded as missed.
#[utoipa::path(post, path = "/api/admin/triggers/{id}/pause", params(TriggerId),
    responses(
        (status = 200, description = "The trigger, paused", body = TriggerView),
        (status = 404, description = "No trigger has this id", body = ErrorBody),
    ))]
pub async fn pause(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
) -> ApiResult<Json<TriggerView>> {
    app.host.triggers().pause(&id).await.map_err(host_error)?;
    trigger_view(&app, &id).await
}

/// Resume a paused trigger
#[utoipa::path(post, path = "/api/admin/triggers/{id}/resume", params(TriggerId),
    responses(
        (status = 200, description = "The trigger, running", body = TriggerView),
        (status = 404, description = "No trigger has this id", body = ErrorBody),
    ))]
pub async fn resume(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
) -> ApiResult<Json<TriggerView>> {
    app.host.triggers().resume(&id).await.map_err(host_error)?;
    trigger_view(&app, &id).await
}

/// What firing a trigger now answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Fired {
    /// Always `true` (a failed firing is an error answer).
    pub success: bool,
    /// The trigger's firings since the start, this one included.
    pub trigger_count: u64,
}

/// Fire a trigger now, whatever its kind
///
/// An optional JSON object body is the payload (api) or the source
/// event's data (event).
#[utoipa::path(post, path = "/api/admin/triggers/{id}/run", params(TriggerId),
    request_body(content = Option<Object>, description = "The payload (optional: no body, or `null`, is none)"),
    responses(
        (status = 200, description = "Fired", body = Fired),
        (status = 404, description = "No trigger has this id", body = ErrorBody),
        (status = 409, description = "The trigger is paused or stopped", body = ErrorBody),
        (status = 422, description = "The body is not a JSON object", body = ErrorBody),
        (status = 500, description = "The firing failed (the plugin, or what it made)", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn run_now(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
    request: Request,
) -> ApiResult<Json<Fired>> {
    let (parts, body) = request.into_parts();
    let body = super::read_body(&app, body).await?;
    // No body, or `null`, is no payload.
    let payload = match body.trim_ascii() {
        b"" => None,
        b"null" if super::error::is_json(&parts.headers) => None,
        _ => Some(Value::Object(parse_json_object(&parts.headers, &body)?)),
    };
    let registration = app
        .host
        .triggers()
        .registration(&id)
        .await
        .ok_or_else(|| unknown(&id))?;
    let count = registration
        .trigger
        .run_now(payload)
        .await
        .map_err(|e| fire_error(&id, e))?;
    Ok(Json(Fired {
        success: true,
        trigger_count: count,
    }))
}

/// The most runs or dead letters one request returns.
pub(super) const MAX_LIMIT: usize = 1000;

/// `?limit=` of the run history.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// How many runs, newest first: 1 to 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// A trigger's run history, newest first
#[utoipa::path(get, path = "/api/admin/triggers/{id}/runs", params(TriggerId, RunsQuery),
    responses(
        (status = 200, description = "Its runs, newest first", body = [Run]),
        (status = 400, description = "`limit` is out of range", body = ErrorBody),
        (status = 404, description = "No trigger has this id, nor any history", body = ErrorBody),
    ))]
pub async fn runs(
    State(app): State<AppState>,
    Path(TriggerId { id }): Path<TriggerId>,
    Query(query): Query<RunsQuery>,
) -> ApiResult<Json<Vec<Run>>> {
    let limit = checked_limit(query.limit, 20)?;
    let runs = app
        .host
        .triggers()
        .runs(&id, limit)
        .await
        .map_err(host_error)?;
    let known = app.host.triggers().registration(&id).await.is_some()
        || app.host.triggers().pending().contains_key(&id);
    if runs.is_empty() && !known {
        return Err(unknown(&id));
    }
    Ok(Json(runs))
}

/// `limit`, or `default`: 400 unless 1 to [`MAX_LIMIT`].
pub(super) fn checked_limit(limit: Option<usize>, default: usize) -> ApiResult<usize> {
    let limit = limit.unwrap_or(default);
    match (1..=MAX_LIMIT).contains(&limit) {
        true => Ok(limit),
        false => Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_LIMIT}, not {limit}"
        ))),
    }
}

/// `?topic=` of `GET /api/admin/match`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MatchQuery {
    /// The topic, e.g. `orders.created`.
    #[param(value_type = Topic)]
    topic: String,
}

/// Which event triggers a topic reaches.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TopicMatch {
    /// The topic asked about.
    pub topic: Topic,
    /// The event triggers whose source matches it.
    pub triggers: Vec<MatchingTrigger>,
}

/// An event trigger a topic reaches.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MatchingTrigger {
    /// Events its filter accepted.
    pub filter_accepted: u64,
    /// Events its filter rejected.
    pub filter_rejected: u64,
    /// Its flow control, in words (empty: none).
    pub flow_control: Vec<String>,
    /// Its id.
    pub id: String,
    /// Whether it fires now.
    pub running: bool,
    /// Its source pattern.
    pub source: TopicPattern,
}

/// Which event triggers a topic would reach
///
/// "My event trigger gets nothing": each with its source pattern and
/// filter counters.
#[utoipa::path(get, path = "/api/admin/match", params(MatchQuery),
    responses(
        (status = 200, description = "The event triggers it reaches", body = TopicMatch),
        (status = 400, description = "Not a valid topic", body = ErrorBody),
    ))]
pub async fn match_topic(
    State(app): State<AppState>,
    Query(query): Query<MatchQuery>,
) -> ApiResult<Json<TopicMatch>> {
    let topic = Topic::new(query.topic).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut triggers = Vec::new();
    for (id, registration) in app.host.triggers().list().await {
        let Some(TriggerSpec::Event(EventSpec { source, flow })) =
            app.host.triggers().config(&id).map(|c| c.spec)
        else {
            continue;
        };
        if source.matches(&topic) {
            let stats = registration.trigger.stats();
            triggers.push(MatchingTrigger {
                filter_accepted: stats.filter_accepted,
                filter_rejected: stats.filter_rejected,
                flow_control: flow.describe(),
                id,
                running: registration.trigger.is_running(),
                source,
            });
        }
    }
    Ok(Json(TopicMatch { topic, triggers }))
}

fn unknown(id: &str) -> ApiError {
    ApiError::not_found(format!("no trigger with id `{id}`"))
}

fn scheduler_error(error: SchedulerError) -> ApiError {
    match error {
        SchedulerError::UnknownId(id) => unknown(&id),
        SchedulerError::State(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        other if broker_unavailable(&other) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
        }
        other => ApiError::new(StatusCode::CONFLICT, other.to_string()),
    }
}

/// The HTTP answer to a host error.
pub(super) fn host_error(error: HostError) -> ApiError {
    match error {
        HostError::Scheduler(e) => scheduler_error(e),
        // A plugin that is not loaded may be later: the same request works then.
        HostError::PathTaken { .. }
        | HostError::BackfillRunning(_)
        | HostError::PluginNotLoaded { .. } => {
            ApiError::new(StatusCode::CONFLICT, error.to_string())
        }
        HostError::State(StateError::Corrupt { .. }) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
        }
        HostError::State(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        HostError::UnknownDeadLetter(_) | HostError::GoneTrigger { .. } => {
            ApiError::not_found(error.to_string())
        }
        HostError::Replay {
            source: TriggerError::Failed(_),
            ..
        } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
        HostError::Replay { .. } => ApiError::new(StatusCode::CONFLICT, error.to_string()),
        other if broker_unavailable(&other) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    }
}

/// Did `error` come from a broker that is unreachable right now (so that
/// trying again later may work: 503, not 4xx)?
fn broker_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    // `TriggerError::Broker` is transparent: its source is the broker
    // error's source, so look at it rather than for the broker error.
    let mut cause = Some(error);
    while let Some(error) = cause {
        let unavailable = matches!(
            (error.downcast_ref(), error.downcast_ref()),
            (Some(BrokerError::Unavailable(_)), _)
                | (_, Some(TriggerError::Broker(BrokerError::Unavailable(_))))
        );
        if unavailable {
            return true;
        }
        cause = error.source();
    }
    false
}
