//! A soak of the real `wasmsched run` (memory broker, the default SQLite
//! store next to its config, `plugins/` watched): one run of mixed traffic
//! for `WASMSCHED_SOAK_SECS` seconds of traffic (default 90), half before
//! and half after a restart (SIGTERM, exit 0, start again on the same
//! config and store).
//!
//! The traffic: an api trigger called twice a second; log events published
//! twice a second, feeding event triggers under flow control per service
//! (throttle through the `error_alert` plugin, whose file is replaced every
//! minute by another build of it; dedupe; debounce; batch); six cron
//! triggers firing every minute (two with jitter, one through the
//! `pipeline_stage` plugin); two webhook sinks delivering the log events
//! and every trigger's output to a receiver here, which fails one request
//! in 40 (retried). Just before the restart a burst is held by a debounce
//! and a batch whose deadlines fall after it.
//!
//! What it checks, none of it timing: every api call, log event and cron
//! instant is accounted for by the trigger counters (summed over both runs
//! of the binary) and by the receiver, by event id (deliveries are at
//! least once: duplicates are counted, not failed); each cron instant runs
//! once; no trigger error, dead letter or panic
//! (`wasmsched_task_panics_total` stays 0); every replacement of the plugin
//! is logged and counted in `wasmsched_plugin_loads_total`; after the
//! restart's warm-up, open descriptors and `wasmsched_runtime_tasks` end at
//! most 2x (plus a constant) where they started; the host exits 0 on
//! SIGTERM, twice. Memory and the store's size (`state.db` and its WAL)
//! are sampled every 5 s (10 s past 10 minutes) and printed as a table
//! (`--nocapture`), and written as CSV to `WASMSCHED_SOAK_CSV` if set; they
//! are not asserted on.

use wasmsched_test_support::soak as soak_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Value, json};
use soak_support::{Sample, Shared, start_receiver};
use wasmsched::plugin::content_hash;
use wasmsched_test_support::http::send;
use wasmsched_test_support::replica::Replica;

/// Traffic time without `WASMSCHED_SOAK_SECS`.
const DEFAULT_SECS: u64 = 90;
/// One request every tick, api calls and log events in turn.
const TICK: Duration = Duration::from_millis(250);
/// When (in traffic time) the plugin file is first replaced, then how often.
const FIRST_REPLACE: Duration = Duration::from_secs(30);
const REPLACE_EVERY: Duration = Duration::from_secs(60);
/// Samples this long into the second run are warm-up.
const WARM_UP: Duration = Duration::from_secs(15);
/// How long counts may take to settle, and the host to exit: liveness only.
const SETTLE: Duration = Duration::from_secs(300);
const EXIT: Duration = Duration::from_secs(60);
/// Events held across the restart.
const HOLD: u64 = 5;
/// Services of the log events, with their weights.
const SERVICES: [(&str, u32); 4] = [("db", 50), ("web", 25), ("api", 15), ("cache", 10)];
/// The cron triggers of [`CONFIG`] and the manifests, with their jitter (s).
const CRON: [(&str, i64); 6] = [
    ("cron-1", 0),
    ("cron-2", 0),
    ("cron-3", 0),
    ("cron-stage", 0),
    ("cron-j1", 20),
    ("cron-j2", 40),
];

