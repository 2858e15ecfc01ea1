//! Flow control through the real scheduler: a storm of error logs throttled
//! to one alert per service per period, debounce (quiet period and
//! max_wait), batches, dedupe, a restart in the middle of a debounce and of
//! a batch, throttle and batch on JetStream shared by two replicas, and the
//! settings' errors. The in-memory tests run on tokio's paused clock
//! through a simulated scheduler clock: hours in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wasmsched::broker::{Broker, Subscription};
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{Retention, StateStore};
use wasmsched::trigger::flow::window::COUNT_HEADER;
use wasmsched::trigger::flow::{Batch, Debounce, Dedupe, FlowSpec, Throttle};
use wasmsched::{
    Clock, Event, EventTrigger, MemoryBroker, NewEvent, Scheduler, Topic, Trigger, factory_fn,
};
use wasmsched_test_support::observe;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

fn log(service: &str, n: u64) -> Event {
    Event::new(
        topic(&format!("logs.{service}")),
        json!({"level": "ERROR", "service": service, "n": n}),
    )
}

/// An event trigger on `logs.**` under `flow`, whose factory publishes
/// `{"service", "n", "count", "batch"}` for each firing.
fn alerting(flow: FlowSpec) -> Arc<EventTrigger> {
    let factory = factory_fn(|firing| {
        let source = firing.source().expect("an event firing");
        let count: u64 = source.headers[COUNT_HEADER].parse().unwrap();
        let batch: Vec<Value> = firing
            .batch()
            .map(|events| events.iter().map(|e| e.data["n"].clone()).collect())
            .unwrap_or_default();
        Ok(vec![NewEvent::new(json!({
            "service": source.data["service"],
            "n": source.data["n"],
            "count": count,
            "batch": batch,
        }))])
    });
    Arc::new(EventTrigger::new("logs.**".parse().unwrap(), Some(factory), None).with_flow(flow))
}

fn per_service(flow: FlowSpec) -> FlowSpec {
    FlowSpec {
        key: Some("/service".into()),
        ..flow
    }
}

async fn simulated(
    start: &str,
    trigger: Arc<EventTrigger>,
    store: Option<Arc<dyn StateStore>>,
) -> (Scheduler, MemoryBroker, Subscription) {
    let broker = MemoryBroker::new();
    let mut scheduler =
        Scheduler::with_clock(Arc::new(broker.clone()), Clock::simulated(at(start)));
    if let Some(store) = store {
        scheduler = scheduler.with_state(store);
    }
    scheduler
        .register_trigger("alerts", trigger, topic("alerts.critical"))
        .await
        .unwrap();
    let alerts = observe(&broker, "alerts.**").await;
    scheduler.start().await.unwrap();
    (scheduler, broker, alerts)
}

/// Everything `alerts` holds now, without waiting (the paused clock does
/// not move while tasks run).
async fn drain(alerts: &mut Subscription) -> Vec<Value> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::ZERO, alerts.next()).await {
        seen.push(delivery.event.data);
    }
    seen
}

/// Waits (without moving the paused clock) until the trigger has decided
/// about `n` events.
async fn settled(trigger: &EventTrigger, n: u64) {
    for _ in 0..1_000_000 {
        let s = trigger.stats();
        if s.fires + s.throttled + s.deduplicated + s.debounced + s.batched >= n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the trigger did not take {n} events: {:?}", trigger.stats());
}

#[tokio::test(start_paused = true)]
async fn a_storm_of_errors_gives_one_alert_per_service_per_throttle_period() {
    let trigger = alerting(per_service(FlowSpec {
        throttle: Some(Throttle {
            limit: 1,
            period: Duration::from_secs(300),
        }),
        ..FlowSpec::default()
    }));
    let (_scheduler, broker, mut alerts) =
        simulated("2030-01-01T00:00:00Z", trigger.clone(), None).await;
    let services = ["db", "web", "queue"];
    for n in 0..3_000 {
        broker
            .publish(log(services[n % 3], n as u64))
            .await
            .unwrap();
    }
    settled(&trigger, 3_000).await;
    let first = drain(&mut alerts).await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(|a| a["count"] == 1));
    let stats = trigger.stats();
    assert_eq!((stats.fires, stats.throttled), (3, 2_997));

    // A period later, the next burst: one alert per service again, each
    // standing for the 999 errors dropped since, and itself.
    tokio::time::advance(Duration::from_secs(300)).await;
    for n in 3_000..6_000 {
        broker
            .publish(log(services[n % 3], n as u64))
            .await
            .unwrap();
    }
    settled(&trigger, 6_000).await;
    let second = drain(&mut alerts).await;
    assert_eq!(second.len(), 3, "{second:?}");
    assert!(second.iter().all(|a| a["count"] == 1_000), "{second:?}");
    let mut alerted: Vec<&str> = second
        .iter()
        .map(|a| a["service"].as_str().unwrap())
        .collect();
    alerted.sort();
    assert_eq!(alerted, ["db", "queue", "web"]);
}

