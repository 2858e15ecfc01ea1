//! Webhook sinks through the real binary, against a real HTTP receiver
//! started by the test on loopback: retries through 500s and a slow
//! endpoint, Standard Webhooks signatures checked by an implementation
//! written here from the specification, dead letters replayed once the
//! endpoint is back, and one delivery per event with two replicas on
//! JetStream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::Replica;
use wasmsched_test_support::wait::{until, until_async};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver does with a request to each path.
#[derive(Default)]
struct Receiver {
    /// Every request: path, headers, body.
    requests: Vec<(String, HeaderMap, Value)>,
    /// Answer 500 this many more times at `/flaky`.
    flaky_failures: usize,
    /// Answer 503 at `/down` while set.
    down: bool,
    /// Take this long to answer the next request at `/slow`.
    slow_once: Option<Duration>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, wait) = {
        let mut receiver = shared.lock().unwrap();
        receiver.requests.push((path.clone(), headers, body));
        match path.as_str() {
            "/flaky" if receiver.flaky_failures > 0 => {
                receiver.flaky_failures -= 1;
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
            "/down" if receiver.down => (StatusCode::SERVICE_UNAVAILABLE, None),
            "/slow" => (StatusCode::OK, receiver.slow_once.take()),
            _ => (StatusCode::OK, None),
        }
    };
    if let Some(wait) = wait {
        tokio::time::sleep(wait).await;
    }
    status
}

async fn start_receiver(receiver: Receiver) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(receiver));
    let app = axum::Router::new()
        .route("/{*path}", post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, shared)
}

/// The Standard Webhooks check, from the specification: the signature is
/// `v1,` + base64(HMAC-SHA256(base64-decoded secret after `whsec_`,
/// `{webhook-id}.{webhook-timestamp}.{body}`)).
fn verifies(headers: &HeaderMap, raw_body: &str) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let signed = format!(
        "{}.{}.{raw_body}",
        header("webhook-id"),
        header("webhook-timestamp")
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature")
        .split(' ')
        .any(|s| s == format!("v1,{expected}"))
}

fn write_config(dir: &Path, broker: &str, sinks: &str) -> PathBuf {
    wasmsched_test_support::write_run_config(dir, &format!("{broker}\n{sinks}"))
}

fn sink(id: &str, url: &str, extra: &str) -> String {
    format!(
        "[[sink]]\nid = \"{id}\"\npattern = \"alerts.**\"\nurl = \"{url}\"\nbackoff = [\"100ms\"]\n{extra}\n"
    )
}