/// `wasmsched.toml` (`RECEIVER` and `HISTORY` filled in). Each trigger
/// publishes on `soak.<id>`.
const CONFIG: &str = r#"
trigger = [
  { id = "ping", kind = "api", topic = "soak.ping" },
  { id = "dedupe", kind = "event", source = "logs.**", topic = "soak.dedupe", key = "/service", dedupe = { window = "5s" } },
  { id = "debounce", kind = "event", source = "logs.**", topic = "soak.debounce", key = "/service", debounce = { period = "1s", max_wait = "5s" } },
  { id = "batch", kind = "event", source = "logs.**", topic = "soak.batch", key = "/service", batch = { max_events = 5, max_wait = "3s" } },
  { id = "hold-debounce", kind = "event", source = "hold.**", topic = "soak.hold-debounce", key = "/k", debounce = { period = "20s", max_wait = "60s" } },
  { id = "hold-batch", kind = "event", source = "hold.**", topic = "soak.hold-batch", key = "/k", batch = { max_events = 1000, max_wait = "20s" } },
  { id = "cron-1", kind = "cron", schedule = "* * * * *", topic = "soak.cron-1", catch_up = "all" },
  { id = "cron-2", kind = "cron", schedule = "* * * * *", topic = "soak.cron-2", catch_up = "all" },
  { id = "cron-3", kind = "cron", schedule = "* * * * *", topic = "soak.cron-3", catch_up = "all", timezone = "Asia/Seoul" },
  { id = "cron-j1", kind = "cron", schedule = "* * * * *", topic = "soak.cron-j1", catch_up = "all", jitter = "20s" },
  { id = "cron-j2", kind = "cron", schedule = "* * * * *", topic = "soak.cron-j2", catch_up = "all", jitter = "40s", timezone = "America/New_York" },
]
sink = [
  { id = "in", pattern = "logs.**", url = "RECEIVER/in", max_attempts = 20, backoff = ["100ms", "500ms"] },
  { id = "out", pattern = "soak.**", url = "RECEIVER/out", max_attempts = 20, backoff = ["100ms", "500ms"] },
]

[state]
path = "state.db"
history_max_runs = HISTORY
"#;

/// The manifests in `plugins/`, by plugin.
const MANIFESTS: [(&str, &str); 2] = [
    (
        "error_alert",
        r#"trigger = [{ id = "alerts", kind = "event", source = "logs.**", topic = "soak.alerts", plugin = "error_alert", key = "/service", throttle = { limit = 1, period = "10s" } }]"#,
    ),
    (
        "pipeline_stage",
        r#"trigger = [{ id = "cron-stage", kind = "cron", schedule = "* * * * *", topic = "soak.cron-stage", catch_up = "all", plugin = "pipeline_stage" }]"#,
    ),
];

type Stats = BTreeMap<String, Value>;

fn example(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/plugins");
    std::fs::read(format!("{path}/{name}.wasm")).expect("built by build.rs")
}

/// The two builds of `error_alert` taken in turn: the example, and the
/// example with a custom section appended (other bytes, same code).
fn error_alert(build: u32) -> Vec<u8> {
    let mut bytes = example("error_alert");
    if build % 2 == 1 {
        let section = [&[4u8][..], b"soak", b"build-1"].concat();
        bytes.extend([0, u8::try_from(section.len()).unwrap()]);
        bytes.extend(section);
    }
    bytes
}

struct Soak {
    client: reqwest::Client,
    dir: tempfile::TempDir,
    config: PathBuf,
    received: Shared,
    rng: fastrand::Rng,
    seq: u64,
    /// Api calls answered 200, by `seq`.
    api: BTreeSet<u64>,
    /// Log events published: `seq` → (event id, level ERROR).
    logs: BTreeMap<u64, (String, bool)>,
    /// Has the burst held across the restart been sent?
    probed: bool,
    /// The counters of the first run, as it stopped.
    prior: Stats,
    started: Instant,
    first_start: DateTime<Utc>,
    first_healthy: DateTime<Utc>,
    history: u64,
    every: Duration,
    next_sample: Instant,
    samples: Vec<Sample>,
    life: u8,
    life_started: f64,
    loads_at_start: f64,
    reloads: f64,
    swaps_logged: usize,
    replacements: u32,
    expected_hash: String,
    traffic_done: Duration,
}

