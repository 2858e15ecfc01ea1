//! What remembering costs: the state store's write latency per firing on
//! both adapters, and throughput with run history on and off.
//!
//! Run: `cargo bench --bench state` (needs `wrk` and `nats-server`:
//! `apt-get install wrk nats-server`; the bench starts its own server on a
//! free port, file storage in a temporary directory).
//!
//! 1. Write latency per firing, SQLite file vs JetStream: a cron firing's
//!    claim (`claim_fire`, one compare-and-set) and one run record written
//!    alone (`append_runs` of one run: the worst case; the run log batches
//!    what arrives together). 2 000 of each after 100 warm-up, p50 / p99.
//! 2. Throughput, history on vs off (`[state] history_max_runs = 0`), two
//!    hosts in this process on the memory broker and their SQLite files:
//!    events/s through an event trigger without a plugin (50 000 events, 64
//!    publishes in flight, until the last output is read), and api-trigger
//!    req/s with wrk (2 threads, 32 connections, 5 s), without a plugin and
//!    with the `github_webhook` wasm factory. 5 rounds alternating on and
//!    off; medians, and the ratio.

use wasmsched_test_support::bench::relay;
use wasmsched_test_support::bench::wrk;
use wasmsched_test_support::bench::wrk::GITHUB_BODY as BODY;
use wasmsched_test_support::nats_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmsched::TriggerKind;
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::state::nats::NatsStore;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{LastFire, Outcome, Retention, Run, StateStore};
use wasmsched_test_support::Served;

const WRITES: usize = 2_000;
const WARM_UP: usize = 100;
const BURST: usize = 50_000;
const ROUNDS: usize = 5;

const CONFIG: &str = r#"
[plugins]
watch = false
cache = false

[[trigger]]
id = "relay"
kind = "event"
source = "bench.in"
topic = "bench.out"

[[trigger]]
id = "plain"
kind = "api"
topic = "bench.api"

[[trigger]]
id = "github"
kind = "api"
topic = "bench.github"
plugin = "github_webhook"
"#;

fn main() {
    if !wrk::available("state") {
        return;
    }
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(write_latency());
    runtime.block_on(throughput());
}

/// Part 1: both adapters.
async fn write_latency() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn StateStore> = Arc::new(
        SqliteStore::open(&dir.path().join("bench.db"), Retention::default())
            .await
            .unwrap(),
    );
    let server = nats_server::NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream: Arc<dyn StateStore> = Arc::new(
        NatsStore::open(
            async_nats::jetstream::new(client),
            "BENCH",
            Retention::default(),
        )
        .await
        .unwrap(),
    );
    println!("state store write latency per firing ({WRITES} writes each, after {WARM_UP})");
    println!(
        "{:<22} {:>22} {:>22}",
        "", "claim p50 / p99 (ms)", "one run p50 / p99 (ms)"
    );
    for (name, store) in [("SQLite file", &sqlite), ("JetStream", &jetstream)] {
        let claims = claims(store.as_ref()).await;
        let runs = runs(store.as_ref()).await;
        println!(
            "{name:<22} {:>10.3} / {:<9.3} {:>10.3} / {:<9.3}",
            claims.0, claims.1, runs.0, runs.1
        );
    }
}

async fn claims(store: &dyn StateStore) -> (f64, f64) {
    let start: chrono::DateTime<chrono::Utc> = "2030-01-07T00:00:00Z".parse().unwrap();
    let mut revision = None;
    let mut times = Vec::with_capacity(WRITES);
    for n in 0..WARM_UP + WRITES {
        let next = LastFire {
            instant: start + chrono::TimeDelta::minutes(n as i64),
            schedule: "* * * * * @ UTC".into(),
        };
        let began = Instant::now();
        revision = store.claim_fire("bench", &next, revision).await.unwrap();
        assert!(revision.is_some(), "an uncontended claim lands");
        if n >= WARM_UP {
            times.push(began.elapsed());
        }
    }
    percentiles(times)
}

async fn runs(store: &dyn StateStore) -> (f64, f64) {
    let mut times = Vec::with_capacity(WRITES);
    for n in 0..WARM_UP + WRITES {
        let run = Run {
            trigger: "bench".into(),
            instant: chrono::Utc::now(),
            kind: TriggerKind::Cron,
            outcome: Outcome::Ok,
            duration_ms: 0.4,
            events: vec![uuid::Uuid::now_v7()],
            error: None,
            catch_up: false,
            backfill: false,
            source_event: None,
            started: None,
        };
        let began = Instant::now();
        store.append_runs(&[run]).await.unwrap();
        if n >= WARM_UP {
            times.push(began.elapsed());
        }
    }
    percentiles(times)
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
    )
}

/// Part 2: one host with history, one without.
async fn throughput() {
    let script = wrk::post_script("state", BODY);
    let on = start_host("").await;
    let off = start_host("[state]\nhistory_max_runs = 0\n").await;
    let apis = ["plain", "github"];
    let mut events = [Vec::new(), Vec::new()];
    let mut requests: [[Vec<wrk::Sample>; 2]; 2] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (host, base)) in [&on, &off].into_iter().enumerate() {
            events[i].push(events_per_second(host).await);
            for (a, api) in apis.iter().enumerate() {
                let url = format!("{base}/api/triggers/{api}/trigger");
                let script = script.clone();
                let sample = tokio::task::spawn_blocking(move || wrk::run(&script, &url, 32, 5));
                requests[a][i].push(sample.await.unwrap());
            }
        }
    }
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    let (events_on, events_off) = (median(&mut events[0]), median(&mut events[1]));
    println!("\nrun history on vs off, memory broker, median of {ROUNDS} rounds");
    println!("{:<36} {:>10} {:>10}  on/off", "", "on", "off");
    println!(
        "{:<36} {events_on:>10.0} {events_off:>10.0}  {:.2}x",
        "events/s, event trigger (no plugin)",
        events_on / events_off
    );
    for (a, api) in apis.iter().enumerate() {
        let (on, off) = (wrk::median(&requests[a][0]), wrk::median(&requests[a][1]));
        println!(
            "{:<36} {:>10.0} {:>10.0}  {:.2}x   p50 {:.2} / {:.2} ms, p99 {:.2} / {:.2} ms",
            format!("req/s, api trigger `{api}`"),
            on.requests_per_second,
            off.requests_per_second,
            on.requests_per_second / off.requests_per_second,
            on.p50_ms,
            off.p50_ms,
            on.p99_ms,
            off.p99_ms,
        );
    }
}

async fn start_host(extra: &str) -> (Arc<Host>, String) {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/plugins/github_webhook.wasm"),
        dir.join("plugins/github_webhook.wasm"),
    )
    .expect("plugins/github_webhook.wasm (built by build.rs)");
    std::fs::write(dir.join("wasmsched.toml"), format!("{extra}{CONFIG}")).unwrap();
    let host = Host::start(Config::load(&dir.join("wasmsched.toml")).unwrap())
        .await
        .unwrap();
    let base = Served::serve(host.clone()).await.base;
    (host, base)
}

async fn events_per_second(host: &Arc<Host>) -> f64 {
    let broker = host.broker().clone();
    let mut outputs = relay::sink(&broker, format!("sink-{}", uuid::Uuid::now_v7())).await;
    relay::burst(&broker, &mut outputs, BURST).await
}
