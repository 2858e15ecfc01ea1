//! What the OpenAPI document says of values that utoipa's derive cannot:
//! the shapes of topics, durations, rates, cron schedules and time zones,
//! and the request bodies whose keys depend on each other (a trigger
//! table's keys on its `kind`, a timer's exclusive pairs, a CloudEvent's
//! attributes). [`refine`] writes them into the document's components.
//!
//! Each schema is the rule the server applies, in JSON Schema: what it
//! allows, the server accepts, and what it refuses, the server refuses
//! (schemathesis checks both ways, `tests/integration/schemathesis.rs`). The patterns
//! are built from the parsers' own rules (the characters
//! [`char::is_alphanumeric`] and [`char::is_whitespace`] take, the bounds in
//! [`wasmsched_core::units`]), and spelled so that ECMA 262 and Python read them
//! alike: classes of literal characters and `\uXXXX`, no `\w`, `\s` or
//! `\p{..}`, `$` only at the end. What JSON Schema cannot say (one field
//! compared with another, how a number prints) is named in
//! `tests/standards/schemathesis.toml` and `schemathesis_hooks.py`.

mod patterns;
#[cfg(test)]
mod tests;
mod trigger_table;

use serde_json::{Map, Value, json};

use patterns::{SEGMENT, SPACE, cron_schedule, duration, not_blank, rate};

/// Adds the schemas below to `schemas` (the document's components), and
/// the bounds utoipa's derive leaves out to those it made.
pub(super) fn refine(schemas: &mut Map<String, Value>) {
    for (name, schema) in [
        ("Topic", topic()),
        ("TopicPattern", topic_pattern()),
        ("Duration", duration(false, true)),
        ("PositiveDuration", duration(true, true)),
        ("DurationText", duration(false, false)),
        ("Rate", rate()),
        ("CronSchedule", cron_schedule()),
        ("TimeZone", time_zone()),
        ("ApiAuth", api_auth()),
        ("TriggerTable", trigger_table::schema()),
        ("NewTimer", new_timer()),
        ("CloudEvent", cloud_event()),
    ] {
        let description = schemas
            .get(name)
            .and_then(|s| s.get("description"))
            .cloned();
        let mut schema = schema;
        if let (Some(description), Some(object)) = (description, schema.as_object_mut()) {
            object.entry("description").or_insert(description);
        }
        schemas.insert(name.to_owned(), schema);
    }
    let positive = json!({"$ref": "#/components/schemas/PositiveDuration"});
    let mut set = |schema: &str, property: &str, value: Value| {
        let properties = &mut schemas[schema]["properties"];
        let description = properties[property]["description"].clone();
        properties[property] = value;
        if let Some(text) = description.as_str() {
            properties[property]["description"] = text.into();
        }
    };
    set("Dedupe", "window", positive.clone());
    set("Throttle", "period", positive.clone());
    set("Debounce", "period", positive.clone());
    set("Debounce", "max_wait", positive.clone());
    set("Batch", "max_wait", positive);
    set(
        "Throttle",
        "limit",
        json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}),
    );
    let most = wasmsched_core::trigger::flow::MAX_BATCH_EVENTS;
    set(
        "Batch",
        "max_events",
        json!({"type": "integer", "minimum": 1, "maximum": most}),
    );
    set(
        "Range",
        "rate",
        json!({"type": ["number", "null"], "minimum": crate::host::MIN_BACKFILL_RATE,
            "maximum": crate::host::MAX_BACKFILL_RATE}),
    );
}

fn topic() -> Value {
    let segment = &*SEGMENT;
    json!({"type": "string", "pattern": format!("^{segment}+(?:\\.{segment}+)*$")})
}

fn topic_pattern() -> Value {
    let segment = format!("(?:\\*\\*?|{}+)", &*SEGMENT);
    json!({"type": "string", "pattern": format!("^{segment}(?:\\.{segment})*$")})
}

/// The IANA time zones the host knows.
fn time_zone() -> Value {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    json!({"type": "string", "enum": names, "example": "Europe/Berlin"})
}

