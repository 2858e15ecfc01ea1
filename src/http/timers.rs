//! One-off timers over HTTP (`/api/admin/timers`): add one to publish an
//! event or fire a trigger at an instant (`at`) or after a delay
//! (`delay`), list the pending ones, cancel one.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::admin::host_error;
use super::error::{ApiError, ApiResult, parse_json_object};
use crate::state::{OneOffTimer, TimerAction};
use crate::topic::Topic;

/// A `POST /api/admin/timers` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTimer {
    id: Option<String>,
    topic: Option<String>,
    trigger: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    at: Option<String>,
    delay: Option<String>,
}

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
                let delay = crate::units::parse_duration(&delay)
                    .map_err(|e| invalid(format!("`delay`: {e}")))?;
                now + chrono::TimeDelta::from_std(delay)
                    .map_err(|_| invalid("`delay`: too long".into()))?
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
            Some(id) => id,
            None => uuid::Uuid::now_v7().to_string(),
        };
        Ok(OneOffTimer { id, due, action })
    }
}

/// Adds a timer: 201 `{id, due}`; the same request again (same `id`) 200;
/// an `id` taken by another timer 409.
pub async fn add(
    State(app): State<AppState>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (parts, body) = request.into_parts();
    let body = app.read_body(body).await?;
    let object = parse_json_object(&parts.headers, &body)?;
    let new: NewTimer = serde_json::from_value(Value::Object(object))
        .map_err(|e| invalid(format!("invalid timer: {e}")))?;
    let timer = new.into_timer(chrono::Utc::now())?;
    let (kept, added) = app
        .host
        .add_timer(timer.clone())
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
    Ok((status, Json(json!({ "id": kept.id, "due": kept.due }))))
}

/// The pending timers, soonest first.
pub async fn list(State(app): State<AppState>) -> ApiResult<Json<Vec<OneOffTimer>>> {
    Ok(Json(app.host.timers().await.map_err(host_error)?))
}

/// Cancels a timer.
pub async fn cancel(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    match app.host.cancel_timer(&id).await.map_err(host_error)? {
        true => Ok(Json(json!({ "cancelled": id }))),
        false => Err(ApiError::not_found(format!(
            "no pending timer with id `{id}`"
        ))),
    }
}
