//! Operations endpoints: `/healthz`, `/metrics` (Prometheus text format)
//! and `/openapi.json`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use crate::plugin::{LatencyHistogram, PluginStats};
use crate::trigger::TriggerStats;

/// 200 `"ok"`, or 503 `"degraded"` while the broker is unreachable (the
/// host keeps running and reconnects).
pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let triggers = app.host.registered_triggers().await;
    let broker = app.host.broker().health();
    let (status, code) = match broker.connected {
        true => ("ok", StatusCode::OK),
        false => ("degraded", StatusCode::SERVICE_UNAVAILABLE),
    };
    let body = json!({
        "status": status,
        "broker": broker,
        "triggers": triggers.len(),
        "plugins": app.host.plugins().len(),
    });
    (code, Json(body))
}

type TriggerCounter = (&'static str, &'static str, fn(&TriggerStats) -> u64);

/// With `[metrics] per_trigger` unset, series per trigger are written up
/// to this many triggers; beyond, totals per kind.
const PER_TRIGGER_AUTO: usize = 1000;
type PluginCounter = (&'static str, &'static str, fn(&PluginStats) -> u64);

const TRIGGER_COUNTERS: [TriggerCounter; 12] = [
    (
        "wasmsched_trigger_firings_total",
        "Firings per trigger.",
        |s| s.fires,
    ),
    (
        "wasmsched_trigger_errors_total",
        "Failed firings (factory, filter or publish errors).",
        |s| s.errors,
    ),
    (
        "wasmsched_events_published_total",
        "Events published per trigger.",
        |s| s.events_published,
    ),
    (
        "wasmsched_filter_accepted_total",
        "Events a trigger's filter accepted.",
        |s| s.filter_accepted,
    ),
    (
        "wasmsched_filter_rejected_total",
        "Events a trigger's filter rejected.",
        |s| s.filter_rejected,
    ),
    (
        "wasmsched_trigger_missed_total",
        "Cron instants that fell while no replica ran the trigger, not run (see the run history).",
        |s| s.missed,
    ),
    (
        "wasmsched_trigger_catch_ups_total",
        "Cron instants run late, after downtime.",
        |s| s.catch_ups,
    ),
    (
        "wasmsched_flow_deduplicated_total",
        "Events dropped by the trigger's dedupe (flow control).",
        |s| s.deduplicated,
    ),
    (
        "wasmsched_flow_throttled_total",
        "Events dropped by the trigger's throttle (flow control).",
        |s| s.throttled,
    ),
    (
        "wasmsched_flow_debounced_total",
        "Events replaced by a later one under the trigger's debounce.",
        |s| s.debounced,
    ),
    (
        "wasmsched_flow_batched_total",
        "Events collected into the trigger's batches.",
        |s| s.batched,
    ),
    (
        "wasmsched_flow_concurrency_waits_total",
        "Firings that waited for a concurrency slot of their key.",
        |s| s.concurrency_waits,
    ),
];

const PLUGIN_COUNTERS: [PluginCounter; 6] = [
    (
        "wasmsched_plugin_calls_total",
        "Calls into each plugin.",
        |s| s.calls,
    ),
    (
        "wasmsched_plugin_errors_total",
        "Calls where the plugin returned an error.",
        |s| s.errors,
    ),
    (
        "wasmsched_plugin_traps_total",
        "Calls that trapped (panic, unreachable, ...).",
        |s| s.traps,
    ),
    (
        "wasmsched_plugin_timeouts_total",
        "Calls stopped at their deadline.",
        |s| s.timeouts,
    ),
    (
        "wasmsched_plugin_memory_exhausted_total",
        "Calls stopped at their memory cap.",
        |s| s.memory_exhausted,
    ),
    (
        "wasmsched_plugin_bad_data_total",
        "Calls that returned invalid JSON or topics.",
        |s| s.bad_data,
    ),
];

