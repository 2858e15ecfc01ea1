//! A slow plugin never stalls the host: plugins that spin until their
//! deadline, more of them than the runtime has worker threads, while an api
//! trigger, `/healthz` and a cron trigger keep working; and what a plugin
//! returns is bounded the same way on the memory and the JetStream broker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmsched::broker::{Broker, MemoryBroker, NatsBroker, NatsOptions, RetryPolicy};
use wasmsched::plugin::{Limits, PluginRuntime, RuntimeOptions};
use wasmsched::trigger::{create_api_trigger, create_cron_trigger, create_event_trigger};
use wasmsched::{Clock, Event, Scheduler, Topic, Trigger, TriggerError};

use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::Replica;
use wasmsched_test_support::{next_event_within, observe};

/// How long each spinning call runs before its time limit stops it (running
/// time: sharing two workers, each takes several times that in wall time),
/// far longer than the checks made meanwhile need, so that "answered while
/// every plugin call was still running" is an ordering, not a race.
const SPIN: Duration = Duration::from_secs(2);

fn guest(name: &str) -> PathBuf {
    Path::new(env!("WASMSCHED_GUEST_DIR")).join(format!("{name}.wasm"))
}

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn adv_loop_stats(base: &str) -> Value {
    let plugins = get_json(&format!("{base}/api/admin/plugins")).await;
    plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "adv_loop")
        .unwrap_or_else(|| panic!("adv_loop not listed: {plugins}"))["stats"]
        .clone()
}

