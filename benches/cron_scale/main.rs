//! Many cron triggers: `wasmsched run` as a user runs it (a black box: the
//! binary on a generated config with its default SQLite store, see
//! [`run`]), wasmsched's scheduler alone, and tokio-cron-scheduler 0.15 side
//! by side in one run, each contender in a child process of this bench (so
//! resident memory is its own).
//!
//! Run: `cargo bench --bench cron_scale [-- N]` (N = 100 000 by default).
//!
//! `wasmsched run` (contenders `wasmsched-run` and `wasmsched-run-distinct`):
//! the time until `/healthz` answers, until it says `ready` (every cron
//! trigger started), until the process is settled (less
//! than 2 % of a core over half a second), resident memory a second later,
//! idle CPU over the next 10 s and the log lines written; lateness is read
//! from `/api/events/stream` (the event's arrival minus the instant it
//! carries).
//!
//! Per in-process contender:
//! - capacity (3 rounds, alternating): N jobs on `0 * * * *` (none due):
//!   the time to add and start them, resident memory 1 s later, the heap
//!   it holds (live bytes and blocks, from a counting allocator), and CPU
//!   while idle over the next 10 s;
//! - lateness (1 round): 10 000 jobs on `* * * * *`, all due at the next
//!   minute and the next: how late each runs (its start minus the
//!   scheduled instant), p50 and p99 of each minute (the first after the
//!   start pays for memory the process touches first).
//!
//! Two more wasmsched rows, capacity only: every trigger on a schedule of
//! its own (`M H D MON *`, N distinct expressions, none due within the
//! measure), and the plain one with a SQLite state store (as `wasmsched
//! run` has by default: each trigger reads its last fire at the start and
//! claims it; ready once every claim is in the store).
//!
//! tokio-cron-scheduler takes 6-field expressions (seconds first): its jobs
//! are `0 0 * * * *` and `0 * * * * *`, the same instants.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use serde_json::{Value, json};

/// Counts live heap bytes and blocks.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
/// Live blocks by size, in 16-byte steps up to 4 KiB (the last: larger).
static BY_SIZE: [AtomicIsize; 257] = [const { AtomicIsize::new(0) }; 257];

fn size_class(size: usize) -> usize {
    (size.div_ceil(16)).min(256)
}

/// Counting is on for the capacity measure only: its shared counters would
/// slow every allocation of the lateness measure (both cores contend for
/// them).
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !COUNTING.load(Ordering::Relaxed) {
            return unsafe { System.alloc(layout) };
        }
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        BY_SIZE[size_class(layout.size())].fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !COUNTING.load(Ordering::Relaxed) {
            return unsafe { System.dealloc(ptr, layout) };
        }
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        BY_SIZE[size_class(layout.size())].fetch_sub(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !COUNTING.load(Ordering::Relaxed) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const LATENCY_JOBS: usize = 10_000;
const ROUNDS: usize = 3;
/// Measured for capacity and lateness: the product, its peer, and the
/// scheduler inside it.
const CONTENDERS: [&str; 3] = ["wasmsched-run", "tokio-cron-scheduler", "wasmsched"];
/// Measured for capacity only.
const VARIANTS: [&str; 4] = [
    "wasmsched-run-distinct",
    "wasmsched-host",
    "wasmsched-distinct",
    "wasmsched-sqlite",
];

mod run;

use wasmsched_test_support::bench::proc;

use proc::{cpu_seconds, rss_mib};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--contender") {
        let (contender, mode, n) = (&args[i + 1], &args[i + 2], args[i + 3].parse().unwrap());
        // Counting from the start, so every block freed was counted in.
        COUNTING.store(mode == "capacity", Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(child(contender, mode, n));
        println!("{result}");
        return;
    }
    // `cargo bench` passes `--bench`: the count is the first number given.
    let n: usize = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let all: Vec<&str> = CONTENDERS.iter().chain(&VARIANTS).copied().collect();
    let mut capacity: Vec<Vec<Value>> = vec![Vec::new(); all.len()];
    for _ in 0..ROUNDS {
        for (i, contender) in all.iter().enumerate() {
            capacity[i].push(run_child(contender, "capacity", n));
        }
    }
    println!(
        "{n} cron jobs not due (median of {ROUNDS} rounds, each contender in its own process):"
    );
    println!(
        "{:<24} {:>10} {:>10} {:>11} {:>12} {:>10} {:>11} {:>10} {:>10}",
        "",
        "answers (s)",
        "ready (s)",
        "settled (s)",
        "resident MiB",
        "heap MiB",
        "heap blocks",
        "idle CPU %",
        "log lines"
    );
    for (contender, samples) in all.iter().zip(&capacity) {
        // What a contender does not report (a black box has no heap
        // count) is NaN.
        let m = |key: &str| {
            median(
                (samples.iter())
                    .map(|s| s[key].as_f64().unwrap_or(f64::NAN))
                    .collect(),
            )
        };
        println!(
            "{contender:<24} {:>10.2} {:>10.2} {:>11.2} {:>12.1} {:>10.1} {:>11.0} {:>10.2} {:>10.0}",
            m("answers_s"),
            m("ready_s"),
            m("settled_s"),
            m("rss_mib"),
            m("heap_mib"),
            m("heap_blocks"),
            m("idle_cpu_pct"),
            m("log_lines")
        );
    }
    println!(
        "{LATENCY_JOBS} cron jobs due at the same minute: lateness (ms), the first minute \
         after the start and the next"
    );
    for contender in CONTENDERS {
        let result = run_child(contender, "lateness", LATENCY_JOBS);
        // `wasmsched run` also says when its events reached the stream's
        // client.
        for (what, result) in [("", &result), (" arrived", &result["arrived"])] {
            for minute in ["first", "second"] {
                let r = &result[minute];
                if r.is_null() {
                    continue;
                }
                let ms = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
                println!(
                    "{contender:<22} {minute:<6}{what:<8} p50 {:>8.1}  p99 {:>8.1}  max {:>8.1}  ({} ran)",
                    ms("p50_ms"),
                    ms("p99_ms"),
                    ms("max_ms"),
                    r["ran"]
                );
            }
        }
    }
}