#[tokio::test(start_paused = true)]
async fn debounce_fires_once_quiet_and_at_max_wait_for_a_never_quiet_key() {
    let trigger = alerting(per_service(FlowSpec {
        debounce: Some(Debounce {
            period: Duration::from_secs(30),
            max_wait: Duration::from_secs(290),
        }),
        ..FlowSpec::default()
    }));
    let (_scheduler, broker, mut alerts) =
        simulated("2030-01-01T00:00:00Z", trigger.clone(), None).await;
    // `web` logs an error every 20 s for 10 minutes: never quiet for 30 s.
    let noisy = tokio::spawn({
        let broker = broker.clone();
        async move {
            for n in 0..30 {
                broker.publish(log("web", n)).await.unwrap();
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
        }
    });
    // `db` logs 10 errors a second apart, then is quiet.
    for n in 0..10 {
        broker.publish(log("db", n)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    noisy.await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let seen = drain(&mut alerts).await;
    let db: Vec<&Value> = seen.iter().filter(|a| a["service"] == "db").collect();
    assert_eq!(db.len(), 1, "{seen:?}");
    assert_eq!(
        (db[0]["n"].as_u64(), db[0]["count"].as_u64()),
        (Some(9), Some(10))
    );
    let web: Vec<(u64, u64)> = seen
        .iter()
        .filter(|a| a["service"] == "web")
        .map(|a| (a["n"].as_u64().unwrap(), a["count"].as_u64().unwrap()))
        .collect();
    // At 290 s (max_wait: the 15 events of 0..280 s), then at 590 s (the
    // 15 of 300..580 s).
    assert_eq!(web, [(14, 15), (29, 15)], "{seen:?}");
    assert_eq!(trigger.stats().debounced, 9 + 28);
}

/// A debounce fed one event every quarter of its period, keeping its
/// windows in SQLite, on the real clock: an event came in just before an
/// earlier deadline fell due, and the trigger's loop then waited for the
/// key's lock held by that event's own (no longer polled) admission. It
/// never fired again, took no more events, and held up the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debounce_fed_every_quarter_period_keeps_firing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"), Retention::default())
        .await
        .unwrap();
    let trigger = alerting(per_service(FlowSpec {
        debounce: Some(Debounce {
            period: Duration::from_millis(200),
            max_wait: Duration::from_millis(600),
        }),
        ..FlowSpec::default()
    }));
    let (scheduler, broker, mut alerts) = with_store(trigger.clone(), Arc::new(store)).await;
    // A steady cadence (not sleeps that drift): each event comes in as the
    // deadline set by the one four before it falls due.
    let mut cadence = tokio::time::interval(Duration::from_millis(50));
    for n in 0..60 {
        cadence.tick().await;
        broker.publish(log("db", n)).await.unwrap();
    }
    // Every event is taken in, and the last one fires once quiet.
    let mut last = Value::Null;
    let mut count = 0;
    while last["n"] != 59 {
        last = next(&mut alerts).await;
        count += last["count"].as_u64().unwrap();
    }
    assert_eq!(
        count,
        60,
        "each event is counted once: {:?}",
        trigger.stats()
    );
    let stats = trigger.stats();
    assert_eq!(stats.fires + stats.debounced, 60, "{stats:?}");
    tokio::time::timeout(Duration::from_secs(30), scheduler.stop())
        .await
        .expect("the trigger stops");
}

#[tokio::test(start_paused = true)]
async fn batches_of_max_events_and_the_rest_at_max_wait() {
    let trigger = alerting(FlowSpec {
        batch: Some(Batch {
            max_events: 100,
            max_wait: Duration::from_secs(10),
        }),
        ..FlowSpec::default()
    });
    let (_scheduler, broker, mut alerts) =
        simulated("2030-01-01T00:00:00Z", trigger.clone(), None).await;
    for n in 0..250 {
        broker.publish(log("db", n)).await.unwrap();
    }
    settled(&trigger, 250).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let seen = drain(&mut alerts).await;
    let sizes: Vec<usize> = seen
        .iter()
        .map(|a| a["batch"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50], "{seen:?}");
    assert_eq!(seen[1]["batch"][0], 100, "oldest first");
    assert_eq!(seen[2]["count"], 50);
    assert_eq!(trigger.stats().fires, 3);

    // Without a factory: one event {"count", "events"}.
    let plain = Arc::new(
        EventTrigger::new("logs.**".parse().unwrap(), None, None).with_flow(FlowSpec {
            batch: Some(Batch {
                max_events: 3,
                max_wait: Duration::from_secs(10),
            }),
            ..FlowSpec::default()
        }),
    );
    let (_scheduler, broker, mut alerts) =
        simulated("2030-01-01T00:00:00Z", plain.clone(), None).await;
    for n in 0..3 {
        broker.publish(log("db", n)).await.unwrap();
    }
    settled(&plain, 3).await;
    let seen = drain(&mut alerts).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["count"], 3);
    assert_eq!(seen[0]["events"][2]["n"], 2);
}

#[tokio::test(start_paused = true)]
async fn dedupe_within_and_after_the_window() {
    let trigger = alerting(per_service(FlowSpec {
        dedupe: Some(Dedupe {
            window: Duration::from_secs(600),
        }),
        ..FlowSpec::default()
    }));
    let (_scheduler, broker, mut alerts) =
        simulated("2030-01-01T00:00:00Z", trigger.clone(), None).await;
    broker.publish(log("db", 1)).await.unwrap();
    broker.publish(log("web", 2)).await.unwrap();
    // Decided now, before the clock moves (the window starts then).
    settled(&trigger, 2).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    broker.publish(log("db", 3)).await.unwrap();
    settled(&trigger, 3).await;
    assert_eq!(drain(&mut alerts).await.len(), 2);
    assert_eq!(trigger.stats().deduplicated, 1);
    tokio::time::advance(Duration::from_secs(540)).await;
    broker.publish(log("db", 4)).await.unwrap();
    settled(&trigger, 4).await;
    let seen = drain(&mut alerts).await;
    assert_eq!(seen.len(), 1, "{:?}", trigger.stats());
    assert_eq!(
        (seen[0]["n"].as_u64(), seen[0]["count"].as_u64()),
        (Some(4), Some(2))
    );
}

/// A scheduler on the system clock keeping its windows in `store`.
async fn with_store(
    trigger: Arc<EventTrigger>,
    store: Arc<dyn StateStore>,
) -> (Scheduler, MemoryBroker, Subscription) {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone())).with_state(store);
    scheduler
        .register_trigger("alerts", trigger, topic("alerts.critical"))
        .await
        .unwrap();
    let alerts = observe(&broker, "alerts.**").await;
    scheduler.start().await.unwrap();
    (scheduler, broker, alerts)
}

