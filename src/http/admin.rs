//! The admin API (`/api/admin/...`): list, inspect, add, remove, pause,
//! resume and run triggers; list plugins.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::api_triggers::fire_error;
use super::error::{ApiError, ApiResult, parse_json_object};
use crate::broker::BrokerError;
use crate::config::TriggerConfig;
use crate::host::{HostError, SinkView};
use crate::scheduler::{Registration, SchedulerError};
use crate::state::{DeadLetter, Run, StateError};
use crate::trigger::{EventSpec, TriggerError, TriggerSpec, TriggerStats};

/// One trigger as the admin API shows it.
#[derive(Serialize)]
pub struct TriggerView {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) topic: String,
    pub(crate) plugin: Option<String>,
    pub(crate) running: bool,
    pub(crate) paused: bool,
    pub(crate) fire_count: u64,
    pub(crate) error_count: u64,
    pub(crate) stats: TriggerStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timezone: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) next_fires: Vec<String>,
    /// When the next fire actually happens: the next instant plus the
    /// trigger's jitter offset (cron only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_fire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jitter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    /// Flow control (event triggers that have some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) flow: Option<crate::trigger::flow::FlowSpec>,
    pub(crate) declared_in: String,
}

pub(crate) async fn view(
    app: &AppState,
    id: &str,
    registration: &Registration,
    config: &TriggerConfig,
) -> TriggerView {
    let trigger = &registration.trigger;
    let stats = trigger.stats();
    let next_fires = trigger
        .next_fires(3)
        .iter()
        .map(|t| t.to_rfc3339())
        .collect();
    let (mut next_fire, mut jitter, mut flow) = (None, None, None);
    let (schedule, timezone, path, source) = match &config.spec {
        TriggerSpec::Cron(cron) => {
            let zone = cron.timezone.clone().unwrap_or_else(|| "UTC".into());
            let offset = crate::cron::jitter_offset(id, cron.jitter);
            let offset = chrono::TimeDelta::from_std(offset).unwrap_or_default();
            next_fire = trigger
                .next_fires(1)
                .first()
                .map(|t| (*t + offset).to_rfc3339());
            jitter = (!cron.jitter.is_zero()).then(|| crate::units::format_duration(cron.jitter));
            (Some(cron.schedule.clone()), Some(zone), None, None)
        }
        TriggerSpec::Api(_) => (None, None, config.api_path(), None),
        TriggerSpec::Event(event) => {
            flow = event.flow.is_active().then(|| event.flow.clone());
            (None, None, None, Some(event.source.to_string()))
        }
    };
    TriggerView {
        id: id.to_owned(),
        kind: trigger.kind().to_string(),
        topic: registration.topic.to_string(),
        plugin: config.plugin.clone(),
        running: trigger.is_running(),
        paused: app.host.is_paused(id).await,
        fire_count: stats.fires,
        error_count: stats.errors,
        stats,
        schedule,
        timezone,
        next_fires,
        next_fire,
        jitter,
        path,
        source,
        flow,
        declared_in: config.declared_in.display().to_string(),
    }
}

pub async fn list_triggers(State(app): State<AppState>) -> Json<Vec<TriggerView>> {
    let mut views = Vec::new();
    for (id, registration) in app.host.registered_triggers().await {
        if let Some(config) = app.host.trigger_config(&id) {
            views.push(view(&app, &id, &registration, &config).await);
        }
    }
    Json(views)
}

pub async fn get_trigger(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TriggerView>> {
    let (registration, config) = app.host.trigger(&id).await.ok_or_else(|| unknown(&id))?;
    Ok(Json(view(&app, &id, &registration, &config).await))
}

/// Registers a trigger from the same fields as a `[[trigger]]` table.
pub async fn add_trigger(
    State(app): State<AppState>,
    request: Request,
) -> ApiResult<(StatusCode, Json<TriggerView>)> {
    let (parts, body) = request.into_parts();
    let body = app.read_body(body).await?;
    let object = parse_json_object(&parts.headers, &body)?;
    let config = app
        .host
        .add_admin_trigger(Value::Object(object))
        .await
        .map_err(host_error)?;
    get_trigger(State(app), Path(config.id))
        .await
        .map(|json| (StatusCode::CREATED, json))
}

pub async fn remove_trigger(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    app.host.remove_trigger(&id).await.map_err(host_error)?;
    Ok(Json(json!({ "removed": id })))
}

pub async fn pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TriggerView>> {
    app.host.pause_trigger(&id).await.map_err(host_error)?;
    get_trigger(State(app), Path(id)).await
}

pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TriggerView>> {
    app.host.resume_trigger(&id).await.map_err(host_error)?;
    get_trigger(State(app), Path(id)).await
}

/// Fires a trigger now, whatever its kind; an optional JSON body is the
/// payload (api) or the source event's data (event).
pub async fn run_now(
    State(app): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Json<Value>> {
    let (parts, body) = request.into_parts();
    let body = app.read_body(body).await?;
    let payload = if body.is_empty() {
        None
    } else {
        Some(Value::Object(parse_json_object(&parts.headers, &body)?))
    };
    let registration = app
        .host
        .registration(&id)
        .await
        .ok_or_else(|| unknown(&id))?;
    let count = registration
        .trigger
        .run_now(payload)
        .await
        .map_err(|e| fire_error(&id, e))?;
    Ok(Json(json!({ "success": true, "trigger_count": count })))
}

#[derive(serde::Deserialize)]
pub struct RunsQuery {
    limit: Option<usize>,
}

/// The most runs one request returns.
const MAX_RUNS_LIMIT: usize = 1000;

/// A trigger's run history, newest first (`?limit=N`, default 20, at
/// most 1000).
pub async fn runs(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<RunsQuery>,
) -> ApiResult<Json<Vec<Run>>> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_RUNS_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_RUNS_LIMIT}, not {limit}"
        )));
    }
    let runs = app.host.runs(&id, limit).await.map_err(host_error)?;
    let known =
        app.host.registration(&id).await.is_some() || app.host.pending_triggers().contains_key(&id);
    if runs.is_empty() && !known {
        return Err(unknown(&id));
    }
    Ok(Json(runs))
}

