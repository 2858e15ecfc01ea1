//! The Python, JavaScript, C and Zig example plugins (`plugins/python`,
//! `plugins/js`, `plugins/c`, `plugins/zig`) through the real plugin runtime and a running scheduler: the threshold
//! filters accept and reject per their trigger's config (a malformed config
//! is an error the trigger counts), and the enrich factories make the
//! expected event for cron, api and event firings.
//!
//! Cargo does not build these components (they need componentize-py,
//! componentize-js, zig and wasm-tools); build them first:
//!
//! ```sh
//! PLUGIN_OUT_DIR="${CARGO_TARGET_DIR:-target}/polyglot" bash plugins/build-python.sh
//! PLUGIN_OUT_DIR="${CARGO_TARGET_DIR:-target}/polyglot" bash plugins/build-js.sh
//! PLUGIN_OUT_DIR="${CARGO_TARGET_DIR:-target}/polyglot" bash plugins/build-c.sh
//! PLUGIN_OUT_DIR="${CARGO_TARGET_DIR:-target}/polyglot" bash plugins/build-zig.sh
//! ```
//!
//! or set `WASMSCHED_POLYGLOT_DIR` to a directory holding them. A missing
//! component fails the test with the command that builds it.
//!
//! Each component (12–18 MB) takes ~13 s to compile, so each is loaded once
//! per test binary, and there is one test per language.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmsched_test_support::wait::until_true;
use wasmsched_test_support::{next_event_within, observe};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wasmsched::broker::Subscription;
use wasmsched::clock::Clock;
use wasmsched::plugin::{CallError, Plugin, PluginRuntime, RuntimeOptions, Worlds};
use wasmsched::{
    BoxError, Broker, Cause, Event, Firing, MemoryBroker, Scheduler, Topic, Trigger,
    create_api_trigger, create_cron_trigger, create_event_trigger,
};

// ---------------------------------------------------------------- loading

/// Where the components are: `$WASMSCHED_POLYGLOT_DIR`, else
/// `<target dir>/polyglot`.
fn polyglot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WASMSCHED_POLYGLOT_DIR") {
        return PathBuf::from(dir);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir)) // a relative one is relative to the package
        .unwrap_or_else(|| root.join("target"));
    target.join("polyglot")
}

/// One runtime for the whole test binary, as in production.
fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PluginRuntime::new(RuntimeOptions::default()).unwrap())
}