async fn next(alerts: &mut Subscription) -> Value {
    wasmsched_test_support::next_event_within(alerts, Duration::from_secs(10))
        .await
        .data
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_debounce_and_of_a_batch_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let open = async || {
        let store = SqliteStore::open(&path, Retention::default())
            .await
            .unwrap();
        Arc::new(store) as Arc<dyn StateStore>
    };
    let debounce = per_service(FlowSpec {
        debounce: Some(Debounce {
            period: Duration::from_millis(1500),
            max_wait: Duration::from_secs(10),
        }),
        ..FlowSpec::default()
    });
    let (scheduler, broker, _) = with_store(alerting(debounce.clone()), open().await).await;
    broker.publish(log("db", 1)).await.unwrap();
    broker.publish(log("db", 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    scheduler.stop().await;
    drop(scheduler);

    let (_scheduler, _broker, mut alerts) = with_store(alerting(debounce), open().await).await;
    let alert = next(&mut alerts).await;
    assert_eq!(
        (alert["n"].as_u64(), alert["count"].as_u64()),
        (Some(2), Some(2))
    );

    let batch = FlowSpec {
        batch: Some(Batch {
            max_events: 100,
            max_wait: Duration::from_millis(1500),
        }),
        ..FlowSpec::default()
    };
    let (scheduler, broker, _) = with_store(alerting(batch.clone()), open().await).await;
    for n in 0..5 {
        broker.publish(log("db", n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    scheduler.stop().await;
    drop(scheduler);
    let (_scheduler, _broker, mut alerts) = with_store(alerting(batch), open().await).await;
    let alert = next(&mut alerts).await;
    assert_eq!(alert["batch"], json!([0, 1, 2, 3, 4]));
}

#[test]
fn bad_settings_are_config_errors_naming_the_trigger_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, named) in [
        (
            r#"throttle = { limit = 1, period = "0s" }"#,
            "throttle.period",
        ),
        (
            r#"throttle = { limit = 0, period = "1m" }"#,
            "throttle.limit",
        ),
        (
            "key = \"service\"\nthrottle = { limit = 1, period = \"1m\" }",
            "`key`",
        ),
        (
            r#"debounce = { period = "1m", max_wait = "10s" }"#,
            "debounce.max_wait",
        ),
        // Once a panic of the trigger's task, losing its events silently.
        (
            r#"throttle = { limit = 1, period = "100000000000000000s" }"#,
            "0ms to 36500d",
        ),
        (
            r#"dedupe = { window = 9223372036854775807 }"#,
            "0ms to 36500d",
        ),
    ] {
        let path = dir.path().join("wasmsched.toml");
        let text = format!(
            "[[trigger]]\nid = \"storm\"\nkind = \"event\"\nsource = \"logs.**\"\ntopic = \"a\"\n{setting}\n"
        );
        std::fs::write(&path, text).unwrap();
        let error = wasmsched::config::Config::load(&path)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("storm") && error.contains(named),
            "{setting}: {error}"
        );
    }
    let path = dir.path().join("wasmsched.toml");
    std::fs::write(
        &path,
        "[[trigger]]\nid = \"c\"\nkind = \"cron\"\nschedule = \"@daily\"\ntopic = \"a\"\nconcurrency = 2\n",
    )
    .unwrap();
    let error = wasmsched::config::Config::load(&path)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`concurrency` is only for event triggers"),
        "{error}"
    );
}

#[tokio::test]
async fn concurrency_holds_a_key_to_its_limit() {
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let factory = wasmsched::async_factory_fn({
        let (running, most) = (running.clone(), most.clone());
        move |_firing| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.fetch_sub(1, SeqCst);
                Ok(vec![])
            }
        }
    });
    let trigger = Arc::new(
        EventTrigger::new("logs.**".parse().unwrap(), Some(factory), None)
            .with_max_in_flight(8)
            .with_flow(per_service(FlowSpec {
                concurrency: Some(2),
                ..FlowSpec::default()
            })),
    );
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));
    scheduler
        .register_trigger("alerts", trigger.clone(), topic("alerts"))
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    for n in 0..8 {
        broker.publish(log("db", n)).await.unwrap();
    }
    for _ in 0..100 {
        if trigger.stats().fires == 8 && running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(trigger.stats().fires, 8);
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        trigger.stats().concurrency_waits >= 1,
        "{:?}",
        trigger.stats()
    );
}

