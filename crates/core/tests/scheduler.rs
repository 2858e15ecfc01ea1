//! The scheduler end to end, in process: the seed's three scenarios, cron on
//! a simulated clock, dynamic (un)registration, and failing factories.
//!
//! Cron tests run on a paused tokio clock (`start_paused`): the runtime jumps
//! to the next timer deadline whenever it is idle, so hours of schedule take
//! milliseconds, through the same timer code as production. Every test runs
//! paused, so a missing event fails at once instead of hanging.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmsched_test_support::{next_event_within, observe};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wasmsched_core::broker::Subscription;
use wasmsched_core::{
    Broker, Clock, CronSchedule, CronTrigger, Event, MemoryBroker, NewEvent, Scheduler, Topic,
    Trigger, create_api_trigger, create_cron_trigger, create_event_trigger, factory_fn, filter_fn,
};

fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The next event on `sub`, failing the test if none arrives in (virtual) 3 days.
async fn next_event(sub: &mut Subscription) -> Event {
    next_event_within(sub, Duration::from_secs(3 * 86_400)).await
}

/// Asserts nothing arrives on `sub` within `wait` (virtual time).
async fn assert_quiet(sub: &mut Subscription, wait: Duration) {
    if let Ok(Some(delivery)) = tokio::time::timeout(wait, sub.next()).await {
        panic!(
            "unexpected event on {}: {}",
            delivery.event.topic, delivery.event.data
        );
    }
}

/// A worker outside the scheduler: completes every job delivered on `sub`.
fn worker(broker: MemoryBroker, completed: &'static str, mut sub: Subscription) {
    tokio::spawn(async move {
        while let Some(delivery) = sub.next().await {
            let data = json!({ "rows_count": 5000, "job": delivery.event.data });
            broker
                .publish(Event::new(topic(completed), data))
                .await
                .unwrap();
        }
    });
}

#[tokio::test(start_paused = true)]
async fn seed_scenario_data_pipeline_cron_then_event_then_event() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2026-03-01T02:59:30Z")),
    );
    let collect = create_cron_trigger(
        "0 3 * * *",
        Some(factory_fn(|f| {
            Ok(vec![NewEvent::new(
                json!({ "scheduled": f.instant.to_rfc3339() }),
            )])
        })),
    )
    .unwrap();
    let process = create_event_trigger(
        "pipeline.collection.completed",
        Some(factory_fn(|f| {
            let rows = &f.source().unwrap().data["rows_count"];
            Ok(vec![NewEvent::new(json!({ "rows": rows }))])
        })),
        None,
    )
    .unwrap();
    let notify = create_event_trigger(
        "pipeline.processing.completed",
        Some(factory_fn(|_| {
            Ok(vec![NewEvent::new(
                json!({ "to": "ops@example.com", "subject": "pipeline done" }),
            )])
        })),
        None,
    )
    .unwrap();
    scheduler
        .register_trigger("collect", collect.clone(), topic("pipeline.collection"))
        .await
        .unwrap();
    scheduler
        .register_trigger("process", process, topic("pipeline.processing"))
        .await
        .unwrap();
    scheduler
        .register_trigger("notify", notify, topic("notifications.email"))
        .await
        .unwrap();
    let mut collections = observe(&broker, "pipeline.collection").await;
    let mut emails = observe(&broker, "notifications.email").await;
    worker(
        broker.clone(),
        "pipeline.collection.completed",
        observe(&broker, "pipeline.collection").await,
    );
    worker(
        broker.clone(),
        "pipeline.processing.completed",
        observe(&broker, "pipeline.processing").await,
    );
    scheduler.start().await.unwrap();

    let collection = next_event(&mut collections).await;
    assert_eq!(collection.data["scheduled"], "2026-03-01T03:00:00+00:00");
    let email = next_event(&mut emails).await;
    assert_eq!(email.data["subject"], "pipeline done");
    assert_eq!(collect.fire_count(), 1);
    // The next collection is a day later, not before.
    let next = next_event(&mut collections).await;
    assert_eq!(next.data["scheduled"], "2026-03-02T03:00:00+00:00");
    scheduler.stop().await;
}

