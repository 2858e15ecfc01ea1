//! Standards checked by the standards' own tools (issue 29, parts 2 and
//! 4): a real host (the `wasmsched` binary on loopback) against the
//! official CloudEvents Python SDK and the Standard Webhooks reference
//! library, pinned in `tests/standards/requirements.txt`.
//!
//! - CloudEvents: `tests/standards/cloudevents_check.py` makes events with
//!   the SDK, sends them to `POST /api/events` in structured and binary
//!   mode, and parses every event `/api/events/stream?format=cloudevents`
//!   emits with the SDK (see its docstring for the cases).
//! - Standard Webhooks: two signed sinks (wasmsched's format and
//!   CloudEvents) deliver to a receiver here that fails each event's first
//!   attempt; `tests/standards/webhooks_check.py` verifies every delivery,
//!   retries included, with the library, and checks that tampered copies
//!   are refused.
//!
//! The Python that runs the scripts is `$WASMSCHED_STANDARDS_PYTHON`
//! (`.ci/run` makes a venv with the pinned libraries and sets it), else
//! `python3`; without the libraries at their pinned versions the tests
//! fail and say how to install them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use wasmsched_test_support::replica::Replica;

const STANDARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/standards");

/// The Python to run the scripts with.
fn python() -> String {
    std::env::var("WASMSCHED_STANDARDS_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The pinned `name==version` lines of `requirements.txt`.
fn pins() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(STANDARDS).join("requirements.txt")).unwrap();
    text.lines()
        .filter_map(|line| line.split('#').next()?.trim().split_once("=="))
        .map(|(name, version)| (name.to_owned(), version.to_owned()))
        .collect()
}

/// Fails, saying how to install them, unless `python` has the pinned
/// CloudEvents SDK and Standard Webhooks library.
fn require_libraries(python: &str) {
    let pins = pins();
    let script = "import importlib.metadata as m, sys\n\
                  for name in sys.argv[1:]:\n    try:\n        print(name, m.version(name))\n    \
                  except m.PackageNotFoundError:\n        print(name, 'missing')\n";
    let names = ["cloudevents", "standardwebhooks"];
    let output = Command::new(python)
        .args(["-c", script])
        .args(names)
        .output();
    let found = match &output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
        Err(e) => format!("cannot run `{python}`: {e}"),
    };
    let wanted: String = names
        .iter()
        .map(|name| format!("{name} {}\n", pins[*name]))
        .collect();
    assert!(
        found == wanted,
        "these tests need the official CloudEvents SDK and Standard Webhooks library, \
         pinned in tests/standards/requirements.txt:\n  wanted:\n{wanted}  `{python}` has:\n{found}\n\
         Install them (as .ci/run does):\n  python3 -m venv /var/tmp/standards-venv && \
         /var/tmp/standards-venv/bin/pip install -r tests/standards/requirements.txt\n  \
         export WASMSCHED_STANDARDS_PYTHON=/var/tmp/standards-venv/bin/python"
    );
}

/// Runs `tests/standards/{script}` with `args` (and `stdin`), and returns
/// the JSON summary it prints.
async fn run_script(script: &str, args: Vec<String>, stdin: Vec<u8>) -> Value {
    let python = python();
    let path = Path::new(STANDARDS).join(script);
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&python)
            .arg(&path)
            .args(&args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stderr}{stdout}"
    );
    println!("{script}:\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{script} printed {stdout}: {e}"))
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    wasmsched_test_support::write_run_config(dir, text)
}

