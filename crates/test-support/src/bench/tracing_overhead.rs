//! `cargo bench --bench http_api -- tracing`: what exporting traces costs.
//!
//! Two `wasmsched run` processes with the same config (the `github_webhook`
//! wasm factory behind an api trigger), one with `[telemetry]` pointing at an
//! OTLP/HTTP receiver in this process (it answers 200 and counts bytes), one
//! without; wrk alternates between them for 3 rounds. Both log at `warn`,
//! so logging does not hide the difference.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;

use super::wrk;

const CONFIG: &str = r#"
[plugins]
watch = false

[[trigger]]
id = "github"
kind = "api"
topic = "webhooks.github"
plugin = "github_webhook"
"#;

/// A `wasmsched run` child, killed on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts `wasmsched run` in `dir` with `telemetry` prepended to the config.
fn start(dir: &Path, telemetry: &str) -> (Served, SocketAddr) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        crate::repository().join("plugins/github_webhook.wasm"),
        dir.join("plugins/github_webhook.wasm"),
    )
    .expect("plugins/github_webhook.wasm (built by build.rs)");
    std::fs::write(dir.join("wasmsched.toml"), format!("{telemetry}{CONFIG}")).unwrap();
    let address = free_port();
    let child = Command::new(crate::binary())
        .args(["run", "--listen", &address.to_string(), "--config"])
        .arg(dir.join("wasmsched.toml"))
        .env("RUST_LOG", "warn")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting wasmsched run");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "wasmsched run did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Served(child), address)
}

/// Runs the comparison and prints it.
pub fn run(body: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let collector = runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                counted.fetch_add(body.len() as u64, Ordering::Relaxed);
                async { "" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    });
    let root = tempfile::tempdir().unwrap();
    let (_off, off) = start(&root.path().join("off"), "");
    let telemetry = format!("[telemetry]\notlp_endpoint = \"http://{collector}\"\n");
    let (_on, on) = start(&root.path().join("on"), &telemetry);
    let script = wrk::post_script("tracing", body);
    let contenders = [
        ("wasm factory, traces off", off),
        ("wasm factory, traces exported (OTLP/HTTP)", on),
    ];
    let mut results: Vec<Vec<wrk::Sample>> = vec![Vec::new(); contenders.len()];
    for _round in 0..3 {
        for (i, (_, address)) in contenders.iter().enumerate() {
            let url = format!("http://{address}/api/triggers/github/trigger");
            results[i].push(wrk::run(&script, &url, 32, 10));
        }
    }
    println!("tracing overhead: wasmsched run x2, wrk -t2 -c32 -d10s, median of 3 rounds");
    let baseline = wrk::median(&results[0]);
    for ((name, _), samples) in contenders.iter().zip(&results) {
        let m = wrk::median(samples);
        let all: Vec<String> = samples
            .iter()
            .map(|s| format!("{:.0}", s.requests_per_second))
            .collect();
        println!(
            "{name:<44} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  {:.2}x of off  (rounds: {})",
            m.requests_per_second,
            m.p50_ms,
            m.p99_ms,
            m.requests_per_second / baseline.requests_per_second,
            all.join(", ")
        );
    }
    println!(
        "the receiver got {:.1} MiB of spans",
        received.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    );
}
