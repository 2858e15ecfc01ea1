//! Requests/s and latency of an api trigger with a wasm factory, side by
//! side with a bare axum handler returning the same JSON, in one run.
//!
//! Run: `cargo bench --bench http_api` (needs `wrk`: `apt-get install wrk`).
//! Method: both servers run in this process on loopback; wrk (2 threads,
//! 32 connections, 10 s, POST with a 120-byte JSON body) alternates between
//! them for 3 rounds; the median round of each is reported, and the ratio.

use std::net::SocketAddr;
use std::process::Command;

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::http::{self, AppState};

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

const BODY: &str = r#"{"data": {"action": "opened", "repository": {"full_name": "o/r"}, "sender": {"login": "u"}, "n": 1}}"#;

#[derive(Debug, Clone, Copy)]
struct Sample {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("http_api bench: `wrk` not found; install it with `apt-get install wrk`");
        return;
    }
    // The runtime `wasmsched run` serves on (both contenders share it).
    let runtime = wasmsched::host::runtime().unwrap();
    let (host_addr, bare_addr) = runtime.block_on(start_servers());
    let script = std::env::temp_dir().join("wasmsched-bench-post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             done = function(summary, latency, requests)\n  io.write(string.format(\"RESULT %f %f %f\\n\", \
             summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))\nend\n"
        ),
    )
    .unwrap();
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
    let mut results: Vec<Vec<Sample>> = vec![Vec::new(); contenders.len()];
    for _round in 0..3 {
        for (i, (_, url)) in contenders.iter().enumerate() {
            results[i].push(wrk(&script, url));
        }
    }
    println!("wasmsched HTTP benchmark: wrk -t2 -c32 -d10s, median of 3 rounds");
    let baseline = median(&results[0]);
    for ((name, _), samples) in contenders.iter().zip(&results) {
        let m = median(samples);
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host_addr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(
        listener,
        AppState::new(host),
        std::future::pending(),
    ));

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

fn wrk(script: &std::path::Path, url: &str) -> Sample {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("Non-2xx"), "errors from {url}:\n{text}");
    let numbers: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result from wrk:\n{text}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    Sample {
        requests_per_second: numbers[0],
        p50_ms: numbers[1],
        p99_ms: numbers[2],
    }
}

fn median(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    sorted[sorted.len() / 2]
}