impl Soak {
    async fn new(secs: u64) -> Self {
        let (receiver, received) = start_receiver(40).await;
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        for (name, manifest) in MANIFESTS {
            std::fs::write(plugins.join(format!("{name}.toml")), manifest).unwrap();
        }
        std::fs::write(plugins.join("error_alert.wasm"), error_alert(0)).unwrap();
        let stage = example("pipeline_stage");
        std::fs::write(plugins.join("pipeline_stage.wasm"), stage).unwrap();
        let history = (secs / 60 + 100).min(900);
        let config = dir.path().join("wasmsched.toml");
        let text = CONFIG.replace("RECEIVER", &receiver);
        std::fs::write(&config, text.replace("HISTORY", &history.to_string())).unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            // Below the host's idle timeout (60 s): never reuse what it closes.
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            client,
            dir,
            config,
            received,
            rng: fastrand::Rng::with_seed(7),
            seq: 0,
            api: BTreeSet::new(),
            logs: BTreeMap::new(),
            probed: false,
            prior: Stats::new(),
            started: Instant::now(),
            first_start: Utc::now(),
            first_healthy: Utc::now(),
            history,
            every: Duration::from_secs(if secs > 600 { 10 } else { 5 }),
            next_sample: Instant::now(),
            samples: Vec::new(),
            life: 0,
            life_started: 0.0,
            loads_at_start: 0.0,
            reloads: 0.0,
            swaps_logged: 0,
            replacements: 0,
            expected_hash: String::new(),
            traffic_done: Duration::ZERO,
        }
    }

    async fn start(&mut self) -> Replica {
        let log = "warn,wasmsched::cli::run=info,wasmsched_host::host::plugins=info";
        let host = Replica::start_with_env(&self.config, &[("RUST_LOG", log)]).await;
        self.life += 1;
        self.life_started = self.started.elapsed().as_secs_f64();
        if self.life == 1 {
            self.first_healthy = Utc::now();
        }
        self.sample(&host).await;
        self.loads_at_start = self.samples.last().unwrap().loads;
        host
    }

    async fn get(&self, url: String) -> Value {
        let (status, body) = send(self.client.get(&url)).await;
        assert_eq!(status, 200, "GET {url}: {body}");
        body
    }

    async fn sample(&mut self, host: &Replica) {
        let url = format!("{}/metrics", host.base);
        let metrics = self.client.get(url).send().await.unwrap().text().await;
        let store = ["state.db", "state.db-wal"].map(|f| self.dir.path().join(f));
        let secs = self.started.elapsed().as_secs_f64();
        let sample = Sample::take(secs, self.life, host.child.id(), &metrics.unwrap(), &store);
        if self.samples.is_empty() {
            println!("{}", Sample::HEADER);
        }
        println!("{}", sample.row());
        let panics = sample.panics;
        self.samples.push(sample);
        if let Ok(path) = std::env::var("WASMSCHED_SOAK_CSV") {
            let rows: Vec<String> = self.samples.iter().map(Sample::csv).collect();
            let csv = format!("{}\n{}\n", Sample::CSV_HEADER, rows.join("\n"));
            std::fs::write(path, csv).unwrap();
        }
        assert_eq!(panics, 0.0, "a task panicked:\n{}", tail(host));
        self.next_sample = Instant::now() + self.every;
    }

    async fn maybe_sample(&mut self, host: &Replica) {
        if Instant::now() >= self.next_sample {
            self.sample(host).await;
        }
    }

    /// Sends traffic for `length`, sampling, and replacing the plugin on time.
    async fn traffic(&mut self, host: &Replica, length: Duration) {
        let began = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while began.elapsed() < length {
            tick.tick().await;
            self.step(&host.base).await;
            let done = self.traffic_done + began.elapsed();
            if done >= FIRST_REPLACE + REPLACE_EVERY * self.replacements {
                self.replace_plugin();
            }
            self.maybe_sample(host).await;
        }
        self.traffic_done += began.elapsed();
    }

    /// One api call or one log event.
    async fn step(&mut self, base: &str) {
        let seq = self.seq;
        self.seq += 1;
        if seq.is_multiple_of(2) {
            let url = format!("{base}/api/triggers/ping/trigger");
            let call = self.client.post(url).json(&json!({"data": {"seq": seq}}));
            let (status, body) = send(call).await;
            assert_eq!(status, 200, "api call {seq}: {body}");
            self.api.insert(seq);
            return;
        }
        let (mut pick, mut service) = (self.rng.u32(0..100), SERVICES[0].0);
        for (name, weight) in SERVICES {
            if pick < weight {
                service = name;
                break;
            }
            pick -= weight;
        }
        let error = self.rng.u32(0..5) != 0;
        let level = if error { "ERROR" } else { "INFO" };
        let topic = format!("logs.{service}.{}", level.to_lowercase());
        let data = json!({"level": level, "service": service, "seq": seq, "message": "soak"});
        let id = self.publish(base, &topic, data).await;
        self.logs.insert(seq, (id, error));
    }

    async fn publish(&self, base: &str, topic: &str, data: Value) -> String {
        let request = json!({"topic": topic, "data": data});
        let url = format!("{base}/api/events");
        let (status, body) = send(self.client.post(url).json(&request)).await;
        assert_eq!(status, 202, "publishing {request}: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Writes the other build of `error_alert` under a hidden name, then
    /// renames it over the plugin.
    fn replace_plugin(&mut self) {
        self.replacements += 1;
        let bytes = error_alert(self.replacements);
        let plugins = self.dir.path().join("plugins");
        let temp = plugins.join(".error_alert.wasm.partial");
        std::fs::write(&temp, &bytes).unwrap();
        std::fs::rename(&temp, plugins.join("error_alert.wasm")).unwrap();
        self.expected_hash = content_hash(&bytes);
    }

    async fn stats(&self, base: &str) -> Stats {
        let list = self.get(format!("{base}/api/admin/triggers")).await;
        let list = list.as_array().unwrap().iter();
        list.map(|t| (t["id"].as_str().unwrap().to_owned(), t["stats"].clone()))
            .collect()
    }

    /// A counter of `id` over both runs.
    fn total(&self, now: &Stats, id: &str, field: &str) -> u64 {
        let of = |stats: &Stats| stats.get(id).and_then(|s| s[field].as_u64()).unwrap_or(0);
        of(&self.prior) + of(now)
    }

    /// What is not (yet) accounted for; fails at once on what never will be.
    async fn unaccounted(&self, host: &Replica, now: &Stats) -> Vec<String> {
        let (base, mut missing) = (&host.base, Vec::new());
        for (id, stats) in now {
            assert_eq!(stats["errors"], 0, "{id}: {stats}\n{}", tail(host));
        }
        let letters = self.get(format!("{base}/api/admin/deadletters")).await;
        assert_eq!(letters, json!([]), "dead letters");
        let sinks = self.get(format!("{base}/api/admin/sinks")).await;
        let dead = sinks.as_array().unwrap().iter().any(|s| s["dead"] != 0);
        assert!(!dead, "{sinks}");
        let plugins = self.get(format!("{base}/api/admin/plugins")).await;
        let mut plugins = plugins.as_array().unwrap().iter();
        let alert = plugins.find(|p| p["name"] == "error_alert").unwrap();
        if self.replacements > 0 && alert["hash"] != self.expected_hash {
            missing.push(format!("error_alert serves {}", alert["hash"]));
        }
        let mut cron_runs = BTreeMap::new();
        for (id, _) in CRON {
            let url = format!("{base}/api/admin/triggers/{id}/runs?limit=1000");
            cron_runs.insert(id, self.get(url).await.as_array().cloned().unwrap());
        }
        let (api, logs) = (self.api.len() as u64, self.logs.len() as u64);
        let errors = self.logs.values().filter(|(_, e)| *e);
        let errors: BTreeSet<&str> = errors.map(|(id, _)| id.as_str()).collect();
        let n = errors.len() as u64;
        let received = self.received.lock().unwrap();
        let on = |topic: &str| received.on(topic);
        let seq_of = |d: &Value| d["seq"].as_u64().unwrap();
        let t = |id: &str, field: &str| self.total(now, id, field);
        let got = |topic: &str| on(topic).len() as u64;
        let unseen = self.logs.values();
        let unseen = unseen.filter(|(id, _)| !received.events.contains_key(id));
        let (f, two) = (|id| t(id, "fires"), |id, a, b| t(id, a) + t(id, b));
        let mut counts = vec![
            ("ping fires", f("ping"), api),
            ("alerts accepted", t("alerts", "filter_accepted"), n),
            ("alerts rejected", t("alerts", "filter_rejected"), logs - n),
            ("alerts passed", two("alerts", "fires", "throttled"), n),
            ("dedupe", two("dedupe", "fires", "deduplicated"), logs),
            ("debounce", two("debounce", "fires", "debounced"), logs),
            ("batch batched", t("batch", "batched"), logs),
            ("log events lost", unseen.count() as u64, 0),
            ("pings received", got("soak.ping"), api),
            ("alerts received", got("soak.alerts"), f("alerts")),
            ("dedupe received", got("soak.dedupe"), f("dedupe")),
            ("debounce received", got("soak.debounce"), f("debounce")),
            ("batches received", got("soak.batch"), f("batch")),
        ];
        let pings: BTreeSet<u64> = on("soak.ping").into_iter().map(seq_of).collect();
        assert!(pings.is_subset(&self.api), "pings never sent");
        for alert in on("soak.alerts") {
            let source = alert["source_id"].as_str().unwrap();
            assert!(errors.contains(source), "alert for no error: {alert}");
        }
        for data in on("soak.dedupe").into_iter().chain(on("soak.debounce")) {
            assert!(self.logs.contains_key(&seq_of(data)), "never sent: {data}");
        }
        let in_batches = |topic: &str| {
            let batches = on(topic).into_iter();
            let events = batches.flat_map(|b| b["events"].as_array().unwrap());
            let mut seqs: Vec<u64> = events.map(seq_of).collect();
            seqs.sort_unstable();
            seqs
        };
        if in_batches("soak.batch") != self.logs.keys().copied().collect::<Vec<_>>() {
            missing.push("the batches do not hold each log event once".into());
        }
        if self.probed {
            let replaced = t("hold-debounce", "debounced");
            counts.push((
                "held, debounced",
                replaced + got("soak.hold-debounce"),
                HOLD,
            ));
            let held = in_batches("soak.hold-batch");
            if held != (0..HOLD).collect::<Vec<_>>() {
                missing.push(format!("the held batch delivered {held:?}"));
            }
        }
        let counts = counts.into_iter().filter(|(_, got, want)| got != want);
        missing.extend(counts.map(|(what, got, want)| format!("{what}: {got}, not {want}")));
        let first = self.first_healthy.duration_trunc(TimeDelta::minutes(1));
        for (id, jitter) in CRON {
            let (runs, mut instants) = (&cron_runs[id], BTreeSet::new());
            for run in runs {
                assert_eq!(run["outcome"], "ok", "{id}: {run}");
                let instant: DateTime<Utc> = run["instant"].as_str().unwrap().parse().unwrap();
                assert!(instants.insert(instant), "{id} ran {instant} twice");
                assert!(instant > self.first_start, "{id} ran {instant}, too early");
                for event in run["events"].as_array().unwrap() {
                    if !received.events.contains_key(event.as_str().unwrap()) {
                        missing.push(format!("{id}: event {event} of {instant} not received"));
                    }
                }
            }
            // Each minute since the start has a run (the oldest may be gone).
            let mut due = first.unwrap() + TimeDelta::minutes(1);
            if runs.len() as u64 >= self.history {
                due = *instants.first().unwrap();
            }
            while due + TimeDelta::seconds(15 + jitter) <= Utc::now() {
                if !instants.contains(&due) {
                    missing.push(format!("{id}: no run for {due}"));
                }
                due += TimeDelta::minutes(1);
            }
        }
        missing
    }

    /// Waits until everything sent is accounted for: the counters now.
    async fn settle(&mut self, host: &Replica) -> Stats {
        let deadline = Instant::now() + SETTLE;
        loop {
            let stats = self.stats(&host.base).await;
            let missing = self.unaccounted(host, &stats).await;
            if missing.is_empty() {
                return stats;
            }
            let (late, missing) = (Instant::now() > deadline, missing.join("\n"));
            assert!(!late, "unaccounted:\n{missing}\n{}", tail(host));
            self.maybe_sample(host).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// A burst on one key of the hold triggers, which then wait for their
    /// deadlines (after the restart), once they took all of it.
    async fn probe(&mut self, host: &Replica) {
        for seq in 0..HOLD {
            let data = json!({"k": "restart", "seq": seq});
            self.publish(&host.base, "hold.in", data).await;
        }
        self.probed = true;
        let deadline = Instant::now() + SETTLE;
        loop {
            let now = self.stats(&host.base).await;
            let debounced = self.total(&now, "hold-debounce", "debounced");
            if debounced == HOLD - 1 && self.total(&now, "hold-batch", "batched") == HOLD {
                return;
            }
            assert!(Instant::now() < deadline, "burst not taken: {now:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM; it must exit 0.
    async fn stop(&mut self, mut host: Replica) {
        self.sample(&host).await;
        self.reloads += self.samples.last().unwrap().loads - self.loads_at_start;
        let pid = libc::pid_t::try_from(host.child.id()).unwrap();
        // SAFETY: a plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + EXIT;
        let status = loop {
            if let Some(status) = host.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running:\n{}", tail(&host));
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(status.success(), "{status} on SIGTERM:\n{}", tail(&host));
        tokio::time::sleep(Duration::from_millis(500)).await; // the last log lines
        let log = host.log.lock().unwrap();
        let swaps = log.iter().filter(|l| l.contains("swapped plugin"));
        self.swaps_logged += swaps.filter(|l| l.contains("plugin=error_alert")).count();
    }
}

/// The last lines `host` logged.
fn tail(host: &Replica) -> String {
    let log = host.log.lock().unwrap();
    log[log.len().saturating_sub(40)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let secs: u64 = std::env::var("WASMSCHED_SOAK_SECS")
        .map(|s| s.parse().expect("WASMSCHED_SOAK_SECS: seconds"))
        .unwrap_or(DEFAULT_SECS);
    let half = Duration::from_secs(secs) / 2;
    let mut soak = Soak::new(secs).await;

    let host = soak.start().await;
    soak.traffic(&host, half).await;
    soak.settle(&host).await;
    soak.probe(&host).await;
    soak.prior = soak.stats(&host.base).await;
    soak.stop(host).await;

    let host = soak.start().await;
    soak.traffic(&host, half).await;
    let now = soak.settle(&host).await;
    soak.stop(host).await;

    println!("\n{}", Sample::HEADER);
    for sample in &soak.samples {
        println!("{}", sample.row());
    }
    println!("\ntrigger counters, both runs:");
    for (id, stats) in &now {
        let counters = stats.as_object().unwrap().iter();
        let counters = counters.filter_map(|(field, _)| {
            let total = soak.total(&now, id, field);
            (total > 0).then(|| format!("{field} {total}"))
        });
        println!("  {id}: {}", counters.collect::<Vec<_>>().join(", "));
    }
    let (debounce, batch) = (&now["hold-debounce"]["fires"], &now["hold-batch"]["fires"]);
    println!("held across the restart, fired in the second run: {debounce}, {batch}");
    let received = soak.received.lock().unwrap();
    println!(
        "{:.0} s: {} api calls, {} log events; receiver: {} events in {} requests \
         ({} answered 500); plugin replaced {} times, {} loads counted, {} swaps logged",
        soak.started.elapsed().as_secs_f64(),
        soak.api.len(),
        soak.logs.len(),
        received.events.len(),
        received.requests,
        received.injected,
        soak.replacements,
        soak.reloads,
        soak.swaps_logged,
    );
    let replaced = soak.replacements;
    assert!(soak.reloads >= f64::from(replaced), "loads counted");
    assert!(soak.swaps_logged >= replaced as usize, "swaps logged");

    // Flatness after the restart's warm-up: the last sample against the first.
    let second: Vec<&Sample> = soak.samples.iter().filter(|s| s.life == 2).collect();
    let warm = WARM_UP.as_secs_f64() + soak.life_started;
    let base = second.iter().find(|s| s.secs >= warm).unwrap_or(&second[0]);
    let last = second.last().unwrap();
    let fds = (base.fds, last.fds);
    assert!(fds.1 <= 2 * fds.0 + 16, "descriptors grew: {fds:?}");
    let tasks = (base.tasks, last.tasks);
    assert!(tasks.1 <= 2.0 * tasks.0 + 32.0, "tasks grew: {tasks:?}");
}
