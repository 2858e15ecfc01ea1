//! The plugin runtime against real components on a real engine: the example
//! plugins through the Factory/Filter ports and through a running scheduler,
//! and the adversarial ones (endless loop, 1 GiB allocation, panic, file
//! system, network, another contract, broken files), each contained with a
//! precise error while the same runtime keeps serving.
//!
//! The components are built by build.rs (plugins/rust, wasm32-wasip2).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use wasmsched_test_support::wait::until_true;
use wasmsched_test_support::{next_event_within, observe};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasmsched::broker::Subscription;
use wasmsched::plugin::{
    CallError, Limits, Plugin, PluginError, PluginRuntime, RuntimeOptions, Worlds,
};
use wasmsched::{
    BoxError, Broker, Cause, Event, Firing, MemoryBroker, Scheduler, Topic, Trigger,
    create_event_trigger,
};

// ---------------------------------------------------------------- helpers

fn example_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/plugins")).join(format!("{name}.wasm"))
}

/// Where build.rs put the adversarial guests (cargo hands its `rustc-env`
/// to every target of the package, integration tests included).
fn guest_path(name: &str) -> PathBuf {
    PathBuf::from(env!("WASMSCHED_GUEST_DIR")).join(format!("{name}.wasm"))
}

/// One runtime for the whole test binary, as in production.
fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PluginRuntime::new(RuntimeOptions::default()).unwrap())
}

/// An example plugin, compiled once per test binary.
fn example(name: &'static str) -> Arc<Plugin> {
    static LOADED: OnceLock<Mutex<BTreeMap<&'static str, Arc<Plugin>>>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    if let Some(plugin) = loaded.lock().unwrap().get(name) {
        return plugin.clone();
    }
    let plugin = runtime()
        .load_file(&example_path(name), None)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    loaded.lock().unwrap().entry(name).or_insert(plugin).clone()
}

