//! Per-event cost of a WebAssembly filter and factory against the same
//! logic as a native closure, side by side in one run.
//!
//! Run: `cargo bench --bench plugin_call`. Method: for each contender,
//! 7 rounds of N calls after a warm-up, awaited one after another on a
//! current-thread tokio runtime; report the median round as ns per call,
//! and the ratio to the native baseline measured in the same run.
//!
//! Two ways of keeping a slow plugin off the async runtime's workers are
//! compared (issue "A slow plugin never stalls the host"): (a) the call as
//! a future on the caller's runtime, yielding at every epoch tick (what
//! wasmsched does), and (b) the same call handed to a dedicated pool of two
//! threads (a second tokio runtime) and awaited. The second table gives
//! how late a task scheduled every 2 ms starts on a 2-worker runtime while
//! N calls of a plugin that loops until its 100 ms deadline are in flight.
//!
//! Then, for the threshold filter in each language (Rust `large_dataset`,
//! Python `py_threshold`, JavaScript `js_threshold`, C `c_threshold`, Zig
//! `zig_threshold`; all but the first built by `plugins/build-LANG.sh` into
//! `WASMSCHED_POLYGLOT_DIR`, default `<target>/polyglot`): load time without the compiled-code cache,
//! with a warm cache (median of 5), and the per-call cost of `accept`.

use std::collections::BTreeMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};

use serde_json::{Value, json};
use wasmsched::plugin::{PluginRuntime, RuntimeOptions};
use wasmsched::{Cause, Event, Factory, Filter, Firing, NewEvent, Topic, factory_fn, filter_fn};

const ROUNDS: usize = 7;

/// Median over [`ROUNDS`] of the ns per call of `calls` calls of `body`,
/// each awaited in turn on `runtime`.
fn median_ns_per_call<F, Fut>(runtime: &Runtime, calls: usize, mut body: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    runtime.block_on(async {
        for _ in 0..calls / 10 {
            body().await;
        }
        let mut rounds = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for _ in 0..calls {
                body().await;
            }
            rounds.push(start.elapsed().as_nanos() as f64 / calls as f64);
        }
        rounds.sort_by(f64::total_cmp);
        rounds[ROUNDS / 2]
    })
}

fn plugin_path(name: &str) -> String {
    format!("{}/plugins/{name}.wasm", env!("CARGO_MANIFEST_DIR"))
}

fn report(name: &str, ns: f64, baseline: f64) {
    println!(
        "{name:<44} {:>10.0} ns/call   {:>7.1}x native",
        ns,
        ns / baseline
    );
}

fn main() {
    let runtime = PluginRuntime::new(RuntimeOptions::default()).expect("runtime");
    let config: BTreeMap<String, String> = [("threshold".to_owned(), "1000".to_owned())].into();

    // Filter: the large_dataset plugin vs the same rule as a closure.
    let event = Event::new(
        Topic::new("pipeline.collection.completed").unwrap(),
        json!({ "rows_count": 5000, "table": "orders" }),
    );
    let native_filter =
        filter_fn(|e: &Event| e.data["rows_count"].as_f64().is_some_and(|n| n > 1000.0));
    let wasm_filter: Arc<dyn Filter> = runtime
        .load_file(plugin_path("large_dataset").as_ref(), None)
        .expect("large_dataset.wasm (built by build.rs)")
        .filter("bench", config.clone())
        .unwrap();
    let rt = Builder::new_current_thread().enable_all().build().unwrap();
    // (b): a dedicated pool of two plugin threads, awaited.
    let pool = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("plugin-pool")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(native_filter.accept(&event).await.unwrap());
        assert!(wasm_filter.accept(&event).await.unwrap());
    });

    // Factory: the github_webhook plugin vs the same mapping as a closure.
    let payload =
        json!({"action": "opened", "repository": {"full_name": "o/r"}, "sender": {"login": "u"}});
    let firing = Firing::new("bench", chrono::Utc::now(), Cause::Api { payload });
    let native_factory = factory_fn(|f: &Firing| {
        let p = f.payload().cloned().unwrap_or(Value::Null);
        Ok(vec![NewEvent::new(json!({
            "kind": "github",
            "action": p["action"],
            "repository": p["repository"]["full_name"],
            "sender": p["sender"]["login"],
            "payload": p,
        }))])
    });
    let wasm_factory: Arc<dyn Factory> = runtime
        .load_file(plugin_path("github_webhook").as_ref(), None)
        .expect("github_webhook.wasm")
        .factory("bench", BTreeMap::new())
        .unwrap();

    println!("wasmsched plugin call benchmark: median of {ROUNDS} rounds");
    let native = median_ns_per_call(&rt, 200_000, || async {
        black_box(native_filter.accept(black_box(&event)).await.unwrap());
    });
    let wasm = median_ns_per_call(&rt, 5_000, || async {
        black_box(wasm_filter.accept(black_box(&event)).await.unwrap());
    });
    let pooled = median_ns_per_call(&rt, 5_000, || {
        let (filter, event) = (wasm_filter.clone(), event.clone());
        let call = pool.spawn(async move { filter.accept(&event).await.unwrap() });
        async move {
            black_box(call.await.unwrap());
        }
    });
    report("filter, native closure", native, native);
    report(
        "filter, wasm, (a) async on the caller's runtime",
        wasm,
        native,
    );
    report(
        "filter, wasm, (b) on a 2-thread pool, awaited",
        pooled,
        native,
    );

    let native = median_ns_per_call(&rt, 100_000, || async {
        black_box(
            native_factory
                .make_events(black_box(&firing))
                .await
                .unwrap(),
        );
    });
    let wasm = median_ns_per_call(&rt, 5_000, || async {
        black_box(wasm_factory.make_events(black_box(&firing)).await.unwrap());
    });
    let pooled = median_ns_per_call(&rt, 5_000, || {
        let (factory, firing) = (wasm_factory.clone(), firing.clone());
        let call = pool.spawn(async move { factory.make_events(&firing).await.unwrap() });
        async move {
            black_box(call.await.unwrap());
        }
    });
    report("factory, native closure", native, native);
    report(
        "factory, wasm, (a) async on the caller's runtime",
        wasm,
        native,
    );
    report(
        "factory, wasm, (b) on a 2-thread pool, awaited",
        pooled,
        native,
    );

    responsiveness(&runtime, &pool);

    println!();
    println!(
        "{:<14} {:>14} {:>14} {:>14}",
        "filter", "load, no cache", "load, cached", "accept call"
    );
    let polyglot = polyglot_dir();
    let languages = [
        (
            "rust",
            std::path::PathBuf::from(plugin_path("large_dataset")),
        ),
        ("python", polyglot.join("py_threshold.wasm")),
        ("javascript", polyglot.join("js_threshold.wasm")),
        ("c", polyglot.join("c_threshold.wasm")),
        ("zig", polyglot.join("zig_threshold.wasm")),
    ];
    for (language, path) in languages {
        if !path.exists() {
            println!(
                "{language:<14} (missing {}: build it first)",
                path.display()
            );
            continue;
        }
        let uncached = Instant::now();
        let plugin = runtime.load_file(&path, None).unwrap();
        let uncached = uncached.elapsed();
        let cache = tempfile::tempdir().unwrap();
        let cached_runtime =
            PluginRuntime::with_code_cache(RuntimeOptions::default(), cache.path()).unwrap();
        cached_runtime.load_file(&path, None).unwrap(); // fills the cache
        let mut loads: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                cached_runtime.load_file(&path, None).unwrap();
                start.elapsed().as_secs_f64()
            })
            .collect();
        loads.sort_by(f64::total_cmp);
        let filter = plugin.filter("bench", config.clone()).unwrap();
        assert!(rt.block_on(filter.accept(&event)).unwrap());
        let per_call = median_ns_per_call(&rt, 500, || async {
            black_box(filter.accept(black_box(&event)).await.unwrap());
        });
        println!(
            "{language:<14} {:>11.0} ms {:>11.1} ms {:>11.1} µs",
            uncached.as_secs_f64() * 1e3,
            loads[2] * 1e3,
            per_call / 1e3
        );
    }
}

