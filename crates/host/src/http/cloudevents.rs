//! CloudEvents 1.0 (JSON format and HTTP binding) at the edges:
//! `POST /api/events` takes a CloudEvent in structured mode
//! (`Content-Type: application/cloudevents+json`) or binary mode (`ce-*`
//! headers, the body is `data`), and `/api/events/stream?format=cloudevents`
//! emits them.
//!
//! Mapping, in: `type` is the topic; `data` the event's data (none: `{}`);
//! `id`, `source` and `subject` are kept as headers `ce-id`, `ce-source`,
//! `ce-subject` (the event gets its own UUIDv7 id); any other attribute
//! (an extension) becomes a header of its name. Out: see
//! [`wasmsched_core::cloudevent`].
//!
//! Data is JSON: a `datacontenttype` other than `application/json`,
//! `text/json` or a `+json` type (parameters and case aside) is refused,
//! 422 in structured mode, 415 for a binary-mode `Content-Type` (absent:
//! JSON), the error naming it, rather than its data read as JSON (text
//! `42` would become the number 42).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use wasmsched_core::topic::Topic;

pub use wasmsched_core::cloudevent::STRUCTURED;

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
    // Media types are compared without regard to case (RFC 9110 §8.3.1).
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(STRUCTURED) {
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

/// Whether `media_type` is JSON as the CloudEvents JSON format reads it:
/// `application/json`, `text/json` or a `+json` type, parameters and case
/// aside.
fn is_json(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    match essence.to_ascii_lowercase().split_once('/') {
        Some(("application" | "text", subtype)) => {
            subtype == "json" || (subtype.len() > "+json".len() && subtype.ends_with("+json"))
        }
        _ => false,
    }
}

/// Why a CloudEvent's attributes (strings) are not taken, if they are not.
fn check(attributes: &BTreeMap<String, String>) -> Result<(), ApiError> {
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
    for optional in ["subject", "dataschema"] {
        if attributes.get(optional).is_some_and(|v| v.is_empty()) {
            return Err(bad(format!(
                "CloudEvent `{optional}` must not be empty when present"
            )));
        }
    }
    if let Some(name) = attributes.keys().find(|name| {
        name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }) {
        return Err(bad(format!(
            "CloudEvent attribute `{name}`: names are lowercase letters and digits"
        )));
    }
    if let Some(media_type) = attributes.get("datacontenttype").filter(|t| !is_json(t)) {
        return Err(bad(format!(
            "CloudEvent `datacontenttype` `{media_type}` is not JSON: wasmsched events carry \
             JSON `data` (`application/json` or a `+json` type)"
        )));
    }
    Ok(())
}

/// A CloudEvent's attributes, [`check`]ed, and data → what to publish.
fn parse(attributes: BTreeMap<String, String>, data: Value) -> Result<Parsed, ApiError> {
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
    check(&attributes)?;
    parse(attributes, data)
}

/// Binary mode: `ce-*` headers, a JSON body (empty: `{}`) whose
/// `Content-Type` (the `datacontenttype`), if any, is JSON.
pub fn binary(headers: &HeaderMap, body: &[u8]) -> Result<Parsed, ApiError> {
    let mut attributes = BTreeMap::new();
    for (name, value) in headers {
        if let Some(attribute) = name.as_str().strip_prefix("ce-") {
            let value = super::percent::decoded(value.as_bytes()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "header `{name}` is not percent-encoded UTF-8 (CloudEvents HTTP binding §3.1.3.2)"
                ))
            })?;
            attributes.insert(attribute.to_owned(), value);
        }
    }
    check(&attributes)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .filter(|t| !t.trim().is_empty());
    if let Some(content_type) = content_type.filter(|t| !is_json(t)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the data's `Content-Type` (its CloudEvent `datacontenttype`) is \
                 `{content_type}`, not JSON: wasmsched events carry JSON `data`; send \
                 `Content-Type: application/json` or a `+json` type"
            ),
        ));
    }
    let data = match body.is_empty() {
        true => json!({}),
        false => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the CloudEvent's data is not JSON: {e}"))
        })?,
    };
    parse(attributes, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmsched_core::cloudevent::to_cloudevent;
    use wasmsched_core::event::Event;

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
        assert_eq!(out["subject"], "o/r");
        assert_eq!(out["data"]["n"], 1);
    }

    #[test]
    fn binary_mode_values_are_percent_decoded_and_media_types_any_case() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/caf%C3%A9%20bar"),
            ("ce-type", "a.b"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let (_, _, parsed) = binary(&headers, b"").unwrap();
        assert_eq!(parsed["ce-source"], "/café bar");
        headers.insert("ce-source", "%C3".parse().unwrap());
        assert_eq!(binary(&headers, b"").unwrap_err().status, 400);
        headers.insert("ce-source", "100%".parse().unwrap());
        assert_eq!(binary(&headers, b"").unwrap_err().status, 400);
        let mut structured_headers = HeaderMap::new();
        let upper = "Application/CloudEvents+JSON; charset=utf-8";
        structured_headers.insert(header::CONTENT_TYPE, upper.parse().unwrap());
        assert_eq!(mode(&structured_headers), Some(Mode::Structured));
    }

    #[test]
    fn data_that_is_not_json_is_refused_naming_its_type() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "text/json",
            "application/vnd.example.thing+json",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/+json",
            "application/jsonx",
            "json",
            "",
        ] {
            assert!(!is_json(other), "{other}");
        }
        let body = br#"{"specversion": "1.0", "id": "1", "source": "s", "type": "a.b",
                        "datacontenttype": "text/plain", "data": "42"}"#;
        let error = structured(body).unwrap_err();
        assert_eq!(error.status, 422);
        assert!(
            error.message.contains("`datacontenttype` `text/plain`"),
            "{}",
            error.message
        );
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "s"),
            ("ce-type", "a.b"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        // Text that happens to parse as JSON is not read as JSON.
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let error = binary(&headers, b"42").unwrap_err();
        assert_eq!(error.status, 415);
        assert!(error.message.contains("`text/plain`"), "{}", error.message);
        headers.insert(
            header::CONTENT_TYPE,
            "application/cloudevents+json".parse().unwrap(),
        );
        assert_eq!(binary(&headers, b"42").unwrap().1, json!(42));
        headers.remove(header::CONTENT_TYPE);
        assert_eq!(binary(&headers, b"42").unwrap().1, json!(42));
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
            (
                r#"{"specversion": "1.0", "id": "1", "source": "s", "type": "a.b", "subject": ""}"#,
                "`subject`",
            ),
            (
                r#"{"specversion": "1.0", "id": "1", "source": "s", "type": "a.b", "dataschema": ""}"#,
                "`dataschema`",
            ),
            (
                r#"{"specversion": "1.0", "id": "1", "source": "s", "type": "a.b", "Ext-1": "x"}"#,
                "`Ext-1`",
            ),
        ] {
            let error = structured(body.as_bytes()).unwrap_err();
            assert!(error.message.contains(wanted), "{body}: {}", error.message);
        }
    }
}
