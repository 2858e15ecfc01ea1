//! Liveness of the real `wasmsched run` (memory broker, the default SQLite
//! store next to its config), on a real clock:
//!
//! - Flow control keeps firing at every cadence: four event triggers on
//!   one source, keyed by `/cadence` (dedupe, throttle, debounce, batch,
//!   each with period P), fed by five publishers (every P/10, P/4, P/2, P
//!   and 2P). Every event is accounted for in its trigger's counters, every
//!   (mode, cadence) fires with an event from the second half of that
//!   cadence's sequence, the debounce's last firing of each key carries its
//!   last event, the batches of each key hold every event once and in
//!   order, and SIGTERM then stops the host with status 0.
//! - A firing stuck on an outbound HTTP request (a server that accepts and
//!   never answers, under a 10-minute plugin limit) does not hold up
//!   shutdown past `[server] shutdown_grace`: on SIGTERM the host exits
//!   non-zero, naming the trigger and the setting. Once for an event
//!   trigger, once for an api trigger (its firing is an HTTP request in
//!   flight).
//!
//! Nothing asserts how long something took, beyond generous bounds on
//! liveness: they must hold on a loaded 2-core machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::time::MissedTickBehavior;

use wasmsched_test_support::http::get;
use wasmsched_test_support::replica::Replica;

/// The flow-control period P.
const P: Duration = Duration::from_millis(300);
/// How many periods each publisher publishes for (at its nominal cadence).
const PERIODS: u32 = 18;
/// Each publisher: its key, and its cadence in hundredths of P.
const CADENCES: [(&str, u32); 5] = [
    ("tenth", 10),
    ("quarter", 25),
    ("half", 50),
    ("one", 100),
    ("two", 200),
];
/// How long the triggers may take to account for every event, and the
/// host to exit after SIGTERM: liveness, not speed.
const SETTLE: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(30);

/// The flow-control modes under test, each with its setting.
fn modes() -> [(&'static str, String); 4] {
    let p = P.as_millis();
    [
        ("dedupe", format!("dedupe = {{ window = \"{p}ms\" }}")),
        (
            "throttle",
            format!("throttle = {{ limit = 1, period = \"{p}ms\" }}"),
        ),
        (
            "debounce",
            format!(
                "debounce = {{ period = \"{p}ms\", max_wait = \"{}ms\" }}",
                2 * p
            ),
        ),
        (
            "batch",
            format!("batch = {{ max_events = 10000, max_wait = \"{p}ms\" }}"),
        ),
    ]
}

/// The cadence of a publisher, and how many events it publishes.
fn cadence(hundredths: u32) -> (Duration, u64) {
    (P * hundredths / 100, u64::from(PERIODS * 100 / hundredths))
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    wasmsched_test_support::write_run_config(dir, extra)
}

/// Reads `GET /api/events/stream?pattern=...` from now on (the host has
/// subscribed when this returns): every event's JSON, as it arrives.
async fn record_stream(base: &str, pattern: &str) -> Arc<Mutex<Vec<Value>>> {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/events/stream"))
        .query(&[("pattern", pattern)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut pending = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(json) = line.strip_prefix("data:") {
                    let event = serde_json::from_str(json.trim()).unwrap();
                    kept.lock().unwrap().push(event);
                }
            }
        }
    });
    seen
}

/// Publishes `count` events `{"cadence": key, "n": 0..count}` on
/// `cadence.<key>`, one every `every` (later when the host is slow to
/// answer, never earlier).
async fn publish(base: String, key: &'static str, every: Duration, count: u64) {
    let client = reqwest::Client::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 0..count {
        ticks.tick().await;
        let response = client
            .post(format!("{base}/api/events"))
            .json(&json!({"topic": format!("cadence.{key}"), "data": {"cadence": key, "n": n}}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            status,
            202,
            "{key} #{n}: {}",
            response.text().await.unwrap()
        );
    }
}

/// Each trigger's counters, by id.
async fn trigger_stats(base: &str) -> BTreeMap<String, Value> {
    let (status, views) = get(format!("{base}/api/admin/triggers")).await;
    assert_eq!(status, 200, "{views}");
    let views = views.as_array().unwrap_or_else(|| panic!("{views}"));
    views
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v["stats"].clone()))
        .collect()
}

