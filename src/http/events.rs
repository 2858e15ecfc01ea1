//! `POST /api/events` publishes into the broker; `GET /api/events/stream`
//! streams matching events as Server-Sent Events.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::cloudevents::{self, Mode};
use super::error::{ApiError, ApiResult, parse_json_object};
use crate::broker::SubscriberKind;
use crate::event::Event;
use crate::topic::{Topic, TopicPattern};

/// `{"topic": "logs.app", "data": {...}, "headers": {...}}` → published.
pub async fn publish(
    State(app): State<AppState>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (parts, body) = request.into_parts();
    let body = app.read_body(body).await?;
    let (topic, data, headers) = match cloudevents::mode(&parts.headers) {
        Some(Mode::Structured) => cloudevents::structured(&body)?,
        Some(Mode::Binary) => cloudevents::binary(&parts.headers, &body)?,
        None => own_shape(&parts.headers, &body)?,
    };
    app.host
        .event_limits()
        .check_event(0, &data, &headers)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("not published: {e}")))?;
    let mut event = Event::new(topic, data);
    event.headers = headers;
    // The caller's trace goes on with the event (a CloudEvent's own
    // `traceparent` extension wins).
    for (name, value) in super::trace_context(&parts.headers) {
        event.headers.entry(name).or_insert(value);
    }
    let (id, topic) = (event.id, event.topic.clone());
    app.host.broker().publish(event).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("publishing failed: {e}"),
        )
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "topic": topic })),
    ))
}

/// `{"topic", "data", "headers"?}`, wasmsched's own shape.
fn own_shape(headers: &axum::http::HeaderMap, body: &[u8]) -> ApiResult<cloudevents::Parsed> {
    let mut object = parse_json_object(headers, body)?;
    let topic = match object.remove("topic") {
        Some(Value::String(topic)) => {
            Topic::new(topic).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        _ => {
            return Err(unprocessable(
                r#"the body needs a `topic` string: {"topic": "logs.app", "data": {...}}"#,
            ));
        }
    };
    let data = object.remove("data").ok_or_else(|| {
        unprocessable(r#"the body needs `data`: {"topic": "logs.app", "data": {...}}"#)
    })?;
    let headers: BTreeMap<String, String> = match object.remove("headers") {
        None => BTreeMap::new(),
        Some(headers) => serde_json::from_value(headers)
            .map_err(|_| unprocessable("`headers` must be an object of strings"))?,
    };
    Ok((topic, data, headers))
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

#[derive(Deserialize)]
pub struct StreamQuery {
    pattern: Option<String>,
    /// `cloudevents`: each message is a CloudEvent (JSON format).
    format: Option<String>,
}

/// Every event whose topic matches `?pattern=` (default `**`), as SSE
/// messages whose `data:` is the event as JSON (`?format=cloudevents`: as
/// a CloudEvent). A lagging client misses
/// events rather than slowing publishers.
pub async fn stream(
    State(app): State<AppState>,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let cloud = match query.format.as_deref() {
        None | Some("wasmsched") => false,
        Some("cloudevents") => true,
        Some(other) => {
            let message = format!("unknown `format` `{other}`: use `cloudevents` or leave it out");
            return Err(ApiError::bad_request(message));
        }
    };
    let pattern = query.pattern.as_deref().unwrap_or("**");
    let pattern = TopicPattern::new(pattern).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let subscription = app
        .host
        .broker()
        .subscribe(&pattern, SubscriberKind::Observer)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let shutdown = app.shutdown.clone();
    let events = futures_util::stream::unfold(subscription, move |mut subscription| {
        let shutdown = shutdown.clone();
        async move {
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => return None,
                delivery = subscription.next() => delivery?,
            };
            let json = match cloud {
                true => crate::cloudevent::to_cloudevent(&delivery.event).to_string(),
                false => serde_json::to_string(&delivery.event).expect("events serialize"),
            };
            let message = SseEvent::default().data(json);
            Some((Ok(message), subscription))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
