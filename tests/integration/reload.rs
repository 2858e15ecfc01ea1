//! Hot reload of the plugins directory against a running host: a filter
//! replaced 50 times under a steady stream of events (every event decided
//! exactly once), broken files and their fix, a deleted plugin and its
//! return, manifest edits, triggers waiting for their plugin, and a slowly
//! written file. (The compiled-code cache is tested in `plugins`.)
//!
//! The two versions of the `parity` filter are the guests `accept_even` and
//! `accept_odd` (built by build.rs): they accept events whose `data.n` is
//! even, respectively odd.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use wasmsched::broker::{SubscriberKind, Subscription};
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::host::PluginChangeKind;
use wasmsched::plugin::content_hash;
use wasmsched::trigger::TriggerStats;
use wasmsched::{Event, Topic, TopicPattern};
use wasmsched_test_support::wait::until_true;

/// How long a change may take to apply (a generous bound for busy machines).
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- helpers

fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("WASMSCHED_GUEST_DIR")).join(format!("{name}.wasm"))
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/plugins")).join(format!("{name}.wasm"))
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e} (built by build.rs)", path.display()))
}

/// An event trigger filtering `numbers.in` through plugin `parity` and
/// republishing the accepted events on `numbers.accepted`.
const PARITY: &str = r#"
[[trigger]]
id = "parity"
kind = "event"
source = "numbers.in"
topic = "numbers.accepted"
plugin = "parity"
"#;

/// A host on a temporary directory, watching its plugins.
struct Fixture {
    dir: TempDir,
    host: Arc<Host>,
}