#[tokio::test(start_paused = true)]
async fn seed_scenario_error_alerting_on_logs_with_a_level_filter() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));
    let alert = create_event_trigger(
        "logs.**",
        Some(factory_fn(|f| {
            let source = f.source().unwrap();
            let service = source.data["service"].as_str().unwrap_or("unknown");
            Ok(vec![NewEvent::new(json!({
                "message": format!("ERROR in {service}: {}", source.data["message"].as_str().unwrap_or("")),
            }))])
        })),
        Some(filter_fn(|e: &Event| e.data["level"] == "ERROR")),
    )
    .unwrap();
    scheduler
        .register_trigger("alerts", alert.clone(), topic("alerts.critical"))
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    let mut alerts = observe(&broker, "alerts.critical").await;

    let logs = [
        (
            "logs.api.info",
            json!({"level": "INFO", "service": "api", "message": "ok"}),
        ),
        (
            "logs.db.error",
            json!({"level": "ERROR", "service": "db", "message": "disk full"}),
        ),
        (
            "metrics.cpu",
            json!({"level": "ERROR", "service": "cpu", "message": "not a log"}),
        ),
        (
            "logs.web",
            json!({"level": "WARN", "service": "web", "message": "slow"}),
        ),
    ];
    for (t, data) in logs {
        broker.publish(Event::new(topic(t), data)).await.unwrap();
    }
    let alert_event = next_event(&mut alerts).await;
    assert_eq!(alert_event.data["message"], "ERROR in db: disk full");
    assert_quiet(&mut alerts, Duration::from_millis(50)).await;
    let stats = alert.stats();
    assert_eq!(
        (stats.fires, stats.filter_accepted, stats.filter_rejected),
        (1, 1, 2)
    );
    scheduler.stop().await;
}

#[tokio::test(start_paused = true)]
async fn seed_scenario_webhook_to_event() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone()));
    let github = create_api_trigger(Some(factory_fn(|f| {
        let payload = f.payload().cloned().unwrap_or(Value::Null);
        Ok(vec![NewEvent::new(
            json!({ "source": "github", "payload": payload }),
        )])
    })));
    scheduler
        .register_trigger("github", github.clone(), topic("webhooks.github"))
        .await
        .unwrap();
    let mut webhooks = observe(&broker, "webhooks.*").await;
    assert!(github.trigger(json!({})).await.is_err(), "not started yet");
    scheduler.start().await.unwrap();

    let payload = json!({"webhook_id": "wh_001", "user_id": 123, "action": "login"});
    assert_eq!(github.trigger(payload.clone()).await.unwrap(), 1);
    assert_eq!(github.trigger(payload.clone()).await.unwrap(), 2);
    let event = next_event(&mut webhooks).await;
    assert_eq!(event.topic.as_str(), "webhooks.github");
    assert_eq!(event.data["payload"], payload);
    scheduler.stop().await;
    assert!(!github.is_running());
}

#[tokio::test(start_paused = true)]
async fn cron_fires_at_each_scheduled_instant_on_a_simulated_clock() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2026-01-01T00:07:00Z")),
    );
    let every_quarter = create_cron_trigger("*/15 * * * *", None).unwrap();
    scheduler
        .register_trigger("quarter", every_quarter.clone(), topic("ticks"))
        .await
        .unwrap();
    let mut ticks = observe(&broker, "ticks").await;
    scheduler.start().await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut ticks).await.data["scheduled"].clone());
    }
    assert_eq!(
        seen,
        [
            "2026-01-01T00:15:00+00:00",
            "2026-01-01T00:30:00+00:00",
            "2026-01-01T00:45:00+00:00",
            "2026-01-01T01:00:00+00:00"
        ]
    );
    assert_eq!(every_quarter.fire_count(), 4);
    scheduler.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cron_timer_follows_dst_in_new_york() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2026-03-07T12:00:00Z")),
    );
    let schedule = CronSchedule::with_zone_name("30 2 * * *", "America/New_York").unwrap();
    let daily = Arc::new(CronTrigger::new(schedule, None));
    scheduler
        .register_trigger("daily", daily, topic("daily"))
        .await
        .unwrap();
    let mut daily_events = observe(&broker, "daily").await;
    scheduler.start().await.unwrap();
    // 02:30 does not exist on 8 March: fires at 03:00 EDT, then 02:30 EDT.
    assert_eq!(
        next_event(&mut daily_events).await.data["scheduled"],
        "2026-03-08T07:00:00+00:00"
    );
    assert_eq!(
        next_event(&mut daily_events).await.data["scheduled"],
        "2026-03-09T06:30:00+00:00"
    );
    scheduler.stop().await;
}