fn load_guest(name: &str, limits: Option<Limits>) -> Result<Arc<Plugin>, PluginError> {
    runtime().load_file(&guest_path(name), limits)
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn event(topic: &str, data: Value) -> Event {
    Event::new(Topic::new(topic).unwrap(), data)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn firing(cause: Cause) -> Firing {
    Firing::new("t1", at("2026-11-26T03:00:00Z"), cause)
}

/// The CallError behind a port's BoxError.
fn call_error(error: BoxError) -> CallError {
    match error.downcast::<CallError>() {
        Ok(error) => *error,
        Err(other) => panic!("not a CallError: {other}"),
    }
}

/// The same runtime still runs a well-behaved plugin correctly.
async fn assert_runtime_serves() {
    let filter = example("large_dataset")
        .filter("check", config(&[("threshold", "1000")]))
        .unwrap();
    let big = event("pipeline.collection.completed", json!({"rows_count": 5000}));
    let small = event("pipeline.collection.completed", json!({"rows_count": 10}));
    assert!(filter.accept(&big).await.unwrap());
    assert!(!filter.accept(&small).await.unwrap());
}

fn one_line(message: &str) {
    assert!(!message.contains('\n'), "message spans lines: {message}");
    assert!(!message.contains("stack backtrace"), "{message}");
}

// ------------------------------------------------------- example plugins

#[tokio::test]
async fn large_dataset_filter_applies_the_threshold() {
    let plugin = example("large_dataset");
    assert_eq!(
        plugin.worlds(),
        Worlds {
            factory: false,
            filter: true
        }
    );
    let filter = plugin
        .filter("large", config(&[("threshold", "1000")]))
        .unwrap();
    let rows = |n: Value| event("pipeline.collection.completed", json!({ "rows_count": n }));
    assert!(filter.accept(&rows(json!(5000))).await.unwrap());
    assert!(filter.accept(&rows(json!(1000.5))).await.unwrap());
    assert!(!filter.accept(&rows(json!(1000))).await.unwrap());
    assert!(!filter.accept(&rows(json!(10))).await.unwrap());
    assert!(
        !filter.accept(&rows(json!("many"))).await.unwrap(),
        "non-numeric rows_count is skipped"
    );
    let none = event("pipeline.collection.completed", json!({"table": "orders"}));
    assert!(!filter.accept(&none).await.unwrap());

    // Each trigger has its own config; absent means the default (1000).
    let strict = plugin
        .filter("strict", config(&[("threshold", "10000")]))
        .unwrap();
    assert!(!strict.accept(&rows(json!(5000))).await.unwrap());
    let default = plugin.filter("default", BTreeMap::new()).unwrap();
    assert!(default.accept(&rows(json!(1001))).await.unwrap());

    let before = plugin.stats();
    let broken = plugin
        .filter("broken", config(&[("threshold", "abc")]))
        .unwrap();
    let error = call_error(broken.accept(&rows(json!(5000))).await.unwrap_err());
    match &error {
        CallError::Failed { plugin, message } => {
            assert_eq!(plugin, "large_dataset");
            assert_eq!(message, r#"config `threshold` must be a number, got "abc""#);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        r#"plugin `large_dataset` failed: config `threshold` must be a number, got "abc""#
    );
    let after = plugin.stats();
    assert!(after.errors > before.errors);
    assert!(after.calls > before.calls);

    let no_factory = plugin.factory("large", BTreeMap::new()).err().unwrap();
    assert!(matches!(&no_factory, PluginError::NoFactory { name } if name == "large_dataset"));
    assert_eq!(
        no_factory.to_string(),
        "plugin `large_dataset` exports no `wasmsched:plugin/factory`, so it cannot make events"
    );
}

#[tokio::test]
async fn error_alert_filters_by_level_and_makes_an_alert() {
    let plugin = example("error_alert");
    assert_eq!(
        plugin.worlds().names(),
        ["factory-plugin", "filter-plugin", "plugin"]
    );

    let filter = plugin.filter("alerts", BTreeMap::new()).unwrap();
    let log = |level: &str| {
        event(
            "logs.db",
            json!({"level": level, "service": "db", "message": "disk full"}),
        )
    };
    assert!(filter.accept(&log("ERROR")).await.unwrap());
    assert!(
        filter.accept(&log("error")).await.unwrap(),
        "level is compared ignoring case"
    );
    assert!(!filter.accept(&log("INFO")).await.unwrap());
    assert!(
        !filter
            .accept(&event("logs.db", json!({"message": "no level"})))
            .await
            .unwrap()
    );
    let warnings = plugin
        .filter("warnings", config(&[("level", "WARN")]))
        .unwrap();
    assert!(warnings.accept(&log("warn")).await.unwrap());
    assert!(!warnings.accept(&log("ERROR")).await.unwrap());

    let factory = plugin.factory("alerts", BTreeMap::new()).unwrap();
    let source = log("ERROR");
    let events = factory
        .make_events(&firing(Cause::Event {
            source: source.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].topic, None, "goes to the trigger's topic");
    assert_eq!(
        events[0].data,
        json!({
            "severity": "critical",
            "service": "db",
            "message": "ERROR in db: disk full",
            "count": 1,
            "source_topic": "logs.db",
            "source_id": source.id.to_string(),
        })
    );
    // Under a throttle, the alert says how many errors it stands for.
    let events = factory
        .make_events(&firing(Cause::Event {
            source: source.clone().with_header("wasmsched-flow-count", "57"),
        }))
        .await
        .unwrap();
    assert_eq!(events[0].data["count"], 57);

    let error = call_error(
        factory
            .make_events(&firing(Cause::cron()))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&error, CallError::Failed { message, .. } if message == "error_alert expects an event trigger"),
        "{error:?}"
    );
}

#[tokio::test]
async fn github_webhook_turns_a_payload_into_an_event() {
    let plugin = example("github_webhook");
    assert_eq!(plugin.worlds().names(), ["factory-plugin"]);
    let payload = json!({
        "action": "opened",
        "repository": {"full_name": "octo/repo"},
        "sender": {"login": "octocat"},
        "number": 7,
    });
    let factory = plugin.factory("github", BTreeMap::new()).unwrap();
    let events = factory
        .make_events(&firing(Cause::Api {
            payload: payload.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].topic, None);
    assert_eq!(
        events[0].data,
        json!({
            "kind": "github",
            "action": "opened",
            "repository": "octo/repo",
            "sender": "octocat",
            "payload": payload,
        })
    );

    // Missing fields become null; a `topic` config redirects the event.
    let custom = plugin
        .factory("github", config(&[("topic", "webhooks.github.custom")]))
        .unwrap();
    let events = custom
        .make_events(&firing(Cause::Api {
            payload: json!({"zen": "hi"}),
        }))
        .await
        .unwrap();
    assert_eq!(
        events[0].topic.as_ref().unwrap().as_str(),
        "webhooks.github.custom"
    );
    assert_eq!(events[0].data["action"], Value::Null);
    assert_eq!(events[0].data["payload"], json!({"zen": "hi"}));

    // A topic the host cannot publish on is bad data, named as such.
    let bad = plugin
        .factory("github", config(&[("topic", "webhooks..github")]))
        .unwrap();
    let before = plugin.stats().bad_data;
    let error = call_error(
        bad.make_events(&firing(Cause::Api { payload: json!({}) }))
            .await
            .unwrap_err(),
    );
    match &error {
        CallError::BadData { plugin, message } => {
            assert_eq!(plugin, "github_webhook");
            assert!(
                message.starts_with("event 0: invalid topic `webhooks..github`"),
                "{message}"
            );
        }
        other => panic!("expected BadData, got {other:?}"),
    }
    one_line(&error.to_string());
    assert!(plugin.stats().bad_data > before);

    let no_filter = plugin.filter("github", BTreeMap::new()).err().unwrap();
    assert!(matches!(&no_filter, PluginError::NoFilter { name } if name == "github_webhook"));
}

#[tokio::test]
async fn pipeline_stage_announces_the_scheduled_stage() {
    let plugin = example("pipeline_stage");
    let factory = plugin
        .factory("nightly-collection", BTreeMap::new())
        .unwrap();
    let events = factory.make_events(&firing(Cause::cron())).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].data,
        json!({"stage": "collection", "trigger": "t1", "scheduled": "2026-11-26T03:00:00Z"})
    );
    let heartbeat = plugin
        .factory("heartbeat", config(&[("stage", "heartbeat")]))
        .unwrap();
    let events = heartbeat.make_events(&firing(Cause::cron())).await.unwrap();
    assert_eq!(events[0].data["stage"], "heartbeat");
}

#[test]
fn a_loaded_plugin_describes_itself() {
    let before = Utc::now();
    let plugin = runtime()
        .load_file(&example_path("large_dataset"), None)
        .unwrap();
    let bytes = std::fs::read(example_path("large_dataset")).unwrap();
    assert_eq!(plugin.name(), "large_dataset");
    let hash: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(plugin.hash(), hash);
    assert!(plugin.loaded_at() >= before && plugin.loaded_at() <= Utc::now());
    assert_eq!(plugin.limits(), Limits::default());
    assert_eq!(
        plugin.contract_version().package(),
        "wasmsched:plugin@0.2.0"
    );
    assert_eq!(
        plugin.stats(),
        Default::default(),
        "the load-time check is not a call"
    );
    let imports = plugin.imports();
    assert!(
        imports.iter().any(|i| i == "wasmsched:plugin/host@0.2.0"),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:cli/stdout@0.2.")),
        "{imports:?}"
    );
    assert!(
        imports.iter().all(|i| i.starts_with("wasmsched:plugin/")
            || i.starts_with("wasi:io/")
            || i.starts_with("wasi:cli/")),
        "{imports:?}"
    );
}

/// Runs `run` and returns everything logged so far by this test binary.
///
/// The subscriber is the process-wide default, installed once: a
/// thread-local one (`with_default`) loses events when other tests hit the
/// same callsites concurrently and cache their interest without it. The
/// assertions look for lines tagged with this test's own trigger ids.
async fn capture_logs(run: impl std::future::Future<Output = ()>) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: std::sync::OnceLock<Buffer> = std::sync::OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        buffer
    });
    run.await;
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn guest_logs_and_stderr_reach_the_host_log_tagged() {
    let stage = example("pipeline_stage");
    let factory = stage
        .factory("heartbeat", config(&[("stage", "heartbeat")]))
        .unwrap();
    let logs = capture_logs(async {
        factory.make_events(&firing(Cause::cron())).await.unwrap();
    })
    .await;
    let line = logs
        .lines()
        .find(|l| {
            l.contains("pipeline stage heartbeat fired at 2026-11-26T03:00:00Z")
                && l.contains("trigger=\"heartbeat\"")
        })
        .unwrap_or_else(|| panic!("no guest log line in:\n{logs}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("plugin=\"pipeline_stage\""), "{line}");
    assert!(line.contains("trigger=\"heartbeat\""), "{line}");

    let panicky = load_guest("adv_panic", None).unwrap();
    let filter = panicky.filter("doomed", BTreeMap::new()).unwrap();
    let logs = capture_logs(async {
        filter.accept(&event("a.b", json!({}))).await.unwrap_err();
    })
    .await;
    let line = logs
        .lines()
        .find(|l| l.contains("adv_panic: boom") && l.contains("trigger=\"doomed\""))
        .unwrap_or_else(|| panic!("no stderr line in:\n{logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("plugin=\"adv_panic\""), "{line}");
    assert!(line.contains("trigger=\"doomed\""), "{line}");
    assert!(line.contains("stream=\"stderr\""), "{line}");
}

// ------------------------------------------------------------ end to end

/// The next event on `sub`; a generous real-time bound so a bug fails
/// instead of hanging.
async fn next_event(sub: &mut Subscription) -> Event {
    next_event_within(sub, Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_routes_through_wasm_filters_and_factories() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));

    // Filter-only plugin: accepted events are republished as they are.
    let large = example("large_dataset");
    let processing = create_event_trigger(
        "pipeline.collection.completed",
        None,
        Some(
            large
                .filter("large-dataset", config(&[("threshold", "1000")]))
                .unwrap(),
        ),
    )
    .unwrap();
    scheduler
        .register_trigger(
            "large-dataset",
            processing.clone(),
            Topic::new("pipeline.processing").unwrap(),
        )
        .await
        .unwrap();

    // Filter and factory from one plugin.
    let alert = example("error_alert");
    let alerts = create_event_trigger(
        "logs.**",
        Some(
            alert
                .factory("error-alert", config(&[("level", "ERROR")]))
                .unwrap(),
        ),
        Some(
            alert
                .filter("error-alert", config(&[("level", "ERROR")]))
                .unwrap(),
        ),
    )
    .unwrap();
    scheduler
        .register_trigger(
            "error-alert",
            alerts.clone(),
            Topic::new("alerts.critical").unwrap(),
        )
        .await
        .unwrap();

    // A filter that panics: the trigger counts an error and carries on.
    let panicky = load_guest("adv_panic", None).unwrap();
    let doomed = create_event_trigger(
        "pipeline.collection.completed",
        None,
        Some(panicky.filter("doomed", BTreeMap::new()).unwrap()),
    )
    .unwrap();
    scheduler
        .register_trigger(
            "doomed",
            doomed.clone(),
            Topic::new("never.published").unwrap(),
        )
        .await
        .unwrap();

    let mut processed = observe(&broker, "pipeline.processing").await;
    let mut critical = observe(&broker, "alerts.critical").await;
    let mut never = observe(&broker, "never.published").await;
    scheduler.start().await.unwrap();

    let big = only_a_large_dataset_goes_on(&broker, &mut processed).await;
    assert_eq!(big.topic.as_str(), "pipeline.processing");

    broker
        .publish(event(
            "logs.web",
            json!({"level": "INFO", "service": "web", "message": "ok"}),
        ))
        .await
        .unwrap();
    let error = event(
        "logs.app.db",
        json!({"level": "ERROR", "service": "db", "message": "disk full"}),
    );
    broker.publish(error.clone()).await.unwrap();
    let out = next_event(&mut critical).await;
    assert_eq!(out.data["message"], "ERROR in db: disk full");
    assert_eq!(out.data["source_id"], error.id.to_string());
    assert_eq!(out.data["source_topic"], "logs.app.db");

    // The panicking filter handles both collection events on its own task.
    until_true("two errors", Duration::from_secs(20), || {
        doomed.stats().errors == 2
    })
    .await;
    scheduler.stop().await;
    let stats = processing.stats();
    assert_eq!(
        (
            stats.filter_rejected,
            stats.filter_accepted,
            stats.events_published
        ),
        (1, 1, 1)
    );
    let stats = alerts.stats();
    assert_eq!(
        (
            stats.filter_rejected,
            stats.filter_accepted,
            stats.events_published
        ),
        (1, 1, 1)
    );
    let stats = doomed.stats();
    assert_eq!(
        (stats.errors, stats.filter_accepted, stats.events_published),
        (2, 0, 0)
    );
    assert_eq!(panicky.stats().traps, 2);
    assert!(
        tokio::time::timeout(Duration::ZERO, never.next())
            .await
            .is_err()
    );
}

