//! Hot reload, measured on a running host.
//!
//! 1. Swap latency: from the moment a new version of a Rust filter plugin
//!    is fully written (renamed into `plugins/`) to the moment that
//!    version decides events. The `parity` filter alternates between the
//!    guests `accept_even` and `accept_odd`, the watcher idle before each
//!    swap; after each rename a prober publishes events the new version
//!    accepts and the old one rejects, one at a time (polling for each
//!    decision every ~1 ms), until one is accepted. Two cases: *cached* (a
//!    version seen before: its compiled code is in the cache) and *fresh*
//!    (bytes never seen: compiled by Cranelift); a fresh version is an
//!    existing one with a unique custom section appended.
//! 2. Restart time: `Config::load` + `Host::start` (until every trigger
//!    runs) for 20 plugins with one trigger each (the 6 Rust guests, each
//!    copy made unique with a custom section), compiled-code cache cold
//!    (emptied before each run) vs warm.
//!
//! Run: `cargo bench --bench reload`. Prints median and p95 (latency) or
//! median, min and max (restart).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::{Event, Topic, Trigger};

const SWAPS: usize = 20;
const RESTARTS: usize = 5;
const PLUGINS: usize = 20;

fn guest(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("WASMSCHED_GUEST_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (built by build.rs)", path.display()))
}

/// `component` with a custom section appended: the same code, other bytes.
fn unique(component: &[u8], tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                return;
            }
        }
    }
    let name = b"wasmsched-bench";
    let mut contents = Vec::new();
    leb(name.len(), &mut contents);
    contents.extend_from_slice(name);
    contents.extend_from_slice(tag.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb(contents.len(), &mut out);
    out.extend_from_slice(&contents);
    out
}

fn write_atomically(dir: &Path, name: &str, contents: &[u8]) {
    let temp = dir.join(format!(".{name}.partial"));
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

/// A config file in `root`, with `plugins/` and its cache beside it.
fn load_config(root: &Path) -> Config {
    let path = root.join("wasmsched.toml");
    std::fs::write(&path, "").unwrap();
    Config::load(&path).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Publishes events with data `n` of parity `odd` until `trigger`
/// accepts one; returns when it did.
async fn first_acceptance(host: &Host, trigger: &Arc<dyn Trigger>, odd: bool) -> Instant {
    let topic = Topic::new("numbers.in").unwrap();
    let mut n: u64 = if odd { 1 } else { 0 };
    loop {
        let before = trigger.stats();
        let decided =
            |s: wasmsched::trigger::TriggerStats| s.filter_accepted + s.filter_rejected + s.errors;
        host.broker()
            .publish(Event::new(topic.clone(), json!({ "n": n })))
            .await
            .unwrap();
        while decided(trigger.stats()) == decided(before) {
            // Not a busy loop: it would take a core from the compiler.
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        if trigger.stats().filter_accepted > before.filter_accepted {
            return Instant::now();
        }
        n += 2;
    }
}

async fn swap_latency(fresh: bool) -> Vec<Duration> {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let manifest = "[[trigger]]\nid = \"parity\"\nkind = \"event\"\nsource = \"numbers.in\"\n\
                    topic = \"numbers.accepted\"\nplugin = \"parity\"\n";
    std::fs::write(plugins.join("parity.toml"), manifest).unwrap();
    let (even, odd) = (guest("accept_even"), guest("accept_odd"));
    std::fs::write(plugins.join("parity.wasm"), &even).unwrap();
    let host = Host::start(load_config(root.path())).await.unwrap();
    let trigger = host
        .triggers()
        .registration("parity")
        .await
        .unwrap()
        .trigger;
    // Each swap starts with the watcher idle (its first rescan done, the
    // last swap's events handled): samples are independent.
    let idle = || tokio::time::sleep(Duration::from_millis(400));
    idle().await;
    // Warm-up: both versions swapped in once (and so cached).
    let mut samples = Vec::new();
    for swap in 0..SWAPS + 2 {
        let odd_next = swap % 2 == 0;
        let base = if odd_next { &odd } else { &even };
        let contents = match fresh {
            true => unique(base, &format!("swap-{swap}")),
            false => base.clone(),
        };
        write_atomically(&plugins, "parity.wasm", &contents);
        let written = Instant::now();
        let decided = first_acceptance(&host, &trigger, odd_next).await;
        if swap >= 2 {
            samples.push(decided - written);
        }
        idle().await;
    }
    host.stop().await;
    samples.sort();
    samples
}

/// 20 plugins (the 6 Rust guests, made unique), each with a trigger.
fn twenty_plugins(plugins: &Path) {
    let kinds = [
        ("accept_even", "event"),
        ("accept_odd", "event"),
        ("large_dataset", "event"),
        ("error_alert", "event"),
        ("github_webhook", "api"),
        ("pipeline_stage", "api"),
    ];
    for i in 0..PLUGINS {
        let (base, kind) = kinds[i % kinds.len()];
        let name = format!("p{i:02}");
        let wasm = unique(&guest(base), &name);
        std::fs::write(plugins.join(format!("{name}.wasm")), wasm).unwrap();
        let source = match kind {
            "event" => format!("source = \"bench.{name}\"\n"),
            _ => String::new(),
        };
        let manifest = format!(
            "[[trigger]]\nid = \"{name}\"\nkind = \"{kind}\"\ntopic = \"out.{name}\"\nplugin = \"{name}\"\n{source}"
        );
        std::fs::write(plugins.join(format!("{name}.toml")), manifest).unwrap();
    }
}

async fn restart(cold: bool) -> Vec<Duration> {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    twenty_plugins(&plugins);
    let mut samples = Vec::new();
    for run in 0..=RESTARTS {
        let cache = plugins.join(".cache");
        if cold {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let started = Instant::now();
        let host = Host::start(load_config(root.path())).await.unwrap();
        let took = started.elapsed();
        assert!(host.problems().is_empty(), "{:?}", host.problems());
        assert_eq!(host.plugins().list().len(), PLUGINS);
        host.stop().await;
        drop(host);
        // Let the watcher's first rescan finish before the next start.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The first warm run fills the cache.
        if cold || run > 0 {
            samples.push(took);
        }
    }
    samples.truncate(RESTARTS);
    samples.sort();
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("swap latency, file written -> new version decides ({SWAPS} swaps each)");
        for (label, fresh) in [
            ("cached (version seen before)", false),
            ("fresh (compiled)", true),
        ] {
            let samples = swap_latency(fresh).await;
            println!(
                "  {label:<30} median {:>7.1} ms   p95 {:>7.1} ms   max {:>7.1} ms",
                ms(percentile(&samples, 0.5)),
                ms(percentile(&samples, 0.95)),
                ms(samples[samples.len() - 1]),
            );
        }
        println!(
            "restart with {PLUGINS} plugins, Config::load + Host::start ({RESTARTS} runs each)"
        );
        for (label, cold) in [
            ("compiled-code cache cold", true),
            ("compiled-code cache warm", false),
        ] {
            let samples = restart(cold).await;
            println!(
                "  {label:<30} median {:>7.1} ms   min {:>7.1} ms   max {:>7.1} ms",
                ms(percentile(&samples, 0.5)),
                ms(samples[0]),
                ms(samples[samples.len() - 1]),
            );
        }
    });
}
