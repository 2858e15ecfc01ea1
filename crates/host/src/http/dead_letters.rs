//! Dead letters over HTTP (`/api/admin/deadletters`): the events event
//! triggers and sinks gave up on, to list, replay or discard.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::admin::{checked_limit, host_error};
use super::error::{ApiError, ApiResult, ErrorBody, Query};
use wasmsched_core::state::DeadLetter;

/// The `{id}` of `/api/admin/deadletters/{id}/...`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeadLetterId {
    /// The dead letter's id.
    #[param(value_type = uuid::Uuid)]
    id: String,
}

impl DeadLetterId {
    fn parse(&self) -> ApiResult<uuid::Uuid> {
        let text = &self.id;
        text.parse().map_err(|_| {
            ApiError::bad_request(format!("`{text}` is not a dead letter id (a UUID)"))
        })
    }
}

/// `?trigger=` and `?limit=` of the dead letters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// Only this trigger's (a sink's are `sink:<id>`'s).
    trigger: Option<String>,
    /// How many, newest first: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Dead letters, newest first
///
/// Events event triggers (and sinks) gave up on after `max_deliver`
/// attempts.
#[utoipa::path(get, path = "/api/admin/deadletters", params(DeadLettersQuery),
    responses(
        (status = 200, description = "The dead letters, newest first", body = [DeadLetter]),
        (status = 400, description = "`limit` is out of range", body = ErrorBody),
    ))]
pub async fn dead_letters(
    State(app): State<AppState>,
    Query(query): Query<DeadLettersQuery>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    let limit = checked_limit(query.limit, 100)?;
    let letters = app
        .host
        .dead_letters()
        .list(query.trigger.as_deref(), limit);
    Ok(Json(letters.await.map_err(host_error)?))
}

/// What replaying a dead letter answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Replayed {
    /// The event's id.
    pub event: uuid::Uuid,
    /// The dead letter's id (now discarded).
    pub replayed: uuid::Uuid,
    /// The trigger that took the event.
    pub trigger: String,
}

/// Replay a dead letter
///
/// Hands its event to its trigger again (filter, then factory); the letter
/// is discarded if that works, kept if not.
#[utoipa::path(post, path = "/api/admin/deadletters/{id}/replay", params(DeadLetterId),
    responses(
        (status = 200, description = "Replayed and discarded", body = Replayed),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No dead letter has this id, or its trigger is gone", body = ErrorBody),
        (status = 409, description = "The trigger cannot take it now (paused, stopped)", body = ErrorBody),
        (status = 422, description = "The trigger failed on it again: the letter is kept", body = ErrorBody),
    ))]
pub async fn replay_dead_letter(
    State(app): State<AppState>,
    Path(id): Path<DeadLetterId>,
) -> ApiResult<Json<Replayed>> {
    let id = id.parse()?;
    let letter = app
        .host
        .dead_letters()
        .replay(id)
        .await
        .map_err(host_error)?;
    Ok(Json(Replayed {
        event: letter.event.id,
        replayed: id,
        trigger: letter.trigger,
    }))
}

/// What discarding a dead letter answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Discarded {
    /// The dead letter's id.
    pub discarded: uuid::Uuid,
}

/// Discard a dead letter
#[utoipa::path(delete, path = "/api/admin/deadletters/{id}", params(DeadLetterId),
    responses(
        (status = 200, description = "Discarded", body = Discarded),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 404, description = "No dead letter has this id", body = ErrorBody),
    ))]
pub async fn discard_dead_letter(
    State(app): State<AppState>,
    Path(id): Path<DeadLetterId>,
) -> ApiResult<Json<Discarded>> {
    let id = id.parse()?;
    app.host
        .dead_letters()
        .discard(id)
        .await
        .map_err(host_error)?;
    Ok(Json(Discarded { discarded: id }))
}