/// The guest writes its panic message to stderr; on a tokio worker thread
/// that must neither panic the host nor lose the message.
#[tokio::test(flavor = "current_thread")]
async fn a_guest_writing_to_stderr_inside_an_async_task_is_contained() {
    let plugin = load_guest("adv_panic", None).unwrap();
    let filter = plugin.filter("async", BTreeMap::new()).unwrap();
    let error = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    assert!(
        matches!(&error, CallError::Trap { message, .. } if message.contains("adv_panic: boom")),
        "{error}"
    );
}

// ---------------------------------------------------- adversarial plugins

#[tokio::test]
async fn an_endless_loop_times_out_and_the_runtime_carries_on() {
    let limits = Limits {
        timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let plugin = load_guest("adv_loop", Some(limits)).unwrap();
    let filter = plugin.filter("loop", BTreeMap::new()).unwrap();
    let started = Instant::now();
    let error = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    let took = started.elapsed();
    match &error {
        CallError::Timeout { plugin, limit } => {
            assert_eq!(plugin, "adv_loop");
            assert_eq!(*limit, Duration::from_millis(50));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "plugin `adv_loop` ran out of time (limit 50ms)"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(plugin.stats().timeouts, 1);
    assert_eq!(plugin.stats().calls, 1);

    assert_runtime_serves().await;
    // Not poisoned: the next call gets a fresh instance (and times out again).
    let again = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    assert!(matches!(again, CallError::Timeout { .. }), "{again:?}");
    assert_eq!(plugin.stats().timeouts, 2);
}

#[tokio::test]
async fn a_gigabyte_allocation_hits_the_memory_limit() {
    let plugin = load_guest("adv_alloc", None).unwrap();
    let filter = plugin.filter("alloc", BTreeMap::new()).unwrap();
    let error = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    match &error {
        CallError::MemoryExhausted {
            plugin,
            limit_bytes,
        } => {
            assert_eq!(plugin, "adv_alloc");
            assert_eq!(*limit_bytes, 64 << 20);
        }
        other => panic!("expected MemoryExhausted, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "plugin `adv_alloc` ran out of memory (limit 64 MiB)"
    );
    let stats = plugin.stats();
    assert_eq!(
        (stats.calls, stats.memory_exhausted, stats.traps),
        (1, 1, 0)
    );

    assert_runtime_serves().await;
    let again = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    assert!(
        matches!(again, CallError::MemoryExhausted { .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_panic_is_a_trap_that_quotes_the_guest() {
    let plugin = load_guest("adv_panic", None).unwrap();
    let filter = plugin.filter("panic", BTreeMap::new()).unwrap();
    let error = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    match &error {
        CallError::Trap { plugin, message } => {
            assert_eq!(plugin, "adv_panic");
            assert!(message.contains("unreachable"), "{message}");
            assert!(message.contains("adv_panic: boom"), "{message}");
        }
        other => panic!("expected Trap, got {other:?}"),
    }
    let text = error.to_string();
    assert!(text.starts_with("plugin `adv_panic` trapped: "), "{text}");
    one_line(&text);
    assert_eq!(plugin.stats().traps, 1);

    assert_runtime_serves().await;
    // A fresh instance per call: the next call traps the same way, it does
    // not fail on a poisoned instance.
    let again = call_error(filter.accept(&event("a.b", json!({}))).await.unwrap_err());
    assert!(
        matches!(&again, CallError::Trap { message, .. } if message.contains("adv_panic: boom")),
        "{again:?}"
    );
    assert_eq!(plugin.stats().traps, 2);
}

#[tokio::test]
async fn file_system_and_network_imports_are_refused_at_load() {
    let error = load_guest("adv_fs", None).unwrap_err();
    match &error {
        PluginError::ImportNotGranted { name, import } => {
            assert_eq!(name, "adv_fs");
            assert!(import.starts_with("wasi:filesystem/"), "{import}");
            assert_eq!(
                error.to_string(),
                format!(
                    "plugin `adv_fs` imports `{import}`, which wasmsched does not grant \
                     (no files, sockets or network)"
                )
            );
        }
        other => panic!("expected ImportNotGranted, got {other:?}"),
    }
    assert_runtime_serves().await;

    let error = load_guest("adv_net", None).unwrap_err();
    match &error {
        PluginError::ImportNotGranted { name, import } => {
            assert_eq!(name, "adv_net");
            assert!(import.starts_with("wasi:sockets/"), "{import}");
        }
        other => panic!("expected ImportNotGranted, got {other:?}"),
    }
    assert_runtime_serves().await;
}

#[tokio::test]
async fn a_component_for_another_contract_is_refused() {
    let error = load_guest("adv_other_world", None).unwrap_err();
    match &error {
        PluginError::MissingExports { name, found } => {
            assert_eq!(name, "adv_other_world");
            assert_eq!(found, &["greet"]);
        }
        other => panic!("expected MissingExports, got {other:?}"),
    }
    assert_eq!(
        error.to_string(),
        "plugin `adv_other_world` exports neither `wasmsched:plugin/factory` nor \
         `wasmsched:plugin/filter` of wasmsched:plugin@0.1.x or 0.2.x (it exports: `greet`)"
    );
    assert_runtime_serves().await;
}

#[tokio::test]
async fn broken_files_are_refused_at_load() {
    let good = std::fs::read(example_path("large_dataset")).unwrap();
    let error = runtime()
        .load_bytes("truncated", &good[..good.len() / 2], None)
        .unwrap_err();
    match &error {
        PluginError::Compile { name, message } => {
            assert_eq!(name, "truncated");
            assert!(!message.is_empty());
        }
        other => panic!("expected Compile, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("plugin `truncated` is not a valid WebAssembly component: ")
    );
    one_line(&error.to_string());

    let error = runtime()
        .load_bytes("core", b"\0asm\x01\0\0\0", None)
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::NotAComponent { name } if name == "core"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "plugin `core` is a core WebAssembly module, not a component; build for wasm32-wasip2 \
         or run `wasm-tools component new`"
    );

    let error = runtime()
        .load_bytes("text", b"print('hello')", None)
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::Compile { message, .. } if message.contains("not a WebAssembly binary")),
        "{error:?}"
    );

    let missing = example_path("no_such_plugin");
    let error = runtime().load_file(&missing, None).unwrap_err();
    assert!(
        matches!(&error, PluginError::Read { path, .. } if *path == missing),
        "{error:?}"
    );
    assert!(
        error.to_string().starts_with("cannot read plugin file "),
        "{error}"
    );

    let error = runtime()
        .load_file(
            &example_path("large_dataset"),
            Some(Limits {
                memory_bytes: 8 << 30,
                ..Limits::default()
            }),
        )
        .unwrap_err();
    assert!(
        matches!(&error, PluginError::InvalidLimits { name, .. } if name == "large_dataset"),
        "{error:?}"
    );

    assert_runtime_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_each_get_their_own_instance() {
    let plugin = runtime()
        .load_file(&example_path("large_dataset"), None)
        .unwrap();
    let filter = plugin
        .filter("busy", config(&[("threshold", "100")]))
        .unwrap();
    let threads = 4;
    let calls = 50;
    let started = Instant::now();
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let filter = filter.clone();
            tokio::spawn(async move {
                for i in 0..calls {
                    let rows = (t * calls + i) as u64 * 7 % 200;
                    let e = event("a.b", json!({ "rows_count": rows }));
                    assert_eq!(filter.accept(&e).await.unwrap(), rows > 100);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = plugin.stats();
    assert_eq!(stats.calls, (threads * calls) as u64);
    assert_eq!(stats.errors + stats.traps + stats.timeouts, 0);
    eprintln!(
        "{} calls on {threads} threads in {elapsed:?} ({:?} per call per thread)",
        stats.calls,
        elapsed * threads as u32 / stats.calls as u32
    );
}

/// Compiled code kept on disk is reused, and a corrupt entry is discarded
/// and compiled again (`PluginRuntime::with_code_cache`).
#[tokio::test]
async fn compiled_code_cache_is_reused_and_survives_corruption() {
    let cache = tempfile::tempdir().unwrap();
    let even = std::fs::read(guest_path("accept_even")).unwrap();
    let load = async || {
        let runtime = PluginRuntime::with_code_cache(
            wasmsched::plugin::RuntimeOptions::default(),
            cache.path(),
        )
        .unwrap();
        let plugin = runtime.load_bytes("parity", &even, None).unwrap();
        let filter = plugin.filter("t", Default::default()).unwrap();
        let event = |n: u64| Event::new(Topic::new("numbers.in").unwrap(), json!({ "n": n }));
        assert!(
            filter.accept(&event(2)).await.unwrap() && !filter.accept(&event(3)).await.unwrap()
        );
        runtime.cache_stats().unwrap()
    };
    let cold = load().await;
    assert_eq!((cold.hits, cold.misses, cold.discarded), (0, 1, 0));
    let warm = load().await;
    assert_eq!((warm.hits, warm.misses, warm.discarded), (1, 0, 0));

    let entries: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut corrupt = std::fs::read(&entries[0]).unwrap();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    std::fs::write(&entries[0], corrupt).unwrap();
    let recovered = load().await;
    assert_eq!(
        (recovered.hits, recovered.misses, recovered.discarded),
        (0, 1, 1)
    );
    let again = load().await;
    assert_eq!((again.hits, again.misses, again.discarded), (1, 0, 0));
}

/// Publishes a small and then a large collection result: only the large
/// one comes out on `processed` (the rejected one went first, so a leak
/// would arrive first), as it was. The event that came out.
pub async fn only_a_large_dataset_goes_on(
    broker: &MemoryBroker,
    processed: &mut Subscription,
) -> Event {
    let small = json!({"rows_count": 10});
    let completed = "pipeline.collection.completed";
    broker.publish(event(completed, small)).await.unwrap();
    let big = event(completed, json!({"rows_count": 5000, "table": "orders"}));
    broker.publish(big.clone()).await.unwrap();
    let out = next_event(processed).await;
    assert_eq!(out.data, big.data, "republished as it is");
    out
}
