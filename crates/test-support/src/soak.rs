//! What the soak test (`tests/integration/soak.rs`) needs beside the host: a webhook
//! receiver that keeps each event once by id and fails one request in N,
//! and samples of a process (resident memory, descriptors, metrics).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

/// What the receiver got: each event once by id, and counts.
#[derive(Default)]
pub struct Received {
    /// Requests, duplicates and failures included.
    pub requests: u64,
    /// Requests answered 500 on purpose.
    pub injected: u64,
    /// Event id → (topic, data).
    pub events: HashMap<String, (String, Value)>,
    fail_every: u64,
}

pub type Shared = Arc<Mutex<Received>>;

impl Received {
    /// The data of the events received on `topic`.
    pub fn on(&self, topic: &str) -> Vec<&Value> {
        let events = self.events.values();
        events.filter(|(t, _)| t == topic).map(|(_, d)| d).collect()
    }
}

async fn receive(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut received = shared.lock().unwrap();
    received.requests += 1;
    if received.requests.is_multiple_of(received.fail_every) {
        received.injected += 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let (Some(id), Some(topic)) = (body["id"].as_str(), body["topic"].as_str()) {
        let entry = (topic.to_owned(), body["data"].clone());
        received.events.insert(id.to_owned(), entry);
    }
    StatusCode::NO_CONTENT
}

/// Starts a receiver on loopback that takes sink deliveries (`{id, topic,
/// data, ...}`) at any path and answers 500 to every `fail_every`-th
/// request: its base URL.
pub async fn start_receiver(fail_every: u64) -> (String, Shared) {
    let shared = Shared::new(Mutex::new(Received {
        fail_every,
        ..Received::default()
    }));
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, shared)
}

/// The sum of a metric family's series in an OpenMetrics text (`None`:
/// no such series).
pub fn metric(text: &str, family: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if series.split('{').next() == Some(family) {
            *sum.get_or_insert(0.0) += value.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    sum
}

/// One sample of a `wasmsched run` process.
pub struct Sample {
    /// Since the test began.
    pub secs: f64,
    /// Which run of the binary (1, 2, ...).
    pub life: u8,
    /// `VmRSS` in `/proc/PID/status`.
    pub rss_mib: f64,
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
    /// `wasmsched_runtime_tasks`.
    pub tasks: f64,
    /// The store's files, together.
    pub store_kib: f64,
    /// `wasmsched_task_panics_total`, all tasks.
    pub panics: f64,
    /// `wasmsched_plugin_loads_total`.
    pub loads: f64,
}

impl Sample {
    pub const HEADER: &'static str =
        "    t(s) life  RSS MiB    fds  tasks  store KiB  panics  loads";
    pub const CSV_HEADER: &'static str =
        "secs,life,rss_mib,fds,tasks,store_kib,panics,plugin_loads";

    /// Samples process `pid`, whose `/metrics` answered `metrics` and
    /// whose state store is the files `store`.
    pub fn take(secs: f64, life: u8, pid: u32, metrics: &str, store: &[PathBuf]) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN);
        let store: u64 = store
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        Self {
            secs,
            life,
            rss_mib: rss_kib / 1024.0,
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
            tasks: metric(metrics, "wasmsched_runtime_tasks").expect("the tasks gauge"),
            store_kib: store as f64 / 1024.0,
            panics: metric(metrics, "wasmsched_task_panics_total").unwrap_or(0.0),
            loads: metric(metrics, "wasmsched_plugin_loads_total").expect("plugin loads"),
        }
    }

    /// A line of the table under [`Self::HEADER`].
    pub fn row(&self) -> String {
        let Self {
            secs,
            life,
            rss_mib,
            fds,
            tasks,
            store_kib,
            panics,
            loads,
        } = self;
        format!(
            "{secs:8.1} {life:4} {rss_mib:8.1} {fds:6} {tasks:6} {store_kib:10.1} {panics:7} {loads:6}"
        )
    }

    /// A line of the CSV under [`Self::CSV_HEADER`].
    pub fn csv(&self) -> String {
        let Self {
            secs,
            life,
            rss_mib,
            fds,
            tasks,
            store_kib,
            panics,
            loads,
        } = self;
        format!("{secs:.1},{life},{rss_mib:.1},{fds},{tasks},{store_kib:.1},{panics},{loads}")
    }
}
