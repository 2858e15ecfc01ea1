//! The live events page: the SSE tail (`/api/events/stream`) with a
//! pattern box and pause/resume of the view (script), and a form that
//! publishes an event (works without script); and one event's page, for
//! the events a run published.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{page, time};
use crate::app::AppState;
use wasmsched_core::event::Event;
use wasmsched_core::state::recent::{MAX_BYTES, MAX_EVENTS};
use wasmsched_core::topic::Topic;
use wasmsched_core::trigger::TRIGGER_HEADER;

/// The page's query: the pattern to watch, and what the last publish did.
#[derive(Deserialize)]
pub struct Tail {
    pattern: Option<String>,
    published: Option<String>,
    error: Option<String>,
}

/// `GET /events`.
pub async fn live(State(app): State<AppState>, Query(tail): Query<Tail>) -> Response {
    let pattern = tail
        .pattern
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "**".to_owned());
    let body = html! {
        form #tail method="get" action="/events" {
            label for="pattern" { "Pattern" }
            input #pattern name="pattern" value=(pattern) autocomplete="off";
            button type="submit" { "Watch" }
        }
        div.actions { button #pause-view type="button" aria-pressed="false" { "Pause view" } }
        p #tail-status.hint { "Live events need JavaScript; without it, " code { "curl -N /api/events/stream?pattern=**" } "." }
        ol #events data-pattern=(pattern) aria-live="polite" {}
        h2 { "Publish an event" }
        @if let Some(id) = &tail.published { p.ok role="status" { "Published " code { (id) } "." } }
        @if let Some(error) = &tail.error { p.error role="alert" { (error) } }
        form #publish method="post" action="/events/publish" {
            label for="topic" { "Topic" }
            input #topic name="topic" placeholder="logs.app.error" required;
            label for="data" { "Data (JSON)" }
            textarea #data name="data" rows="3" { "{}" }
            button type="submit" { "Publish" }
        }
    };
    page(&app, "Live events", body).into_response()
}

/// The publish form.
#[derive(Deserialize)]
pub struct Publish {
    topic: String,
    data: String,
}

/// `POST /events/publish`: publishes and comes back to the page.
pub async fn publish(State(app): State<AppState>, Form(form): Form<Publish>) -> Response {
    let result = async {
        let topic = Topic::new(form.topic.trim()).map_err(|e| e.to_string())?;
        let data: serde_json::Value =
            serde_json::from_str(&form.data).map_err(|e| format!("data is not JSON: {e}"))?;
        app.host
            .event_limits()
            .check_event(
                0,
                &data,
                &std::collections::BTreeMap::<String, String>::new(),
            )
            .map_err(|e| format!("not published: {e}"))?;
        let event = Event::new(topic, data);
        let id = event.id;
        app.host
            .broker()
            .publish(event)
            .await
            .map_err(|e| format!("publishing failed: {e}"))?;
        Ok::<_, String>(id)
    }
    .await;
    let query = match result {
        Ok(id) => format!("published={id}"),
        Err(error) => format!("error={}", super::session::encode_component(&error)),
    };
    Redirect::to(&format!("/events?{query}")).into_response()
}

/// `GET /events/{id}`: an event a run of this host published, while it is
/// among the recent events; otherwise a 404 saying why it is not here.
pub async fn event(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let found = id.parse().ok().and_then(|id| app.host.recent_event(id));
    let Some(event) = found else {
        let body = html! {
            p { "Event " code { (id) } " is not kept here." }
            p { "This host keeps the last " (MAX_EVENTS) " events its triggers published ("
                (MAX_BYTES >> 20) " MiB), in memory, until it restarts; older events, and those \
                published by other replicas or with " code { "POST /api/events" } ", are on the broker only." }
            p { a href="/events" { "Watch live events" } }
        };
        return (StatusCode::NOT_FOUND, page(&app, "Event not kept", body)).into_response();
    };
    let trigger = event.headers.get(TRIGGER_HEADER);
    let data = serde_json::to_string_pretty(&event.data).unwrap_or_default();
    let body = html! {
        dl.spec {
            dt { "Id" } dd { code { (event.id) } }
            dt { "Topic" } dd { code { (event.topic) } }
            dt { "Time" } dd { (time(event.time)) }
            @if let Some(trigger) = trigger {
                dt { "Published by" } dd { a href={ "/triggers/" (super::session::encode_component(trigger)) } { (trigger) } }
            }
        }
        @if !event.headers.is_empty() {
            h2 { "Headers" }
            dl.spec { @for (name, value) in &event.headers { dt { code { (name) } } dd { code { (value) } } } }
        }
        h2 { "Data" }
        pre.data { (data) }
    };
    page(&app, &format!("Event on {}", event.topic), body).into_response()
}