/// Counters per trigger and per plugin, and plugin call latency, in
/// Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let registered = app.host.registered_triggers().await;
    let per_trigger = app
        .host
        .config()
        .metrics_per_trigger
        .unwrap_or(registered.len() <= PER_TRIGGER_AUTO);
    let triggers: Vec<(String, TriggerStats)> = match per_trigger {
        true => registered
            .into_iter()
            .map(|(id, r)| {
                let labels = format!("trigger=\"{}\",kind=\"{}\"", escape(&id), r.trigger.kind());
                (labels, r.trigger.stats())
            })
            .collect(),
        // Bounded: one series per kind, summed.
        false => {
            let mut by_kind: std::collections::BTreeMap<String, TriggerStats> = Default::default();
            for registration in registered.values() {
                let total = by_kind
                    .entry(format!("kind=\"{}\"", registration.trigger.kind()))
                    .or_default();
                *total = total.plus(&registration.trigger.stats());
            }
            by_kind.into_iter().collect()
        }
    };
    for (name, help, value) in TRIGGER_COUNTERS {
        family(
            &mut out,
            name,
            help,
            "counter",
            triggers
                .iter()
                .map(|(labels, s)| (labels.as_str(), value(s))),
        );
    }
    let plugins: Vec<(String, PluginStats, LatencyHistogram)> = app
        .host
        .plugins()
        .into_iter()
        .map(|(name, p)| {
            (
                format!("plugin=\"{}\"", escape(&name)),
                p.stats(),
                p.latency(),
            )
        })
        .collect();
    for (name, help, value) in PLUGIN_COUNTERS {
        family(
            &mut out,
            name,
            help,
            "counter",
            plugins
                .iter()
                .map(|(labels, s, _)| (labels.as_str(), value(s))),
        );
    }
    schedule_health(&mut out, &app.host.schedule_health());
    let name = "wasmsched_plugin_call_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Plugin call latency, instantiation included.\n# TYPE {name} histogram"
    );
    for (labels, _, latency) in &plugins {
        for (bound, count) in &latency.buckets {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            latency.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", latency.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", latency.count);
    }
    family(
        &mut out,
        "wasmsched_plugin_loads_total",
        "Plugin loads and reloads that succeeded.",
        "counter",
        [("", app.host.reload_count())],
    );
    http_families(&mut out, &app);
    let admission = app.host.runtime().admission();
    family(
        &mut out,
        "wasmsched_plugin_calls_in_flight",
        "Plugin calls running now (at most [plugins] max_calls).",
        "gauge",
        [("", admission.in_flight as u64)],
    );
    family(
        &mut out,
        "wasmsched_plugin_calls_waiting",
        "Plugin calls waiting for a slot now (per-trigger or host-wide limit).",
        "gauge",
        [("", admission.waiting)],
    );
    family(
        &mut out,
        "wasmsched_plugin_calls_queued_total",
        "Plugin calls that had to wait for a slot.",
        "counter",
        [("", admission.queued_total)],
    );
    let broker = app.host.broker().health();
    let labels = format!("broker=\"{}\"", broker.kind);
    family(
        &mut out,
        "wasmsched_broker_connected",
        "1 while the broker is reachable.",
        "gauge",
        [(labels.as_str(), u64::from(broker.connected))],
    );
    family(
        &mut out,
        "wasmsched_broker_duplicates_total",
        "Publishes dropped as duplicates of a recent one (another replica's cron firing, a redelivery).",
        "counter",
        [(labels.as_str(), broker.duplicates)],
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Writes one metric family: HELP, TYPE and a sample per label set.
/// The listener's connections and the rate limits.
fn http_families(out: &mut String, app: &AppState) {
    let connections = &app.connections;
    let gauges = [
        (
            "wasmsched_http_connections",
            "Connections open now.",
            &connections.open,
        ),
        (
            "wasmsched_http_connections_max",
            "The cap on connections open at once ([server] max_connections, fitted to the open-file limit).",
            &connections.max,
        ),
    ];
    for (name, help, value) in gauges {
        family(
            out,
            name,
            help,
            "gauge",
            [("", value.load(Ordering::Relaxed) as u64)],
        );
    }
    let counters = [
        (
            "wasmsched_http_connections_shed_total",
            "Idle connections closed to admit new ones past the cap.",
            &connections.shed,
        ),
        (
            "wasmsched_http_connections_refused_total",
            "New connections refused past the cap, every open one busy.",
            &connections.refused,
        ),
        (
            "wasmsched_http_connections_timed_out_total",
            "Connections closed for idling (idle_timeout, or no request within header_timeout).",
            &connections.timed_out,
        ),
    ];
    for (name, help, value) in counters {
        family(
            out,
            name,
            help,
            "counter",
            [("", value.load(Ordering::Relaxed))],
        );
    }
    let refused = app.rate_limits.refused();
    family(
        out,
        "wasmsched_http_rate_limited_total",
        "Requests answered 429: per api trigger (rate_limit) or per client address.",
        "counter",
        refused.iter().map(|(labels, n)| (labels.as_str(), *n)),
    );
}

fn family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    kind: &str,
    samples: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        match labels {
            "" => writeln!(out, "{name} {value}"),
            labels => writeln!(out, "{name}{{{labels}}} {value}"),
        }
        .expect("writing to a String");
    }
}

