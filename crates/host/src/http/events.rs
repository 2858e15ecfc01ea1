//! `POST /api/events` publishes into the broker; `GET /api/events/stream`
//! streams matching events as Server-Sent Events.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::cloudevents::{self, Mode};
use super::error::{ApiError, ApiResult, ErrorBody, JsonBodyErrors, Query, parse_json_object};
use wasmsched_core::broker::SubscriberKind;
use wasmsched_core::event::Event;
use wasmsched_core::topic::{Topic, TopicPattern};

/// An event to publish, in wasmsched's own shape (other keys are ignored).
/// Each key is checked by [`own_shape`], so that the error names it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewEventBody {
    /// Where to publish it, e.g. `logs.app`.
    #[serde(default, deserialize_with = "super::error::present")]
    #[schema(value_type = Topic, required = true)]
    topic: Option<Value>,
    /// Any JSON value.
    #[serde(default, deserialize_with = "super::error::present")]
    #[schema(value_type = Value, required = true)]
    data: Option<Value>,
    /// Free-form metadata, e.g. `traceparent`.
    #[serde(default, deserialize_with = "super::error::present")]
    #[schema(value_type = BTreeMap<String, String>, required = false)]
    headers: Option<Value>,
}

/// A CloudEvent in the JSON format (structured mode): its schema is
/// written out in [`super::schemas`], as the derive cannot say it.
pub struct CloudEventBody;

impl utoipa::PartialSchema for CloudEventBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new().into()
    }
}

impl utoipa::ToSchema for CloudEventBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "CloudEvent".into()
    }
}

/// An event published.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Published {
    /// The event's id (a UUIDv7).
    pub id: uuid::Uuid,
    /// Where it was published.
    pub topic: Topic,
}

/// Publish an event
///
/// As `{"topic", "data", "headers"?}`, or as a CloudEvent: structured
/// (`Content-Type: application/cloudevents+json`) or binary (`ce-*`
/// headers, the body is the data). A CloudEvent's `type` is the topic; its
/// `id`, `source` and `subject` are kept as `ce-*` headers, its
/// extensions as headers.
#[utoipa::path(post, path = "/api/events", operation_id = "publish_event",
    request_body(content(
        (NewEventBody = "application/json"),
        (CloudEventBody = "application/cloudevents+json"),
    )),
    responses(
        JsonBodyErrors, // first: the answers below say more of 400 and 413
        (status = 202, description = "Published", body = Published),
        (status = 400, description = "Not valid JSON, or not a valid topic", body = ErrorBody),
        (status = 413, description = "The body, or the event, is over the limits", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type (the error names it)", body = ErrorBody),
        (status = 503, description = "The broker is unreachable: not published", body = ErrorBody),
    ))]
pub async fn publish(
    State(app): State<AppState>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Published>)> {
    let (parts, body) = request.into_parts();
    let body = super::read_body(&app, body).await?;
    let (topic, data, mut headers) = match cloudevents::mode(&parts.headers) {
        Some(Mode::Structured) => cloudevents::structured(&body)?,
        Some(Mode::Binary) => cloudevents::binary(&parts.headers, &body)?,
        None => own_shape(&parts.headers, &body)?,
    };
    // With traces on, the caller's trace goes on with the event (a
    // CloudEvent's own `traceparent` extension wins); counted in its size.
    for (name, value) in super::trace_context(&parts.headers) {
        headers.entry(name).or_insert(value);
    }
    app.host
        .event_limits()
        .check_event(0, &data, &headers)
        .map_err(|e| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("not published: {e}")))?;
    let mut event = Event::new(topic, data);
    event.headers = headers;
    let (id, topic) = (event.id, event.topic.clone());
    app.host.broker().publish(event).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("publishing failed: {e}"),
        )
    })?;
    Ok((StatusCode::ACCEPTED, Json(Published { id, topic })))
}

/// `{"topic", "data", "headers"?}`, wasmsched's own shape.
fn own_shape(headers: &axum::http::HeaderMap, body: &[u8]) -> ApiResult<cloudevents::Parsed> {
    let object = parse_json_object(headers, body)?;
    let body: NewEventBody =
        serde_json::from_value(Value::Object(object)).expect("every key is optional");
    let topic = match body.topic {
        Some(Value::String(topic)) => {
            Topic::new(topic).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        _ => {
            return Err(unprocessable(
                r#"the body needs a `topic` string: {"topic": "logs.app", "data": {...}}"#,
            ));
        }
    };
    let data = body.data.ok_or_else(|| {
        unprocessable(r#"the body needs `data`: {"topic": "logs.app", "data": {...}}"#)
    })?;
    let headers: BTreeMap<String, String> = match body.headers {
        None => BTreeMap::new(),
        Some(headers) => serde_json::from_value(headers)
            .map_err(|_| unprocessable("`headers` must be an object of strings"))?,
    };
    Ok((topic, data, headers))
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// `?pattern=` and `?format=` of the event stream.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The topics to stream (default `**`: all).
    #[param(value_type = Option<TopicPattern>)]
    pattern: Option<String>,
    /// `cloudevents`: each message is a CloudEvent (JSON format); default
    /// `wasmsched`, the event as JSON.
    #[param(pattern = "^(wasmsched|cloudevents)$")]
    format: Option<String>,
}

/// Stream events as Server-Sent Events
///
/// Every event whose topic matches `?pattern=` (default `**`), as SSE
/// messages whose `data:` is the event as JSON (an `Event`;
/// `?format=cloudevents`: a CloudEvent). A lagging client misses events
/// rather than slowing publishers.
#[utoipa::path(get, path = "/api/events/stream", operation_id = "stream_events",
    params(StreamQuery),
    responses(
        (status = 200, description = "The stream, until the client or the server closes it",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "Not a valid pattern or format", body = ErrorBody),
        (status = 503, description = "The broker is unreachable", body = ErrorBody),
    ))]
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
                true => wasmsched_core::cloudevent::to_cloudevent(&delivery.event).to_string(),
                false => serde_json::to_string(&delivery.event).expect("events serialize"),
            };
            let message = SseEvent::default().data(json);
            Some((Ok(message), subscription))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
