//! The NATS JetStream broker against a real `nats-server -js` started per
//! test: pattern translation, replicas sharing cron and event triggers,
//! retries and dead letters, a replica killed under load, NATS restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use wasmsched::broker::{Broker, NatsBroker, NatsOptions, SubscriberKind, Subscription};
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::trigger::{create_cron_trigger, create_event_trigger};
use wasmsched::{Clock, Event, NewEvent, Scheduler, Topic, TopicPattern, factory_fn};
use wasmsched_test_support::Served;

use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::{Replica, health, wasmsched_status, write_config};
use wasmsched_test_support::{next_event_within, observe};

const WAIT: Duration = Duration::from_secs(20);

fn options(server: &NatsServer) -> NatsOptions {
    NatsOptions {
        url: server.url(),
        max_deliver: 3,
        retry_backoff_secs: vec![0.05],
        ..NatsOptions::default()
    }
}

async fn connect(server: &NatsServer) -> Arc<NatsBroker> {
    Arc::new(NatsBroker::connect(options(server)).await.unwrap())
}

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

/// The events `sub` delivers until `count` arrived (acknowledging each),
/// then any extra that arrives within a short while.
async fn take(sub: &mut Subscription, count: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < count {
        let delivery = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events arrived", events.len()))
            .expect("subscription open");
        events.push(delivery.event.clone());
        delivery.ack().await.unwrap();
    }
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        events.push(extra.event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_select_exactly_the_topics_they_match() {
    let server = NatsServer::start();
    let broker = connect(&server).await;
    let patterns = ["a.b", "a.*", "*.b", "logs.**", "a.**.z", "**.z", "**"];
    let mut subscriptions = Vec::new();
    for (index, text) in patterns.iter().enumerate() {
        let pattern = TopicPattern::new(*text).unwrap();
        let observer = broker
            .subscribe(&pattern, SubscriberKind::Observer)
            .await
            .unwrap();
        let trigger = SubscriberKind::Trigger {
            name: format!("pattern.{index}"),
        };
        let durable = broker.subscribe(&pattern, trigger).await.unwrap();
        subscriptions.push((pattern, observer, durable));
    }
    let topics = [
        "a", "a.b", "a.z", "a.b.z", "a.b.c.z", "logs", "logs.x.y", "x.b", "z", "b.z.c",
    ];
    for name in topics {
        let event = Event::new(topic(name), json!({ "topic": name }));
        broker.publish(event).await.unwrap();
    }
    for (pattern, mut observer, mut durable) in subscriptions {
        let expected: BTreeSet<&str> = topics
            .into_iter()
            .filter(|t| pattern.matches(&topic(t)))
            .collect();
        for (kind, sub) in [("observer", &mut observer), ("trigger", &mut durable)] {
            let got = take(sub, expected.len()).await;
            let got: Vec<&str> = got.iter().map(|e| e.topic.as_str()).collect();
            let got_set: BTreeSet<&str> = got.iter().copied().collect();
            assert_eq!(
                got.len(),
                got_set.len(),
                "{kind} of `{pattern}` got duplicates: {got:?}"
            );
            assert_eq!(got_set, expected, "{kind} of `{pattern}`");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_publish_each_cron_instant_once() {
    let server = NatsServer::start();
    let watcher = connect(&server).await;
    let mut reports = observe(watcher.as_ref(), "reports.daily").await;
    // Both replicas' clocks read 08:59:58.5 now, so both fire 09:00 in 1.5 s.
    let start: DateTime<Utc> = "2030-01-07T08:59:58.500Z".parse().unwrap();
    let nine: DateTime<Utc> = "2030-01-07T09:00:00Z".parse().unwrap();
    let mut replicas = Vec::new();
    for name in ["a", "b"] {
        let broker = connect(&server).await;
        let scheduler = Scheduler::with_clock(broker.clone(), Clock::simulated(start));
        let factory = factory_fn(move |firing| {
            Ok(vec![
                NewEvent::new(json!({ "part": 1, "scheduled": firing.instant, "by": name })),
                NewEvent::new(json!({ "part": 2, "by": name })),
            ])
        });
        let trigger = create_cron_trigger("0 9 * * MON-FRI", Some(factory)).unwrap();
        scheduler
            .register_trigger("daily-report", trigger, topic("reports.daily"))
            .await
            .unwrap();
        replicas.push((scheduler, broker));
    }
    for (scheduler, _) in &replicas {
        scheduler.start().await.unwrap();
    }
    let events = take(&mut reports, 2).await;
    let parts: Vec<&Value> = events.iter().map(|e| &e.data["part"]).collect();
    assert_eq!(parts, [&json!(1), &json!(2)], "{events:?}");
    assert_eq!(events[0].data["scheduled"], json!(nine));
    for (scheduler, _) in &replicas {
        let registered = scheduler.registered_triggers().await;
        let stats = registered["daily-report"].trigger.stats();
        assert_eq!(stats.fires, 1, "each replica fired 09:00");
        assert_eq!(stats.errors, 0);
    }
    // The slower replica's two publishes were acknowledged as duplicates
    // (its acks may still be on their way).
    let duplicates = || {
        replicas
            .iter()
            .map(|(_, b)| b.health().duplicates)
            .sum::<u64>()
    };
    let deadline = Instant::now() + WAIT;
    while duplicates() < 2 {
        assert!(Instant::now() < deadline, "{} duplicates", duplicates());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(duplicates(), 2);
    for (scheduler, _) in &replicas {
        scheduler.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_an_event_trigger_so_each_event_is_handled_once() {
    const EVENTS: u64 = 300;
    let server = NatsServer::start();
    let publisher = connect(&server).await;
    let mut done = observe(publisher.as_ref(), "jobs-done.out").await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let handled = Arc::new(Mutex::new(Vec::new()));
        let log = handled.clone();
        let factory = factory_fn(move |firing| {
            let source = firing.source().expect("an event firing");
            log.lock().unwrap().push(source.data["n"].as_u64().unwrap());
            Ok(vec![NewEvent::new(source.data.clone())])
        });
        let scheduler = Scheduler::new(connect(&server).await);
        let trigger = create_event_trigger("jobs.**", Some(factory), None).unwrap();
        scheduler
            .register_trigger("worker", trigger, topic("jobs-done.out"))
            .await
            .unwrap();
        scheduler.start().await.unwrap();
        replicas.push((scheduler, handled));
    }
    for n in 0..EVENTS {
        let event = Event::new(topic("jobs.batch"), json!({ "n": n }));
        publisher.publish(event).await.unwrap();
    }
    let outputs = take(&mut done, EVENTS as usize).await;
    let output_ns: BTreeSet<u64> = outputs
        .iter()
        .map(|e| e.data["n"].as_u64().unwrap())
        .collect();
    assert_eq!(outputs.len() as u64, EVENTS, "one output per event");
    assert_eq!(output_ns, (0..EVENTS).collect());
    let split: Vec<Vec<u64>> = replicas
        .iter()
        .map(|(_, handled)| handled.lock().unwrap().clone())
        .collect();
    let all: BTreeSet<u64> = split.iter().flatten().copied().collect();
    assert_eq!(
        split[0].len() + split[1].len(),
        EVENTS as usize,
        "each event handled once"
    );
    assert_eq!(all.len() as u64, EVENTS);
    println!(
        "handled by replica a: {}, b: {}",
        split[0].len(),
        split[1].len()
    );
    for (scheduler, _) in &replicas {
        scheduler.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_factory_is_retried_then_the_event_is_dead_lettered() {
    let server = NatsServer::start();
    let backoff = [0.2, 0.4];
    let options = NatsOptions {
        retry_backoff_secs: backoff.to_vec(),
        ..options(&server)
    };
    let broker = Arc::new(NatsBroker::connect(options).await.unwrap());
    let mut dead = observe(broker.as_ref(), "deadletter.**").await;
    let mut out = observe(broker.as_ref(), "digested").await;
    let attempts: Arc<Mutex<BTreeMap<String, Vec<Instant>>>> = Arc::default();
    let counted = attempts.clone();
    let factory = factory_fn(move |firing| {
        let data = &firing.source().unwrap().data;
        let kind = data["kind"].as_str().unwrap().to_owned();
        let attempt = {
            let mut attempts = counted.lock().unwrap();
            let times = attempts.entry(kind.clone()).or_default();
            times.push(Instant::now());
            times.len()
        };
        match kind.as_str() {
            "poison" => Err("cannot digest poison".into()),
            "flaky" if attempt < 3 => Err(format!("not yet (attempt {attempt})").into()),
            _ => Ok(vec![NewEvent::new(data.clone())]),
        }
    });
    let scheduler = Scheduler::new(broker.clone());
    let trigger = create_event_trigger("meals.*", Some(factory), None).unwrap();
    scheduler
        .register_trigger("digest", trigger, topic("digested"))
        .await
        .unwrap();
    // A trigger on every topic sees no dead letters (only patterns that
    // start with `deadletter` do), so it cannot feed on them.
    let everything: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = everything.clone();
    let audit = factory_fn(move |firing| {
        let source = firing.source().unwrap();
        seen.lock().unwrap().push(source.topic.as_str().to_owned());
        Ok(vec![])
    });
    let trigger = create_event_trigger("**", Some(audit), None).unwrap();
    scheduler
        .register_trigger("audit", trigger, topic("audited"))
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    for kind in ["poison", "flaky"] {
        let event = Event::new(topic("meals.lunch"), json!({ "kind": kind }));
        broker.publish(event).await.unwrap();
    }
    let letter = next_event_within(&mut dead, WAIT).await;
    assert_eq!(letter.topic.as_str(), "deadletter.digest");
    assert_eq!(letter.data["trigger"], "digest");
    assert_eq!(letter.data["deliveries"], 3);
    assert_eq!(letter.data["event"]["data"]["kind"], "poison");
    let error = letter.data["error"].as_str().unwrap();
    assert!(error.contains("cannot digest poison"), "{error}");
    let digested = take(&mut out, 1).await;
    assert_eq!(digested.len(), 1, "{digested:?}");
    assert_eq!(digested[0].data["kind"], "flaky");
    // Given up on: not delivered again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts["poison"].len(), 3);
    assert_eq!(attempts["flaky"].len(), 3);
    // Each retry waited (at least) its backoff.
    for times in attempts.values() {
        for (gap, wait) in times.windows(2).map(|w| w[1] - w[0]).zip(backoff) {
            assert!(
                gap.as_secs_f64() >= wait * 0.95,
                "retried after {gap:?}, backoff {wait} s"
            );
        }
    }
    let audited = everything.lock().unwrap().clone();
    assert!(audited.contains(&"meals.lunch".to_owned()), "{audited:?}");
    assert!(
        !audited.iter().any(|t| t.starts_with("deadletter")),
        "{audited:?}"
    );
    let stats = scheduler.registered_triggers().await["digest"]
        .trigger
        .stats();
    assert_eq!(stats.errors, 5, "poison failed three times, flaky twice");
    scheduler.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_under_load_loses_no_acknowledged_event() {
    const EVENTS: u64 = 1500;
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        "[[trigger]]\nid = \"relay\"\nkind = \"event\"\nsource = \"load.**\"\ntopic = \"relayed\"\n",
    );
    let mut doomed = Replica::start(&config).await;
    let _survivor = Replica::start(&config).await;
    let publisher = connect(&server).await;
    let mut relayed = observe(publisher.as_ref(), "relayed").await;
    // 64 publishes in flight at a time: faster than two replicas relay, so
    // each holds a full batch of unacknowledged deliveries.
    let publishing = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            let published = futures_util::stream::iter(0..EVENTS)
                .map(|n| {
                    let publisher = publisher.clone();
                    async move {
                        let event = Event::new(topic("load.in"), json!({ "n": n }));
                        publisher.publish(event).await.ok().map(|()| n)
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await;
            published.into_iter().flatten().collect::<BTreeSet<u64>>()
        }
    });
    let deadline = Instant::now() + WAIT;
    while doomed.fires().await < EVENTS / 10 {
        assert!(
            Instant::now() < deadline,
            "the doomed replica never got busy"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.child.kill().unwrap(); // SIGKILL: no goodbye
    let killed_at = Instant::now();
    let acknowledged = publishing.await.unwrap();
    assert_eq!(acknowledged.len() as u64, EVENTS, "NATS stayed up");
    let mut seen = BTreeSet::new();
    let mut outputs = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < acknowledged.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let missing = acknowledged.len() - seen.len();
        let delivery = tokio::time::timeout(left, relayed.next())
            .await
            .unwrap_or_else(|_| panic!("{missing} acknowledged events never relayed"))
            .unwrap();
        seen.insert(delivery.event.data["n"].as_u64().unwrap());
        outputs += 1;
    }
    assert_eq!(seen, acknowledged);
    println!(
        "{outputs} outputs for {EVENTS} events; the last one {:?} after the kill (ack_wait 2 s)",
        killed_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_recovers_when_nats_restarts() {
    let mut server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        "[[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks.in\"\n\n\
         [[trigger]]\nid = \"relay\"\nkind = \"event\"\nsource = \"hooks.*\"\ntopic = \"relayed\"\n",
    );
    let host = Host::start(Config::load(&config).unwrap()).await.unwrap();
    let served = Served::serve(host.clone()).await;
    let base = served.base.clone();
    let client = reqwest::Client::new();
    let fire = |n: u64| {
        let request = client
            .post(format!("{base}/api/triggers/hook/trigger"))
            .json(&json!({ "data": { "n": n } }));
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let relay_fires = || async {
        let registered = host.triggers().list().await;
        registered["relay"].trigger.stats().fires
    };
    let eventually = |what: &'static str, deadline: Duration| {
        let until = Instant::now() + deadline;
        move || assert!(Instant::now() < until, "timed out waiting: {what}")
    };

    assert_eq!(fire(1).await.0, 200);
    let check = eventually("the first event relayed", WAIT);
    while relay_fires().await < 1 {
        check();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A live stream opened now has seen nothing when NATS goes away: once
    // back, it must go on from here, not replay the stream (n = 1).
    let mut live = observe(host.broker().as_ref(), "hooks.*").await;

    server.kill();
    let check = eventually("/healthz to report the broker down", WAIT);
    loop {
        let (status, body) = health(&base).await;
        if status == 503 {
            assert_eq!(body["status"], "degraded");
            assert_eq!(body["broker"]["connected"], false);
            assert_eq!(body["broker"]["kind"], "nats");
            break;
        }
        check();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = wasmsched_test_support::http::text(format!("{base}/metrics")).await;
    assert!(
        metrics.contains("wasmsched_broker_connected{broker=\"nats\"} 0"),
        "{metrics}"
    );
    let report = wasmsched_status(&base).await;
    assert!(
        report.contains("broker: nats nats://127.0.0.1:"),
        "{report}"
    );
    assert!(
        report.contains("(NOT CONNECTED)") && report.contains("relay"),
        "{report}"
    );
    // A pause is shared through JetStream: with NATS down it says to try
    // later, naming the store, and changes nothing.
    let admin = |action: &'static str| {
        let request = client.post(format!("{base}/api/admin/triggers/relay/{action}"));
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = admin("pause").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("keeping a pause"),
        "{body}"
    );
    assert!(!host.triggers().is_paused("relay").await);
    let (status, body) = fire(2).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("not connected"), "{error}");

    server.restart();
    let check = eventually("the host to reconnect", Duration::from_secs(40));
    while health(&base).await.0 != 200 {
        check();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for action in ["pause", "resume"] {
        let (status, body) = admin(action).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    assert_eq!(fire(3).await.0, 200);
    let report = wasmsched_status(&base).await;
    assert!(report.contains("stream WASMSCHED (connected)"), "{report}");
    let check = eventually(
        "the event trigger to consume again",
        Duration::from_secs(40),
    );
    while relay_fires().await < 2 {
        check();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_seen = next_event_within(&mut live, WAIT).await;
    assert_eq!(first_seen.data["n"], 3, "{first_seen:?}");

    // A server that comes back without its store: the host makes the
    // stream and its consumers again and carries on.
    server.restart_empty();
    let check = eventually(
        "the host to recover on an empty server",
        Duration::from_secs(40),
    );
    let mut n = 4;
    while relay_fires().await < 3 {
        if fire(n).await.0 == 200 {
            n += 1;
        }
        check();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_name_the_server_the_stream_and_the_fix() {
    let server = NatsServer::start();
    let closed = NatsOptions {
        url: "nats://127.0.0.1:1".to_owned(),
        ..options(&server)
    };
    let error = NatsBroker::connect(closed).await.err().unwrap().to_string();
    assert!(
        error.contains("cannot connect to NATS at nats://127.0.0.1:1")
            && error.contains("nats-server -js"),
        "{error}"
    );
    // Several servers, comma-separated: the live one is found.
    let several = NatsOptions {
        url: format!("nats://127.0.0.1:1, {}", server.url()),
        ..options(&server)
    };
    let broker = NatsBroker::connect(several).await.unwrap();
    assert!(broker.health().connected);
    // The stream exists (made above) but captures other subjects.
    let other_prefix = NatsOptions {
        subject_prefix: "other".to_owned(),
        ..options(&server)
    };
    let error = NatsBroker::connect(other_prefix)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("NATS stream `WASMSCHED`")
            && error.contains("not [\"other.>\"]")
            && error.contains("subject_prefix"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_other_nats_clients_are_events_too() {
    let server = NatsServer::start();
    let broker = connect(&server).await;
    let mut first = observe(broker.as_ref(), "sensors.**").await;
    let mut second = observe(broker.as_ref(), "sensors.*").await;
    // Another program publishes plain JSON, and plain text, on our subjects.
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    for (subject, payload) in [
        ("ev.sensors.kitchen", r#"{"celsius": 21.5}"#),
        ("ev.sensors.door", "open"),
    ] {
        let ack = jetstream.publish(subject, payload.into()).await.unwrap();
        ack.await.unwrap();
    }
    let kitchen = next_event_within(&mut first, WAIT).await;
    assert_eq!(kitchen.topic.as_str(), "sensors.kitchen");
    assert_eq!(kitchen.data, json!({ "celsius": 21.5 }));
    let door = next_event_within(&mut first, WAIT).await;
    assert_eq!(door.topic.as_str(), "sensors.door");
    assert_eq!(door.data, json!("open"));
    // Ids come from the stream sequence: every delivery of a message has
    // the same one (so a trigger's outputs for it deduplicate).
    assert_ne!(kitchen.id, door.id);
    assert_eq!(next_event_within(&mut second, WAIT).await.id, kitchen.id);
    assert_eq!(next_event_within(&mut second, WAIT).await.id, door.id);
}

/// The scheduler takes no lock that readers wait for while a change awaits
/// the network: with the NATS server frozen (SIGSTOP) in the middle of
/// registering an event trigger (its durable consumer is being created),
/// `/healthz`, `/metrics` and the admin API still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_a_registration_waits_on_a_frozen_nats() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        "[[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks.in\"\n",
    );
    let host = Host::start(Config::load(&config).unwrap()).await.unwrap();
    let served = Served::serve(host.clone()).await;
    let base = served.base.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    server.freeze();
    let adding = tokio::spawn({
        let host = host.clone();
        async move {
            let table =
                json!({"id": "relay", "kind": "event", "source": "hooks.*", "topic": "relayed"});
            let table = wasmsched::config::TriggerConfig::from_json(table).unwrap();
            host.triggers().add(table).await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    if adding.is_finished() {
        panic!("the registration should wait on NATS: {:?}", adding.await);
    }
    for path in ["/healthz", "/metrics", "/api/admin/triggers"] {
        let response = client.get(format!("{base}{path}")).send().await;
        let response = response.unwrap_or_else(|e| panic!("{path} did not answer: {e}"));
        assert!(
            [200, 503].contains(&response.status().as_u16()),
            "{path}: {}",
            response.status()
        );
    }
    server.thaw();
    let added = tokio::time::timeout(WAIT, adding).await.unwrap().unwrap();
    added.unwrap();
    assert!(host.triggers().registration("relay").await.is_some());
    host.stop().await;
}
