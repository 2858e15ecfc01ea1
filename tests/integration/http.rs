//! The HTTP API over a real loopback server: the seed's shapes, auth, bad
//! input, SSE, runtime (un)registration, graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wasmsched::config::TriggerConfig;
use wasmsched::host::Host;
use wasmsched::host::NativeLogic;
use wasmsched::{NewEvent, factory_fn};
use wasmsched_test_support::Served;

/// A host with its HTTP API on a free loopback port.
struct Server {
    served: Served,
    host: Arc<Host>,
    http: reqwest::Client,
}

const CONFIG: &str = r#"
[server]
admin_token = "admin-secret"

[[trigger]]
id = "demo"
kind = "api"
topic = "demo.api"

[[trigger]]
id = "github"
kind = "api"
topic = "webhooks.github"
path = "/webhooks/github"
plugin = "github_webhook"
[trigger.auth]
hmac_secret = "hook-secret"

[[trigger]]
id = "private"
kind = "api"
topic = "private.api"
[trigger.auth]
bearer_token = "let-me-in"
"#;

impl Server {
    async fn start() -> Self {
        let served = Served::start(CONFIG, &["github_webhook"]).await;
        let host = served.host.clone();
        assert!(host.problems().is_empty(), "{:?}", host.problems());
        Self {
            served,
            host,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base)
    }

    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(&body);
        // Publishing asks for the admin token when one is set.
        if path == "/api/events" {
            request = request.bearer_auth("admin-secret");
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth("admin-secret");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn shutdown(mut self) {
        self.served.stop_serving().await.unwrap();
        self.host.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_shapes_of_an_api_trigger() {
    let server = Server::start().await;
    let data = json!({"webhook_id": "wh_001", "user_id": 123, "action": "login"});
    let (status, body) = server
        .post_json("/api/triggers/demo/trigger", json!({ "data": data }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"success": true, "message": "Event triggered successfully", "trigger_count": 1})
    );
    let (_, body) = server
        .post_json("/api/triggers/demo/trigger", json!({ "data": data }))
        .await;
    assert_eq!(body["trigger_count"], 2);
    let (status, body) = server.get("/api/triggers/demo/status").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"running": true, "trigger_count": 2}));
    server.shutdown().await;
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_and_bearer_auth() {
    let server = Server::start().await;
    let mut tail = sse(&server, "webhooks.**").await;
    let body = serde_json::to_vec(
        &json!({"data": {"action": "opened", "repository": {"full_name": "o/r"}}}),
    )
    .unwrap();
    let post = |signature: Option<String>| {
        let mut request = server
            .http
            .post(server.url("/webhooks/github/trigger"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send()
    };
    let missing = post(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let missing: Value = missing.json().await.unwrap();
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256"),
        "{missing}"
    );
    assert_eq!(
        post(Some(sign("wrong-secret", &body)))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(post(Some("sha256=zz".into())).await.unwrap().status(), 401);
    let good = post(Some(sign("hook-secret", &body))).await.unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(
        good.json::<Value>().await.unwrap()["trigger_count"],
        1,
        "rejected calls never fired"
    );
    // The wasm factory turned the webhook into an event.
    let event = next_sse(&mut tail).await;
    assert_eq!(event["topic"], "webhooks.github");
    assert_eq!(event["data"]["repository"], "o/r");

    let private = |token: Option<&str>| {
        let mut request = server
            .http
            .post(server.url("/api/triggers/private/trigger"))
            .json(&json!({"data": {}}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for token in [None, Some("nope")] {
        let refused = private(token).await.unwrap();
        assert_eq!(refused.status(), 401);
        // RFC 9110 §15.5.2: a 401 says how to authenticate.
        assert_eq!(
            refused.headers()["www-authenticate"],
            "Bearer realm=\"wasmsched\""
        );
    }
    assert_eq!(private(Some("let-me-in")).await.unwrap().status(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_and_never_fires() {
    let server = Server::start().await;
    let raw = |content_type: &'static str, body: Vec<u8>| {
        server
            .http
            .post(server.url("/api/triggers/demo/trigger"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            raw("text/plain", br#"{"data": {}}"#.to_vec())
                .await
                .unwrap(),
            415,
            "application/json",
        ),
        (
            raw("application/json", b"{not json".to_vec())
                .await
                .unwrap(),
            400,
            "malformed JSON",
        ),
        (
            raw("application/json", br#"{"payload": {}}"#.to_vec())
                .await
                .unwrap(),
            422,
            "`data`",
        ),
        (
            raw("application/json", br#"{"data": 42}"#.to_vec())
                .await
                .unwrap(),
            422,
            "`data` must be",
        ),
        (
            raw("application/json", b"[1, 2]".to_vec()).await.unwrap(),
            422,
            "JSON object",
        ),
        (oversized(&server).await, 413, "limit"),
    ];
    for (response, status, needle) in cases {
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(needle),
            "{status}: expected `{needle}` in {body}"
        );
    }
    let (status, body) = server.get("/api/triggers/demo/status").await;
    assert_eq!(
        (status, body["trigger_count"].clone()),
        (200, json!(0)),
        "no rejected request fired"
    );

    let (status, body) = server
        .post_json("/api/triggers/nope/trigger", json!({"data": {}}))
        .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/api/triggers/nope"),
        "{body}"
    );
    let (status, _) = server.get("/api/triggers/demo/trigger").await;
    assert_eq!(status, 405);
    let (status, body) = server
        .post_json("/api/events", json!({"topic": "bad..topic", "data": {}}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("empty segment"),
        "{body}"
    );
    let (status, _) = server
        .post_json("/api/events", json!({"topic": "a.b"}))
        .await;
    assert_eq!(status, 422);
    server.shutdown().await;
}

/// A body just over the 1 MiB limit, on a connection of its own: the
/// server answers 413 without reading the rest and closes the connection,
/// which must not break the requests that follow. (Just over, so that the
/// unread rest fits the socket buffers and the client reads the answer.)
async fn oversized(server: &Server) -> reqwest::Response {
    let body = format!(
        r#"{{"data": {{"x": "{}"}}}}"#,
        "a".repeat(wasmsched::app::DEFAULT_BODY_LIMIT)
    );
    reqwest::Client::new()
        .post(server.url("/api/triggers/demo/trigger"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the 413 answer")
}

type SseStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

async fn sse(server: &Server, pattern: &str) -> SseStream {
    let response = server
        .http
        .get(server.url("/api/events/stream"))
        .bearer_auth("admin-secret")
        .query(&[("pattern", pattern)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    Box::pin(response.bytes_stream())
}

/// The next SSE `data:` message, as JSON.
async fn next_sse(stream: &mut SseStream) -> Value {
    let mut buffer = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(start) = buffer.find("data:")
                && let Some(end) = buffer[start..].find('\n')
            {
                return serde_json::from_str(buffer[start + 5..start + end].trim()).unwrap();
            }
            let chunk = stream.next().await.expect("stream ended").unwrap();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("no SSE event arrived")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_reach_matching_sse_streams_only() {
    let server = Server::start().await;
    let mut logs = sse(&server, "logs.**").await;
    let mut everything = sse(&server, "**").await;
    let (status, body) = server
        .post_json(
            "/api/events",
            json!({"topic": "metrics.cpu", "data": {"load": 1}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = server
        .post_json(
            "/api/events",
            json!({"topic": "logs.app.error", "data": {"level": "ERROR"}}),
        )
        .await;
    assert_eq!(status, 202);
    let first_log = next_sse(&mut logs).await;
    assert_eq!(first_log["topic"], "logs.app.error");
    assert_eq!(first_log["data"]["level"], "ERROR");
    assert_eq!(next_sse(&mut everything).await["topic"], "metrics.cpu");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_registers_pauses_runs_and_unregisters_at_runtime() {
    let server = Server::start().await;
    let unauthorized = server
        .http
        .get(server.url("/api/admin/triggers"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let new_trigger = json!({"id": "late", "kind": "api", "topic": "late.events"});
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/api/admin/triggers",
            Some(new_trigger.clone()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["path"], "/api/triggers/late");
    let (status, _) = server
        .admin(
            reqwest::Method::POST,
            "/api/admin/triggers",
            Some(new_trigger),
        )
        .await;
    assert_eq!(status, 409, "duplicate id");
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/api/admin/triggers",
            Some(json!({"id": "x", "kind": "cron", "topic": "t"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("schedule"),
        "{body}"
    );

    let (status, _) = server
        .post_json("/api/triggers/late/trigger", json!({"data": {}}))
        .await;
    assert_eq!(status, 200, "served at once");
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/api/admin/triggers/late/pause",
            None,
        )
        .await;
    assert_eq!(
        (status, body["paused"].clone(), body["running"].clone()),
        (200, json!(true), json!(false))
    );
    let (status, _) = server
        .post_json("/api/triggers/late/trigger", json!({"data": {}}))
        .await;
    assert_eq!(status, 409, "a paused trigger does not fire");
    server
        .admin(
            reqwest::Method::POST,
            "/api/admin/triggers/late/resume",
            None,
        )
        .await;
    let (status, body) = server
        .admin(reqwest::Method::POST, "/api/admin/triggers/late/run", None)
        .await;
    assert_eq!((status, body["trigger_count"].clone()), (200, json!(2)));

    let (status, list) = server
        .admin(reqwest::Method::GET, "/api/admin/triggers", None)
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo", "github", "late", "private"]);
    let (status, plugins) = server
        .admin(reqwest::Method::GET, "/api/admin/plugins", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(plugins[0]["name"], "github_webhook");
    assert_eq!(plugins[0]["worlds"], json!(["factory-plugin"]));

    let (status, _) = server
        .admin(reqwest::Method::DELETE, "/api/admin/triggers/late", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .post_json("/api/triggers/late/trigger", json!({"data": {}}))
        .await;
    assert_eq!(status, 404, "unregistered triggers are no longer served");
    let (status, _) = server
        .admin(reqwest::Method::DELETE, "/api/admin/triggers/late", None)
        .await;
    assert_eq!(status, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_openapi() {
    let server = Server::start().await;
    server
        .post_json("/api/triggers/demo/trigger", json!({"data": {}}))
        .await;
    let (status, health) = server.get("/healthz").await;
    assert_eq!((status, health["status"].clone()), (200, json!("ok")));
    // A real webhook call, so the plugin latency histogram has a sample.
    let body = r#"{"data": {"action": "opened", "repository": {"full_name": "o/r"}}}"#;
    let hook = server
        .http
        .post(server.url("/webhooks/github/trigger"))
        .header("x-hub-signature-256", sign("hook-secret", body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(hook.status().is_success(), "{}", hook.status());
    // What Prometheus asks for: OpenMetrics.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let scrape = |accept: Option<&'static str>| {
        let mut request = server.http.get(server.url("/metrics"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        async move {
            let response = request.send().await.unwrap();
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            (kind, response.text().await.unwrap())
        }
    };
    let (kind, metrics) = scrape(Some(prometheus)).await;
    assert!(
        kind.starts_with("application/openmetrics-text; version=1.0.0"),
        "{kind}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    check_metrics(&metrics);
    // No preference, or the classic format asked for: the classic format.
    for accept in [None, Some("text/plain; version=0.0.4"), Some("*/*")] {
        let (kind, metrics) = scrape(accept).await;
        assert!(
            kind.starts_with("text/plain; version=0.0.4"),
            "{accept:?}: {kind}"
        );
        assert!(!metrics.contains("# EOF"), "{metrics}");
        check_metrics(&metrics);
        promtool_check(&metrics);
    }
    let (status, openapi) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/events",
        "/api/events/stream",
        "/api/admin/triggers",
        "/healthz",
        "/metrics",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} undocumented");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_a_firing_in_flight_finish_and_publish() {
    let server = Server::start().await;
    let slow = factory_fn(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(vec![NewEvent::new(json!({"slow": true}))])
    });
    let config =
        TriggerConfig::from_json(json!({"id": "slow", "kind": "api", "topic": "slow.done"}))
            .unwrap();
    server
        .host
        .triggers()
        .add_with(
            config,
            NativeLogic {
                factory: Some(slow),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let pattern = wasmsched::TopicPattern::new("slow.*").unwrap();
    let mut done = server
        .host
        .broker()
        .subscribe(&pattern, wasmsched::broker::SubscriberKind::Observer)
        .await
        .unwrap();
    let request = {
        let (http, url) = (
            server.http.clone(),
            server.url("/api/triggers/slow/trigger"),
        );
        tokio::spawn(async move { http.post(url).json(&json!({"data": {}})).send().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await; // the factory is running
    server.shutdown().await;
    let response = request
        .await
        .unwrap()
        .expect("the request in flight was answered");
    assert_eq!(response.status(), 200);
    let event = done.next().await.expect("its event was published").event;
    assert_eq!(event.data["slow"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_in_both_modes_and_out_on_the_stream() {
    let server = Server::start().await;
    let response = server
        .http
        .get(server.url("/api/events/stream"))
        .bearer_auth("admin-secret")
        .query(&[("pattern", "ce.**"), ("format", "cloudevents")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream: SseStream = Box::pin(response.bytes_stream());
    let structured = json!({"specversion": "1.0", "id": "x-1", "source": "/tests",
                            "type": "ce.structured", "traceparent": "00-aa-bb-01", "data": {"n": 1}});
    let posted = server
        .http
        .post(server.url("/api/events"))
        .bearer_auth("admin-secret")
        .header("content-type", "application/cloudevents+json")
        .body(structured.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let posted = server
        .http
        .post(server.url("/api/events"))
        .bearer_auth("admin-secret")
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "x-2")
        .header("ce-source", "/tests/binary")
        .header("ce-type", "ce.binary")
        .body(r#"{"n": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let first = next_sse(&mut stream).await;
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["type"], "ce.structured");
    assert_eq!(first["source"], "/tests");
    assert_eq!(first["traceparent"], "00-aa-bb-01");
    assert_eq!(first["data"]["n"], 1);
    let second = next_sse(&mut stream).await;
    for event in [&first, &second] {
        let errors = wasmsched_test_support::cloudevent_errors(event);
        assert!(errors.is_empty(), "{event}: {errors:?}");
    }
    assert_eq!(second["type"], "ce.binary");
    assert_eq!(second["source"], "/tests/binary");
    assert_eq!(second["data"]["n"], 2);
    // A CloudEvent without a type names it.
    let (status, body) = server.post_json("/api/events", json!({})).await;
    assert_eq!(status, 422, "{body}");
    let missing = server
        .http
        .post(server.url("/api/events"))
        .bearer_auth("admin-secret")
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion": "1.0", "id": "1", "source": "s"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("`type`"), "{body}");
    server.shutdown().await;
}

/// `/metrics` read by an independent parser (prometheus-parse): the
/// samples the test caused, and histograms that add up.
/// `promtool check metrics` (Debian's `prometheus` package, 2.42: it
/// reads the classic format only) finds no problem in `text`.
fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's `prometheus` package; .ci/run installs it)");
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let output = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

fn check_metrics(text: &str) {
    use prometheus_parse::{Scrape, Value as Sample};
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let value = |name: &str, label: (&str, &str)| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .unwrap_or_else(|| panic!("no {name}{{{}={}}} in\n{text}", label.0, label.1));
        match sample.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        }
    };
    assert_eq!(
        value("wasmsched_trigger_firings_total", ("trigger", "demo")),
        1.0
    );
    assert_eq!(
        value("wasmsched_broker_connected", ("broker", "memory")),
        1.0
    );
    let calls = value("wasmsched_plugin_calls_total", ("plugin", "github_webhook"));
    assert!(calls >= 1.0, "{calls}");
    // The latency histogram: buckets ascending, cumulative, +Inf the count.
    let histogram = scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            Sample::Histogram(buckets)
                if s.metric == "wasmsched_plugin_call_seconds"
                    && s.labels.get("plugin") == Some("github_webhook") =>
            {
                Some(buckets.clone())
            }
            _ => None,
        })
        .expect("a latency histogram for the plugin");
    assert!(
        histogram
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count)
    );
    let last = histogram.last().unwrap();
    assert!(last.less_than.is_infinite(), "{histogram:?}");
    let count = value(
        "wasmsched_plugin_call_seconds_count",
        ("plugin", "github_webhook"),
    );
    assert_eq!(last.count, count);
    assert_eq!(count, calls);
    for family in [
        "wasmsched_cron_lateness_seconds",
        "wasmsched_http_connections",
        "wasmsched_plugin_calls_in_flight",
    ] {
        assert!(scrape.docs.contains_key(family), "{family} undocumented");
    }
}