/// How many events a trigger's counters account for: each dropped or
/// replaced one, each collected into a batch, and each firing of a single
/// event (a batch's firing stands for events already counted as batched).
fn accounted(mode: &str, stats: &Value) -> u64 {
    let n = |field: &str| stats[field].as_u64().unwrap_or_else(|| panic!("{stats}"));
    let fired = match mode {
        "batch" => n("batched"),
        _ => n("fires"),
    };
    fired + n("deduplicated") + n("throttled") + n("debounced")
}

/// The log of `host` so far, one string.
fn log_text(host: &Replica) -> String {
    host.log.lock().unwrap().join("\n")
}

/// The last 40 lines of its log (every event is logged: the whole of it is
/// too long to read in a failure).
fn log_tail(host: &Replica) -> String {
    let log = host.log.lock().unwrap();
    log[log.len().saturating_sub(40)..].join("\n")
}

/// Sends SIGTERM to `host` and waits (at most `within`) for it to exit:
/// its status, and how long it took. Fails, killing it, if it does not.
async fn terminate(host: &mut Replica, within: Duration) -> (ExitStatus, Duration) {
    let pid = libc::pid_t::try_from(host.child.id()).unwrap();
    // SAFETY: a plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let sent = Instant::now();
    loop {
        if let Some(status) = host.child.try_wait().unwrap() {
            return (status, sent.elapsed());
        }
        if sent.elapsed() > within {
            let _ = host.child.kill();
            let _ = host.child.wait();
            panic!(
                "wasmsched did not exit within {within:?} of SIGTERM (killed); its log ends:\n{}",
                log_tail(host)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (a little) until the log of an exited `host` holds `needle`:
/// its last lines arrive through a pipe.
async fn log_once_exited(host: &Replica, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = log_text(host);
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (a) every event accounted for, (b) every (mode, cadence) fires with an
/// event of its second half, (c) debounce ends on each key's last event and
/// batches hold each event once, in order, (d) SIGTERM: exit status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_keeps_firing_at_every_cadence() {
    let dir = tempfile::tempdir().unwrap();
    let mut triggers = String::new();
    for (mode, setting) in modes() {
        triggers.push_str(&format!(
            "[[trigger]]\nid = \"{mode}\"\nkind = \"event\"\nsource = \"cadence.**\"\n\
             topic = \"out.{mode}\"\nkey = \"/cadence\"\n{setting}\n\n"
        ));
    }
    let config = write_config(dir.path(), &triggers);
    let mut host = Replica::start(&config).await;
    let base = host.base.clone();
    let outputs = record_stream(&base, "out.**").await;

    // Publish: one task per cadence, all at once.
    let counts: BTreeMap<&str, u64> = CADENCES
        .iter()
        .map(|&(key, hundredths)| (key, cadence(hundredths).1))
        .collect();
    let publishers: Vec<_> = CADENCES
        .iter()
        .map(|&(key, hundredths)| {
            let (every, count) = cadence(hundredths);
            tokio::spawn(publish(base.clone(), key, every, count))
        })
        .collect();
    for publisher in publishers {
        publisher.await.expect("a publisher failed");
    }
    let published: u64 = counts.values().sum();

    // (a) Every event is accounted for by each trigger, in the end.
    let deadline = Instant::now() + SETTLE;
    let stats = loop {
        let stats = trigger_stats(&base).await;
        let mut settled = true;
        for (mode, _) in modes() {
            let of = &stats[mode];
            let accounted = accounted(mode, of);
            assert!(
                accounted <= published,
                "{mode} accounts for {accounted} events of {published}: {of}"
            );
            assert_eq!(of["errors"], 0, "{mode}: {of}");
            settled &= accounted == published;
        }
        if settled {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "not every one of the {published} events was accounted for within {SETTLE:?}: \
             {stats:#?}\nthe log ends:\n{}",
            log_tail(&host)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Each firing published one event, and the stream saw them all.
    let by_mode = |mode: &str| -> Vec<Value> {
        let topic = format!("out.{mode}");
        let outputs = outputs.lock().unwrap();
        let mine = outputs.iter().filter(|e| e["topic"] == topic.as_str());
        mine.map(|e| e["data"].clone()).collect()
    };
    let deadline = Instant::now() + SETTLE;
    for (mode, _) in modes() {
        let fires = stats[mode]["fires"].as_u64().unwrap();
        while (by_mode(mode).len() as u64) < fires {
            assert!(
                Instant::now() < deadline,
                "{mode}: {} of {fires} firings on the stream",
                by_mode(mode).len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(by_mode(mode).len() as u64, fires, "{mode}");
    }

    // The n of each event a firing carries, by mode and key.
    let n_of = |data: &Value| data["n"].as_u64().unwrap_or_else(|| panic!("{data}"));
    for (mode, _) in modes() {
        for (&key, &count) in &counts {
            let fired: Vec<Vec<u64>> = by_mode(mode)
                .iter()
                .filter_map(|data| match mode {
                    "batch" => {
                        let events = data["events"].as_array().unwrap();
                        assert_eq!(data["count"], events.len(), "{data}");
                        let keys: Vec<_> = events.iter().map(|e| &e["cadence"]).collect();
                        assert!(
                            keys.iter().all(|k| *k == keys[0]),
                            "one key per batch: {data}"
                        );
                        (keys[0] == key).then(|| events.iter().map(n_of).collect())
                    }
                    _ => (data["cadence"] == key).then(|| vec![n_of(data)]),
                })
                .collect();
            let mut all: Vec<u64> = fired.iter().flatten().copied().collect();
            let last = count - 1;
            let context = format!("{mode}, key {key} ({count} events): fired with {fired:?}");
            // (b) The trigger took in and fired the second half too.
            assert!(
                all.iter().any(|n| *n >= count / 2),
                "no firing with an event of the second half: {context}"
            );
            all.sort_unstable();
            let distinct = all.windows(2).all(|w| w[0] < w[1]);
            assert!(distinct, "an event fired twice: {context}");
            match mode {
                // The first event of a key always goes through.
                "dedupe" | "throttle" => assert_eq!(all.first(), Some(&0), "{context}"),
                // (c) Once quiet, the key fires with its last event.
                "debounce" => assert_eq!(all.last(), Some(&last), "{context}"),
                // (c) Every event in exactly one batch, each in order: the
                // last batch ends with the last event.
                _ => {
                    assert!(fired.iter().all(|b| b.is_sorted()), "{context}");
                    assert_eq!(all, (0..count).collect::<Vec<_>>(), "{context}");
                }
            }
        }
    }

    // (d) SIGTERM stops it, with status 0.
    let (status, _) = terminate(&mut host, EXIT).await;
    assert!(
        status.success(),
        "{status}; the log ends:\n{}",
        log_tail(&host)
    );
}

/// A server that accepts connections, reads what comes and never answers;
/// its origin, and a receiver told once per connection that sent bytes.
async fn silent_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (told, requests) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let told = told.clone();
            tokio::spawn(async move {
                let mut buffer = [0; 4096];
                let mut first = true;
                while let Ok(read) = socket.read(&mut buffer).await {
                    if read == 0 {
                        break;
                    }
                    if std::mem::take(&mut first) {
                        let _ = told.send(());
                    }
                }
            });
        }
    });
    (origin, requests)
}

/// A host whose `chat_poster` plugin may wait 10 minutes on `origin`, with
/// `shutdown_grace = "2s"` and `trigger` (a `[[trigger]]` table on it).
fn stuck_host(dir: &Path, origin: &str, trigger: &str) -> PathBuf {
    let config = write_config(dir, "[server]\nshutdown_grace = \"2s\"\n");
    let plugins = dir.join("plugins");
    let guest = Path::new(env!("WASMSCHED_GUEST_DIR")).join("chat_poster.wasm");
    std::fs::copy(guest, plugins.join("chat_poster.wasm")).unwrap();
    let manifest = format!(
        "[plugin]\nallowed_outbound_hosts = [\"{origin}\"]\nhttp_timeout = \"10m\"\n\
         wall_timeout = \"10m\"\n\n{trigger}\nplugin = \"chat_poster\"\n\
         [trigger.config]\nurl = \"{origin}/hooks/chat\"\n"
    );
    std::fs::write(plugins.join("chat_poster.toml"), manifest).unwrap();
    config
}

/// Sends SIGTERM while `host`'s firing waits on the silent server: it
/// exits non-zero after the grace period, long before the firing's own
/// 10-minute limit, with an error that mentions `shutdown_grace` (and
/// names `names`, the trigger still stopping, if given).
async fn exits_past_the_grace(mut host: Replica, names: Option<&str>) {
    let (status, took) = terminate(&mut host, Duration::from_secs(60)).await;
    let log = log_once_exited(&host, "shutdown_grace (").await;
    assert!(!status.success(), "{status}; log:\n{log}");
    // The grace is waited out first (a lower bound only a fast exit breaks).
    assert!(
        took >= Duration::from_secs(2),
        "exited after {took:?}: {log}"
    );
    let error = log
        .lines()
        .find(|line| line.contains("shutdown_grace (2s)"));
    let error = error.unwrap_or_else(|| panic!("no error names shutdown_grace:\n{log}"));
    if let Some(id) = names {
        assert!(error.contains(id), "the error names `{id}`: {error}");
    }
}

/// An event trigger's firing in flight: its consumer cannot stop, and the
/// error names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_event_firing_does_not_hold_up_shutdown_past_the_grace() {
    let (origin, mut requests) = silent_server().await;
    let dir = tempfile::tempdir().unwrap();
    let trigger = "[[trigger]]\nid = \"stuck\"\nkind = \"event\"\nsource = \"work.**\"\n\
                   topic = \"chat.posted\"";
    let host = Replica::start(&stuck_host(dir.path(), &origin, trigger)).await;
    let (status, body) = wasmsched_test_support::http::post(
        format!("{}/api/events", host.base),
        json!({"topic": "work.item", "data": {"message": "hello"}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    tokio::time::timeout(SETTLE, requests.recv())
        .await
        .expect("the plugin's request reached the silent server");
    exits_past_the_grace(host, Some("stuck")).await;
}

/// An api trigger's firing in flight is an HTTP request the listener
/// drains on shutdown: that drain is bounded by the grace too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_api_firing_does_not_hold_up_shutdown_past_the_grace() {
    let (origin, mut requests) = silent_server().await;
    let dir = tempfile::tempdir().unwrap();
    let trigger = "[[trigger]]\nid = \"stuck-api\"\nkind = \"api\"\ntopic = \"chat.posted\"";
    let host = Replica::start(&stuck_host(dir.path(), &origin, trigger)).await;
    // The call waits as long as the firing: it is abandoned.
    let call = reqwest::Client::new()
        .post(format!("{}/api/triggers/stuck-api/trigger", host.base))
        .json(&json!({"data": {"message": "hello"}}))
        .send();
    let call = tokio::spawn(call);
    tokio::time::timeout(SETTLE, requests.recv())
        .await
        .expect("the plugin's request reached the silent server");
    exits_past_the_grace(host, None).await;
    call.abort();
}
