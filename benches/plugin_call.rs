//! Per-event cost of a WebAssembly filter and factory against the same
//! logic as a native closure, side by side in one run.
//!
//! Run: `cargo bench --bench plugin_call`. Method: for each contender,
//! 7 rounds of N calls after a warm-up; report the median round as ns per
//! call, and the ratio to the native baseline measured in the same run.
//!
//! Then, for the threshold filter in each language (Rust `large_dataset`,
//! Python `py_threshold`, JavaScript `js_threshold`; the last two built by
//! `plugins/build-python.sh` / `build-js.sh` into `WASMSCHED_POLYGLOT_DIR`,
//! default `<target>/polyglot`): load time without the compiled-code cache,
//! with a warm cache (median of 5), and the per-call cost of `accept`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use wasmsched::plugin::{PluginRuntime, RuntimeOptions};
use wasmsched::trigger::TriggerKind;
use wasmsched::{Event, Factory, Filter, Firing, NewEvent, Topic, factory_fn, filter_fn};

const ROUNDS: usize = 7;

fn median_ns_per_call(calls: usize, mut body: impl FnMut()) -> f64 {
    for _ in 0..calls / 10 {
        body();
    }
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                body();
            }
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
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
    assert!(native_filter.accept(&event).unwrap() && wasm_filter.accept(&event).unwrap());

    // Factory: the github_webhook plugin vs the same mapping as a closure.
    let payload =
        json!({"action": "opened", "repository": {"full_name": "o/r"}, "sender": {"login": "u"}});
    let firing = Firing {
        trigger_id: "bench".into(),
        kind: TriggerKind::Api,
        instant: chrono::Utc::now(),
        payload: Some(payload),
        source: None,
    };
    let native_factory = factory_fn(|f: &Firing| {
        let p = f.payload.clone().unwrap_or(Value::Null);
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
    let native = median_ns_per_call(200_000, || {
        black_box(native_filter.accept(black_box(&event)).unwrap());
    });
    let wasm = median_ns_per_call(5_000, || {
        black_box(wasm_filter.accept(black_box(&event)).unwrap());
    });
    report("filter, native closure", native, native);
    report("filter, wasm (warm instance per trigger)", wasm, native);

    let native = median_ns_per_call(100_000, || {
        black_box(native_factory.make_events(black_box(&firing)).unwrap());
    });
    let wasm = median_ns_per_call(5_000, || {
        black_box(wasm_factory.make_events(black_box(&firing)).unwrap());
    });
    report("factory, native closure", native, native);
    report("factory, wasm (warm instance per trigger)", wasm, native);

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
        assert!(filter.accept(&event).unwrap());
        let per_call = median_ns_per_call(500, || {
            black_box(filter.accept(black_box(&event)).unwrap());
        });
        println!(
            "{language:<14} {:>11.0} ms {:>11.1} ms {:>11.1} µs",
            uncached.as_secs_f64() * 1e3,
            loads[2] * 1e3,
            per_call / 1e3
        );
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