impl Fixture {
    /// Writes the manifests and plugins, then starts the host. The
    /// compiled-code cache is shared by the tests (and kept across runs).
    async fn start(manifests: &[(&str, &str)], plugins: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        let manifest_files = manifests
            .iter()
            .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()));
        let plugin_files = plugins.iter().map(|(n, p)| (format!("{n}.wasm"), bytes(p)));
        for (name, contents) in manifest_files.chain(plugin_files) {
            std::fs::write(dir.path().join("plugins").join(name), contents).unwrap();
        }
        let path = dir.path().join("wasmsched.toml");
        std::fs::write(&path, "").unwrap();
        let mut config = Config::load(&path).unwrap();
        config.cache_dir = Some(concat!(env!("CARGO_TARGET_TMPDIR"), "/reload-cache").into());
        let host = Host::start(config).await.unwrap();
        assert!(host.is_watching());
        Self { dir, host }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join("plugins").join(name)
    }

    /// Replaces a file at once: written under a hidden name, then renamed.
    fn replace(&self, name: &str, contents: &[u8]) {
        let temp = self.file(&format!(".{name}.partial"));
        std::fs::write(&temp, contents).unwrap();
        std::fs::rename(&temp, self.file(name)).unwrap();
    }

    /// Rewrites a file in place, `chunk` bytes at a time, `pause` apart.
    async fn write_in_chunks(&self, name: &str, contents: &[u8], chunk: usize, pause: Duration) {
        let mut file = std::fs::File::create(self.file(name)).unwrap();
        for part in contents.chunks(chunk) {
            file.write_all(part).unwrap();
            file.flush().unwrap();
            tokio::time::sleep(pause).await;
        }
    }

    fn plugin_hash(&self, name: &str) -> Option<String> {
        Some(self.host.plugins().list().get(name)?.hash().to_owned())
    }

    fn error(&self, name: &str) -> String {
        self.host
            .plugins()
            .errors()
            .remove(name)
            .unwrap_or_default()
    }

    /// The counters of a registered trigger.
    async fn stats(&self, trigger: &str) -> TriggerStats {
        let registration = self.host.triggers().registration(trigger).await;
        registration.expect("trigger registered").trigger.stats()
    }

    /// Is the trigger registered (with the host's table)?
    fn registered(&self, trigger: &str) -> bool {
        self.host.triggers().config(trigger).is_some()
    }

    async fn publish(&self, n: u64) {
        let event = Event::new(Topic::new("numbers.in").unwrap(), json!({ "n": n }));
        self.host.broker().publish(event).await.unwrap();
    }

    /// A subscription that never drops (like a trigger's).
    async fn subscribe(&self, pattern: &str) -> Subscription {
        let pattern = TopicPattern::new(pattern).unwrap();
        let kind = SubscriberKind::Trigger {
            name: "test".into(),
        };
        self.host.broker().subscribe(&pattern, kind).await.unwrap()
    }

    /// Publishes `n` and tells whether the parity trigger accepted it.
    async fn decide(&self, n: u64) -> bool {
        let trigger = self
            .host
            .triggers()
            .registration("parity")
            .await
            .unwrap()
            .trigger;
        let decided = |s: TriggerStats| s.filter_accepted + s.filter_rejected + s.errors;
        let before = trigger.stats();
        self.publish(n).await;
        until_true(&format!("event {n} decided"), WAIT, || {
            decided(trigger.stats()) > decided(before)
        })
        .await;
        let after = trigger.stats();
        assert_eq!(after.errors, before.errors, "event {n} failed");
        after.filter_accepted > before.filter_accepted
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_replaced_50_times_decides_every_event_exactly_once() {
    let fx = Fixture::start(
        &[("parity.toml", PARITY)],
        &[("parity", &guest("accept_even"))],
    )
    .await;
    let versions = [bytes(&guest("accept_odd")), bytes(&guest("accept_even"))];
    let mut accepted_out = fx.subscribe("numbers.accepted").await;
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(delivery) = accepted_out.next().await {
            let n = delivery.event.data["n"].as_u64().unwrap();
            if n == u64::MAX {
                break;
            }
            seen.push(n);
        }
        seen
    });
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (broker, stop, published) = (fx.host.broker().clone(), stop.clone(), published.clone());
        tokio::spawn(async move {
            let topic = Topic::new("numbers.in").unwrap();
            while !stop.load(Ordering::SeqCst) {
                let n = published.load(Ordering::SeqCst);
                broker
                    .publish(Event::new(topic.clone(), json!({ "n": n })))
                    .await
                    .unwrap();
                published.store(n + 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        })
    };

    for swap in 0..50 {
        let contents = &versions[swap % 2];
        // Half the swaps rename a finished file into place, half rewrite
        // it in place in chunks; each version arrives both ways.
        if (swap / 2) % 2 == 0 {
            fx.replace("parity.wasm", contents);
        } else {
            fx.write_in_chunks("parity.wasm", contents, 8 << 10, Duration::from_millis(2))
                .await;
        }
        let hash = content_hash(contents);
        let swapped = || fx.plugin_hash("parity").as_deref() == Some(hash.as_str());
        until_true(&format!("swap {swap}"), WAIT, swapped).await;
        assert_eq!(
            fx.host.plugins().errors(),
            Default::default(),
            "after swap {swap}"
        );
    }

    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();
    let published = published.load(Ordering::SeqCst);
    let trigger = fx
        .host
        .triggers()
        .registration("parity")
        .await
        .unwrap()
        .trigger;
    until_true("every event decided", WAIT, || {
        let stats = trigger.stats();
        let decided = stats.filter_accepted + stats.filter_rejected + stats.errors;
        decided >= published && stats.events_published == stats.filter_accepted
    })
    .await;
    let stats = fx.stats("parity").await;
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(
        stats.filter_accepted + stats.filter_rejected,
        published,
        "{stats:?}"
    );
    // The end marker: accepted by whichever version (odd or even) serves.
    let end = Event::new(
        Topic::new("numbers.accepted").unwrap(),
        json!({ "n": u64::MAX }),
    );
    fx.host.broker().publish(end).await.unwrap();
    let accepted = collector.await.unwrap();
    let unique: BTreeSet<u64> = accepted.iter().copied().collect();
    assert_eq!(unique.len(), accepted.len(), "an event was accepted twice");
    assert_eq!(accepted.len() as u64, stats.filter_accepted);
    assert!(unique.iter().all(|n| *n < published));
    let odd = unique.iter().filter(|n| *n % 2 == 1).count();
    assert!(
        odd > 0 && odd < unique.len(),
        "both versions decided: {odd} odd of {}",
        unique.len()
    );
    assert!(fx.host.reload_count() >= 51);
    assert!(published > 500, "a steady stream: {published} events");
    fx.host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_old_version_serving_until_fixed() {
    let fx = Fixture::start(
        &[("parity.toml", PARITY)],
        &[("parity", &guest("accept_even"))],
    )
    .await;
    let even = content_hash(&bytes(&guest("accept_even")));
    assert!(fx.decide(2).await);

    let odd = bytes(&guest("accept_odd"));
    let broken: [(&str, Vec<u8>, &str); 3] = [
        (
            "bad bytes",
            b"not a plugin at all".to_vec(),
            "not a WebAssembly binary",
        ),
        (
            "truncated",
            odd[..odd.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "wrong world",
            bytes(&example("pipeline_stage")),
            "exports no filter, which trigger `parity` calls",
        ),
    ];
    for (case, contents, expected) in broken {
        fx.replace("parity.wasm", &contents);
        until_true(case, WAIT, || fx.error("parity").contains(expected)).await;
        assert_eq!(
            fx.plugin_hash("parity").as_deref(),
            Some(even.as_str()),
            "{case}"
        );
        assert!(
            fx.decide(4).await && !fx.decide(5).await,
            "{case}: the even version serves"
        );
    }
    // Reading a file is no change: the refused file (the last case) is not
    // loaded again and again (each load would hit the compiled-code cache).
    let cache_hits = || fx.host.runtime().cache_stats().unwrap().hits;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let hits = cache_hits();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        cache_hits(),
        hits,
        "the host keeps reloading an unchanged file"
    );

    fx.replace("parity.wasm", &odd);
    until_true("fixed", WAIT, || fx.error("parity").is_empty()).await;
    assert_eq!(fx.plugin_hash("parity"), Some(content_hash(&odd)));
    assert!(
        fx.decide(7).await && !fx.decide(8).await,
        "the odd version serves"
    );
    // The history tells the story: loaded, three failures, swapped.
    let kinds: Vec<&str> = fx
        .host
        .plugins()
        .history("parity")
        .iter()
        .map(|c| match &c.change {
            PluginChangeKind::Loaded { .. } => "loaded",
            PluginChangeKind::Swapped { .. } => "swapped",
            PluginChangeKind::Failed { .. } => "failed",
        })
        .collect();
    assert_eq!(kinds, ["loaded", "failed", "failed", "failed", "swapped"]);
    fx.host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_plugin_unregisters_its_triggers_until_it_is_back() {
    let other = "[[trigger]]\nid = \"other\"\nkind = \"api\"\ntopic = \"other.api\"\n";
    let fx = Fixture::start(
        &[("parity.toml", PARITY), ("other.toml", other)],
        &[("parity", &guest("accept_even"))],
    )
    .await;
    std::fs::remove_file(fx.file("parity.wasm")).unwrap();
    until_true("unregistered", WAIT, || !fx.registered("parity")).await;
    assert!(fx.host.triggers().registration("parity").await.is_none());
    assert!(!fx.host.plugins().list().contains_key("parity"));
    assert!(fx.host.triggers().pending().contains_key("parity"));
    assert!(
        fx.error("parity")
            .contains("is missing; triggers waiting for it: `parity`")
    );
    assert!(fx.registered("other"), "other triggers are untouched");

    fx.replace("parity.wasm", &bytes(&guest("accept_odd")));
    until_true("registered again", WAIT, || fx.registered("parity")).await;
    assert!(fx.host.triggers().pending().is_empty());
    assert!(fx.error("parity").is_empty());
    assert!(fx.decide(3).await);
    fx.host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_manifest_changes_exactly_its_triggers() {
    let api = |id: &str, topic: &str| {
        format!("[[trigger]]\nid = \"{id}\"\nkind = \"api\"\ntopic = \"{topic}\"\n")
    };
    let a = api("a1", "a.one") + &api("a2", "a.two");
    let fx = Fixture::start(
        &[("a.toml", a.as_str()), ("parity.toml", PARITY)],
        &[("parity", &guest("accept_even"))],
    )
    .await;
    let parity = fx
        .host
        .triggers()
        .registration("parity")
        .await
        .unwrap()
        .trigger;
    let a2_topic = || fx.host.triggers().config("a2").map(|t| t.topic.to_string());

    // a1 removed, a2 changed, a3 added; parity.toml's trigger untouched.
    fx.replace(
        "a.toml",
        (api("a2", "a.changed") + &api("a3", "a.three")).as_bytes(),
    );
    until_true("applied", WAIT, || {
        a2_topic().as_deref() == Some("a.changed")
    })
    .await;
    until_true("a3 added", WAIT, || fx.registered("a3")).await;
    assert!(!fx.registered("a1"));
    assert!(fx.host.triggers().registration("a1").await.is_none());
    let still = fx
        .host
        .triggers()
        .registration("parity")
        .await
        .unwrap()
        .trigger;
    assert!(Arc::ptr_eq(&parity, &still), "parity was not restarted");

    // A manifest that does not parse, or a table that does not build,
    // changes nothing.
    fx.replace("a.toml", b"[[trigger]\nid = ");
    until_true("syntax error", WAIT, || fx.error("a").contains("a.toml")).await;
    let bad_cron =
        "[[trigger]]\nid = \"a2\"\nkind = \"cron\"\ntopic = \"t\"\nschedule = \"61 * * * *\"\n";
    fx.replace(
        "a.toml",
        (bad_cron.to_owned() + &api("a3", "a.three")).as_bytes(),
    );
    until_true("bad table", WAIT, || {
        fx.error("a").contains("keeps its previous table")
    })
    .await;
    assert_eq!(a2_topic().as_deref(), Some("a.changed"));
    assert!(fx.registered("a3"));

    // Deleting it removes its triggers, and its error.
    std::fs::remove_file(fx.file("a.toml")).unwrap();
    until_true("removed", WAIT, || {
        a2_topic().is_none() && !fx.registered("a3")
    })
    .await;
    until_true("error cleared", WAIT, || fx.error("a").is_empty()).await;
    assert!(Arc::ptr_eq(
        &parity,
        &fx.host
            .triggers()
            .registration("parity")
            .await
            .unwrap()
            .trigger
    ));
    fx.host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_wait_for_a_plugin_that_arrives_later() {
    let fx = Fixture::start(&[], &[]).await;
    // The manifest first: its trigger waits for the plugin.
    fx.replace("parity.toml", PARITY.as_bytes());
    until_true("pending", WAIT, || {
        fx.host.triggers().pending().contains_key("parity")
    })
    .await;
    assert!(fx.error("parity").contains("parity.wasm is missing"));
    fx.replace("parity.wasm", &bytes(&guest("accept_even")));
    until_true("registered", WAIT, || fx.registered("parity")).await;
    assert!(fx.host.plugins().errors().is_empty());
    assert!(fx.decide(10).await);

    // The plugin first: loaded with no trigger, then its manifest.
    fx.replace("odd.wasm", &bytes(&guest("accept_odd")));
    until_true("loaded", WAIT, || {
        fx.host.plugins().list().contains_key("odd")
    })
    .await;
    let manifest = PARITY
        .replace("\"parity\"", "\"odd\"")
        .replace("numbers.accepted", "odd.accepted");
    fx.replace("odd.toml", manifest.as_bytes());
    until_true("odd registered", WAIT, || fx.registered("odd")).await;
    assert!(fx.host.triggers().pending().is_empty());
    fx.host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_slowly_is_loaded_once_complete() {
    let fx = Fixture::start(
        &[("parity.toml", PARITY)],
        &[("parity", &guest("accept_even"))],
    )
    .await;
    let odd = bytes(&guest("accept_odd"));
    let errors_seen = Arc::new(AtomicBool::new(false));
    let watch_errors = {
        let (host, seen) = (fx.host.clone(), errors_seen.clone());
        tokio::spawn(async move {
            loop {
                if !host.plugins().errors().is_empty() {
                    seen.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Two halves with a pause longer than the debounce in between.
    let half = odd.len() / 2 + 1;
    fx.write_in_chunks("parity.wasm", &odd, half, Duration::from_millis(120))
        .await;
    let hash = content_hash(&odd);
    until_true("swapped", WAIT, || {
        fx.plugin_hash("parity").as_deref() == Some(hash.as_str())
    })
    .await;
    watch_errors.abort();
    assert!(
        !errors_seen.load(Ordering::SeqCst),
        "a half-written file was reported"
    );
    assert!(fx.decide(9).await);
    fx.host.stop().await;
}

/// A pause is the user's: it holds while the plugin is swapped, the
/// trigger's table is edited, and the plugin file is deleted and put back;
/// removing the trigger forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_trigger_stays_paused_across_reloads() {
    let fx = Fixture::start(
        &[("parity.toml", PARITY)],
        &[("parity", &guest("accept_even"))],
    )
    .await;
    let held = || async {
        let registration = fx.host.triggers().registration("parity").await;
        let running = registration.is_some_and(|r| r.trigger.is_running());
        fx.host.triggers().is_paused("parity").await && !running
    };
    fx.host.triggers().pause("parity").await.unwrap();
    assert!(held().await);

    let odd = bytes(&guest("accept_odd"));
    fx.replace("parity.wasm", &odd);
    until_true("swapped", WAIT, || {
        fx.plugin_hash("parity") == Some(content_hash(&odd))
    })
    .await;
    assert!(held().await, "paused after a plugin swap");

    let edited = PARITY.replace("numbers.accepted", "numbers.kept");
    fx.replace("parity.toml", edited.as_bytes());
    until_true("edited", WAIT, || {
        fx.host
            .triggers()
            .config("parity")
            .is_some_and(|t| t.topic.as_str() == "numbers.kept")
    })
    .await;
    assert!(fx.registered("parity"));
    assert!(held().await, "paused after a manifest edit");

    std::fs::remove_file(fx.file("parity.wasm")).unwrap();
    until_true("unregistered", WAIT, || !fx.registered("parity")).await;
    fx.replace("parity.wasm", &odd);
    until_true("back", WAIT, || fx.registered("parity")).await;
    assert!(held().await, "paused after the plugin came back");

    fx.host.triggers().resume("parity").await.unwrap();
    assert!(fx.decide(3).await, "resumed: the odd filter decides again");

    fx.host.triggers().pause("parity").await.unwrap();
    let table = fx.host.triggers().remove("parity").await.unwrap();
    fx.host.triggers().add(table).await.unwrap();
    assert!(!fx.host.triggers().is_paused("parity").await);
    assert!(fx.decide(5).await, "removed and added again: not paused");
    fx.host.stop().await;
}
