//! Operations endpoints: `/healthz` and `/openapi.json` (`/metrics` is
//! [`super::metrics`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;

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

/// 200 with [`openapi_document`].
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
