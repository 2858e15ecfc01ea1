//! CloudEvents 1.0 (JSON format and HTTP binding) at the edges:
//! `POST /api/events` takes a CloudEvent in structured mode
//! (`Content-Type: application/cloudevents+json`) or binary mode (`ce-*`
//! headers, the body is `data`), and `/api/events/stream?format=cloudevents`
//! emits them.
//!
//! Mapping, in: `type` is the topic; `data` the event's data (none: `{}`);
//! `id`, `source` and `subject` are kept as headers `ce-id`, `ce-source`,
//! `ce-subject` (the event gets its own UUIDv7 id); any other attribute
//! (an extension) becomes a header of its name. Out: `id` is the event's
//! id, `source` its `ce-source` header or `wasmsched`, `type` its topic,
//! `time` its time, `datacontenttype` `application/json`, `data` its data,
//! and each other header an extension named by its lowercased letters and
//! digits (`wasmsched-flow-count` → `wasmschedflowcount`).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::event::Event;
use crate::topic::Topic;

/// The structured-mode media type.
pub const STRUCTURED: &str = "application/cloudevents+json";

/// Attributes with a meaning of their own (not extensions).
const CONTEXT: [&str; 9] = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// What a CloudEvent publishes: topic, data, headers.
pub type Parsed = (Topic, Value, BTreeMap<String, String>);

/// Whether the request carries a CloudEvent, and in which mode.
pub fn mode(headers: &HeaderMap) -> Option<Mode> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with(STRUCTURED) {
        Some(Mode::Structured)
    } else if headers.contains_key("ce-specversion") {
        Some(Mode::Binary)
    } else {
        None
    }
}

/// How a CloudEvent is carried over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole event is the JSON body.
    Structured,
    /// Attributes in `ce-*` headers, `data` in the body.
    Binary,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// A CloudEvent's attributes (strings) and data → what to publish.
fn parse(attributes: BTreeMap<String, String>, data: Value) -> Result<Parsed, ApiError> {
    match attributes.get("specversion").map(String::as_str) {
        Some("1.0") => {}
        Some(other) => return Err(bad(format!("CloudEvents specversion `{other}` is not 1.0"))),
        None => return Err(bad("a CloudEvent needs `specversion` (1.0)".into())),
    }
    for required in ["id", "source", "type"] {
        if attributes.get(required).is_none_or(|v| v.is_empty()) {
            return Err(bad(format!("a CloudEvent needs `{required}`")));
        }
    }
    let topic = Topic::new(attributes["type"].clone()).map_err(|e| {
        bad(format!(
            "CloudEvent `type` is the topic, and `{}` is not one: {e}",
            attributes["type"]
        ))
    })?;
    let mut headers = BTreeMap::new();
    for (name, value) in attributes {
        match name.as_str() {
            "id" | "source" | "subject" => {
                headers.insert(format!("ce-{name}"), value);
            }
            _ if CONTEXT.contains(&name.as_str()) => {}
            _ => {
                headers.insert(name, value);
            }
        }
    }
    Ok((topic, data, headers))
}

/// Structured mode: the body is the CloudEvent.
pub fn structured(body: &[u8]) -> Result<Parsed, ApiError> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the CloudEvent is not a JSON object: {e}")))?;
    let mut attributes = BTreeMap::new();
    let mut data = json!({});
    for (name, value) in object {
        match (name.as_str(), value) {
            ("data", value) => data = value,
            ("data_base64", _) => {
                return Err(bad(
                    "binary `data_base64` is not supported: send JSON `data`".into(),
                ));
            }
            (_, Value::String(text)) => {
                attributes.insert(name, text);
            }
            (_, Value::Null) => {}
            (_, other) => {
                attributes.insert(name, other.to_string());
            }
        }
    }
    parse(attributes, data)
}

/// Binary mode: `ce-*` headers, a JSON body (empty: `{}`).
pub fn binary(headers: &HeaderMap, body: &[u8]) -> Result<Parsed, ApiError> {
    let mut attributes = BTreeMap::new();
    for (name, value) in headers {
        if let Some(attribute) = name.as_str().strip_prefix("ce-") {
            let value = value
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("header `{name}` is not text")))?;
            attributes.insert(attribute.to_owned(), value.to_owned());
        }
    }
    let data = match body.is_empty() {
        true => json!({}),
        false => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the CloudEvent's data is not JSON: {e}"))
        })?,
    };
    parse(attributes, data)
}

/// An event as a CloudEvent (JSON format).
pub fn to_cloudevent(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("specversion".into(), json!("1.0"));
    object.insert("id".into(), json!(event.id.to_string()));
    let source = event
        .headers
        .get("ce-source")
        .map_or("wasmsched", String::as_str);
    object.insert("source".into(), json!(source));
    object.insert("type".into(), json!(event.topic.to_string()));
    object.insert("time".into(), json!(event.time.to_rfc3339()));
    object.insert("datacontenttype".into(), json!("application/json"));
    for (name, value) in &event.headers {
        let extension: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let taken = extension.is_empty() || object.contains_key(&extension) || name == "ce-source";
        if !taken {
            object.insert(extension, json!(value));
        }
    }
    object.insert("data".into(), event.data.clone());
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_in_and_out() {
        let body =
            br#"{"specversion": "1.0", "id": "A-1", "source": "/github", "type": "webhooks.github",
                        "subject": "o/r", "traceparent": "00-ab-cd-01", "data": {"n": 1}}"#;
        let (topic, data, headers) = structured(body).unwrap();
        assert_eq!(topic.to_string(), "webhooks.github");
        assert_eq!(data, json!({"n": 1}));
        assert_eq!(headers["ce-id"], "A-1");
        assert_eq!(headers["ce-source"], "/github");
        assert_eq!(headers["traceparent"], "00-ab-cd-01");
        let mut event = Event::new(topic, data);
        event.headers = headers;
        let out = to_cloudevent(&event);
        assert_eq!(out["type"], "webhooks.github");
        assert_eq!(out["source"], "/github");
        assert_eq!(out["traceparent"], "00-ab-cd-01");
        assert_eq!(out["ceid"], "A-1");
        assert_eq!(out["data"]["n"], 1);
    }

    #[test]
    fn errors_name_the_attribute() {
        for (body, wanted) in [
            (
                r#"{"id": "1", "source": "s", "type": "a.b"}"#,
                "specversion",
            ),
            (
                r#"{"specversion": "0.3", "id": "1", "source": "s", "type": "a.b"}"#,
                "0.3",
            ),
            (
                r#"{"specversion": "1.0", "source": "s", "type": "a.b"}"#,
                "`id`",
            ),
            (
                r#"{"specversion": "1.0", "id": "1", "source": "s", "type": "a..b"}"#,
                "`type`",
            ),
        ] {
            let error = structured(body.as_bytes()).unwrap_err();
            assert!(error.message.contains(wanted), "{body}: {}", error.message);
        }
    }
}
