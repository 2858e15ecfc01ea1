//! The schema of a `[[trigger]]` table in JSON, the body of `POST
//! /api/admin/triggers`, as [`crate::config::TriggerConfig`] reads it: one
//! shape per `kind`, each with the keys of its kind and those of the other
//! kinds only as `null` (a key set for another kind is refused, a `null`
//! one is as good as left out), and the rules between keys that the
//! config checks (an id fit for a URL; `catch_up = "all"` needs a
//! `catch_up_max` of at least 1; `key` needs flow control; `debounce` and
//! `batch` do not combine; an `auth` has exactly one secret; an api path is
//! plain and not one the host serves).
//! One rule JSON Schema cannot state: `debounce.max_wait` is at least
//! `debounce.period`.

use serde_json::{Map, Value, json};

use crate::config::{MAX_ID_BYTES, RESERVED_PATHS};
use wasmsched_core::trigger::flow::MAX_CONCURRENCY;

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `schema`, or `null`.
fn nullable(schema: Value) -> Value {
    json!({"oneOf": [schema, {"type": "null"}]})
}

/// Integers from `least` to `most`, or `null`.
fn count(least: u64, most: u64) -> Value {
    json!({"type": ["integer", "null"], "minimum": least, "maximum": most})
}

/// The keys of each kind, with their schemas.
fn keys_of(kind: &str) -> Vec<(&'static str, Value)> {
    match kind {
        "cron" => vec![
            ("schedule", reference("CronSchedule")),
            ("timezone", nullable(reference("TimeZone"))),
            ("catch_up", nullable(reference("CatchUpPolicy"))),
            ("catch_up_window", nullable(reference("Duration"))),
            ("catch_up_max", count(0, u64::MAX)),
            ("jitter", nullable(reference("Duration"))),
            ("overlap", nullable(reference("OverlapPolicy"))),
        ],
        "api" => vec![
            ("path", api_path()),
            ("auth", nullable(reference("ApiAuth"))),
            ("rate_limit", nullable(reference("Rate"))),
        ],
        _ => vec![
            ("source", reference("TopicPattern")),
            ("key", json!({"type": ["string", "null"], "pattern": "^/"})),
            ("dedupe", nullable(reference("Dedupe"))),
            ("throttle", nullable(reference("Throttle"))),
            ("debounce", nullable(reference("Debounce"))),
            ("batch", nullable(reference("Batch"))),
            ("concurrency", count(1, MAX_CONCURRENCY as u64)),
        ],
    }
}

/// Where an api trigger is served: `/` and segments of letters, digits,
/// `-`, `.`, `_` and `~` (none empty, `.` or `..`; `/` may end it), not a
/// path of the host's own nor under one.
fn api_path() -> Value {
    let (plain, no_dot) = ("[A-Za-z0-9._~-]", "[A-Za-z0-9_~-]");
    let segment = format!("(?:{no_dot}{plain}*|\\.{no_dot}{plain}*|\\.\\.{plain}+)");
    let under: Vec<String> = RESERVED_PATHS
        .iter()
        .map(|path| format!("^{}/", path.replace('.', "\\.")))
        .collect();
    json!({
        "type": ["string", "null"],
        "pattern": format!("^(?:/{segment})+/*$"),
        "not": {"anyOf": [{"enum": RESERVED_PATHS}, {"pattern": under.join("|")}]},
        "example": "/hooks/deploy",
    })
}

/// A trigger's id: not blank, at most 256 bytes (as many characters in
/// ASCII; the schema counts characters), no `/` and no control character.
pub(super) fn id() -> Value {
    json!({
        "type": "string",
        "pattern": super::patterns::not_blank(),
        "maxLength": MAX_ID_BYTES,
        "not": {"pattern": "[/\\u0000-\\u001F\\u007F-\\u009F]"},
    })
}

/// What every kind has.
fn common(kind: &str) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("id".into(), {
        let mut id = id();
        id["description"] = "The trigger's id, unique across the host.".into();
        id
    });
    properties.insert(
        "kind".into(),
        json!({"const": kind, "description": "The trigger's kind."}),
    );
    properties.insert(
        "topic".into(),
        json!({"$ref": "#/components/schemas/Topic", "description": "Where its events are published."}),
    );
    properties.insert(
        "plugin".into(),
        json!({"type": ["string", "null"],
            "description": "The plugin (`plugins/NAME.wasm`) whose factory (and filter) it runs; \
                one that is not loaded is a 409."}),
    );
    properties.insert(
        "config".into(),
        json!({"type": "object", "additionalProperties": {"type": "string"},
            "description": "Strings handed to the plugin (`host.config`)."}),
    );
    properties
}

/// The table of one kind.
fn of_kind(kind: &str) -> Value {
    let mut properties = common(kind);
    let mut required = vec!["id", "kind", "topic"];
    for other in ["cron", "api", "event"] {
        for (key, schema) in keys_of(other) {
            let schema = match other == kind {
                true => schema,
                false => json!({"type": "null"}),
            };
            properties.insert(key.into(), schema);
        }
    }
    let mut rules = Vec::new();
    match kind {
        "cron" => {
            required.push("schedule");
            rules.push(json!({"anyOf": [
                {"properties": {"catch_up": {"not": {"const": "all"}}}},
                {"properties": {"catch_up_max": {"not": {"const": 0}}}},
            ]}));
        }
        "event" => {
            required.push("source");
            let set = |key: &str| json!({"required": [key], "properties": {key: {"not": {"type": "null"}}}});
            let mut flow = vec![json!({"properties": {"key": {"type": "null"}}})];
            flow.extend(
                ["dedupe", "throttle", "debounce", "batch", "concurrency"]
                    .into_iter()
                    .map(set),
            );
            rules.push(json!({"anyOf": flow}));
            rules.push(json!({"not": {"allOf": [set("debounce"), set("batch")]}}));
        }
        _ => {}
    }
    let mut table = json!({
        "type": "object",
        "title": format!("{kind} trigger"),
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if !rules.is_empty() {
        table["allOf"] = rules.into();
    }
    table
}

/// The schema: one table per kind.
pub(super) fn schema() -> Value {
    let kinds = ["cron", "api", "event"].map(of_kind);
    json!({
        "oneOf": kinds,
        "example": {"id": "nightly", "kind": "cron", "topic": "jobs.nightly",
            "schedule": "0 3 * * *", "timezone": "Asia/Seoul"},
    })
}