#[tokio::test(start_paused = true)]
async fn registering_while_running_starts_and_unregistering_stops() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2026-01-01T00:00:30Z")),
    );
    scheduler.start().await.unwrap();
    let mut minutes = observe(&broker, "minutes").await;

    let minutely = create_cron_trigger("* * * * *", None).unwrap();
    scheduler
        .register_trigger("minutely", minutely.clone(), topic("minutes"))
        .await
        .unwrap();
    assert!(minutely.is_running(), "registering while running starts it");
    assert_eq!(
        next_event(&mut minutes).await.data["scheduled"],
        "2026-01-01T00:01:00+00:00"
    );
    let err = scheduler
        .register_trigger("minutely", create_api_trigger(None), topic("x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already registered"), "{err}");

    scheduler.unregister_trigger("minutely").await.unwrap();
    assert!(!minutely.is_running());
    assert_quiet(&mut minutes, Duration::from_secs(600)).await;
    assert_eq!(minutely.fire_count(), 1);
    assert!(scheduler.registered_triggers().await.is_empty());
    assert!(scheduler.unregister_trigger("minutely").await.is_err());

    // An event trigger registered while running subscribes at once.
    let relay = create_event_trigger("in.*", None, None).unwrap();
    scheduler
        .register_trigger("relay", relay.clone(), topic("out"))
        .await
        .unwrap();
    let mut out = observe(&broker, "out").await;
    broker
        .publish(Event::new(topic("in.a"), json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(next_event(&mut out).await.data["n"], 1);
    scheduler.unregister_trigger("relay").await.unwrap();
    broker
        .publish(Event::new(topic("in.a"), json!({"n": 2})))
        .await
        .unwrap();
    assert_quiet(&mut out, Duration::from_secs(1)).await;
    assert_eq!(relay.fire_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_factory_is_counted_and_its_trigger_keeps_firing() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2026-01-01T00:00:30Z")),
    );
    let calls = Arc::new(AtomicU64::new(0));
    let flaky = {
        let calls = calls.clone();
        factory_fn(move |f| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Err("database unreachable".into()),
            1 => panic!("factory bug"),
            _ => Ok(vec![NewEvent::new(json!({ "at": f.instant.to_rfc3339() }))]),
        })
    };
    let minutely = create_cron_trigger("* * * * *", Some(flaky)).unwrap();
    scheduler
        .register_trigger("flaky", minutely.clone(), topic("flaky"))
        .await
        .unwrap();
    let mut events = observe(&broker, "flaky").await;
    scheduler.start().await.unwrap();
    // Minutes 1 and 2 fail (an error, then a panic); minute 3 publishes.
    assert_eq!(
        next_event(&mut events).await.data["at"],
        "2026-01-01T00:03:00+00:00"
    );
    let stats = minutely.stats();
    assert_eq!(
        (stats.fires, stats.errors, stats.events_published),
        (3, 2, 1)
    );
    assert!(minutely.is_running());
    scheduler.stop().await;
}

/// A cron firing still under way when the scheduler stops finishes, and
/// the event trigger that takes its events (registered under an id that
/// sorts first, so it would be stopped first were the order by id) still
/// gets them: sources stop before subscribers.
#[tokio::test(start_paused = true)]
async fn a_firing_under_way_at_stop_reaches_its_subscribers() {
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::with_clock(
        Arc::new(broker.clone()),
        Clock::simulated(at("2030-01-07T08:59:59Z")),
    );
    let slow = create_cron_trigger(
        "* * * * *",
        Some(wasmsched_core::async_factory_fn(|_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(vec![NewEvent::new(json!({ "slow": true }))])
        })),
    )
    .unwrap();
    let relay = create_event_trigger("clock.slow", None, None).unwrap();
    scheduler
        .register_trigger("b-slow", slow, topic("clock.slow"))
        .await
        .unwrap();
    scheduler
        .register_trigger("a-relay", relay, topic("relayed.slow"))
        .await
        .unwrap();
    let mut out = observe(&broker, "relayed.*").await;
    scheduler.start().await.unwrap();
    // 09:00:00 fires; its factory sleeps until 09:00:05.
    tokio::time::sleep(Duration::from_secs(3)).await;
    scheduler.stop().await;
    let relayed = next_event_within(&mut out, Duration::from_secs(60)).await;
    assert_eq!(relayed.data, json!({ "slow": true }));
}