#[derive(serde::Deserialize)]
pub struct DeadLettersQuery {
    trigger: Option<String>,
    limit: Option<usize>,
}

/// Dead letters, newest first (`?trigger=ID`, `?limit=N`: default 100, at
/// most 1000).
pub async fn dead_letters(
    State(app): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<DeadLettersQuery>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_RUNS_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_RUNS_LIMIT}, not {limit}"
        )));
    }
    let letters = app.host.dead_letters(query.trigger.as_deref(), limit);
    Ok(Json(letters.await.map_err(host_error)?))
}

/// Hands a dead letter's event to its trigger again; discards the letter
/// if that works.
pub async fn replay_dead_letter(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = dead_letter_id(&id)?;
    let letter = app.host.replay_dead_letter(id).await.map_err(host_error)?;
    Ok(Json(
        json!({ "replayed": id, "trigger": letter.trigger, "event": letter.event.id }),
    ))
}

/// Discards a dead letter.
pub async fn discard_dead_letter(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = dead_letter_id(&id)?;
    app.host.discard_dead_letter(id).await.map_err(host_error)?;
    Ok(Json(json!({ "discarded": id })))
}

fn dead_letter_id(text: &str) -> Result<uuid::Uuid, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("`{text}` is not a dead letter id (a UUID)")))
}

/// Every sink with its counters: delivered, failed attempts, dead letters,
/// the last error.
pub async fn list_sinks(State(app): State<AppState>) -> ApiResult<Json<Vec<SinkView>>> {
    Ok(Json(app.host.sinks().await.map_err(host_error)?))
}

/// Pauses a sink: events wait (JetStream) or are not taken (memory).
pub async fn pause_sink(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    sink_action(app, id, true).await
}

/// Resumes a paused sink.
pub async fn resume_sink(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SinkView>> {
    sink_action(app, id, false).await
}

async fn sink_action(app: AppState, id: String, pause: bool) -> ApiResult<Json<SinkView>> {
    if !app.host.has_sink(&id) {
        return Err(ApiError::not_found(format!("no sink with id `{id}`")));
    }
    let trigger = crate::sink::trigger_id(&id);
    let changed = match pause {
        true => app.host.pause_trigger(&trigger).await,
        false => app.host.resume_trigger(&trigger).await,
    };
    changed.map_err(host_error)?;
    let views = app.host.sinks().await.map_err(host_error)?;
    let view = views.into_iter().find(|v| v.id == id);
    view.map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no sink with id `{id}`")))
}

#[derive(serde::Deserialize)]
pub struct MatchQuery {
    topic: String,
}

/// Which event triggers a topic would reach ("my event trigger gets
/// nothing"): each with its source pattern and filter counters.
pub async fn match_topic(
    State(app): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<MatchQuery>,
) -> ApiResult<Json<Value>> {
    let topic =
        crate::topic::Topic::new(query.topic).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut matching = Vec::new();
    for (id, registration) in app.host.registered_triggers().await {
        let Some(TriggerSpec::Event(EventSpec { source, flow })) =
            app.host.trigger_config(&id).map(|c| c.spec)
        else {
            continue;
        };
        if source.matches(&topic) {
            let stats = registration.trigger.stats();
            matching.push(json!({
                "id": id,
                "source": source.to_string(),
                "running": registration.trigger.is_running(),
                "filter_accepted": stats.filter_accepted,
                "filter_rejected": stats.filter_rejected,
                "flow_control": flow.describe(),
            }));
        }
    }
    Ok(Json(json!({ "topic": topic, "triggers": matching })))
}

/// Every loaded plugin with its counters.
pub async fn list_plugins(State(app): State<AppState>) -> Json<Vec<Value>> {
    let errors = app.host.plugin_errors();
    let mut names: std::collections::BTreeSet<String> = app.host.plugins().into_keys().collect();
    names.extend(errors.keys().cloned());
    let plugins = app.host.plugins();
    Json(
        names
            .into_iter()
            .map(|name| {
                let last_error = errors.get(&name);
                match plugins.get(&name) {
                    Some(plugin) => json!({
                        "name": name,
                        "hash": plugin.hash(),
                        "loaded_at": plugin.loaded_at().to_rfc3339(),
                        "version": plugin.contract_version(),
                        "worlds": plugin.worlds().names(),
                        "imports": plugin.imports(),
                        "limits": {
                            "timeout_ms": plugin.limits().timeout.as_millis() as u64,
                            "wall_timeout_ms": plugin.limits().wall_timeout.as_millis() as u64,
                            "memory_bytes": plugin.limits().memory_bytes,
                        },
                        "grants": plugin.grants().view(),
                        "last_error": last_error,
                        "stats": plugin.stats(),
                        "history": app.host.plugin_history(&name),
                    }),
                    None => json!({ "name": name, "loaded": false, "last_error": last_error }),
                }
            })
            .collect(),
    )
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
        HostError::PathTaken { .. } | HostError::BackfillRunning(_) => {
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
