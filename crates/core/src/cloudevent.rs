//! An event in the CloudEvents 1.0 JSON format: what the SSE stream emits
//! with `?format=cloudevents` and what sinks with `format = "cloudevents"`
//! deliver. (Taking CloudEvents in is the HTTP layer's job:
//! `http::cloudevents`.)
//!
//! | CloudEvents attribute | from the event |
//! |---|---|
//! | `id` | its id (a UUIDv7) |
//! | `source` | its `ce-source` header (set when it came in as a CloudEvent) if not empty, else `wasmsched/<trigger id>` for events a trigger published, else `wasmsched` |
//! | `type` | its topic |
//! | `subject` | its `ce-subject` header, when present and not empty |
//! | `time` | its time (RFC 3339) |
//! | `datacontenttype` | `application/json` |
//! | `data` | its data |
//! | extensions | each other header, named by its lowercased letters and digits (`traceparent` stays `traceparent`; `wasmsched-catch-up` becomes `wasmschedcatchup`); a header whose name would be a context attribute's (`time`, `dataschema`, ...) is left out |

use serde_json::{Map, Value, json};

use crate::event::Event;
use crate::trigger::TRIGGER_HEADER;

/// The structured-mode media type (`Content-Type` of a whole CloudEvent).
pub const STRUCTURED: &str = "application/cloudevents+json";

/// Headers mapped to attributes of their own rather than extensions.
const MAPPED: [&str; 3] = ["ce-source", "ce-subject", TRIGGER_HEADER];

/// The context attributes the specification defines: a header whose
/// extension name would be one of these is left out, never emitted as that
/// attribute.
pub const ATTRIBUTES: [&str; 10] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
];

/// `event` as a CloudEvent (JSON format).
pub fn to_cloudevent(event: &Event) -> Value {
    let mut object = Map::new();
    object.insert("specversion".into(), json!("1.0"));
    object.insert("id".into(), json!(event.id.to_string()));
    // Attributes the specification says are non-empty stay so.
    let header = |name: &str| event.headers.get(name).filter(|v| !v.is_empty());
    let source = match (header("ce-source"), header(TRIGGER_HEADER)) {
        (Some(source), _) => source.clone(),
        (None, Some(trigger)) => format!("wasmsched/{trigger}"),
        (None, None) => "wasmsched".to_owned(),
    };
    object.insert("source".into(), json!(source));
    object.insert("type".into(), json!(event.topic.to_string()));
    if let Some(subject) = header("ce-subject") {
        object.insert("subject".into(), json!(subject));
    }
    object.insert("time".into(), json!(event.time.to_rfc3339()));
    object.insert("datacontenttype".into(), json!("application/json"));
    for (name, value) in &event.headers {
        if MAPPED.contains(&name.as_str()) {
            continue;
        }
        let extension: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if !extension.is_empty()
            && !ATTRIBUTES.contains(&extension.as_str())
            && !object.contains_key(&extension)
        {
            object.insert(extension, json!(value));
        }
    }
    object.insert("data".into(), event.data.clone());
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::Topic;

    #[test]
    fn source_names_the_trigger_or_the_publisher() {
        let mut event = Event::new(Topic::new("a.b").unwrap(), json!({"n": 1}));
        assert_eq!(to_cloudevent(&event)["source"], "wasmsched");
        event = event.with_header(TRIGGER_HEADER, "nightly");
        let out = to_cloudevent(&event);
        assert_eq!(out["source"], "wasmsched/nightly");
        assert!(out.get("wasmschedtrigger").is_none(), "{out}");
        event = event
            .with_header("ce-source", "/github")
            .with_header("ce-subject", "o/r")
            .with_header("wasmsched-catch-up", "true");
        let out = to_cloudevent(&event);
        assert_eq!(out["source"], "/github");
        assert_eq!(out["subject"], "o/r");
        assert_eq!(out["wasmschedcatchup"], "true");
        assert_eq!(out["type"], "a.b");
        assert_eq!(out["data"]["n"], 1);
    }

    #[test]
    fn what_would_break_the_specification_is_left_out() {
        let event = Event::new(Topic::new("a.b").unwrap(), json!(1))
            .with_header("ce-source", "")
            .with_header("ce-subject", "")
            .with_header("dataschema", "")
            .with_header("Time", "yesterday")
            .with_header("Data", "x");
        let out = to_cloudevent(&event);
        assert_eq!(out["source"], "wasmsched");
        for absent in ["subject", "dataschema"] {
            assert!(out.get(absent).is_none(), "{out}");
        }
        assert_eq!(out["time"], event.time.to_rfc3339());
        assert_eq!(out["data"], 1);
    }
}
