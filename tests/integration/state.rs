//! The scheduler with a real SQLite state store, in process, on a simulated
//! clock: cron instants missed while "down" are caught up per policy, each
//! instant runs once between schedulers sharing a store, pauses survive a
//! restart, and the run history says what happened.
//!
//! A "restart" here is a new scheduler on the same store, its clock set
//! later; `state_binary` kills and restarts the real binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{Outcome, Retention, Run, StateStore};
use wasmsched::trigger::{CatchUp, CatchUpPolicy};
use wasmsched::{
    Cause, Clock, CronSchedule, CronTrigger, MemoryBroker, NewEvent, Scheduler, Topic, factory_fn,
};
use wasmsched_test_support::observe;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn store(dir: &tempfile::TempDir) -> Arc<dyn StateStore> {
    let path = dir.path().join("state.db");
    Arc::new(
        SqliteStore::open(&path, Retention::default())
            .await
            .unwrap(),
    )
}

/// A scheduler on `store` whose clock reads `now`, with one hourly trigger
/// `hourly` catching up by `catch_up`; counts factory calls in `calls`.
async fn host(
    store: &Arc<dyn StateStore>,
    broker: &MemoryBroker,
    now: &str,
    catch_up: CatchUp,
    calls: &Arc<AtomicU64>,
) -> Scheduler {
    let scheduler = Scheduler::with_clock(Arc::new(broker.clone()), Clock::simulated(at(now)))
        .with_state(store.clone());
    scheduler.restore().await.unwrap();
    let calls = calls.clone();
    let factory = factory_fn(move |firing| {
        calls.fetch_add(1, Ordering::SeqCst);
        let catch_up = matches!(
            firing.cause,
            Cause::Cron {
                run: wasmsched::CronRun::CatchUp
            }
        );
        Ok(vec![NewEvent::new(json!({
            "at": firing.instant.to_rfc3339(),
            "late": catch_up,
        }))])
    });
    let trigger = CronTrigger::new(CronSchedule::utc("0 * * * *").unwrap(), Some(factory))
        .with_catch_up(catch_up);
    scheduler
        .register_trigger("hourly", Arc::new(trigger), Topic::new("ticks").unwrap())
        .await
        .unwrap();
    scheduler
}

/// The history of `hourly`, newest first, once the catch-up a start does
/// in the background is done (a second of virtual time).
async fn runs(scheduler: &Scheduler, store: &Arc<dyn StateStore>) -> Vec<Run> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    scheduler.run_log().unwrap().flush().await;
    store.runs("hourly", 100).await.unwrap()
}