/// How late a task scheduled every 2 ms starts on a 2-worker runtime (the
/// host's on this machine) while `spinning` calls of `adv_loop` (a filter
/// that loops until its 100 ms deadline) are in flight: (a) on that
/// runtime, (b) on `pool`. Concurrency limits are lifted so that all
/// `spinning` calls run at once.
fn responsiveness(runtime: &PluginRuntime, pool: &Runtime) {
    let _ = runtime;
    let guest = format!("{}/adv_loop.wasm", env!("WASMSCHED_GUEST_DIR"));
    let spinners = PluginRuntime::new(RuntimeOptions::default().with_max_calls(64, 64))
        .unwrap()
        .load_file(guest.as_ref(), None)
        .expect("adv_loop.wasm (built by build.rs)");
    println!();
    println!("task start delay while plugins spin (2 workers, a task every 2 ms for 2 s)");
    println!(
        "{:<46} {:>9} {:>9} {:>9} {:>9}",
        "contender", "p50", "p95", "p99", "max"
    );
    for spinning in [0usize, 4, 16] {
        for pooled in [false, true] {
            if spinning == 0 && pooled {
                continue;
            }
            // Like the host's runtime (`wasmsched::host::runtime`).
            let host = Builder::new_multi_thread()
                .worker_threads(2)
                .event_interval(wasmsched::host::EVENT_INTERVAL)
                .enable_all()
                .build()
                .unwrap();
            let filter = spinners.filter("spin", BTreeMap::new()).unwrap();
            let pool_handle = pool.handle().clone();
            let delays = host.block_on(async move {
                let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let event = Event::new(Topic::new("storm").unwrap(), json!({}));
                for _ in 0..spinning {
                    let (filter, stop, event) = (filter.clone(), stop.clone(), event.clone());
                    let pool_handle = pool_handle.clone();
                    tokio::spawn(async move {
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            if pooled {
                                let (filter, event) = (filter.clone(), event.clone());
                                let call = pool_handle.spawn(async move {
                                    let _ = filter.accept(&event).await;
                                });
                                let _ = call.await;
                            } else {
                                let _ = filter.accept(&event).await;
                            }
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut delays = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    let spawned = Instant::now();
                    let started = tokio::spawn(async move { spawned.elapsed() })
                        .await
                        .unwrap();
                    delays.push(started.as_secs_f64() * 1e3);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                delays
            });
            host.shutdown_timeout(Duration::from_secs(1));
            let mut delays = delays;
            delays.sort_by(f64::total_cmp);
            let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
            let name = match (spinning, pooled) {
                (0, _) => "no plugin spinning".to_owned(),
                (n, false) => format!("{n} spinning, (a) async on the runtime"),
                (n, true) => format!("{n} spinning, (b) on a 2-thread pool"),
            };
            println!(
                "{name:<46} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>6.2} ms",
                at(0.5),
                at(0.95),
                at(0.99),
                delays[delays.len() - 1]
            );
        }
    }
}

fn polyglot_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("WASMSCHED_POLYGLOT_DIR") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| format!("{}/target", env!("CARGO_MANIFEST_DIR")).into());
    target.join("polyglot")
}