/// `summary["failures"]`, which must be empty.
fn assert_no_failures(summary: &Value) {
    let failures = summary["failures"].as_array().expect("a list of failures");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudevents_sdk_reads_what_the_host_emits_and_is_read_as_the_spec_says() {
    require_libraries(&python());
    let dir = tempfile::tempdir().unwrap();
    let trigger = "[[trigger]]\nid = \"std-trigger\"\nkind = \"api\"\ntopic = \"std.trigger\"\n";
    let host = Replica::start(&write_config(dir.path(), trigger)).await;
    let args = vec![
        host.base.clone(),
        "std-trigger".into(),
        "std.trigger".into(),
    ];
    let summary = run_script("cloudevents_check.py", args, Vec::new()).await;
    assert_no_failures(&summary);
    let count = |name: &str| summary[name].as_u64().unwrap();
    assert!(count("cases") >= 40, "{summary}");
    assert_eq!(count("sdk_refusals"), 5, "{summary}");
    assert!(count("refused") >= 15, "{summary}");
    assert_eq!(count("accepted") + count("refused"), count("cases"));
    // Every accepted event came out, the SDK read it as sent, and what the
    // SDK wrote of it went through the host again.
    assert_eq!(count("round_trips"), count("accepted"), "{summary}");
    assert_eq!(count("republished"), count("round_trips"), "{summary}");
    assert_eq!(count("emitted_parsed"), 2 * count("accepted"), "{summary}");
}

/// A Standard Webhooks secret (`whsec_` and base64 of 32 bytes).
const SECRET: &str = "whsec_d2FzbXNjaGVkIHN0YW5kYXJkcyB0ZXN0IHNlY3JldCE=";

/// Every request, exactly as received; the first attempt of each
/// `webhook-id` is answered 500.
#[derive(Default)]
struct Receiver {
    requests: Vec<(String, HeaderMap, Bytes)>,
    failed: BTreeSet<String>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn receive(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut receiver = shared.lock().unwrap();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    receiver
        .requests
        .push((uri.path().to_owned(), headers, body));
    match receiver.failed.insert(format!("{}:{id}", uri.path())) {
        true => StatusCode::INTERNAL_SERVER_ERROR,
        false => StatusCode::NO_CONTENT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_webhooks_library_verifies_every_delivery_retries_included() {
    require_libraries(&python());
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/{*path}", post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sink = |id: &str, extra: &str| {
        format!(
            "[[sink]]\nid = \"{id}\"\npattern = \"hooks.**\"\nurl = \"{receiver}/{id}\"\n\
             backoff = [\"100ms\"]\nsecret = \"{SECRET}\"\n{extra}\n"
        )
    };
    let config = sink("plain", "") + &sink("ce", "format = \"cloudevents\"");
    let dir = tempfile::tempdir().unwrap();
    let host = Replica::start(&write_config(dir.path(), &config)).await;
    let events = [
        json!({"topic": "hooks.a", "data": {"n": 1}}),
        json!({"topic": "hooks.b", "data": "café ☃ \"quoted\" \\ \u{1F600}"}),
        json!({"topic": "hooks.c", "data": [1, 2.5, null, {"deep": {"er": true}}],
               "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                           "ce-source": "/std/webhooks", "ce-subject": "Ünïcode"}}),
        json!({"topic": "hooks.d", "data": null, "headers": {"x-odd_Name": "v"}}),
    ];
    let client = reqwest::Client::new();
    for event in &events {
        let response = client
            .post(format!("{}/api/events", host.base))
            .json(event)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    // Each event to each sink: a failed attempt, then its retry.
    let wanted = 2 * 2 * events.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let requests = loop {
        let requests = shared.lock().unwrap().requests.clone();
        if requests.len() >= wanted {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {wanted} deliveries",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deliveries: Vec<Value> = requests
        .iter()
        .map(|(path, headers, body)| {
            let headers: BTreeMap<&str, &str> = headers
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
                .collect();
            json!({"path": path, "headers": headers,
                   "body_base64": base64::engine::general_purpose::STANDARD.encode(body)})
        })
        .collect();
    let stdin = serde_json::to_vec(&deliveries).unwrap();
    let summary = run_script("webhooks_check.py", vec![SECRET.into()], stdin).await;
    assert_no_failures(&summary);
    let count = |name: &str| summary[name].as_u64().unwrap() as usize;
    assert_eq!(count("deliveries"), wanted, "{summary}");
    assert_eq!(count("verified"), wanted, "{summary}");
    assert_eq!(count("tampered_refused"), wanted, "{summary}");
    assert_eq!(count("events"), 2 * events.len(), "{summary}");
    assert_eq!(count("cloudevents_parsed"), wanted / 2, "{summary}");
    for (path, _, _) in &requests {
        assert!(path == "/plain" || path == "/ce", "{path}");
    }
}