fn outcomes(runs: &[Run]) -> Vec<(String, &'static str, bool)> {
    runs.iter()
        .map(|r| {
            (
                r.instant.format("%H:%M").to_string(),
                r.outcome.as_str(),
                r.catch_up,
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn latest_missed_instant_runs_late_and_the_rest_are_recorded_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker, calls) = (store(&dir).await, MemoryBroker::new(), Arc::default());
    let mut ticks = observe(&broker, "ticks").await;

    // Up at 09:30: fires 10:00, then "goes down" at 10:30.
    let first = host(
        &store,
        &broker,
        "2030-01-07T09:30:00Z",
        CatchUp::default(),
        &calls,
    )
    .await;
    first.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    first.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let on_time = ticks.next().await.unwrap().event;
    assert_eq!(on_time.data["at"], "2030-01-07T10:00:00+00:00");

    // Back at 14:10: 11:00 .. 14:00 fell while down. `latest` (window 1h) runs 14:00.
    let second = host(
        &store,
        &broker,
        "2030-01-07T14:10:00Z",
        CatchUp::default(),
        &calls,
    )
    .await;
    second.start().await.unwrap();
    let late = ticks.next().await.unwrap().event;
    assert_eq!(
        late.data,
        json!({"at": "2030-01-07T14:00:00+00:00", "late": true})
    );
    assert_eq!(
        late.headers.get("wasmsched-catch-up").map(String::as_str),
        Some("true")
    );
    let history = runs(&second, &store).await;
    assert_eq!(
        outcomes(&history),
        [
            ("14:00".into(), "ok", true),
            ("13:00".into(), "missed", false),
            ("12:00".into(), "missed", false),
            ("11:00".into(), "missed", false),
            ("10:00".into(), "ok", false),
        ]
    );
    assert_eq!(history[0].events, vec![late.id]);
    // 13:00 is 70 minutes before the start: out of the window, as are 11:00 and 12:00.
    assert!(
        history[1..4]
            .iter()
            .all(|r| r.error.as_deref().unwrap().contains("catch_up_window (1h)"))
    );
    let stats = second.trigger("hourly").await.unwrap().trigger.stats();
    assert_eq!((stats.missed, stats.catch_ups), (3, 1));

    // The schedule goes on from there: 15:00 on time.
    tokio::time::sleep(Duration::from_secs(3000)).await;
    assert_eq!(ticks.next().await.unwrap().event.data["late"], false);
    second.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn all_runs_every_missed_instant_in_its_window_oldest_first_and_skip_runs_none() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker, calls) = (store(&dir).await, MemoryBroker::new(), Arc::default());
    let all = CatchUp {
        policy: CatchUpPolicy::All,
        window: Duration::from_secs(86_400),
        max: 3,
    };
    let first = host(&store, &broker, "2030-01-07T09:59:00Z", all, &calls).await;
    first.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await; // fires 10:00
    first.stop().await;

    let mut ticks = observe(&broker, "ticks").await;
    let second = host(&store, &broker, "2030-01-07T15:30:00Z", all, &calls).await;
    second.start().await.unwrap();
    for hour in ["13", "14", "15"] {
        let event = ticks.next().await.unwrap().event;
        assert_eq!(event.data["at"], format!("2030-01-07T{hour}:00:00+00:00"));
    }
    let history = runs(&second, &store).await;
    assert_eq!(
        outcomes(&history)[..5],
        [
            ("15:00".into(), "ok", true),
            ("14:00".into(), "ok", true),
            ("13:00".into(), "ok", true),
            ("12:00".into(), "missed", false),
            ("11:00".into(), "missed", false),
        ]
    );
    assert!(
        history[3]
            .error
            .as_deref()
            .unwrap()
            .contains("catch_up_max (3)")
    );
    second.stop().await;

    // `skip`: down 16:00 .. 17:59, nothing runs late.
    let skip = CatchUp {
        policy: CatchUpPolicy::Skip,
        ..CatchUp::default()
    };
    let before = calls.load(Ordering::SeqCst);
    let third = host(&store, &broker, "2030-01-07T17:59:00Z", skip, &calls).await;
    third.start().await.unwrap();
    let history = runs(&third, &store).await;
    assert_eq!(
        outcomes(&history)[..2],
        [
            ("17:00".into(), "missed", false),
            ("16:00".into(), "missed", false)
        ]
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
    tokio::time::sleep(Duration::from_secs(120)).await; // 18:00 on time
    assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    third.stop().await;
}

#[tokio::test(start_paused = true)]
async fn schedulers_sharing_a_store_run_each_instant_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, calls) = (store(&dir).await, Arc::new(AtomicU64::new(0)));
    let (a_broker, b_broker) = (MemoryBroker::new(), MemoryBroker::new());
    let now = "2030-01-07T09:59:00Z";
    let a = host(&store, &a_broker, now, CatchUp::default(), &calls).await;
    let b = host(&store, &b_broker, now, CatchUp::default(), &calls).await;
    a.start().await.unwrap();
    b.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5 * 3600)).await; // 10:00 .. 14:00
    a.stop().await;
    b.stop().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "each of 5 instants runs on one scheduler"
    );
    let history = runs(&a, &store).await;
    assert_eq!(
        history.iter().filter(|r| r.outcome == Outcome::Ok).count(),
        5
    );
}