async fn publish(base: &str, topic: &str, data: Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/events"))
        .json(&json!({ "topic": topic, "data": data }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

async fn get(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_retry_through_500s_and_a_slow_endpoint_and_sign_what_they_deliver() {
    let (receiver, shared) = start_receiver(Receiver {
        flaky_failures: 2,
        slow_once: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = [
        sink(
            "flaky",
            &format!("{receiver}/flaky"),
            &format!("secret = \"{SECRET}\""),
        ),
        sink("slow", &format!("{receiver}/slow"), "timeout = \"500ms\""),
    ]
    .concat();
    let host = Replica::start(&write_config(dir.path(), "", &sinks)).await;
    publish(&host.base, "alerts.db", json!({"service": "db"})).await;

    let requests = until("both sinks deliver", Duration::from_secs(20), || {
        let receiver = shared.lock().unwrap();
        let count = |path: &str| receiver.requests.iter().filter(|r| r.0 == path).count();
        (count("/flaky") == 3 && count("/slow") == 2).then(|| receiver.requests.clone())
    })
    .await;
    let (_, headers, body) = requests.iter().rfind(|r| r.0 == "/flaky").unwrap();
    assert_eq!(body["topic"], "alerts.db");
    assert_eq!(body["data"], json!({"service": "db"}));
    assert_eq!(body["headers"], json!({}));
    assert!(body["time"].is_string() && body["id"].is_string(), "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    assert!(verifies(headers, &body.to_string()), "{headers:?}");
    let (_, unsigned, _) = requests.iter().find(|r| r.0 == "/slow").unwrap();
    assert!(unsigned.get("webhook-signature").is_none());

    let sinks = get(format!("{}/api/admin/sinks", host.base)).await;
    let by_id: BTreeMap<String, Value> = sinks
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s.clone()))
        .collect();
    assert_eq!(by_id["flaky"]["delivered"], 1, "{sinks}");
    assert_eq!(by_id["flaky"]["failed_attempts"], 2, "{sinks}");
    assert!(
        by_id["flaky"]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{sinks}"
    );
    assert!(
        by_id["slow"]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{sinks}"
    );
    assert_eq!(by_id["flaky"]["signed"], true);
    assert!(
        !sinks.to_string().contains("MfKQ9r8"),
        "the secret is never shown: {sinks}"
    );
}

/// `format = "cloudevents"`: a structured CloudEvent the specification's
/// schema accepts, whose source names the trigger that published it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudevents_sink_delivers_what_the_schema_accepts() {
    let (receiver, shared) = start_receiver(Receiver::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = [
        sink("ce", &format!("{receiver}/ce"), "format = \"cloudevents\""),
        "[[trigger]]\nid = \"deploy\"\nkind = \"api\"\ntopic = \"alerts.deploy\"\n".into(),
    ]
    .concat();
    let host = Replica::start(&write_config(dir.path(), "", &config)).await;
    let fired = reqwest::Client::new()
        .post(format!("{}/api/triggers/deploy/trigger", host.base))
        .json(&json!({"data": {"version": "1.2.3"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(fired.status(), 200);
    publish(&host.base, "alerts.db", json!({"service": "db"})).await;
    let requests = until("two deliveries", Duration::from_secs(20), || {
        let receiver = shared.lock().unwrap();
        (receiver.requests.len() == 2).then(|| receiver.requests.clone())
    })
    .await;
    for (_, headers, body) in &requests {
        assert_eq!(headers["content-type"], "application/cloudevents+json");
        let errors = wasmsched_test_support::cloudevent_errors(body);
        assert!(errors.is_empty(), "{body}: {errors:?}");
    }
    let by_type = |topic: &str| &requests.iter().find(|r| r.2["type"] == topic).unwrap().2;
    let deployed = by_type("alerts.deploy");
    assert_eq!(deployed["source"], "wasmsched/deploy");
    assert_eq!(deployed["data"], json!({"version": "1.2.3"}));
    assert_eq!(deployed["datacontenttype"], "application/json");
    assert_eq!(by_type("alerts.db")["source"], "wasmsched");
    // The schema is not a formality: it refuses what the spec refuses.
    let mut broken = deployed.clone();
    broken["wasmsched-trigger"] = json!("deploy");
    broken.as_object_mut().unwrap().remove("source");
    assert_eq!(
        wasmsched_test_support::cloudevent_errors(&broken).len(),
        2,
        "{broken}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_longer_than_the_attempts_gives_a_dead_letter_replayed_once_back() {
    let (receiver, shared) = start_receiver(Receiver {
        down: true,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = sink("ops", &format!("{receiver}/down"), "max_attempts = 3");
    let host = Replica::start(&write_config(dir.path(), "", &sinks)).await;
    let base = host.base.clone();
    publish(&base, "alerts.db", json!({"n": 1})).await;
    let url = format!("{base}/api/admin/deadletters?trigger=sink:ops");
    let mut letters = Vec::new();
    for _ in 0..200 {
        letters = get(url.clone())
            .await
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !letters.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters.len(), 1, "a dead letter of the sink");
    assert_eq!(letters[0]["attempts"], 3);
    let error = letters[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("delivery of sink `ops` failed: POST http://127.0.0.1:")
            && error.contains("503"),
        "the error names the sink, not a trigger: {error}"
    );
    let sinks = get(format!("{base}/api/admin/sinks")).await;
    assert_eq!(sinks[0]["dead"], 1, "{sinks}");

    shared.lock().unwrap().down = false;
    let id = letters[0]["id"].as_str().unwrap();
    let replayed = reqwest::Client::new()
        .post(format!("{base}/api/admin/deadletters/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    let receiver = shared.lock().unwrap();
    assert_eq!(receiver.requests.len(), 4, "3 attempts, then the replay");
    assert_eq!(receiver.requests[3].2["data"], json!({"n": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_jetstream_deliver_each_event_once() {
    let server = NatsServer::start();
    let (receiver, shared) = start_receiver(Receiver::default()).await;
    let root = tempfile::tempdir().unwrap();
    let broker = format!(
        "[broker]\nkind = \"nats\"\nurl = \"{}\"\nack_wait_secs = 2\n",
        server.url()
    );
    // Shorter than ack_wait_secs, as the host requires on JetStream.
    let sinks = sink("ops", &format!("{receiver}/ok"), "timeout = \"1s\"");
    let configs: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|name| write_config(&root.path().join(name), &broker, &sinks))
        .collect();
    let (a, b) = tokio::join!(Replica::start(&configs[0]), Replica::start(&configs[1]));
    for n in 0..40 {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        publish(base, "alerts.db", json!({"n": n})).await;
    }
    let requests = until("40 deliveries", Duration::from_secs(20), || {
        let receiver = shared.lock().unwrap();
        (receiver.requests.len() >= 40).then(|| receiver.requests.clone())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // any duplicate would arrive by now
    let total = shared.lock().unwrap().requests.len();
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, body) in &requests {
        *per_event.entry(body["id"].to_string()).or_default() += 1;
    }
    assert_eq!((per_event.len(), total), (40, 40), "{per_event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_survives_kill_9_of_the_host() {
    let (receiver, shared) = start_receiver(Receiver {
        down: true,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = format!(
        "[[sink]]\nid = \"ops\"\npattern = \"alerts.**\"\nurl = \"{receiver}/down\"\nbackoff = [\"2s\"]\n"
    );
    let config = write_config(dir.path(), "", &sinks);
    let mut host = Replica::start(&config).await;
    publish(&host.base, "alerts.db", json!({"n": 7})).await;
    until("the first attempt fails", Duration::from_secs(10), || {
        (shared.lock().unwrap().requests.len() == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the retry is written down
    host.child.kill().unwrap(); // SIGKILL: the retry waited in memory, and in the store
    host.child.wait().unwrap();

    shared.lock().unwrap().down = false;
    let host = Replica::start(&config).await;
    let body = until(
        "the retry after the restart",
        Duration::from_secs(15),
        || {
            let receiver = shared.lock().unwrap();
            (receiver.requests.len() == 2).then(|| receiver.requests[1].2.clone())
        },
    )
    .await;
    assert_eq!(body["data"], json!({"n": 7}));
    let sinks = get(format!("{}/api/admin/sinks", host.base)).await;
    assert_eq!(
        (sinks[0]["delivered"].as_u64(), sinks[0]["dead"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_in_a_manifest_follows_its_file() {
    let (receiver, shared) = start_receiver(Receiver::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("wasmsched.toml");
    std::fs::write(&config, "[plugins]\ncache = false\n").unwrap(); // watching plugins/
    let host = Replica::start(&config).await;
    let base = host.base.clone();
    let manifest = dir.path().join("plugins/hooks.toml");
    let sinks = || async { get(format!("{base}/api/admin/sinks")).await };

    std::fs::write(&manifest, sink("ops", &format!("{receiver}/first"), "")).unwrap();
    until_async("the sink is added", Duration::from_secs(15), || async {
        sinks().await[0]["url"].is_string()
    })
    .await;
    publish(&base, "alerts.a", json!({"n": 1})).await;
    until("delivered to /first", Duration::from_secs(10), || {
        let receiver = shared.lock().unwrap();
        receiver
            .requests
            .iter()
            .any(|r| r.0 == "/first")
            .then_some(())
    })
    .await;

    std::fs::write(&manifest, sink("ops", &format!("{receiver}/second"), "")).unwrap();
    // Replaced: what is published from then on goes to /second.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 2;
    while !shared
        .lock()
        .unwrap()
        .requests
        .iter()
        .any(|r| r.0 == "/second")
    {
        assert!(Instant::now() < deadline, "the sink was not replaced");
        publish(&base, "alerts.a", json!({ "n": n })).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = sinks().await[0]["url"].as_str().unwrap().to_owned();
    assert!(
        url.ends_with("/…") && !url.contains("second"),
        "the path is not shown: {url}"
    );

    std::fs::remove_file(&manifest).unwrap();
    until_async("the sink is removed", Duration::from_secs(15), || async {
        sinks().await.as_array().is_some_and(Vec::is_empty)
    })
    .await;
}