// ----------------------------------------------------------------- JetStream

#[cfg(feature = "cli")]
mod jetstream {
    use super::*;
    use wasmsched::state::nats::NatsStore;
    use wasmsched::{NatsBroker, NatsOptions};

    use wasmsched_test_support::nats_server;

    /// Two replicas of one event trigger under `flow`, sharing the stream
    /// (a durable consumer) and the state store.
    async fn replicas(
        server: &nats_server::NatsServer,
        flow: &FlowSpec,
    ) -> (Vec<Scheduler>, Vec<Arc<EventTrigger>>, Arc<NatsBroker>) {
        let (mut schedulers, mut triggers, mut brokers) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..2 {
            let options = NatsOptions {
                url: server.url(),
                ..NatsOptions::default()
            };
            let broker = Arc::new(NatsBroker::connect(options).await.unwrap());
            let store = NatsStore::open(broker.jetstream(), "WASMSCHED", Retention::default())
                .await
                .unwrap();
            let scheduler = Scheduler::new(broker.clone()).with_state(Arc::new(store));
            let trigger = alerting(flow.clone());
            scheduler
                .register_trigger("alerts", trigger.clone(), topic("alerts.critical"))
                .await
                .unwrap();
            scheduler.start().await.unwrap();
            schedulers.push(scheduler);
            triggers.push(trigger);
            brokers.push(broker);
        }
        (schedulers, triggers, brokers.swap_remove(0))
    }

