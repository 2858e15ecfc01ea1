//! Requests/s and latency of an api trigger with a wasm factory, side by
//! side with a bare axum handler returning the same JSON, in one run.
//!
//! Run: `cargo bench --bench http_api` (needs `wrk`: `apt-get install wrk`);
//! `cargo bench --bench http_api -- tracing` compares traces off and on
//! (see `common/tracing_overhead.rs`).
//! Method: both servers run in this process on loopback; wrk (2 threads,
//! 32 connections, 10 s, POST with a 120-byte JSON body) alternates between
//! them for 3 rounds; the median round of each is reported, and the ratio.

use wasmsched_test_support::bench::wrk;
use wasmsched_test_support::bench::wrk::GITHUB_BODY as BODY;

use wasmsched_test_support::bench::tracing_overhead;

use std::net::SocketAddr;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched_test_support::Served;

const CONFIG: &str = r#"
[[trigger]]
id = "github"
kind = "api"
topic = "webhooks.github"
plugin = "github_webhook"

[[trigger]]
id = "plain"
kind = "api"
topic = "webhooks.plain"
"#;

fn main() {
    if !wrk::available("http_api") {
        return;
    }
    if std::env::args().any(|a| a == "tracing") {
        return tracing_overhead::run(BODY);
    }
    // The runtime `wasmsched run` serves on (both contenders share it).
    let runtime = wasmsched::host::runtime().unwrap();
    let (host_addr, bare_addr) = runtime.block_on(start_servers());
    let script = wrk::post_script("post", BODY);
    let contenders = [
        (
            "bare axum handler, same JSON",
            format!("http://{bare_addr}/trigger"),
        ),
        (
            "api trigger, no plugin (default event)",
            format!("http://{host_addr}/api/triggers/plain/trigger"),
        ),
        (
            "api trigger, wasm factory (github_webhook)",
            format!("http://{host_addr}/api/triggers/github/trigger"),
        ),
    ];
    let mut results: Vec<Vec<wrk::Sample>> = vec![Vec::new(); contenders.len()];
    for _round in 0..3 {
        for (i, (_, url)) in contenders.iter().enumerate() {
            results[i].push(wrk::run(&script, url, 32, 10));
        }
    }
    println!("wasmsched HTTP benchmark: wrk -t2 -c32 -d10s, median of 3 rounds");
    let baseline = wrk::median(&results[0]);
    for ((name, _), samples) in contenders.iter().zip(&results) {
        let m = wrk::median(samples);
        println!(
            "{name:<44} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  throughput {:.2}x of bare",
            m.requests_per_second,
            m.p50_ms,
            m.p99_ms,
            m.requests_per_second / baseline.requests_per_second
        );
    }
}

async fn start_servers() -> (SocketAddr, SocketAddr) {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/github_webhook.wasm"),
        dir.join("plugins/github_webhook.wasm"),
    )
    .expect("plugins/github_webhook.wasm (built by build.rs)");
    std::fs::write(dir.join("wasmsched.toml"), CONFIG).unwrap();
    let host = Host::start(Config::load(&dir.join("wasmsched.toml")).unwrap())
        .await
        .unwrap();
    let host_addr = Served::serve(host).await.addr;

    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bare = axum::Router::new().route(
        "/trigger",
        post(move |Json(_body): Json<Value>| {
            let counter = counter.clone();
            async move {
                let count = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                Json(json!({"success": true, "message": "Event triggered successfully", "trigger_count": count}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, bare).await });
    (host_addr, bare_addr)
}