/// `wasmsched_cron_lateness_seconds` and `wasmsched_cron_missed_total`.
fn schedule_health(out: &mut String, health: &crate::trigger::health::HealthSnapshot) {
    let name = "wasmsched_cron_lateness_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} How late cron fires ran after their scheduled instant (jitter excluded).\n# TYPE {name} histogram"
    );
    for (bound, count) in &health.buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", health.count);
    let _ = writeln!(out, "{name}_sum {}", health.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", health.count);
    let labels: Vec<(String, u64)> = health
        .missed
        .iter()
        .map(|(reason, count)| (format!("reason=\"{}\"", reason.as_str()), *count))
        .collect();
    family(
        out,
        "wasmsched_cron_missed_total",
        "Cron instants not run, by reason (outside_window, policy, over_max, paused).",
        "counter",
        labels.iter().map(|(l, c)| (l.as_str(), *c)),
    );
}

/// Escapes a Prometheus label value.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3 document of the API (also rendered at the dashboard's `/docs`).
pub fn openapi_document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let errors =
        json!({ "description": "error", "content": { "application/json": { "schema": error } } });
    let ok = |description: &str| json!({ "200": { "description": description }, "4XX": errors });
    json!({
        "openapi": "3.0.3",
        "info": { "title": "wasmsched", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/api/triggers/{id}/trigger": { "post": {
                "summary": "Fire an api trigger (also served at the trigger's configured `path`)",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["data"], "properties": { "data": { "type": "object" } } } } } },
                "responses": ok("`{success, message, trigger_count}`") } },
            "/api/triggers/{id}/status": { "get": {
                "summary": "An api trigger's status: `{running, trigger_count}`",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": ok("status") } },
            "/api/events": { "post": {
                "summary": "Publish an event: `{topic, data, headers?}`",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["topic", "data"],
                    "properties": { "topic": { "type": "string" }, "data": {}, "headers": { "type": "object" } } } } } },
                "responses": { "202": { "description": "published: `{id, topic}`" }, "4XX": errors } } },
            "/api/events/stream": { "get": {
                "summary": "Server-Sent Events: every event whose topic matches `pattern` (default `**`)",
                "parameters": [{ "name": "pattern", "in": "query", "schema": { "type": "string" } }],
                "responses": ok("text/event-stream") } },
            "/api/admin/triggers": {
                "get": { "summary": "List triggers", "responses": ok("triggers") },
                "post": { "summary": "Register a trigger (fields of a `[[trigger]]` table)", "responses": { "201": { "description": "created" }, "4XX": errors } } },
            "/api/admin/triggers/{id}": {
                "get": { "summary": "One trigger", "responses": ok("trigger") },
                "delete": { "summary": "Unregister a trigger", "responses": ok("removed") } },
            "/api/admin/triggers/{id}/pause": { "post": { "summary": "Pause a trigger", "responses": ok("trigger") } },
            "/api/admin/triggers/{id}/resume": { "post": { "summary": "Resume a trigger", "responses": ok("trigger") } },
            "/api/admin/triggers/{id}/run": { "post": { "summary": "Fire a trigger now (any kind)", "responses": ok("fired") } },
            "/api/admin/triggers/{id}/runs": { "get": {
                "summary": "A trigger's run history, newest first: `[{instant, kind, outcome, duration_ms, events, error, catch_up, source_event}]`",
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 20 } }],
                "responses": ok("runs") } },
            "/api/admin/triggers/{id}/backfill": {
                "post": {
                    "summary": "Fire a cron trigger for every scheduled instant in (from, to], oldest first, each marked as a backfill: `{from, to, rate?}` (RFC 3339; rate per second, default 10) -> 202 progress",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": { "202": { "description": "`{from, to, total, done, state}`" }, "4XX": errors } },
                "get": { "summary": "The trigger's last backfill: `{from, to, total, done, state, error?}`", "responses": ok("progress") },
                "delete": { "summary": "Cancel the trigger's running backfill", "responses": ok("progress") } },
            "/api/admin/sinks": { "get": {
                "summary": "Webhook sinks: `[{id, pattern, url, signed, paused, running, delivered, failed_attempts, last_error, dead}]`",
                "responses": ok("sinks") } },
            "/api/admin/sinks/{id}/pause": { "post": {
                "summary": "Pause a sink (deliveries wait)",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": ok("the sink") } },
            "/api/admin/sinks/{id}/resume": { "post": {
                "summary": "Resume a sink",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": ok("the sink") } },
            "/api/admin/timers": {
                "get": { "summary": "Pending one-off timers, soonest first: `[{id, due, topic, data} | {id, due, trigger, data}]`", "responses": ok("timers") },
                "post": {
                    "summary": "Add a one-off timer: `{\"topic\" | \"trigger\", \"data\", \"at\" (RFC 3339) | \"delay\" (\"90s\"), \"id\"?}` -> 201 `{id, due}` (200 for the same request again, 409 for an id taken by another timer)",
                    "responses": { "201": { "description": "`{id, due}`" }, "4XX": errors } } },
            "/api/admin/timers/{id}": { "delete": {
                "summary": "Cancel a pending timer",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": ok("`{cancelled}`") } },
            "/api/admin/deadletters": { "get": {
                "summary": "Events event triggers gave up on after max_deliver attempts, newest first: `[{id, trigger, event, error, attempts, at}]`",
                "parameters": [
                    { "name": "trigger", "in": "query", "required": false, "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }],
                "responses": ok("dead letters") } },
            "/api/admin/deadletters/{id}": { "delete": {
                "summary": "Discard a dead letter",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
                "responses": ok("`{discarded}`") } },
            "/api/admin/deadletters/{id}/replay": { "post": {
                "summary": "Hand a dead letter's event to its trigger again (filter, then factory); the letter is discarded if that works, kept (422) if not",
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } }],
                "responses": ok("`{replayed, trigger, event}`") } },
            "/api/admin/plugins": { "get": { "summary": "Loaded plugins and their counters", "responses": ok("plugins") } },
            "/api/admin/match": { "get": {
                "summary": "Which event triggers a topic reaches, with their filter counters",
                "parameters": [{ "name": "topic", "in": "query", "required": true, "schema": { "type": "string" } }],
                "responses": ok("`{topic, triggers: [...]}`") } },
            "/healthz": { "get": { "summary": "Health, including the broker connection: 200 \"ok\", or 503 \"degraded\" while the broker is unreachable", "responses": ok("health") } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": ok("text/plain") } },
            "/openapi.json": { "get": { "summary": "This document", "responses": ok("OpenAPI 3") } }
        },
        "components": { "schemas": { "Error": {
            "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } } } }
    })
}