fn load(name: &str, script: &str) -> Arc<Plugin> {
    let dir = polyglot_dir();
    let path = dir.join(format!("{name}.wasm"));
    if !path.is_file() {
        panic!(
            "{} is missing. Build it with:\n    PLUGIN_OUT_DIR={} bash plugins/{script}\n\
             (or set WASMSCHED_POLYGLOT_DIR to a directory that holds {name}.wasm)",
            path.display(),
            dir.display(),
        );
    }
    runtime()
        .load_file(&path, None)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// Each plugin is compiled once per test binary.
macro_rules! plugin {
    ($fn:ident, $name:literal, $script:literal) => {
        fn $fn() -> Arc<Plugin> {
            static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
            PLUGIN.get_or_init(|| load($name, $script)).clone()
        }
    };
}

plugin!(py_threshold, "py_threshold", "build-python.sh");
plugin!(py_enrich, "py_enrich", "build-python.sh");
plugin!(js_threshold, "js_threshold", "build-js.sh");
plugin!(js_enrich, "js_enrich", "build-js.sh");
plugin!(c_threshold, "c_threshold", "build-c.sh");
plugin!(c_enrich, "c_enrich", "build-c.sh");
plugin!(zig_threshold, "zig_threshold", "build-zig.sh");
plugin!(zig_enrich, "zig_enrich", "build-zig.sh");

// ---------------------------------------------------------------- helpers

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

fn event(topic_name: &str, data: Value) -> Event {
    Event::new(topic(topic_name), data)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The CallError behind a port's BoxError.
fn call_error(error: BoxError) -> CallError {
    match error.downcast::<CallError>() {
        Ok(error) => *error,
        Err(other) => panic!("not a CallError: {other}"),
    }
}

/// The next event on `sub`; a generous real-time bound so a bug fails
/// instead of hanging.
async fn next_event(sub: &mut Subscription) -> Event {
    next_event_within(sub, Duration::from_secs(30)).await
}

// ---------------------------------------------------------------- the tests

/// A language's pair of example plugins.
struct Pair {
    /// The `lang` field the enrich factory writes.
    lang: &'static str,
    threshold: Arc<Plugin>,
    enrich: Arc<Plugin>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugins_filter_and_make_events() {
    let pair = Pair {
        lang: "python",
        threshold: py_threshold(),
        enrich: py_enrich(),
    };
    check_ports(&pair).await;
    check_through_the_scheduler(&pair).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_plugins_filter_and_make_events() {
    let pair = Pair {
        lang: "js",
        threshold: js_threshold(),
        enrich: js_enrich(),
    };
    check_ports(&pair).await;
    check_through_the_scheduler(&pair).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_plugins_filter_and_make_events() {
    let pair = Pair {
        lang: "c",
        threshold: c_threshold(),
        enrich: c_enrich(),
    };
    check_ports(&pair).await;
    check_through_the_scheduler(&pair).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zig_plugins_filter_and_make_events() {
    let pair = Pair {
        lang: "zig",
        threshold: zig_threshold(),
        enrich: zig_enrich(),
    };
    check_ports(&pair).await;
    check_through_the_scheduler(&pair).await;
}

/// The plugins called directly through the Filter and Factory ports.
async fn check_ports(pair: &Pair) {
    let threshold = &pair.threshold;
    let name = threshold.name().to_owned();
    assert_eq!(
        threshold.worlds(),
        Worlds {
            factory: false,
            filter: true
        },
        "{name}"
    );
    assert_eq!(pair.enrich.worlds().names(), ["factory-plugin"]);
    // Built without WASI: nothing but the host interface is imported.
    for plugin in [threshold, &pair.enrich] {
        assert!(
            plugin
                .imports()
                .iter()
                .all(|i| i.starts_with("wasmsched:plugin/")),
            "{}: {:?}",
            plugin.name(),
            plugin.imports()
        );
    }

    let filter = threshold
        .filter("large", config(&[("threshold", "1000")]))
        .unwrap();
    let rows = |n: Value| event("pipeline.collection.completed", json!({ "rows_count": n }));
    assert!(filter.accept(&rows(json!(5000))).await.unwrap(), "{name}");
    assert!(filter.accept(&rows(json!(1000.5))).await.unwrap(), "{name}");
    assert!(!filter.accept(&rows(json!(1000))).await.unwrap(), "{name}");
    assert!(!filter.accept(&rows(json!(10))).await.unwrap(), "{name}");
    assert!(
        !filter.accept(&rows(json!("many"))).await.unwrap(),
        "{name}: a non-numeric rows_count is skipped"
    );
    assert!(
        !filter.accept(&rows(json!(true))).await.unwrap(),
        "{name}: a boolean is not a number"
    );
    let no_rows = event("pipeline.collection.completed", json!({"table": "orders"}));
    assert!(!filter.accept(&no_rows).await.unwrap(), "{name}");

    // Each trigger has its own config; absent means the default (1000).
    let strict = threshold
        .filter("strict", config(&[("threshold", " 10000 ")]))
        .unwrap();
    assert!(!strict.accept(&rows(json!(5000))).await.unwrap(), "{name}");
    let default = threshold.filter("default", BTreeMap::new()).unwrap();
    assert!(default.accept(&rows(json!(1001))).await.unwrap(), "{name}");
    assert!(!default.accept(&rows(json!(999))).await.unwrap(), "{name}");

    // A malformed config is the plugin's err(...), counted as an error.
    let before = threshold.stats();
    let broken = threshold
        .filter("broken", config(&[("threshold", "abc")]))
        .unwrap();
    match call_error(broken.accept(&rows(json!(5000))).await.unwrap_err()) {
        CallError::Failed { plugin, message } => {
            assert_eq!(plugin, name);
            assert_eq!(message, r#"config `threshold` must be a number, got "abc""#);
        }
        other => panic!("{name}: expected Failed, got {other:?}"),
    }
    let after = threshold.stats();
    assert_eq!(after.errors, before.errors + 1, "{name}");
    assert_eq!(after.traps, before.traps, "{name}: an err is not a trap");

    // The factory, directly: an api firing with a payload.
    let factory = pair
        .enrich
        .factory("direct", config(&[("label", "direct")]))
        .unwrap();
    let payload = json!({"order": 7, "note": "ünïcode"});
    let firing = Firing::new("direct", at("2026-11-26T03:00:00Z"), Cause::Api { payload });
    let events = factory.make_events(&firing).await.unwrap();
    assert_eq!(events.len(), 1, "{name}");
    assert_eq!(events[0].topic, None, "goes to the trigger's topic");
    assert_eq!(
        events[0].data,
        json!({
            "lang": pair.lang,
            "trigger": "direct",
            "kind": "api",
            "label": "direct",
            "payload": {"order": 7, "note": "ünïcode"},
            "source_topic": null,
        })
    );
}

/// Both plugins behind real triggers on a running scheduler and broker:
/// collection events go through the filter (and a broken copy of it), the
/// accepted one through the factory of an event trigger; the factory also
/// serves an api and a cron trigger, each with its own config.
async fn check_through_the_scheduler(pair: &Pair) {
    let lang = pair.lang;
    let threshold_before = pair.threshold.stats();

    let large = create_event_trigger(
        "pipeline.collection.completed",
        None,
        Some(
            pair.threshold
                .filter("large", config(&[("threshold", "1000")]))
                .unwrap(),
        ),
    )
    .unwrap();
    let broken = create_event_trigger(
        "pipeline.collection.completed",
        None,
        Some(
            pair.threshold
                .filter("broken", config(&[("threshold", "abc")]))
                .unwrap(),
        ),
    )
    .unwrap();
    let on_event = create_event_trigger(
        "pipeline.processing",
        Some(
            pair.enrich
                .factory("enrich-event", config(&[("label", "from-event")]))
                .unwrap(),
        ),
        None,
    )
    .unwrap();
    let on_api = create_api_trigger(Some(
        pair.enrich.factory("enrich-api", BTreeMap::new()).unwrap(),
    ));
    let on_cron = create_cron_trigger(
        "* * * * *",
        Some(
            pair.enrich
                .factory("enrich-cron", config(&[("label", "from-cron")]))
                .unwrap(),
        ),
    )
    .unwrap();

    // The simulated wall clock reaches the next minute 3 s from now. One
    // attempt per event: the errors below are counted once each.
    let broker = MemoryBroker::with_retry_policy(wasmsched::broker::RetryPolicy {
        max_deliver: 1,
        ..Default::default()
    });
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2026-01-01T00:00:57Z")),
    );
    let triggers: [(&str, Arc<dyn Trigger>, &str); 5] = [
        ("large", large.clone(), "pipeline.processing"),
        ("broken", broken.clone(), "never.published"),
        ("enrich-event", on_event.clone(), "enriched.event"),
        ("enrich-api", on_api.clone(), "enriched.api"),
        ("enrich-cron", on_cron.clone(), "enriched.cron"),
    ];
    for (id, trigger, to) in triggers {
        scheduler
            .register(id.into(), trigger, topic(to))
            .await
            .unwrap();
    }

    let mut processing = observe(&broker, "pipeline.processing").await;
    let mut from_event = observe(&broker, "enriched.event").await;
    let mut from_api = observe(&broker, "enriched.api").await;
    let mut from_cron = observe(&broker, "enriched.cron").await;
    let mut never = observe(&broker, "never.published").await;
    scheduler.start().await.unwrap();

    crate::plugins::only_a_large_dataset_goes_on(&broker, &mut processing).await;

    // The accepted event fires the event trigger, whose factory says so.
    let enriched = next_event(&mut from_event).await;
    assert_eq!(
        enriched.data,
        json!({
            "lang": lang,
            "trigger": "enrich-event",
            "kind": "event",
            "label": "from-event",
            "payload": null,
            "source_topic": "pipeline.processing",
        })
    );

    // An api call; this trigger has no config, so the label is the default.
    assert_eq!(on_api.trigger(json!({"order": 7})).await.unwrap(), 1);
    let enriched = next_event(&mut from_api).await;
    assert_eq!(
        enriched.data,
        json!({
            "lang": lang,
            "trigger": "enrich-api",
            "kind": "api",
            "label": "none",
            "payload": {"order": 7},
            "source_topic": null,
        })
    );

    // The cron trigger fires at the top of the (simulated) minute.
    let enriched = next_event(&mut from_cron).await;
    assert_eq!(
        enriched.data,
        json!({
            "lang": lang,
            "trigger": "enrich-cron",
            "kind": "cron",
            "label": "from-cron",
            "payload": null,
            "source_topic": null,
        })
    );

    // The broken filter failed on both collection events: counted, not fired.
    until_true(
        "the broken filter fails twice",
        Duration::from_secs(30),
        || broken.stats().errors == 2,
    )
    .await;
    scheduler.stop().await;

    let stats = large.stats();
    assert_eq!(
        (
            stats.filter_rejected,
            stats.filter_accepted,
            stats.events_published,
            stats.errors
        ),
        (1, 1, 1, 0),
        "{lang}: large"
    );
    let stats = broken.stats();
    assert_eq!(
        (
            stats.errors,
            stats.filter_accepted,
            stats.filter_rejected,
            stats.events_published
        ),
        (2, 0, 0, 0),
        "{lang}: broken"
    );
    let threshold_after = pair.threshold.stats();
    assert_eq!(
        threshold_after.errors - threshold_before.errors,
        2,
        "{lang}: plugin errors"
    );
    assert_eq!(threshold_after.traps, threshold_before.traps);
    assert_eq!(on_event.stats().events_published, 1);
    assert_eq!(on_api.stats().events_published, 1);
    assert_eq!(on_cron.stats().events_published, 1);
    assert!(
        tokio::time::timeout(Duration::ZERO, never.next())
            .await
            .is_err(),
        "{lang}: the broken trigger published"
    );
}

// ---------------------------------------------------------- key-value store

/// `py_error_counter` (the Python key-value example) counts ERROR events
/// per service across calls in the store its grant opens, and a service
/// over the quota fails the call with the store's message.
#[tokio::test]
async fn python_counts_errors_per_service_in_its_key_value_store() {
    use wasmsched::plugin::{Grants, KvQuota};
    use wasmsched::state::Retention;
    use wasmsched::state::sqlite::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"), Retention::default())
        .await
        .unwrap();
    runtime().use_state_store(Arc::new(store));
    let path = polyglot_dir().join("py_error_counter.wasm");
    assert!(
        path.is_file(),
        "{} is missing: PLUGIN_OUT_DIR={} bash plugins/build-python.sh",
        path.display(),
        polyglot_dir().display()
    );
    let quota = KvQuota {
        max_keys: 2,
        max_bytes: 1 << 10,
    };
    let grants = Grants::default().with_kv(quota);
    let bytes = std::fs::read(&path).unwrap();
    let counter = tokio::task::spawn_blocking(move || {
        runtime().load_granted("py_error_counter", &bytes, None, grants)
    })
    .await
    .unwrap()
    .unwrap();
    let factory = counter.factory("error-counter", BTreeMap::new()).unwrap();
    let fire = |service: &str, level: &str| {
        let source = event(
            "logs.app",
            json!({"level": level, "service": service, "message": "x"}),
        );
        Firing::new("error-counter", Utc::now(), Cause::Event { source })
    };
    let mut counts = Vec::new();
    for (service, level) in [
        ("db", "ERROR"),
        ("db", "error"),
        ("web", "ERROR"),
        ("db", "WARN"),
    ] {
        let events = factory.make_events(&fire(service, level)).await.unwrap();
        counts.extend(events.into_iter().map(|e| e.data));
    }
    assert_eq!(
        counts,
        [
            json!({"service": "db", "count": 1, "services": 1}),
            json!({"service": "db", "count": 2, "services": 1}),
            json!({"service": "web", "count": 1, "services": 2}),
        ],
        "a WARN is not counted"
    );
    let error = factory
        .make_events(&fire("api", "ERROR"))
        .await
        .unwrap_err();
    let message = call_error(error).to_string();
    assert!(
        message.contains("key-value store: QuotaExceeded") && message.contains("max_keys"),
        "{message}"
    );
}

// ------------------------------------------------------------------ batches

/// `py_digest` (the Python batch example) behind a batched event trigger:
/// five log events become one digest.
#[tokio::test]
async fn python_digests_a_batch_of_events() {
    use wasmsched::trigger::flow::{Batch, FlowSpec};
    let path = polyglot_dir().join("py_digest.wasm");
    assert!(
        path.is_file(),
        "{} is missing: PLUGIN_OUT_DIR={} bash plugins/build-python.sh",
        path.display(),
        polyglot_dir().display()
    );
    let digest = tokio::task::spawn_blocking(move || runtime().load_file(&path, None))
        .await
        .unwrap()
        .unwrap();
    assert!(digest.takes_batches());
    let flow = FlowSpec {
        batch: Some(Batch {
            max_events: 5,
            max_wait: Duration::from_secs(30),
        }),
        ..FlowSpec::default()
    };
    let factory = digest.factory("log-digest", BTreeMap::new()).unwrap();
    let trigger = Arc::new(
        wasmsched::EventTrigger::new("logs.**".parse().unwrap(), Some(factory), None)
            .with_flow(flow),
    );
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));
    scheduler
        .register_trigger("log-digest", trigger, topic("digests.logs"))
        .await
        .unwrap();
    let mut digests = observe(&broker, "digests.**").await;
    scheduler.start().await.unwrap();
    for (service, level) in [
        ("db", "ERROR"),
        ("db", "warn"),
        ("web", "ERROR"),
        ("db", "ERROR"),
        ("api", "INFO"),
    ] {
        broker
            .publish(event(
                "logs.app",
                json!({"service": service, "level": level}),
            ))
            .await
            .unwrap();
    }
    let made = next_event_within(&mut digests, Duration::from_secs(30)).await;
    assert_eq!(made.data["count"], 5);
    assert_eq!(
        made.data["by_service"],
        json!({"api": 1, "db": 3, "web": 1})
    );
    assert_eq!(
        made.data["by_level"],
        json!({"ERROR": 3, "INFO": 1, "WARN": 1})
    );
    scheduler.stop().await;
}