#[tokio::test(start_paused = true)]
async fn a_pause_outlives_a_restart_and_instants_during_it_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker, calls) = (store(&dir).await, MemoryBroker::new(), Arc::default());
    let first = host(
        &store,
        &broker,
        "2030-01-07T09:59:00Z",
        CatchUp::default(),
        &calls,
    )
    .await;
    first.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await; // 10:00
    first.pause("hourly").await.unwrap();
    first.stop().await;

    let second = host(
        &store,
        &broker,
        "2030-01-07T12:30:00Z",
        CatchUp::default(),
        &calls,
    )
    .await;
    assert!(
        second.is_paused("hourly").await,
        "the pause is kept in the store"
    );
    second.start().await.unwrap();
    assert!(!second.trigger("hourly").await.unwrap().trigger.is_running());
    second.resume("hourly").await.unwrap();
    let history = runs(&second, &store).await;
    assert_eq!(
        outcomes(&history)[..2],
        [
            ("12:00".into(), "skipped", false),
            ("11:00".into(), "skipped", false)
        ]
    );
    assert!(history[0].error.as_deref().unwrap().contains("paused"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "nothing paused runs late");
    assert!(!store.paused().await.unwrap().contains("hourly"));
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_fire_by_the_triggers_offset_and_keeps_the_instant() {
    let broker = MemoryBroker::new();
    let clock = Clock::simulated(at("2030-01-07T09:59:00Z"));
    let scheduler = Scheduler::with_clock(Arc::new(broker.clone()), clock);
    // (scheduled instant, when the factory ran)
    type Fires = Vec<(DateTime<Utc>, DateTime<Utc>)>;
    let fired_at: Arc<std::sync::Mutex<Fires>> = Arc::default();
    let factory = {
        let fired_at = fired_at.clone();
        factory_fn(move |firing| {
            fired_at.lock().unwrap().push((firing.instant, clock.now()));
            Ok(vec![])
        })
    };
    let jitter = Duration::from_secs(600);
    let trigger = CronTrigger::new(CronSchedule::utc("0 * * * *").unwrap(), Some(factory))
        .with_jitter(jitter);
    scheduler
        .register_trigger("report", Arc::new(trigger), Topic::new("r").unwrap())
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await; // 10:00 and 11:00
    scheduler.stop().await;
    let offset = wasmsched::cron::jitter_offset("report", jitter);
    let health = scheduler.schedule_health().snapshot();
    assert_eq!(health.lateness.count, 2, "two fires measured");
    assert_eq!(
        health.lateness.buckets[0].1, 2,
        "on time, once the jitter is taken out"
    );
    let fired = fired_at.lock().unwrap().clone();
    assert_eq!(fired.len(), 2, "{fired:?}");
    for (hour, (instant, at)) in ["10", "11"].iter().zip(&fired) {
        assert_eq!(
            *instant,
            self::at(&format!("2030-01-07T{hour}:00:00Z")),
            "the scheduled instant"
        );
        let late = (*at - *instant).to_std().unwrap();
        assert!(
            late >= offset && late < offset + Duration::from_secs(1),
            "{late:?} vs {offset:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_replica_starting_while_another_waits_out_its_jitter_does_not_take_the_instant() {
    let dir = tempfile::tempdir().unwrap();
    let (store, calls) = (store(&dir).await, Arc::new(AtomicU64::new(0)));
    let jitter = Duration::from_secs(3000);
    let offset = wasmsched::cron::jitter_offset("hourly", jitter);
    assert!(
        offset > Duration::from_secs(60),
        "the test needs a long wait: {offset:?}"
    );
    let skip = CatchUp {
        policy: CatchUpPolicy::Skip,
        ..CatchUp::default()
    };
    let replica = |now: DateTime<Utc>| {
        let (store, calls) = (store.clone(), calls.clone());
        async move {
            let scheduler =
                Scheduler::with_clock(Arc::new(MemoryBroker::new()), Clock::simulated(now))
                    .with_state(store);
            let factory = factory_fn(move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(vec![])
            });
            let trigger = CronTrigger::new(CronSchedule::utc("0 * * * *").unwrap(), Some(factory))
                .with_catch_up(skip)
                .with_jitter(jitter);
            scheduler
                .register_trigger("hourly", Arc::new(trigger), Topic::new("t").unwrap())
                .await
                .unwrap();
            scheduler.start().await.unwrap();
            scheduler
        }
    };
    let a = replica(at("2030-01-07T09:59:00Z")).await;
    // 10:00 came; A waits out its offset before claiming it. B starts meanwhile.
    let halfway = Duration::from_secs(60) + offset / 2;
    tokio::time::sleep(halfway).await;
    let b =
        replica(at("2030-01-07T09:59:00Z") + chrono::TimeDelta::from_std(halfway).unwrap()).await;
    tokio::time::sleep(offset).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "10:00 runs once, on A");
    let history = runs(&a, &store).await;
    assert!(
        history.iter().all(|r| r.outcome == Outcome::Ok),
        "{history:?}"
    );
}

/// A cron trigger whose factory takes 150 s, fired every minute for 6
/// minutes under `overlap`: the instants each firing was for.
async fn overlapping(overlap: wasmsched::trigger::OverlapPolicy) -> Vec<String> {
    let clock = Clock::simulated(at("2030-01-07T09:59:30Z"));
    let scheduler = Scheduler::with_clock(Arc::new(MemoryBroker::new()), clock);
    let started: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let factory = {
        let started = started.clone();
        wasmsched::async_factory_fn(move |firing| {
            started
                .lock()
                .unwrap()
                .push(firing.instant.format("%H:%M").to_string());
            async move {
                tokio::time::sleep(Duration::from_secs(150)).await;
                Ok(vec![])
            }
        })
    };
    let trigger = CronTrigger::new(CronSchedule::utc("* * * * *").unwrap(), Some(factory))
        .with_overlap(overlap);
    scheduler
        .register_trigger("slow", Arc::new(trigger), Topic::new("t").unwrap())
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(6 * 60)).await; // 10:00 .. 10:05
    scheduler.stop().await;
    started.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn overlap_policies_decide_what_runs_while_a_firing_still_runs() {
    use wasmsched::trigger::OverlapPolicy;
    let all = overlapping(OverlapPolicy::Allow).await;
    assert_eq!(all, ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"]);
    // 10:00 runs until 10:02:30; 10:01 and 10:02 are skipped; 10:03 runs until 10:05:30.
    assert_eq!(overlapping(OverlapPolicy::Skip).await, ["10:00", "10:03"]);
    // 10:01 waits for 10:00 and runs at 10:02:30 (until 10:05); 10:02 is skipped;
    // 10:03 waits and runs at 10:05; 10:04 is skipped; 10:05 waits (stopped before it runs).
    assert_eq!(
        overlapping(OverlapPolicy::BufferOne).await,
        ["10:00", "10:01", "10:03"]
    );
}

/// `n` hourly triggers `t0`.. publishing to `ticks`, on `store`, at `now`.
async fn many(
    store: &Arc<dyn StateStore>,
    broker: &MemoryBroker,
    now: &str,
    n: usize,
) -> Scheduler {
    let scheduler = Scheduler::with_clock(Arc::new(broker.clone()), Clock::simulated(at(now)))
        .with_state(store.clone());
    let schedule = Arc::new(CronSchedule::utc("0 * * * *").unwrap());
    for i in 0..n {
        let trigger = CronTrigger::new(schedule.clone(), None);
        scheduler
            .register_trigger(
                &format!("t{i}"),
                Arc::new(trigger),
                Topic::new("ticks").unwrap(),
            )
            .await
            .unwrap();
    }
    scheduler
}

#[tokio::test(start_paused = true)]
async fn triggers_starting_together_each_claim_their_start_and_catch_up_after_a_restart() {
    // More than one batch of starts (1 024), so batches follow each other.
    const N: usize = 2_500;
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = (store(&dir).await, MemoryBroker::new());
    let ids: Vec<String> = (0..N).map(|i| format!("t{i}")).collect();
    let mut ticks = observe(&broker, "ticks").await;

    // Up at 09:30: each new trigger claims 09:30, so a later start knows
    // what it owes.
    let first = many(&store, &broker, "2030-01-07T09:30:00Z", N).await;
    first.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = store.last_fires(&ids).await.unwrap();
    assert_eq!(last.len(), N);
    assert!(
        last.values()
            .all(|l| l.value.instant == at("2030-01-07T09:30:00Z") && l.revision == 1)
    );
    first.stop().await;

    // Back at 11:10: 10:00 and 11:00 fell while down; `latest` runs 11:00
    // late for every one of them, once.
    let second = many(&store, &broker, "2030-01-07T11:10:00Z", N).await;
    second.start().await.unwrap();
    let mut late = std::collections::HashSet::new();
    for _ in 0..N {
        let event = ticks.next().await.unwrap().event;
        assert_eq!(event.headers["wasmsched-catch-up"], "true");
        late.insert(event.headers["wasmsched-trigger"].clone());
    }
    assert_eq!(late.len(), N);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = store.last_fires(&ids).await.unwrap();
    assert!(
        last.values()
            .all(|l| l.value.instant == at("2030-01-07T11:00:00Z"))
    );
    second.stop().await;
}

/// 2 000 cron triggers on one store, due at the same instant: the
/// scheduler says when every one has started, each claims the instant
/// (the claims go to SQLite in batches) and fires it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_triggers_due_together_claim_in_batches_and_each_fires_once() {
    const N: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let broker = MemoryBroker::new();
    let mut events = observe(&broker, "together").await;
    // Two seconds of real time before the instant.
    let clock = Clock::simulated(at("2026-12-08T10:00:58Z"));
    let scheduler =
        Scheduler::with_clock(Arc::new(broker.clone()), clock).with_state(store.clone());
    for i in 0..N {
        let schedule = CronSchedule::new("* * * * *", chrono_tz::UTC).unwrap();
        scheduler
            .register(
                format!("t{i}"),
                Arc::new(CronTrigger::new(schedule, None)),
                Topic::new("together").unwrap(),
            )
            .await
            .unwrap();
    }
    scheduler.start().await.unwrap();
    wasmsched_test_support::wait::until_true(
        "every trigger started",
        Duration::from_secs(30),
        || scheduler.starting() == 0,
    )
    .await;
    let mut fired = std::collections::BTreeSet::new();
    while fired.len() < N {
        let event =
            wasmsched_test_support::next_event_within(&mut events, Duration::from_secs(30)).await;
        assert_eq!(
            event.data["scheduled"], "2026-12-08T10:01:00+00:00",
            "{event:?}"
        );
        let trigger = event.data["trigger_id"].as_str().unwrap().to_owned();
        assert!(fired.insert(trigger.clone()), "{trigger} fired twice");
    }
    let last = store.last_fire("t1999").await.unwrap().unwrap();
    assert_eq!(last.value.instant, at("2026-12-08T10:01:00Z"));
    scheduler.stop().await;
}
