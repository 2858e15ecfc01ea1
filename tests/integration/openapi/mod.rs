//! The OpenAPI document against the API it describes: a real host over
//! loopback HTTP (cron, api and event triggers, a webhook sink, a plugin
//! that loads and one that does not), every documented operation called
//! with ids the test made first, and each answer checked against what the
//! document says of its status ([`client`]): a JSON body against the schema
//! given for it, with every object closed ([`closed`]: a renamed or added
//! field is drift), another body by its content type. The test fails if a
//! documented operation was not called, or if a group of routes (by the
//! tokens that open it) had none of its documented errors answered.

mod client;
mod closed;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use client::{Api, Ask, delete, get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched_test_support::served::{NIGHTLY_AND_HOOK, orders_and_ops};
use wasmsched_test_support::{Served, copy_example_plugin, write_config};

const ADMIN: &str = "admin-secret";
const PUBLISH: &str = "publish-secret";
const READ: &str = "read-secret";
const METRICS: &str = "metrics-secret";

fn config(sink_url: &str) -> String {
    let orders_and_ops = orders_and_ops(sink_url);
    format!(
        r#"
[server]
admin_token = "{ADMIN}"
publish_token = "{PUBLISH}"
read_token = "{READ}"
metrics_token = "{METRICS}"
rate_limit_per_client = "300/min"

{NIGHTLY_AND_HOOK}
[[trigger]]
id = "github"
kind = "api"
topic = "webhooks.github"
path = "/webhooks/github"
plugin = "github_webhook"

# Waits for its plugin, which does not load.
[[trigger]]
id = "broken"
kind = "api"
topic = "broken.api"
plugin = "core"

{orders_and_ops}
"#
    )
}

/// The host, serving on a free loopback port: it and its address.
async fn start(sink_url: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    copy_example_plugin(dir.path(), "github_webhook");
    // A core module, not a component: a plugin that does not load.
    std::fs::write(dir.path().join("plugins/core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let path = write_config(dir.path(), &config(sink_url));
    let host = Host::start(Config::load(&path).unwrap()).await.unwrap();
    let mut served = Served::serve(host).await;
    served.dir = Some(dir);
    served
}

/// A webhook receiver on loopback answering `status` (shared) to every POST.
async fn receiver(status: Arc<AtomicU16>) -> String {
    let answer = |State(status): State<Arc<AtomicU16>>| async move {
        StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
    };
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(answer))
        .with_state(status);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// `ask` with the admin token.
fn admin(ask: Ask) -> Ask {
    ask.token(ADMIN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_as_documented() {
    let sink_status = Arc::new(AtomicU16::new(503));
    let served = start(&receiver(sink_status.clone()).await).await;
    let (host, api) = (&served.host, Api::new(served.base.clone()).await);
    operations(&api).await;
    triggers(&api).await;
    plugins_and_sinks(&api).await;
    timers(&api).await;
    events(&api).await;
    dead_letters(&api, host, &sink_status).await;
    api_triggers(&api).await;
    past_the_rate_limit(&api).await;
    api.assert_everything_exercised();
}

async fn operations(api: &Api) {
    api.check(get("/healthz"), 200).await;
    api.check(get("/openapi.json"), 200).await;
    let metrics = api.check(get("/metrics").token(METRICS), 200).await;
    assert!(metrics.as_str().unwrap().contains("# TYPE"), "{metrics}");
    api.check(get("/metrics"), 401).await;
}

async fn triggers(api: &Api) {
    let (all, one) = ("/api/admin/triggers", "/api/admin/triggers/{id}");
    let listed = api.check(admin(get(all)), 200).await;
    let ids = listed.as_array().unwrap().iter();
    let ids: BTreeSet<&str> = ids.map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from(["github", "hook", "nightly", "orders"]));
    api.check(get(all), 401).await;
    let added = json!({"id": "added", "kind": "event", "topic": "added.out",
        "source": "orders.*", "throttle": {"limit": 1, "period": "1m"}});
    api.check(admin(post(all)).json(added), 201).await;
    let invalid = json!({"id": "bad", "kind": "cron", "topic": "t"});
    api.check(admin(post(all)).json(invalid), 422).await;
    let nightly = api.check(admin(get(one)).id("nightly"), 200).await;
    api.check(admin(get(one)).id("nope"), 404).await;
    for action in [
        "/api/admin/triggers/{id}/pause",
        "/api/admin/triggers/{id}/resume",
    ] {
        api.check(admin(post(action)).id("added"), 200).await;
    }
    let run = "/api/admin/triggers/{id}/run";
    let fired = admin(post(run)).id("hook").json(json!({"n": 1}));
    assert_eq!(api.check(fired, 200).await["success"], true);
    api.check(admin(post(run)).id("nope"), 404).await;
    let runs = "/api/admin/triggers/{id}/runs";
    let history = api.check(get(runs).id("hook").token(READ), 200).await;
    assert!(!history.as_array().unwrap().is_empty(), "{history}");
    api.check(admin(get(runs)).id("hook").query("limit", "0"), 400)
        .await;
    api.check(get(runs).id("hook"), 401).await;
    let backfill = "/api/admin/triggers/{id}/backfill";
    let range = json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-03T00:00:00Z", "rate": 100});
    let started = admin(post(backfill)).id("nightly").json(range.clone());
    api.check(started, 202).await;
    api.check(admin(post(backfill)).id("hook").json(range), 422)
        .await;
    api.check(admin(get(backfill)).id("nightly"), 200).await;
    api.check(admin(delete(backfill)).id("nightly"), 200).await;
    api.check(admin(get(backfill)).id("hook"), 404).await;
    let matched = "/api/admin/match";
    let reached = api.check(admin(get(matched)).query("topic", "orders.new"), 200);
    assert_eq!(reached.await["triggers"].as_array().unwrap().len(), 2);
    api.check(admin(get(matched)).query("topic", "a..b"), 400)
        .await;
    api.check(admin(delete(one)).id("added"), 200).await;
    api.check(admin(delete(one)).id("added"), 404).await;
    the_validator_is_strict(api, &nightly);
}

/// An added field fails, nested too, and so does a renamed optional one.
fn the_validator_is_strict(api: &Api, view: &Value) {
    let schema = json!({"$ref": "#/components/schemas/TriggerView"});
    assert_eq!(api.errors_of(&schema, view), Vec::<String>::new());
    let mut added = view.clone();
    added["surprise"] = json!(1);
    assert!(!api.errors_of(&schema, &added).is_empty());
    let mut nested = view.clone();
    nested["stats"]["surprise"] = json!(1);
    assert!(!api.errors_of(&schema, &nested).is_empty());
    // `plugin` is not required: only the closed object notices it renamed.
    let mut renamed = view.clone();
    renamed["plugin_name"] = renamed["plugin"].take();
    renamed.as_object_mut().unwrap().remove("plugin");
    assert!(!api.errors_of(&schema, &renamed).is_empty());
}

async fn plugins_and_sinks(api: &Api) {
    let plugins = api.check(admin(get("/api/admin/plugins")), 200).await;
    assert_eq!(plugins[0]["loaded"], false, "core.wasm: {plugins}");
    assert!(plugins[1]["hash"].is_string(), "github_webhook: {plugins}");
    api.check(admin(get("/api/admin/sinks")), 200).await;
    for action in [
        "/api/admin/sinks/{id}/pause",
        "/api/admin/sinks/{id}/resume",
    ] {
        api.check(admin(post(action)).id("ops"), 200).await;
        api.check(admin(post(action)).id("nope"), 404).await;
    }
}

async fn timers(api: &Api) {
    let (all, one) = ("/api/admin/timers", "/api/admin/timers/{id}");
    let timer = json!({"id": "t1", "topic": "alerts.later", "delay": "1h", "data": {"n": 1}});
    api.check(admin(post(all)).json(timer.clone()), 201).await;
    api.check(admin(post(all)).json(timer), 200).await;
    let other = json!({"id": "t1", "topic": "alerts.other", "delay": "1h"});
    api.check(admin(post(all)).json(other), 409).await;
    let fire = json!({"trigger": "hook", "at": "2030-01-01T00:00:00Z", "data": {"a": 1}});
    api.check(admin(post(all)).json(fire), 201).await;
    let both = json!({"topic": "a", "trigger": "hook", "delay": "1h"});
    api.check(admin(post(all)).json(both), 422).await;
    let pending = api.check(admin(get(all)), 200).await;
    assert_eq!(pending.as_array().unwrap().len(), 2, "{pending}");
    api.check(admin(delete(one)).id("t1"), 200).await;
    api.check(admin(delete(one)).id("t1"), 404).await;
}

/// The stream, and publishing in both shapes.
async fn events(api: &Api) {
    let (events, stream) = ("/api/events", "/api/events/stream");
    let watch = get(stream).token(READ).query("pattern", "alerts.**");
    let (response, _) = api.answer(&watch, 200).await;
    let alert = json!({"topic": "alerts.db", "data": {"n": 1}});
    api.check(post(events).token(PUBLISH).json(alert), 202)
        .await;
    // Each message is an event, as the description says.
    let message = first_message(response).await;
    let event = json!({"$ref": "#/components/schemas/Event"});
    assert_eq!(api.errors_of(&event, &message), Vec::<String>::new());
    api.check(get(stream).token(READ).query("format", "xml"), 400)
        .await;
    let cloudevent = json!({"specversion": "1.0", "id": "c1", "source": "test",
        "type": "orders.new", "data": {"id": 7}});
    let structured = post(events).token(PUBLISH);
    let structured = structured.body("application/cloudevents+json", cloudevent);
    api.check(structured, 202).await;
    let no_data = json!({"topic": "alerts.db"});
    api.check(post(events).token(PUBLISH).json(no_data.clone()), 422)
        .await;
    api.check(post(events).json(no_data.clone()), 401).await;
    let cross_site = post(events).token(PUBLISH).json(no_data);
    api.check(cross_site.header("origin", "https://evil.example"), 403)
        .await;
}

/// The sink answered 503 to `alerts.db`, once (`max_attempts = 1`): a
/// dead letter, replayed once the endpoint is back; another discarded.
async fn dead_letters(api: &Api, host: &Host, sink_status: &AtomicU16) {
    let all = "/api/admin/deadletters";
    let letter = sink_letter(host).await;
    let listed = get(all).token(READ).query("trigger", "sink:ops");
    assert_eq!(api.check(listed, 200).await[0]["id"], letter.as_str());
    api.check(admin(get(all)).query("limit", "0"), 400).await;
    api.check(get(all), 401).await;
    let replay = "/api/admin/deadletters/{id}/replay";
    sink_status.store(200, Ordering::SeqCst);
    api.check(admin(post(replay)).id(&letter), 200).await;
    api.check(admin(post(replay)).id("not-a-uuid"), 400).await;
    api.check(admin(post(replay)).id(&letter), 404).await;
    sink_status.store(503, Ordering::SeqCst);
    let again = json!({"topic": "alerts.db", "data": {"n": 2}});
    api.check(post("/api/events").token(PUBLISH).json(again), 202)
        .await;
    let letter = sink_letter(host).await;
    let one = "/api/admin/deadletters/{id}";
    api.check(admin(delete(one)).id(&letter), 200).await;
    api.check(admin(delete(one)).id(&letter), 404).await;
}

/// The id of the sink's dead letter, once there is one (asked of the host:
/// requests to the API count against the rate limit).
async fn sink_letter(host: &Host) -> String {
    for _ in 0..200 {
        let letters = host
            .dead_letters()
            .list(Some("sink:ops"), 10)
            .await
            .unwrap();
        if let Some(letter) = letters.first() {
            return letter.id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sink made no dead letter");
}

/// At their default paths.
async fn api_triggers(api: &Api) {
    let fire = "/api/triggers/{id}/trigger";
    let triggered = api.check(post(fire).id("hook").json(json!({"data": {}})), 200);
    assert_eq!(triggered.await["message"], "Event triggered successfully");
    api.check(post(fire).id("hook").json(json!({"x": 1})), 422)
        .await;
    api.check(post(fire).id("nope").json(json!({"data": {}})), 404)
        .await;
    let status = api.check(get("/api/triggers/{id}/status").id("hook"), 200);
    assert_eq!(status.await["running"], true);
}

/// Last: past the per-client rate limit (300 a minute), everything is 429.
async fn past_the_rate_limit(api: &Api) {
    let document = get("/openapi.json");
    for _ in 0..1000 {
        let response = api.send(&document).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            api.checked(&document, response, 429).await;
            return;
        }
        // Read, so that the connection is used again.
        response.bytes().await.unwrap();
    }
    panic!("the per-client rate limit never answered");
}

/// The first message of an SSE stream, as JSON.
async fn first_message(response: reqwest::Response) -> Value {
    let mut chunks = response.bytes_stream();
    let mut text = String::new();
    loop {
        let data = text.lines().find_map(|line| line.strip_prefix("data:"));
        if let Some(data) = data.filter(|_| text.contains("\n\n")) {
            return serde_json::from_str(data.trim()).unwrap();
        }
        let chunk = tokio::time::timeout(Duration::from_secs(5), chunks.next());
        let chunk = chunk.await.expect("no SSE message").unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}
