//! How an api trigger without a plugin answers while plugins spin, with
//! the real binary over HTTP, as a user would see it.
//!
//! Run: `cargo bench --bench stall`. Method: for N = 0, 4 and 16, start
//! `wasmsched run` (this build) with N event triggers whose filter
//! (`adv_loop`) loops until its 100 ms deadline and one api trigger
//! without a plugin; publish 40 events per spinning trigger through
//! `POST /api/events` (4 publishers at once), and meanwhile call the api
//! trigger every 20 ms for 5 s, one call at a time. Report the latency of
//! those calls (p50, p95, p99, max) and how many completed. The file uses
//! only the HTTP API, so the same bench runs against older builds.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const EVENTS_PER_TRIGGER: usize = 40;
const WINDOW: Duration = Duration::from_secs(5);
const PERIOD: Duration = Duration::from_millis(20);

struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, port: u16, spinning: usize) {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let guest = Path::new(env!("WASMSCHED_GUEST_DIR")).join("adv_loop.wasm");
    std::fs::copy(&guest, plugins.join("adv_loop.wasm"))
        .expect("adv_loop.wasm (built by build.rs)");
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[plugins]\nwatch = false\ncache = false\n\n\
         [[trigger]]\nid = \"plain\"\nkind = \"api\"\ntopic = \"plain.out\"\n"
    );
    for i in 0..spinning {
        text.push_str(&format!(
            "\n[[trigger]]\nid = \"spin-{i}\"\nkind = \"event\"\nsource = \"storm.{i}\"\n\
             topic = \"spin.out\"\nplugin = \"adv_loop\"\n"
        ));
    }
    std::fs::write(dir.join("wasmsched.toml"), text).unwrap();
}

async fn start(dir: &Path, base: &str) -> Host {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(["run", "--config"])
        .arg(dir.join("wasmsched.toml"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let host = Host(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(format!("{base}/healthz")).await
            && response.status().is_success()
        {
            return host;
        }
        assert!(Instant::now() < deadline, "the host did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Latencies (ms) of api-trigger calls made every [`PERIOD`] for [`WINDOW`]
/// while `spinning` triggers are flooded.
async fn measure(spinning: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    write_config(dir.path(), port, spinning);
    let _host = start(dir.path(), &base).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for publisher in 0..4 {
        let (client, base, done) = (client.clone(), base.clone(), done.clone());
        publishers.push(tokio::spawn(async move {
            for n in (publisher..spinning * EVENTS_PER_TRIGGER).step_by(4) {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let body = serde_json::json!({"topic": format!("storm.{}", n % spinning), "data": {"n": n}});
                let _ = client
                    .post(format!("{base}/api/events"))
                    .json(&body)
                    .send()
                    .await;
            }
        }));
    }
    let mut latencies = Vec::new();
    let end = Instant::now() + WINDOW;
    while Instant::now() < end {
        let started = Instant::now();
        let response = client
            .post(format!("{base}/api/triggers/plain/trigger"))
            .json(&serde_json::json!({"data": {"probe": true}}))
            .send()
            .await;
        if response.is_ok_and(|r| r.status().is_success()) {
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
        }
        tokio::time::sleep(PERIOD.saturating_sub(started.elapsed())).await;
    }
    done.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.abort();
    }
    latencies
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "api trigger without a plugin, called every 20 ms for 5 s while N triggers' filters spin"
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "spinning triggers", "calls", "p50", "p95", "p99", "max", "over 250ms"
    );
    for spinning in [0, 4, 16] {
        let mut latencies = runtime.block_on(measure(spinning));
        latencies.sort_by(f64::total_cmp);
        if latencies.is_empty() {
            println!("{spinning:<24} no call completed");
            continue;
        }
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        let over = latencies.iter().filter(|&&ms| ms > 250.0).count();
        println!(
            "{spinning:<24} {:>9} {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>10}",
            latencies.len(),
            at(0.5),
            at(0.95),
            at(0.99),
            latencies[latencies.len() - 1],
            over
        );
    }
}
