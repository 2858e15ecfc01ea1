//! Retries and dead letters on the memory broker, as on JetStream: an event
//! a trigger fails on is tried `max_deliver` times, `retry_backoff_secs`
//! apart, without holding up the events after it; then it is kept in the
//! state store and published to `deadletter.<trigger>`; it can be replayed
//! through the trigger once fixed, or discarded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use wasmsched::broker::RetryPolicy;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{Retention, StateStore};
use wasmsched::{Broker, Event, MemoryBroker, NewEvent, Scheduler, Topic, Trigger, factory_fn};
use wasmsched_test_support::{next_event_within, observe};

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_failing_event_is_retried_then_kept_as_a_dead_letter_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"), Retention::default())
            .await
            .unwrap(),
    );
    let retry = RetryPolicy {
        max_deliver: 3,
        retry_backoff_secs: vec![1.0, 10.0],
        jitter: false,
    };
    let broker = MemoryBroker::with_retry_policy(retry);
    let scheduler = Scheduler::new(Arc::new(broker.clone())).with_state(store.clone());
    let (attempts, fixed) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let factory = {
        let (attempts, fixed) = (attempts.clone(), fixed.clone());
        factory_fn(move |firing| {
            let data = &firing.source().unwrap().data;
            if data["bad"] == true && !fixed.load(Ordering::SeqCst) {
                attempts.fetch_add(1, Ordering::SeqCst);
                return Err("cannot handle a bad order".into());
            }
            Ok(vec![NewEvent::new(data.clone())])
        })
    };
    let trigger = wasmsched::create_event_trigger("orders.*", Some(factory), None).unwrap();
    scheduler
        .register_trigger("handle-orders", trigger.clone(), topic("handled"))
        .await
        .unwrap();
    let mut handled = observe(&broker, "handled").await;
    let mut letters = observe(&broker, "deadletter.**").await;
    scheduler.start().await.unwrap();

    let bad = Event::new(topic("orders.new"), json!({"bad": true, "n": 1}));
    broker.publish(bad.clone()).await.unwrap();
    broker
        .publish(Event::new(topic("orders.new"), json!({"n": 2})))
        .await
        .unwrap();
    // The good order goes through while the bad one waits for its retry.
    let first = next_event_within(&mut handled, Duration::from_millis(500)).await;
    assert_eq!(first.data["n"], 2);

    // Three attempts (1 s, then 10 s apart), then a dead letter.
    let letter = next_event_within(&mut letters, Duration::from_secs(60)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(letter.topic.as_str(), "deadletter.handle-orders");
    assert_eq!(letter.data["event"]["id"], json!(bad.id));
    assert_eq!(letter.data["deliveries"], 3);
    let kept = store.dead_letters(None, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].event, bad);
    assert_eq!(kept[0].attempts, 3);
    assert!(
        kept[0].error.contains("cannot handle a bad order"),
        "{}",
        kept[0].error
    );
    assert_eq!(letter.data["dead_letter"], json!(kept[0].id));

    // Replayed before the fix: fails again, and the letter stays.
    let error = trigger.replay(bad.clone()).await.unwrap_err().to_string();
    assert!(error.contains("cannot handle a bad order"), "{error}");
    // After the fix: the same event goes through the trigger.
    fixed.store(true, Ordering::SeqCst);
    trigger.replay(bad.clone()).await.unwrap();
    let replayed = next_event_within(&mut handled, Duration::from_secs(1)).await;
    assert_eq!(replayed.data, json!({"bad": true, "n": 1}));
    scheduler.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_retry_owed_when_the_trigger_stops_is_kept_and_resumed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(
        SqliteStore::open(&dir.path().join("state.db"), Retention::default())
            .await
            .unwrap(),
    );
    let broker = MemoryBroker::new(); // 5 attempts, 1 s, 5 s, 30 s apart
    let scheduler = Scheduler::new(Arc::new(broker.clone())).with_state(store.clone());
    let failing = factory_fn(|_| Err("down".into()));
    let trigger = wasmsched::create_event_trigger("jobs.*", Some(failing), None).unwrap();
    scheduler
        .register_trigger("jobs", trigger, topic("done"))
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    broker
        .publish(Event::new(topic("jobs.a"), json!({"job": "a"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // two attempts made
    scheduler.stop().await;
    assert!(store.dead_letters(None, 10).await.unwrap().is_empty());
    let owed = store.pending("jobs").await.unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(
        (owed[0].attempts, owed[0].error.as_str()),
        (2, "factory of trigger `jobs` failed: down")
    );

    // Started again (a new process, same store), now able to do the job.
    let broker = MemoryBroker::new();
    let scheduler = Scheduler::new(Arc::new(broker.clone())).with_state(store.clone());
    let working =
        factory_fn(|firing| Ok(vec![NewEvent::new(firing.source().unwrap().data.clone())]));
    let trigger = wasmsched::create_event_trigger("jobs.*", Some(working), None).unwrap();
    scheduler
        .register_trigger("jobs", trigger, topic("done"))
        .await
        .unwrap();
    let mut done = observe(&broker, "done").await;
    scheduler.start().await.unwrap();
    let output = next_event_within(&mut done, Duration::from_secs(10)).await;
    assert_eq!(output.data, json!({"job": "a"}));
    scheduler.stop().await;
    assert!(
        store.pending("jobs").await.unwrap().is_empty(),
        "the retry is done"
    );
}

mod binary {
    //! The same through the real binary and its HTTP API, on both brokers.

    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use wasmsched_test_support::nats_server::NatsServer;
    use wasmsched_test_support::replica::Replica;

    /// A trigger whose plugin fails on every event (`mode = "long-error"`)
    /// until its manifest says otherwise.
    fn manifest(mode: &str) -> String {
        format!(
            "[[trigger]]\nid = \"orders\"\nkind = \"event\"\nsource = \"orders.*\"\ntopic = \"handled\"\n\
             plugin = \"adv_flood\"\n[trigger.config]\nmode = \"{mode}\"\n"
        )
    }

    fn setup(dir: &Path, broker: &str) -> PathBuf {
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let guest = Path::new(env!("WASMSCHED_GUEST_DIR")).join("adv_flood.wasm");
        std::fs::copy(guest, plugins.join("adv_flood.wasm")).unwrap();
        std::fs::write(plugins.join("orders.toml"), manifest("long-error")).unwrap();
        let config = dir.join("wasmsched.toml");
        let text = format!(
            "[plugins]\ncache = false\n\n[broker]\n{broker}max_deliver = 2\nretry_backoff_secs = [0.2]\n"
        );
        std::fs::write(&config, text).unwrap();
        config
    }

    async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn dead_letters(base: &str) -> Vec<Value> {
        let url = format!("{base}/api/admin/deadletters");
        let (_, body) = send(reqwest::Client::new().get(url)).await;
        body.as_array().cloned().unwrap_or_default()
    }

    async fn give_up_replay_and_discard(config: &Path) {
        let host = Replica::start(config).await;
        let (base, http) = (host.base.clone(), reqwest::Client::new());
        for n in [1, 2] {
            let event = json!({"topic": "orders.new", "data": {"n": n}});
            let (status, _) = send(http.post(format!("{base}/api/events")).json(&event)).await;
            assert_eq!(status, 202);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let letters = loop {
            let letters = dead_letters(&base).await;
            if letters.len() == 2 {
                break letters;
            }
            assert!(Instant::now() < deadline, "no dead letters: {letters:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            letters
                .iter()
                .all(|l| l["trigger"] == "orders" && l["attempts"] == 2)
        );
        assert!(
            letters[0]["error"].as_str().unwrap().contains("adv_flood"),
            "{letters:?}"
        );
        let id = |i: usize| letters[i]["id"].as_str().unwrap().to_owned();

        // Replayed while the plugin still fails: 422, kept.
        let replay = |id: String| http.post(format!("{base}/api/admin/deadletters/{id}/replay"));
        let (status, body) = send(replay(id(0))).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(dead_letters(&base).await.len(), 2);

        // Fixed (the manifest, hot-reloaded): replay goes through, and the letter is gone.
        let manifest_path = config.parent().unwrap().join("plugins/orders.toml");
        std::fs::write(manifest_path, super::binary::manifest("ok")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = send(replay(id(0))).await;
            if status == 200 {
                assert_eq!(body["trigger"], "orders");
                break;
            }
            assert!(Instant::now() < deadline, "replay kept failing: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let left = dead_letters(&base).await;
        assert_eq!(left.len(), 1, "{left:?}");

        // Discarded; unknown and malformed ids are clear errors.
        let discard = |id: &str| http.delete(format!("{base}/api/admin/deadletters/{id}"));
        assert_eq!(send(discard(&id(1))).await.0, 200);
        assert!(dead_letters(&base).await.is_empty());
        let (status, body) = send(discard(&id(1))).await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = send(discard("not-a-uuid")).await;
        assert_eq!(status, 400, "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_the_memory_broker() {
        let dir = tempfile::tempdir().unwrap();
        give_up_replay_and_discard(&setup(dir.path(), "kind = \"memory\"\n")).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_jetstream() {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let broker = format!(
            "kind = \"nats\"\nurl = \"{}\"\nack_wait_secs = 2\n",
            server.url()
        );
        give_up_replay_and_discard(&setup(dir.path(), &broker)).await;
    }
}