    async fn decided(triggers: &[Arc<EventTrigger>], n: u64) {
        for _ in 0..600 {
            let total: u64 = triggers
                .iter()
                .map(|t| {
                    let s = t.stats();
                    s.fires + s.throttled + s.batched
                })
                .sum();
            if total >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the replicas did not take {n} events");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_throttle_is_shared_by_two_replicas() {
        let server = nats_server::NatsServer::start();
        let flow = per_service(FlowSpec {
            throttle: Some(Throttle {
                limit: 1,
                period: Duration::from_secs(300),
            }),
            ..FlowSpec::default()
        });
        let (_schedulers, triggers, broker) = replicas(&server, &flow).await;
        let mut alerts = observe(&*broker, "alerts.**").await;
        let services = ["db", "web", "queue"];
        for n in 0..300 {
            broker
                .publish(log(services[n % 3], n as u64))
                .await
                .unwrap();
        }
        decided(&triggers, 300).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut seen = Vec::new();
        while let Ok(Some(d)) =
            tokio::time::timeout(Duration::from_millis(200), alerts.next()).await
        {
            seen.push(d.event.data);
        }
        assert_eq!(
            seen.len(),
            3,
            "one alert per service across replicas: {seen:?}"
        );
        let fires: u64 = triggers.iter().map(|t| t.stats().fires).sum();
        let throttled: u64 = triggers.iter().map(|t| t.stats().throttled).sum();
        assert_eq!((fires, throttled), (3, 297));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_shared_by_two_replicas() {
        let server = nats_server::NatsServer::start();
        let flow = FlowSpec {
            batch: Some(Batch {
                max_events: 100,
                max_wait: Duration::from_secs(2),
            }),
            ..FlowSpec::default()
        };
        let (_schedulers, triggers, broker) = replicas(&server, &flow).await;
        let mut alerts = observe(&*broker, "alerts.**").await;
        for n in 0..250 {
            broker.publish(log("db", n)).await.unwrap();
        }
        decided(&triggers, 250).await;
        let mut batches = Vec::new();
        while batches.len() < 3 {
            let alert =
                wasmsched_test_support::next_event_within(&mut alerts, Duration::from_secs(15))
                    .await;
            batches.push(alert.data["batch"].as_array().unwrap().len());
        }
        batches.sort();
        assert_eq!(batches, [50, 100, 100]);
        let fires: u64 = triggers.iter().map(|t| t.stats().fires).sum();
        assert_eq!(fires, 3);
    }
}

/// A batched trigger whose factory targets wasmsched:plugin@0.1.0 (which
/// has no batches) is refused when registered, saying why; unbatched, the
/// same plugin runs.
#[tokio::test]
async fn a_batched_trigger_refuses_a_0_1_0_factory() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let guest = std::path::Path::new(env!("WASMSCHED_GUEST_DIR")).join("legacy_v01.wasm");
    std::fs::copy(guest, plugins.join("legacy.wasm")).unwrap();
    std::fs::write(
        plugins.join("legacy.toml"),
        "[[trigger]]\nid = \"digest\"\nkind = \"event\"\nsource = \"logs.**\"\ntopic = \"d\"\n\
         plugin = \"legacy\"\nbatch = { max_events = 10, max_wait = \"5s\" }\n\n\
         [[trigger]]\nid = \"each\"\nkind = \"event\"\nsource = \"logs.**\"\ntopic = \"e\"\n\
         plugin = \"legacy\"\nthrottle = { limit = 1, period = \"1m\" }\n",
    )
    .unwrap();
    let path = dir.path().join("wasmsched.toml");
    std::fs::write(&path, "[plugins]\nwatch = false\ncache = false\n").unwrap();
    let config = wasmsched::config::Config::load(&path).unwrap();
    let host = wasmsched::host::Host::start(config).await.unwrap();
    let problems = host.problems().join("\n");
    assert!(
        problems.contains("trigger `digest`")
            && problems.contains("wasmsched:plugin@0.1.0, whose factories cannot take batches"),
        "{problems}"
    );
    let registered = host.triggers().list().await;
    assert!(registered.contains_key("each") && !registered.contains_key("digest"));
    host.stop().await;
}
