//! One-off timers over HTTP (`/api/admin/timers`): add one to publish an
//! event or fire a trigger at an instant (`at`) or after a delay
//! (`delay`), list the pending ones, cancel one.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::admin::host_error;
use super::error::{ApiError, ApiResult, ErrorBody, JsonBodyErrors, parse_json_object};
use wasmsched_core::state::{OneOffTimer, TimerAction};
use wasmsched_core::topic::Topic;

/// A `POST /api/admin/timers` body: one of `topic` and `trigger`, one of
/// `at` and `delay`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTimer {
    /// Its id (default: a UUIDv7); the same request again with the same
    /// id makes no second timer.
    id: Option<String>,
    /// Publish an event on this topic.
    #[schema(value_type = Option<Topic>)]
    topic: Option<String>,
    /// Or fire this trigger.
    trigger: Option<String>,
    /// The event's data, or the trigger's payload (default `{}`).
    #[serde(default)]
    data: Option<Value>,
    /// When, as an RFC 3339 instant.
    #[schema(format = DateTime, example = "2030-01-07T09:00:00Z")]
    at: Option<String>,
    /// Or after how long, e.g. `90s`, `2h`.
    #[schema(example = "90s")]
    delay: Option<String>,
}

/// The longest timer id, in bytes.
const MAX_ID_BYTES: usize = 256;

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

impl NewTimer {
    /// The timer this asks for, due by `now`; errors name the field.
    fn into_timer(self, now: chrono::DateTime<chrono::Utc>) -> Result<OneOffTimer, ApiError> {
        let due = match (self.at, self.delay) {
            (Some(at), None) => chrono::DateTime::parse_from_rfc3339(&at)
                .map_err(|_| {
                    invalid(format!(
                        "`at`: `{at}` is not an RFC 3339 instant (e.g. 2030-01-07T09:00:00Z)"
                    ))
                })?
                .to_utc(),
            (None, Some(delay)) => {
                let delay = wasmsched_core::units::parse_duration(&delay)
                    .map_err(|e| invalid(format!("`delay`: {e}")))?;
                chrono::TimeDelta::from_std(delay)
                    .ok()
                    .and_then(|delay| now.checked_add_signed(delay))
                    .ok_or_else(|| invalid("`delay`: too long".into()))?
            }
            _ => return Err(invalid("give exactly one of `at` and `delay`".into())),
        };
        let data = self.data.unwrap_or_else(|| json!({}));
        let action = match (self.topic, self.trigger) {
            (Some(topic), None) => TimerAction::Publish {
                topic: Topic::new(topic).map_err(|e| invalid(format!("`topic`: {e}")))?,
                data,
            },
            (None, Some(trigger)) => TimerAction::Fire { trigger, data },
            _ => return Err(invalid("give exactly one of `topic` and `trigger`".into())),
        };
        let id = match self.id {
            Some(id) if id.trim().is_empty() => {
                return Err(invalid("`id` must not be empty".into()));
            }
            Some(id) if id.len() > MAX_ID_BYTES => {
                return Err(invalid(format!(
                    "`id` is {} bytes long: at most {MAX_ID_BYTES}",
                    id.len()
                )));
            }
            Some(id) => id,
            None => uuid::Uuid::now_v7().to_string(),
        };
        Ok(OneOffTimer {
            id,
            due,
            action,
            fired: None,
        })
    }
}

/// A timer added.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TimerDue {
    /// When it fires.
    pub due: chrono::DateTime<chrono::Utc>,
    /// Its id.
    pub id: String,
    /// When it fired: the same request again after the timer fired (within
    /// a day) answers 200 with this, and adds no second timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired: Option<chrono::DateTime<chrono::Utc>>,
}

/// Add a one-off timer
///
/// At `at` or after `delay`, it publishes `data` on `topic` or fires
/// `trigger` with it, once across replicas.
#[utoipa::path(post, path = "/api/admin/timers", operation_id = "add_timer",
    request_body = NewTimer,
    responses(
        (status = 201, description = "Added", body = TimerDue),
        (status = 200, description = "The same request again: the timer it made (with `fired` once it fired, for a day)", body = TimerDue),
        (status = 404, description = "No trigger has the id `trigger` names", body = ErrorBody),
        (status = 409, description = "Another timer has this id", body = ErrorBody),
        (status = 422, description = "Not a valid timer (the error names the field)", body = ErrorBody),
        JsonBodyErrors,
    ))]
pub async fn add(
    State(app): State<AppState>,
    request: Request,
) -> ApiResult<(StatusCode, Json<TimerDue>)> {
    let (parts, body) = request.into_parts();
    let body = super::read_body(&app, body).await?;
    let object = parse_json_object(&parts.headers, &body)?;
    let new: NewTimer = crate::config::deserialize_named(Value::Object(object))
        .map_err(|e| invalid(format!("invalid timer: {e}")))?;
    let timer = new.into_timer(chrono::Utc::now())?;
    if let TimerAction::Fire { trigger, .. } = &timer.action
        && app.host.triggers().registration(trigger).await.is_none()
    {
        let message = format!("`trigger`: no trigger with id `{trigger}`");
        return Err(ApiError::not_found(message));
    }
    let (kept, added) = app
        .host
        .timers()
        .add(timer.clone())
        .await
        .map_err(host_error)?;
    let status = match (added, kept.action == timer.action) {
        (true, _) => StatusCode::CREATED,
        (false, true) => StatusCode::OK,
        (false, false) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("a different timer has id `{}`", kept.id),
            ));
        }
    };
    Ok((
        status,
        Json(TimerDue {
            due: kept.due,
            id: kept.id,
            fired: kept.fired,
        }),
    ))
}

/// Pending one-off timers, soonest first
#[utoipa::path(get, path = "/api/admin/timers", operation_id = "list_timers",
    responses((status = 200, description = "The pending timers", body = [OneOffTimer])))]
pub async fn list(State(app): State<AppState>) -> ApiResult<Json<Vec<OneOffTimer>>> {
    Ok(Json(app.host.timers().list().await.map_err(host_error)?))
}

/// The `{id}` of `/api/admin/timers/{id}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TimerId {
    /// The timer's id.
    id: String,
}

/// What cancelling a timer answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Cancelled {
    /// The id of the timer cancelled.
    pub cancelled: String,
}

/// Cancel a pending timer
#[utoipa::path(delete, path = "/api/admin/timers/{id}", operation_id = "cancel_timer",
    params(TimerId),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = 404, description = "No pending timer has this id", body = ErrorBody),
    ))]
pub async fn cancel(
    State(app): State<AppState>,
    Path(TimerId { id }): Path<TimerId>,
) -> ApiResult<Json<Cancelled>> {
    match app.host.timers().cancel(&id).await.map_err(host_error)? {
        true => Ok(Json(Cancelled { cancelled: id })),
        false => Err(ApiError::not_found(format!(
            "no pending timer with id `{id}`"
        ))),
    }
}
