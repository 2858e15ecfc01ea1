//! What waits: dead letters (replay, discard), pending one-off timers
//! (cancel) and webhook sinks (pause, resume), on one page, `/queues`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{empty, page, time};
use crate::app::AppState;
use crate::config::SinkId;
use wasmsched_core::state::TimerAction;

/// Dead letters shown (newest first).
const LETTERS_SHOWN: usize = 100;

/// `GET /queues`.
pub async fn queues(State(app): State<AppState>) -> Response {
    let letters = app.host.dead_letters().list(None, LETTERS_SHOWN).await;
    let timers = app.host.timers().list().await;
    let sinks = app.host.sinks().list().await;
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        html! { p.error { "cannot read the " (what) ": " (error) } }
    };
    let body = html! {
        section aria-label="Dead letters" {
            h2 { "Dead letters" }
            @match &letters {
                Err(error) => (failed("dead letters", error)),
                Ok(letters) if letters.is_empty() => (empty("No dead letters", html! { "events a trigger or sink gave up on appear here, to replay or discard." })),
                Ok(letters) => div.scroll { table {
                    thead { tr { th { "When" } th { "Trigger" } th { "Event" } th { "Attempts" } th { "Error" } th { "Actions" } } }
                    tbody { @for letter in letters {
                        tr {
                            td { (time(letter.at)) }
                            td { a href={ "/triggers/" (letter.trigger) } { (letter.trigger) } }
                            td { code { (letter.event.topic) } }
                            td.num { (letter.attempts) }
                            td { (letter.error) }
                            td { div.actions {
                                (action(&format!("/queues/deadletters/{}/replay", letter.id), "Replay", &letter.id.to_string()))
                                (action(&format!("/queues/deadletters/{}/discard", letter.id), "Discard", &letter.id.to_string()))
                            } }
                        }
                    } }
                } },
            }
        }
        section aria-label="Timers" {
            h2 { "One-off timers" }
            @match &timers {
                Err(error) => (failed("timers", error)),
                Ok(timers) if timers.is_empty() => (empty("No pending timers", html! { code { "wasmsched at \"in 10m\" TOPIC DATA" } " or " code { "POST /api/admin/timers" } " adds one." })),
                Ok(timers) => div.scroll { table {
                    thead { tr { th { "Id" } th { "Due" } th { "Does" } th { "Actions" } } }
                    tbody { @for timer in timers {
                        tr {
                            td { code { (timer.id) } }
                            td { (time(timer.due)) }
                            td { @match &timer.action {
                                TimerAction::Publish { topic, .. } => { "publish on " code { (topic) } },
                                TimerAction::Fire { trigger, .. } => { "fire " a href={ "/triggers/" (trigger) } { (trigger) } },
                            } }
                            td { (action(&format!("/queues/timers/{}/cancel", timer.id), "Cancel", &timer.id)) }
                        }
                    } }
                } },
            }
        }
        section aria-label="Sinks" {
            h2 { "Webhook sinks" }
            @match &sinks {
                Err(error) => (failed("sinks", error)),
                Ok(sinks) if sinks.is_empty() => (empty("No sinks", html! { "add a " code { "[[sink]]" } " table to wasmsched.toml to deliver events to a URL." })),
                Ok(sinks) => div.scroll { table {
                    thead { tr { th { "Sink" } th { "Pattern" } th { "Delivered" } th { "Failed attempts" } th { "Dead" } th { "Last error" } th { "Actions" } } }
                    tbody { @for sink in sinks {
                        tr {
                            td { (sink.id) @if sink.paused { " " span.state.paused { "paused" } } }
                            td { code { (sink.pattern) } }
                            td.num { (sink.stats.delivered) }
                            td.num { (sink.stats.failed_attempts) }
                            td.num { (sink.dead) }
                            td { (sink.stats.last_error.as_deref().unwrap_or("")) }
                            td { @if sink.paused {
                                (action(&format!("/queues/sinks/{}/resume", sink.id), "Resume", sink.id.as_str()))
                            } @else {
                                (action(&format!("/queues/sinks/{}/pause", sink.id), "Pause", sink.id.as_str()))
                            } }
                        }
                    } }
                } },
            }
        }
    };
    page(&app, "Dead letters, timers, sinks", body).into_response()
}

fn action(path: &str, label: &str, subject: &str) -> Markup {
    html! {
        form method="post" action=(path) {
            button type="submit" aria-label={ (label) " " (subject) } { (label) }
        }
    }
}

fn done(app: &AppState, result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Redirect::to("/queues").into_response(),
        Err(error) => {
            let body = html! { p.error role="alert" { (error) } p { a href="/queues" { "Back" } } };
            (
                axum::http::StatusCode::CONFLICT,
                page(app, "Not done", body),
            )
                .into_response()
        }
    }
}

fn letter_id(text: &str) -> Result<uuid::Uuid, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a dead letter id"))
}

/// `POST /queues/deadletters/{id}/replay`.
pub async fn replay(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = letter_id(&id)?;
        app.host
            .dead_letters()
            .replay(id)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let result = result.await;
    done(&app, result)
}

/// `POST /queues/deadletters/{id}/discard`.
pub async fn discard(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = letter_id(&id)?;
        app.host
            .dead_letters()
            .discard(id)
            .await
            .map_err(|e| e.to_string())
    };
    let result = result.await;
    done(&app, result)
}

/// `POST /queues/timers/{id}/cancel`.
pub async fn cancel_timer(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let result = match app.host.timers().cancel(&id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("no pending timer `{id}`")),
        Err(error) => Err(error.to_string()),
    };
    done(&app, result)
}

/// `POST /queues/sinks/{id}/pause` and `/resume`.
pub async fn sink(
    State(app): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    let id = SinkId::new(id);
    let paused = match verb.as_str() {
        "pause" => true,
        "resume" => false,
        other => return done(&app, Err(format!("unknown action `{other}`"))),
    };
    let result = match app.host.sinks().set_paused(&id, paused).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("no sink `{id}`")),
        Err(error) => Err(error.to_string()),
    };
    done(&app, result)
}
