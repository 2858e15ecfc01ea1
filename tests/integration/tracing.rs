//! OpenTelemetry traces from the real binary, received by a small OTLP/HTTP
//! receiver started by the test (protobuf, decoded with the OTLP types):
//! a cron → event → event chain is one trace with the links the spans
//! promise, and a `traceparent` sent to an api trigger is continued.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::Replica;

/// A received span: the parts the test checks.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    /// `service.name` of the process that sent it.
    service: String,
}

type Received = Arc<Mutex<Vec<Span>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut received = received.lock().unwrap();
    for resource in &request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(AnyValue::StringValue(name)) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
            received.push(Span {
                trace: hex::encode(&span.trace_id),
                id: hex::encode(&span.span_id),
                parent: hex::encode(&span.parent_span_id),
                name: span.name.clone(),
                service: service.clone(),
            });
        }
    }
    ""
}

/// An OTLP/HTTP receiver on loopback: its base URL and what it got.
async fn start_receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

const PLUGINS: &str = "[plugins]\nwatch = false\ncache = false\n";

const CONFIG: &str = r#"
[[trigger]]
id = "tick"
kind = "cron"
schedule = "0 0 1 1 *"
topic = "chain.a"

[[trigger]]
id = "hook"
kind = "api"
topic = "chain.a"

[[trigger]]
id = "relay"
kind = "event"
source = "chain.a"
topic = "chain.b"

[[trigger]]
id = "last"
kind = "event"
source = "chain.b"
topic = "chain.c"
"#;

/// The batch exporter sends every 100 ms (5 s by default).
const FAST_EXPORT: &[(&str, &str)] = &[("OTEL_BSP_SCHEDULE_DELAY", "100")];

/// A config exporting to `collector` as `service`, with `rest`.
fn traced(collector: &str, service: &str, rest: &str) -> String {
    format!(
        "{PLUGINS}\n[telemetry]\notlp_endpoint = \"{collector}\"\nservice_name = \"{service}\"\n{rest}"
    )
}

/// The spans of one trace, found by a span's name; waits for `count`.
async fn trace_of(received: &Received, root: &str, count: usize) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = received.lock().unwrap().clone();
        if let Some(first) = spans.iter().find(|s| s.name == root) {
            let trace: Vec<Span> = spans
                .iter()
                .filter(|s| s.trace == first.trace)
                .cloned()
                .collect();
            if trace.len() >= count {
                return trace;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no trace with `{root}` and {count} spans: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The span named `name` in `trace`, checking its parent is `parent`.
fn child<'a>(trace: &'a [Span], name: &str, parent: &Span) -> &'a Span {
    let span = trace
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no `{name}` span in {trace:#?}"));
    assert_eq!(
        span.parent, parent.id,
        "`{name}` is a child of `{}`: {trace:#?}",
        parent.name
    );
    span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_chain_is_one_trace_and_a_callers_trace_is_continued() {
    let (collector, received) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("wasmsched.toml");
    std::fs::write(&config, traced(&collector, "wasmsched", CONFIG)).unwrap();
    let host = Replica::start_with_env(&config, FAST_EXPORT).await;
    let http = reqwest::Client::new();

    // cron → event → event: run the cron trigger now.
    let ran = http
        .post(format!("{}/api/admin/triggers/tick/run", host.base))
        .send()
        .await
        .unwrap();
    assert!(ran.status().is_success(), "{}", ran.status());
    let trace = trace_of(&received, "fire tick", 8).await;
    let fire_tick = trace.iter().find(|s| s.name == "fire tick").unwrap();
    assert_eq!(fire_tick.parent, "", "a cron firing starts its trace");
    let published_a = child(&trace, "publish chain.a", fire_tick);
    let event_relay = child(&trace, "event relay", published_a);
    let fire_relay = child(&trace, "fire relay", event_relay);
    let published_b = child(&trace, "publish chain.b", fire_relay);
    let event_last = child(&trace, "event last", published_b);
    let fire_last = child(&trace, "fire last", event_last);
    child(&trace, "publish chain.c", fire_last);

    // An api call carrying a traceparent: the firing continues that trace.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let called = http
        .post(format!("{}/api/triggers/hook/trigger", host.base))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&serde_json::json!({"data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert!(called.status().is_success(), "{}", called.status());
    let trace = trace_of(&received, "call hook", 9).await;
    let call = trace.iter().find(|s| s.name == "call hook").unwrap();
    assert_eq!(call.trace, caller_trace);
    assert_eq!(call.parent, caller_span);
    let fire_hook = child(&trace, "fire hook", call);
    let published = child(&trace, "publish chain.a", fire_hook);
    child(&trace, "event relay", published);
    assert!(trace.iter().any(|s| s.name == "fire last"), "{trace:#?}");
}

/// Two replicas on JetStream: the api trigger on A publishes, the event
/// trigger on B picks the event up from the stream, and B's spans join the
/// trace A's caller started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_crosses_replicas_through_jetstream() {
    let server = NatsServer::start();
    let (collector, received) = start_receiver().await;
    let root = tempfile::tempdir().unwrap();
    let broker = format!("[broker]\nkind = \"nats\"\nurl = \"{}\"\n", server.url());
    let replica = |name: &str, triggers: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        let config = dir.join("wasmsched.toml");
        let rest = format!("{broker}\n{triggers}");
        std::fs::write(&config, traced(&collector, name, &rest)).unwrap();
        config
    };
    let a = replica(
        "replica-a",
        "[[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"chain.a\"\n",
    );
    let b = replica(
        "replica-b",
        "[[trigger]]\nid = \"relay\"\nkind = \"event\"\nsource = \"chain.a\"\ntopic = \"chain.b\"\n",
    );
    let (a, _b) = tokio::join!(
        Replica::start_with_env(&a, FAST_EXPORT),
        Replica::start_with_env(&b, FAST_EXPORT)
    );
    let caller = "0af7651916cd43dd8448eb211c80319c";
    let called = reqwest::Client::new()
        .post(format!("{}/api/triggers/hook/trigger", a.base))
        .header("traceparent", format!("00-{caller}-b7ad6b7169203331-01"))
        .json(&serde_json::json!({"data": {}}))
        .send()
        .await
        .unwrap();
    assert!(called.status().is_success(), "{}", called.status());
    let trace = trace_of(&received, "call hook", 6).await;
    assert!(trace.iter().all(|s| s.trace == caller), "{trace:#?}");
    let call = trace.iter().find(|s| s.name == "call hook").unwrap();
    let fire_hook = child(&trace, "fire hook", call);
    let published = child(&trace, "publish chain.a", fire_hook);
    let event_relay = child(&trace, "event relay", published);
    let fire_relay = child(&trace, "fire relay", event_relay);
    child(&trace, "publish chain.b", fire_relay);
    assert_eq!(published.service, "replica-a");
    assert_eq!(event_relay.service, "replica-b");
}