/// Exactly one of `bearer_token` and `hmac_secret`.
fn api_auth() -> Value {
    let one = |given: &str, other: &str| json!({"required": [given], "properties": {given: {"type": "string"}, other: {"type": "null"}}});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "bearer_token": {"type": ["string", "null"],
                "description": "Callers send `Authorization: Bearer <token>`."},
            "hmac_secret": {"type": ["string", "null"],
                "description": "Callers sign the raw body: `<header>: sha256=<hex HMAC-SHA256>`."},
            "signature_header": {"type": "string",
                "description": "The signature header (default `X-Hub-Signature-256`, GitHub's)."},
        },
        "oneOf": [one("bearer_token", "hmac_secret"), one("hmac_secret", "bearer_token")],
    })
}

/// One of `topic` and `trigger`, one of `at` and `delay` (`null` is left
/// out); an id of at most 256 bytes that is not blank.
fn new_timer() -> Value {
    let one_of = |a: &str, b: &str| {
        let given = |given: &str, other: &str| {
            json!({"required": [given], "properties": {given: {"not": {"type": "null"}},
                other: {"type": "null"}}})
        };
        json!({"oneOf": [given(a, b), given(b, a)]})
    };
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "id": {"type": ["string", "null"], "pattern": not_blank(), "maxLength": 256,
                "description": "Its id (default: a UUIDv7), at most 256 bytes; the same request \
                    again with the same id makes no second timer."},
            "topic": {"oneOf": [{"$ref": "#/components/schemas/Topic"}, {"type": "null"}],
                "description": "Publish an event on this topic."},
            "trigger": {"type": ["string", "null"], "description": "Or fire this trigger."},
            "data": {"description": "The event's data, or the trigger's payload (default `{}`)."},
            "at": {"type": ["string", "null"], "format": "date-time",
                "example": "2030-01-07T09:00:00Z", "description": "When, as an RFC 3339 instant."},
            "delay": {"oneOf": [{"$ref": "#/components/schemas/DurationText"}, {"type": "null"}],
                "example": "90s", "description": "Or after how long, e.g. `90s`, `2h`."},
        },
        "allOf": [one_of("topic", "trigger"), one_of("at", "delay")],
    })
}

/// A CloudEvent in the JSON format, as `POST /api/events` reads it: the
/// required attributes, `type` a topic; an attribute that is `null` is
/// left out, any other is read as its JSON text (so an integer `type` is a
/// topic too; a fraction depends on how it prints, which this leaves out);
/// `specversion` the string `1.0`; extensions named with lowercase letters
/// and digits; `data_base64` refused.
fn cloud_event() -> Value {
    let present = json!({"not": {"enum": ["", null]}});
    json!({
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": present,
            "source": present,
            "type": {"anyOf": [{"$ref": "#/components/schemas/Topic"}, {"type": "boolean"},
                {"type": "integer", "minimum": i64::MIN, "maximum": u64::MAX}],
                "description": "The topic."},
            "time": {"description": "When it happened (not read)."},
            "subject": {"not": {"const": ""}},
            "datacontenttype": {"type": ["string", "null"], "pattern": json_media_type(),
                "description": "JSON: `application/json`, `text/json` or a `+json` type."},
            "dataschema": {"not": {"const": ""}},
            "data": {"description": "The event's data (default `{}`)."},
            "data_base64": false,
        },
        "patternProperties": {"^[a-z0-9]+$": {}},
        "additionalProperties": {"type": "null"},
        "example": {"specversion": "1.0", "id": "A-1", "source": "/github",
            "type": "webhooks.github", "data": {"n": 1}},
    })
}

/// A JSON media type as `POST /api/events` reads a CloudEvent's
/// `datacontenttype`: `application/json`, `text/json` or a `+json` type,
/// in any case, with parameters.
fn json_media_type() -> String {
    let any_case = |word: &str| -> String {
        word.chars()
            .map(|c| match c.is_ascii_alphabetic() {
                true => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
                false => c.to_string(),
            })
            .collect()
    };
    let (space, json) = (&*SPACE, any_case("json"));
    format!(
        "^{space}*(?:{}|{})/(?:{json}|[^;]+\\+{json}){space}*(?:;[\\s\\S]*)?$",
        any_case("application"),
        any_case("text")
    )
}