fn run_child(contender: &str, mode: &str, n: usize) -> Value {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--contender", contender, mode, &n.to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{contender} {mode}: {output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

async fn child(contender: &str, mode: &str, n: usize) -> Value {
    match (contender, mode) {
        ("wasmsched-run", "capacity") => run::capacity(n, false).await,
        ("wasmsched-run-distinct", _) => run::capacity(n, true).await,
        ("wasmsched-run", _) => run::lateness(n).await,
        (_, "capacity") => capacity(contender, n).await,
        _ => lateness(contender, n).await,
    }
}

/// The `i`th of up to 483 840 distinct schedules, none due in the next
/// minute or so (never the current hour's minute).
fn distinct(i: usize) -> String {
    format!(
        "{} {} {} {} *",
        i % 60,
        (Utc::now().hour() as usize + 1 + (i / 60) % 23) % 24,
        1 + (i / 1440) % 28,
        1 + (i / 40_320) % 12
    )
}

/// Returns at least 20 s before the next minute boundary, so every job is
/// in place before it.
async fn before_a_minute_boundary() {
    let second = Utc::now().timestamp() % 60;
    if second > 40 {
        tokio::time::sleep(Duration::from_secs((62 - second) as u64)).await;
    }
}

/// Keeps whatever scheduler was started alive until the measure is done
/// (held, never read).
#[allow(dead_code)]
enum Running {
    Wasmsched(wasmsched::Scheduler),
    Host(Arc<wasmsched::host::Host>, tempfile::TempDir),
    Peer(tokio_cron_scheduler::JobScheduler),
}

async fn start(contender: &str, n: usize, every_minute: bool, lateness: &Lateness) -> Running {
    match contender {
        "wasmsched-host" => {
            // What `wasmsched run` holds, in this process (so its heap is
            // counted): the config loaded, the host started on SQLite.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("wasmsched.toml");
            std::fs::write(&path, run::config(n, 0, |_| "0 3 1 1 *".to_owned())).unwrap();
            let config = wasmsched::config::Config::load(&path).unwrap();
            let host = wasmsched::host::Host::start(config).await.unwrap();
            while host.triggers().starting() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Running::Host(host, dir)
        }
        "wasmsched" | "wasmsched-distinct" | "wasmsched-sqlite" => {
            use wasmsched::{MemoryBroker, Scheduler, Topic, TriggerSpec};
            let mut scheduler = Scheduler::new(Arc::new(MemoryBroker::new()));
            if contender == "wasmsched-sqlite" {
                let path =
                    std::env::temp_dir().join(format!("cron-scale-{}.db", std::process::id()));
                let _ = std::fs::remove_file(&path);
                let store = wasmsched::state::sqlite::SqliteStore::open(&path, Default::default());
                scheduler = scheduler.with_state(Arc::new(store.await.unwrap()));
            }
            let expression = |i: usize| match (every_minute, contender) {
                (true, _) => "* * * * *".to_owned(),
                (false, "wasmsched-distinct") => distinct(i),
                (false, _) => "0 * * * *".to_owned(),
            };
            for i in 0..n {
                let factory = every_minute.then(|| {
                    let lateness = lateness.clone();
                    wasmsched::factory_fn(move |firing| {
                        lateness.record(firing.instant, Utc::now() - firing.instant);
                        Ok(vec![])
                    })
                });
                let spec = TriggerSpec::cron(expression(i));
                let trigger = wasmsched::create_trigger(&spec, factory, None).unwrap();
                scheduler
                    .register(format!("t{i}"), trigger, Topic::new("x").unwrap())
                    .await
                    .unwrap();
            }
            scheduler.start().await.unwrap();
            if let Some(store) = scheduler.store() {
                // Started once every trigger's start is written: the
                // starts go on in the background after `start` returns,
                // in order, so the last trigger's claim comes last.
                let last = format!("t{}", n - 1);
                while store.last_fire(&last).await.unwrap().is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Running::Wasmsched(scheduler)
        }
        _ => {
            use tokio_cron_scheduler::{Job, JobScheduler};
            let scheduler = JobScheduler::new().await.unwrap();
            let expression = if every_minute {
                "0 * * * * *"
            } else {
                "0 0 * * * *"
            };
            for _ in 0..n {
                let job = match every_minute {
                    true => {
                        let lateness = lateness.clone();
                        Job::new(expression, move |_, _| {
                            let now = Utc::now();
                            let scheduled = now.duration_trunc(TimeDelta::minutes(1)).unwrap();
                            lateness.record(scheduled, now - scheduled);
                        })
                    }
                    false => Job::new(expression, |_, _| {}),
                };
                scheduler.add(job.unwrap()).await.unwrap();
            }
            scheduler.start().await.unwrap();
            Running::Peer(scheduler)
        }
    }
}

async fn capacity(contender: &str, n: usize) -> Value {
    let started = Instant::now();
    let running = start(contender, n, false, &Lateness::default()).await;
    let ready_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_mib = rss_mib();
    let heap_mib = LIVE_BYTES.load(Ordering::Relaxed) as f64 / 1048576.0;
    let heap_blocks = LIVE_BLOCKS.load(Ordering::Relaxed);
    let cpu = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu_pct = (cpu_seconds() - cpu) / 10.0 * 100.0;
    if std::env::var_os("CRON_SCALE_SIZES").is_some() {
        // The size classes holding most of the heap (for profiling).
        let mut classes: Vec<(usize, isize)> = BY_SIZE
            .iter()
            .enumerate()
            .map(|(i, n)| (i * 16, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 1000)
            .collect();
        classes.sort_by_key(|(size, n)| -(*size as isize * n));
        eprintln!("{contender}: live blocks by size (up to N bytes): {classes:?}");
    }
    drop(running);
    json!({"ready_s": ready_s, "rss_mib": rss_mib, "heap_mib": heap_mib,
           "heap_blocks": heap_blocks, "idle_cpu_pct": idle_cpu_pct})
}

/// How late each job ran, in milliseconds, by scheduled instant.
#[derive(Clone, Default)]
struct Lateness(Arc<Mutex<Vec<Sample>>>);

/// A job's scheduled instant and how late it ran (ms).
type Sample = (DateTime<Utc>, f64);

impl Lateness {
    fn record(&self, scheduled: DateTime<Utc>, late: TimeDelta) {
        let ms = late.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
        self.0.lock().unwrap().push((scheduled, ms));
    }

    /// p50, p99 and max of the jobs scheduled for `minute`.
    fn summary(&self, minute: DateTime<Utc>) -> Value {
        let mut samples: Vec<f64> = (self.0.lock().unwrap().iter())
            .filter(|(at, _)| *at == minute)
            .map(|(_, ms)| *ms)
            .collect();
        if samples.is_empty() {
            return json!({"ran": 0});
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        json!({"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": samples[samples.len() - 1],
               "ran": samples.len()})
    }
}

async fn lateness(contender: &str, n: usize) -> Value {
    before_a_minute_boundary().await;
    let lateness = Lateness::default();
    let running = start(contender, n, true, &lateness).await;
    let first = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::minutes(1);
    let second = first + TimeDelta::minutes(1);
    let wait = (second - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(10);
    tokio::time::sleep(wait).await;
    drop(running);
    json!({"first": lateness.summary(first), "second": lateness.summary(second)})
}
