//! A plugin's outbound HTTP call vs the same request made by the host with
//! reqwest, same run.
//!
//! Run: `cargo bench --bench plugin_http`.
//!
//! A receiver in this process (axum on loopback) answers 204 to
//! `POST /chat`. Contenders, each making the same POST (a ~70-byte JSON body,
//! content-type, a bearer token) one after another:
//! - `chat_poster` (the example plugin): a whole factory call, the request
//!   made through `wasi:http` under its grant (origin check, body caps,
//!   timeouts) by wasmtime's client, which opens a connection per request;
//! - reqwest with a new client per request (a connection per request, like
//!   the plugin);
//! - reqwest with one pooled client (keep-alive: what a host-side client
//!   gets).
//!
//! 200 requests per contender per round, 7 rounds alternating; the median
//! per-request latency of each round, then the median of the rounds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;
use wasmsched::firing::{Cause, Firing};
use wasmsched::plugin::{Grants, HttpGrant, Origin, PluginRuntime, RuntimeOptions};

const REQUESTS: usize = 200;
const ROUNDS: usize = 7;

fn main() {
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let received = Arc::new(AtomicUsize::new(0));
    let origin = start_receiver(received.clone()).await;
    let url = format!("{origin}/chat");

    let plugins = PluginRuntime::new(RuntimeOptions::default()).unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plugins/rust/chat_poster/chat_poster.wasm"
    );
    let bytes = std::fs::read(path)
        .expect("plugins/rust/chat_poster/chat_poster.wasm (built by cargo build)");
    let grants = Grants::default()
        .with_http(HttpGrant::new(vec![Origin::parse(&origin).unwrap()]))
        .with_secret("CHAT_TOKEN", "bench-token");
    let plugin = plugins
        .load_granted("chat_poster", &bytes, None, grants)
        .unwrap();
    let config = BTreeMap::from([("url".to_owned(), url.clone())]);
    let factory = plugin.factory("bench", config).unwrap();
    let payload = json!({"level": "ERROR", "service": "db", "message": "disk full"});
    let firing = Firing::new("bench", chrono::Utc::now(), Cause::Api { payload });
    let body = json!({"text": "[ERROR] db: disk full (trigger bench)"}).to_string();
    let pooled = reqwest::Client::new();

    let plugin_call = async || {
        let events = factory.make_events(&firing).await.unwrap();
        assert_eq!(events.len(), 1);
    };
    let fresh_client = async || send(&reqwest::Client::new(), &url, &body).await;
    let pooled_client = async || send(&pooled, &url, &body).await;

    let mut results: [Vec<Duration>; 3] = Default::default();
    for _ in 0..ROUNDS {
        results[0].push(per_request(&plugin_call).await);
        results[1].push(per_request(&fresh_client).await);
        results[2].push(per_request(&pooled_client).await);
    }
    assert_eq!(
        received.load(Ordering::Relaxed),
        3 * ROUNDS * REQUESTS,
        "every request reached the receiver"
    );
    let names = [
        "plugin (chat_poster, wasi:http, a connection per request)",
        "reqwest, a new client per request",
        "reqwest, one pooled client (keep-alive)",
    ];
    println!("POST to a loopback receiver, {REQUESTS} sequential requests x {ROUNDS} rounds");
    println!("{:<60} {:>12} {:>10}", "", "median/req", "vs plugin");
    let plugin_median = median(&mut results[0].clone());
    for (name, samples) in names.iter().zip(results.iter_mut()) {
        let m = median(samples);
        println!(
            "{name:<60} {:>9.1} µs {:>9.2}x",
            m.as_secs_f64() * 1e6,
            m.as_secs_f64() / plugin_median.as_secs_f64()
        );
    }
}

async fn send(client: &reqwest::Client, url: &str, body: &str) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer bench-token")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

/// The median latency of [`REQUESTS`] calls of `request`, one after another.
async fn per_request(request: &impl AsyncFn()) -> Duration {
    let mut samples = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        request().await;
        samples.push(started.elapsed());
    }
    median(&mut samples)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn start_receiver(received: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/chat",
        // Reads the body, as a real webhook does (a server answering before
        // it has read the body makes the client's write fail).
        post(async move |body: axum::body::Bytes| {
            assert!(!body.is_empty());
            received.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}