/// The real binary: six event triggers whose filter loops until its
/// deadline (on a 2-worker runtime here), one event each; while all six
/// calls run, an api trigger without a plugin and `/healthz` answer 20
/// times each, and the six calls then end at their deadline as timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_healthz_answer_while_filters_spin() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guest("adv_loop"), plugins.join("adv_loop.wasm")).unwrap();
    // One attempt per event: each filter call times out once.
    let mut config = format!(
        "[plugins]\nwatch = false\ncache = false\nmax_calls = 8\n\n[plugins.limits]\ntimeout = \"{}ms\"\n\n\
         [broker]\nkind = \"memory\"\nmax_deliver = 1\n\n\
         [[trigger]]\nid = \"plain\"\nkind = \"api\"\ntopic = \"plain.out\"\n",
        SPIN.as_millis()
    );
    for i in 0..6 {
        config.push_str(&format!(
            "\n[[trigger]]\nid = \"spin-{i}\"\nkind = \"event\"\nsource = \"storm.{i}\"\n\
             topic = \"spin.out\"\nplugin = \"adv_loop\"\n"
        ));
    }
    std::fs::write(dir.path().join("wasmsched.toml"), config).unwrap();
    let host = Replica::start(&dir.path().join("wasmsched.toml")).await;
    let base = host.base.clone();
    let client = reqwest::Client::new();

    let storm = Instant::now();
    for i in 0..6 {
        let published = client
            .post(format!("{base}/api/events"))
            .json(&json!({"topic": format!("storm.{i}"), "data": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(published.status(), 202);
    }
    // Every filter call has started...
    let deadline = Instant::now() + SPIN / 2;
    while adv_loop_stats(&base).await["calls"] != 6 {
        assert!(
            Instant::now() < deadline,
            "the six filter calls did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and while they spin, the api trigger and /healthz answer.
    for n in 0..20 {
        let fired = client
            .post(format!("{base}/api/triggers/plain/trigger"))
            .json(&json!({"data": {"n": n}}))
            .send()
            .await
            .unwrap();
        assert_eq!(fired.status(), 200, "{}", fired.text().await.unwrap());
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    let stats = adv_loop_stats(&base).await;
    assert_eq!(
        (stats["calls"].as_u64(), stats["timeouts"].as_u64()),
        (Some(6), Some(0)),
        "all six calls still running after the api calls: {stats}"
    );
    // Each call still ends at its time limit, as a timeout.
    let deadline = Instant::now() + SPIN * 15;
    while adv_loop_stats(&base).await["timeouts"] != 6 {
        assert!(Instant::now() < deadline, "{}", adv_loop_stats(&base).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(storm.elapsed() >= SPIN, "a call ended before its deadline");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wasmsched_plugin_calls_in_flight 0"),
        "{metrics}"
    );
}

/// In process, on a simulated clock: a cron trigger fires at its instant
/// while four filter calls (more than the two workers) spin, and those
/// calls end at their time limit, counted in running time. Calls beyond
/// `max_calls` wait their turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_trigger_fires_while_filters_spin() {
    let limits = Limits {
        timeout: SPIN,
        ..Limits::default()
    };
    let runtime = PluginRuntime::new(
        RuntimeOptions::default()
            .with_default_limits(limits)
            .with_max_calls(4, 2),
    )
    .unwrap();
    let spinner = runtime.load_file(&guest("adv_loop"), None).unwrap();
    // One attempt per event: each filter call times out once.
    let broker = MemoryBroker::with_retry_policy(RetryPolicy {
        max_deliver: 1,
        ..Default::default()
    });
    // Half a second before a cron instant, advancing in real time.
    let start = "2030-01-07T08:59:59.500Z".parse().unwrap();
    let scheduler = Scheduler::with_clock(Arc::new(broker.clone()), Clock::simulated(start));
    for i in 0..5 {
        let filter = spinner
            .filter(&format!("spin-{i}"), BTreeMap::new())
            .unwrap();
        let trigger = create_event_trigger(&format!("storm.{i}"), None, Some(filter)).unwrap();
        scheduler
            .register_trigger(format!("spin-{i}"), trigger, topic("spin.out"))
            .await
            .unwrap();
    }
    let cron = create_cron_trigger("* * * * *", None).unwrap();
    scheduler
        .register_trigger("tick", cron.clone(), topic("ticks"))
        .await
        .unwrap();
    let mut ticks = observe(&broker, "ticks").await;
    scheduler.start().await.unwrap();
    let storm = Instant::now();
    for i in 0..5 {
        broker
            .publish(Event::new(topic(&format!("storm.{i}")), json!({})))
            .await
            .unwrap();
    }
    let tick = next_event_within(&mut ticks, SPIN * 2).await;
    assert_eq!(tick.data["scheduled"], "2030-01-07T09:00:00+00:00");
    let (stats, admission) = (spinner.stats(), runtime.admission());
    assert_eq!(
        (stats.calls, stats.timeouts),
        (4, 0),
        "four calls spinning when the cron fired"
    );
    assert_eq!((admission.in_flight, admission.waiting), (4, 1));

    let deadline = Instant::now() + SPIN * 15;
    while spinner.stats().timeouts < 5 {
        assert!(Instant::now() < deadline, "{:?}", spinner.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fifth waited for a slot, then ran its own full time.
    assert!(storm.elapsed() >= SPIN * 2);
    assert_eq!(runtime.admission().queued_total, 1);
    scheduler.stop().await;
}

/// What `adv_flood` in `mode` makes of one firing of an api trigger on
/// `broker`: the error, and whether anything was published.
async fn flood(broker: Arc<dyn Broker>, mode: &str) -> (String, bool) {
    // The limits under test are on what the plugin returns, not its time:
    // on a busy machine making 100 000 events outlasts the default 100 ms,
    // and the verdict must not depend on the CPU's speed.
    let generous = Limits {
        timeout: Duration::from_secs(60),
        wall_timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    let mut options = RuntimeOptions::default();
    options.default_limits = generous;
    let runtime = PluginRuntime::new(options).unwrap();
    let plugin = runtime.load_file(&guest("adv_flood"), None).unwrap();
    let config = BTreeMap::from([("mode".to_owned(), mode.to_owned())]);
    let trigger = create_api_trigger(Some(plugin.factory("flood", config).unwrap()));
    let scheduler = Scheduler::new(broker.clone());
    scheduler
        .register_trigger("flood", trigger.clone(), topic("flood.out"))
        .await
        .unwrap();
    let mut out = observe(broker.as_ref(), "flood.out").await;
    scheduler.start().await.unwrap();
    let error = trigger.trigger(json!({})).await.unwrap_err();
    let TriggerError::Fire(error) = error else {
        panic!("not a firing error: {error}");
    };
    let published = tokio::time::timeout(Duration::from_millis(500), out.next())
        .await
        .is_ok();
    scheduler.stop().await;
    (error.to_string(), published)
}

async fn outputs_are_bounded(broker: Arc<dyn Broker>) {
    let (error, published) = flood(broker.clone(), "big-header").await;
    assert!(!published);
    assert!(
        error.starts_with(
            "trigger `flood` published nothing (events from plugin `adv_flood`): event 0 is 8388617 bytes"
        ),
        "{error}"
    );
    let (error, published) = flood(broker.clone(), "many").await;
    assert!(!published);
    assert_eq!(
        error,
        "trigger `flood` published nothing (events from plugin `adv_flood`): 100000 events in \
         one firing, over the limit of 10000"
    );
    let (error, published) = flood(broker, "long-error").await;
    assert!(!published);
    assert!(error.len() < 4300, "{} bytes", error.len());
    assert!(
        error.ends_with("… (16777216 bytes in all)"),
        "{}",
        &error[error.len() - 60..]
    );
}

#[tokio::test]
async fn plugin_outputs_are_bounded_on_the_memory_broker() {
    outputs_are_bounded(Arc::new(MemoryBroker::new())).await;
}

#[tokio::test]
async fn plugin_outputs_are_bounded_on_jetstream() {
    let server = NatsServer::start();
    let options = NatsOptions {
        url: server.url(),
        ..NatsOptions::default()
    };
    let broker: Arc<dyn Broker> = Arc::new(NatsBroker::connect(options).await.unwrap());
    // The server's default max_payload (1 MiB) less the envelope.
    assert_eq!(broker.max_event_bytes(), Some((1 << 20) - (8 << 10)));
    outputs_are_bounded(broker).await;
}

/// A filter's 16 MiB error reaches the dead letter (JetStream), the log
/// and the trigger's error count cut to 4 KiB, marked with its length.
#[tokio::test]
async fn a_long_filter_error_is_cut_in_dead_letters() {
    let server = NatsServer::start();
    let options = NatsOptions {
        url: server.url(),
        max_deliver: 1,
        ..NatsOptions::default()
    };
    let broker = Arc::new(NatsBroker::connect(options).await.unwrap());
    let runtime = PluginRuntime::new(RuntimeOptions::default()).unwrap();
    let plugin = runtime.load_file(&guest("adv_flood"), None).unwrap();
    let config = BTreeMap::from([("mode".to_owned(), "long-error".to_owned())]);
    let trigger =
        create_event_trigger("input", None, Some(plugin.filter("picky", config).unwrap())).unwrap();
    let scheduler = Scheduler::new(broker.clone());
    scheduler
        .register_trigger("picky", trigger.clone(), topic("out"))
        .await
        .unwrap();
    let mut letters = observe(broker.as_ref(), "deadletter.picky").await;
    scheduler.start().await.unwrap();
    broker
        .publish(Event::new(topic("input"), json!({"n": 1})))
        .await
        .unwrap();
    let letter = next_event_within(&mut letters, Duration::from_secs(20)).await;
    let error = letter.data["error"].as_str().unwrap();
    assert!(
        error.starts_with("filter failed: plugin `adv_flood` failed: eeee"),
        "{}",
        &error[..80]
    );
    assert!(error.ends_with("… (16777216 bytes in all)"));
    assert!(error.len() < 4300, "{} bytes", error.len());
    assert_eq!(trigger.stats().errors, 1);
    scheduler.stop().await;
}

/// `POST /api/events` refuses an event over `[events] max_bytes` with 413,
/// and an api trigger without a plugin refuses such a payload the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_events_over_http_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let config = "[plugins]\nwatch = false\n\n[events]\nmax_bytes = \"1KiB\"\n\n\
                  [[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hook.out\"\n";
    std::fs::write(dir.path().join("wasmsched.toml"), config).unwrap();
    let host = Replica::start(&dir.path().join("wasmsched.toml")).await;
    let client = reqwest::Client::new();
    let big = "x".repeat(2000);
    let published = client
        .post(format!("{}/api/events", host.base))
        .json(&json!({"topic": "a.b", "data": {"big": big}}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 413);
    let body: Value = published.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("2010 bytes (data and headers), over the limit of 1024 bytes"),
        "{body}"
    );
    let fired = client
        .post(format!("{}/api/triggers/hook/trigger", host.base))
        .json(&json!({"data": {"big": big}}))
        .send()
        .await
        .unwrap();
    assert_eq!(fired.status(), 413);
    let small = client
        .post(format!("{}/api/events", host.base))
        .json(&json!({"topic": "a.b", "data": {"ok": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 202);
}
