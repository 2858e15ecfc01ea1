//! One-off timers through the real binary: added, listed, cancelled and
//! refused over HTTP; fired on time, or late after a `kill -9` and restart;
//! once across two replicas on JetStream, a client's retry after it fired
//! included. What a timer publishes is seen
//! through an event trigger's run history.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmsched_test_support::http::post;
use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::Replica;

const TRIGGERS: &str = "[[trigger]]\nid = \"seen\"\nkind = \"event\"\nsource = \"reminders.*\"\ntopic = \"seen.out\"\n\n\
    [[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks.in\"\n";

fn write_config(dir: &Path, broker: &str) -> PathBuf {
    wasmsched_test_support::write_run_config(dir, &format!("{broker}\n{TRIGGERS}"))
}

async fn get(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The runs of trigger `id`, once there are `count` of them.
async fn runs(base: &str, id: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let runs = get(format!("{base}/api/admin/triggers/{id}/runs"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= count {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: {} runs, not {count}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_are_added_listed_cancelled_and_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = Replica::start(&write_config(dir.path(), "")).await;
    let (base, timers) = (host.base.clone(), format!("{}/api/admin/timers", host.base));

    let reminder =
        json!({"id": "t1", "topic": "reminders.invoice", "data": {"n": 1}, "delay": "1s"});
    let (status, body) = post(timers.clone(), reminder.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "t1");
    let (status, again) = post(timers.clone(), reminder).await;
    assert_eq!(
        (status, &again["due"]),
        (200, &body["due"]),
        "a retried request makes one timer"
    );
    let other = json!({"id": "t1", "topic": "reminders.other", "delay": "1s"});
    assert_eq!(post(timers.clone(), other).await.0, 409);
    assert_eq!(get(timers.clone()).await[0]["id"], "t1");

    // A timer that fires a trigger, and one cancelled before it is due.
    let fire = json!({"trigger": "hook", "data": {"from": "timer"}, "delay": "1s"});
    assert_eq!(post(timers.clone(), fire).await.0, 201);
    let later = json!({"id": "later", "topic": "reminders.x", "delay": "1h"});
    assert_eq!(post(timers.clone(), later).await.0, 201);
    let cancel = || {
        reqwest::Client::new()
            .delete(format!("{timers}/later"))
            .send()
    };
    assert_eq!(cancel().await.unwrap().status(), 200);
    assert_eq!(cancel().await.unwrap().status(), 404);

    let seen = runs(&base, "seen", 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    // The same request again after it fired: the fired timer, not a new one.
    let retried =
        json!({"id": "t1", "topic": "reminders.invoice", "data": {"n": 1}, "delay": "1s"});
    let (status, answer) = post(timers.clone(), retried).await;
    assert_eq!(status, 200, "a retry after the timer fired: {answer}");
    assert!(answer["fired"].is_string(), "{answer}");
    assert_eq!(answer["due"], body["due"]);
    let hook = runs(&base, "hook", 1).await;
    assert_eq!(hook[0]["outcome"], "ok");
    assert_eq!(
        get(timers.clone()).await,
        json!([]),
        "fired timers are gone"
    );

    // `wasmsched at` adds one from the command line.
    let output = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(["at", "1s", "reminders.cli", r#"{"n": 2}"#, "--url", &base])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && printed.contains("publishes on reminders.cli"),
        "{printed}"
    );
    runs(&base, "seen", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a second firing of t1 would show by now
    let seen = runs(&base, "seen", 2).await;
    assert_eq!(
        seen.len(),
        2,
        "t1 fired once, the cli's timer once: {seen:?}"
    );

    // Bad requests name the field.
    for (body, field) in [
        (json!({"topic": "a", "at": "tomorrow"}), "`at`"),
        (json!({"topic": "a", "delay": "5 fortnights"}), "`delay`"),
        (json!({"topic": "a b", "delay": "1s"}), "`topic`"),
        (
            json!({"topic": "a", "trigger": "hook", "delay": "1s"}),
            "`topic` and `trigger`",
        ),
        (json!({"topic": "a"}), "`at` and `delay`"),
        // Accepted by the document's schema, once a panic in the handler.
        (
            json!({"topic": "a", "delay": "1000000000d"}),
            "`delay`: duration \"1000000000d\" is out of range: 0ms to 36500d",
        ),
        (
            json!({"id": "x".repeat(300), "topic": "a", "delay": "1s"}),
            "`id` is 300 bytes long: at most 256",
        ),
    ] {
        let (status, answer) = post(timers.clone(), body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{body} -> {answer}"
        );
    }
    // A trigger that is not there is a reference to nothing: 404.
    let (status, answer) = post(timers.clone(), json!({"trigger": "nope", "delay": "1s"})).await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("nope"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_due_while_the_host_was_down_fires_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut host = Replica::start(&config).await;
    let timer = json!({"topic": "reminders.late", "data": {"n": 3}, "delay": "1s"});
    assert_eq!(
        post(format!("{}/api/admin/timers", host.base), timer)
            .await
            .0,
        201
    );
    host.child.kill().unwrap(); // SIGKILL before it is due
    host.child.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let host = Replica::start(&config).await;
    let seen = runs(&host.base, "seen", 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_jetstream_fire_a_timer_once() {
    let server = NatsServer::start();
    let root = tempfile::tempdir().unwrap();
    let broker = format!(
        "[broker]\nkind = \"nats\"\nurl = \"{}\"\nack_wait_secs = 2\n",
        server.url()
    );
    let configs: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|name| write_config(&root.path().join(name), &broker))
        .collect();
    let (a, b) = tokio::join!(Replica::start(&configs[0]), Replica::start(&configs[1]));
    for n in 0..5 {
        let timer = json!({"topic": "reminders.shared", "data": {"n": n}, "delay": "2s"});
        assert_eq!(
            post(format!("{}/api/admin/timers", a.base), timer).await.0,
            201
        );
    }
    runs(&b.base, "seen", 5).await;
    // A client's retry of a fired timer, on the other replica.
    let retried =
        json!({"id": "once", "topic": "reminders.shared", "data": {"n": 9}, "delay": "1s"});
    assert_eq!(
        post(format!("{}/api/admin/timers", a.base), retried.clone())
            .await
            .0,
        201
    );
    runs(&b.base, "seen", 6).await;
    let (status, answer) = post(format!("{}/api/admin/timers", b.base), retried).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["fired"].is_string(), "{answer}");
    tokio::time::sleep(Duration::from_secs(2)).await; // a second firing would show by now
    let seen = runs(&b.base, "seen", 6).await;
    assert_eq!(seen.len(), 6, "each of 6 timers fired once: {seen:?}");

    // Added on A, which dies before they are due: B fires them.
    for n in 0..3 {
        let timer = json!({"topic": "reminders.orphan", "data": {"n": n}, "delay": "2s"});
        assert_eq!(
            post(format!("{}/api/admin/timers", a.base), timer).await.0,
            201
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // B hears of them
    drop(a); // SIGKILL
    let seen = runs(&b.base, "seen", 9).await;
    assert_eq!(seen.len(), 9, "{seen:?}");
}
