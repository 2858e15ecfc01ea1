//! What plugins may be granted (`wasmsched:plugin@0.2.0`), against real
//! servers started here on loopback: outbound HTTP to allowed origins only
//! (another origin and a redirect to one refused inside the plugin, a
//! server that never answers and one that never finishes bounded), secrets
//! that appear in no log line and no admin answer, a 0.1.0 plugin running
//! next to 0.2.0 ones; and the key-value store, scoped per plugin, bound
//! by its quota, denied without a grant, and shared by replicas on
//! JetStream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use chrono::Utc;
use serde_json::{Value, json};
use wasmsched::firing::{Cause, Firing};
use wasmsched::plugin::{Grants, KvQuota, Plugin, PluginError, PluginRuntime, RuntimeOptions};
use wasmsched::state::nats::NatsStore;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{Retention, StateStore};
use wasmsched_test_support::http::{get, post as post_json};
use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::Replica;

fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("WASMSCHED_GUEST_DIR")).join(format!("{name}.wasm"))
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(guest(name)).unwrap()
}

// ---------------------------------------------------------------- key-value

/// Runs `ops` through the kv_probe plugin, as an api trigger would.
async fn kv_ops(plugin: &Arc<Plugin>, ops: Value) -> Vec<Value> {
    let factory = plugin.factory("probe", BTreeMap::new()).unwrap();
    let firing = Firing::new(
        "probe",
        Utc::now(),
        Cause::Api {
            payload: json!({ "ops": ops }),
        },
    );
    let events = factory.make_events(&firing).await.unwrap();
    events[0].data["results"].as_array().unwrap().clone()
}

fn runtime_with(store: Arc<dyn StateStore>) -> PluginRuntime {
    let runtime = PluginRuntime::new(RuntimeOptions::default()).unwrap();
    runtime.use_state_store(store);
    runtime
}

fn load(runtime: &PluginRuntime, name: &str, grants: Grants) -> Arc<Plugin> {
    runtime
        .load_granted(name, &bytes("kv_probe"), None, grants)
        .unwrap()
}

#[tokio::test]
async fn key_value_is_scoped_quota_bound_and_denied_without_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"), Retention::default())
        .await
        .unwrap();
    let runtime = runtime_with(Arc::new(store));
    let quota = KvQuota {
        max_keys: 2,
        max_bytes: 40,
    };
    let a = load(&runtime, "kv_a", Grants::default().with_kv(quota));
    let b = load(
        &runtime,
        "kv_b",
        Grants::default().with_kv(KvQuota::default()),
    );
    let none = load(&runtime, "kv_none", Grants::default());

    let results = kv_ops(
        &a,
        json!([
            ["set", "count/db", "1"],
            ["set", "count/web", "2"],
            ["get", "count/db"],
            ["list", "count/"],
            ["set", "count/third", "3"],
            ["set", "count/db", "x".repeat(40)],
            ["set", "", "empty key"],
        ]),
    )
    .await;
    assert_eq!(results[0], json!({"ok": null}));
    assert_eq!(results[2], json!({"ok": "1"}));
    assert_eq!(results[3], json!({"ok": ["count/db", "count/web"]}));
    let over_keys = results[4]["err"].as_str().unwrap();
    assert!(
        over_keys.starts_with("QuotaExceeded: max_keys"),
        "{over_keys}"
    );
    let over_bytes = results[5]["err"].as_str().unwrap();
    assert!(
        over_bytes.starts_with("QuotaExceeded: max_bytes"),
        "{over_bytes}"
    );
    assert_eq!(results[6], json!({"err": "InvalidKey"}));

    // Another plugin has its own keys; a refused write changed nothing.
    let results = kv_ops(&b, json!([["list", ""], ["get", "count/db"]])).await;
    assert_eq!(results, [json!({"ok": []}), json!({"ok": null})]);
    let results = kv_ops(
        &a,
        json!([
            ["get", "count/db"],
            ["delete", "count/db"],
            ["delete", "count/db"],
            ["set", "count/third", "3"]
        ]),
    )
    .await;
    assert_eq!(
        results,
        [
            json!({"ok": "1"}),
            json!({"ok": true}),
            json!({"ok": false}),
            json!({"ok": null})
        ],
        "a delete frees room under the quota"
    );

    let results = kv_ops(&none, json!([["get", "k"], ["set", "k", "v"]])).await;
    assert_eq!(
        results,
        [json!({"err": "Denied"}), json!({"err": "Denied"})]
    );
}

#[tokio::test]
async fn key_value_on_jetstream_is_shared_by_replicas() {
    let server = NatsServer::start();
    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let client = async_nats::connect(server.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let store = NatsStore::open(jetstream, "WASMSCHED", Retention::default())
            .await
            .unwrap();
        runtimes.push(runtime_with(Arc::new(store)));
    }
    let quota = KvQuota {
        max_keys: 2,
        max_bytes: 1000,
    };
    let one = load(&runtimes[0], "counter", Grants::default().with_kv(quota));
    let two = load(&runtimes[1], "counter", Grants::default().with_kv(quota));
    let other = load(&runtimes[1], "other", Grants::default().with_kv(quota));

    let results = kv_ops(&one, json!([["set", "a", "1"]])).await;
    assert_eq!(results, [json!({"ok": null})]);
    let results = kv_ops(&two, json!([["get", "a"], ["set", "b", "2"], ["list", ""]])).await;
    assert_eq!(
        results,
        [
            json!({"ok": "1"}),
            json!({"ok": null}),
            json!({"ok": ["a", "b"]})
        ]
    );
    // The quota counts what both replicas wrote.
    let results = kv_ops(&one, json!([["set", "c", "3"], ["set", "a", "11"]])).await;
    let refused = results[0]["err"].as_str().unwrap();
    assert!(refused.starts_with("QuotaExceeded: max_keys"), "{refused}");
    assert_eq!(
        results[1],
        json!({"ok": null}),
        "replacing a key is no new key"
    );
    let results = kv_ops(&other, json!([["list", ""]])).await;
    assert_eq!(results, [json!({"ok": []})], "another plugin's scope");
    let results = kv_ops(
        &two,
        json!([["delete", "b"], ["set", "c", "3"], ["get", "a"]]),
    )
    .await;
    assert_eq!(
        results,
        [
            json!({"ok": true}),
            json!({"ok": null}),
            json!({"ok": "11"})
        ]
    );
}

#[test]
fn a_component_importing_http_without_a_grant_is_refused() {
    let runtime = PluginRuntime::new(RuntimeOptions::default()).unwrap();
    let error = runtime
        .load_bytes("chat_poster", &bytes("chat_poster"), None)
        .unwrap_err();
    assert!(matches!(error, PluginError::NeedsGrant { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("wasi:http/") && message.contains("allowed_outbound_hosts"),
        "{message}"
    );
    let legacy = runtime
        .load_bytes("legacy", &bytes("legacy_v01"), None)
        .unwrap();
    assert_eq!(
        legacy.contract_version().package(),
        "wasmsched:plugin@0.1.0"
    );
}

// ----------------------------------------------------------- outbound HTTP

/// What the chat server saw.
#[derive(Default)]
struct Chat {
    /// Each POST to `/chat`: its authorization header and body.
    posts: Vec<(Option<String>, Value)>,
    /// Requests that reached the server no plugin may reach.
    forbidden_hits: usize,
}

type Shared = Arc<Mutex<Chat>>;

/// The allowed origin: `/chat` answers 204, `/redirect` sends the client
/// to `forbidden`, `/hang` never answers, `/drip` answers 200 and then
/// sends its body a byte at a time, forever.
async fn chat_server(shared: Shared, forbidden: String) -> String {
    let chat = post(
        async |State(shared): State<Shared>, headers: HeaderMap, body: String| {
            let auth = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = serde_json::from_str(&body).unwrap_or(Value::Null);
            shared.lock().unwrap().posts.push((auth, body));
            StatusCode::NO_CONTENT
        },
    );
    let redirect = post(async move || {
        Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("{forbidden}/chat"))
            .body(Body::empty())
            .unwrap()
    });
    let hang = post(async || {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        StatusCode::OK
    });
    let drip = post(async || {
        let bytes = futures_util::stream::unfold((), async |()| {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"x")),
                (),
            ))
        });
        Response::new(Body::from_stream(bytes))
    });
    let app = axum::Router::new()
        .route("/chat", chat)
        .route("/redirect", redirect)
        .route("/hang", hang)
        .route("/drip", drip)
        .with_state(shared);
    serve(app).await
}

/// The origin no plugin is allowed: counts what reaches it.
async fn forbidden_server(shared: Shared) -> String {
    let app = axum::Router::new()
        .fallback(async |State(shared): State<Shared>| {
            shared.lock().unwrap().forbidden_hits += 1;
            StatusCode::NO_CONTENT
        })
        .with_state(shared);
    serve(app).await
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn write_host(dir: &Path, allowed: &str, forbidden: &str) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guest("chat_poster"), plugins.join("chat_poster.wasm")).unwrap();
    std::fs::copy(guest("legacy_v01"), plugins.join("legacy.wasm")).unwrap();
    let trigger = |id: &str, url: &str| {
        format!(
            "[[trigger]]\nid = \"{id}\"\nkind = \"api\"\ntopic = \"chat.posted\"\nplugin = \"chat_poster\"\n\
             [trigger.config]\nurl = \"{url}\"\n\n"
        )
    };
    let manifest = format!(
        "[plugin]\nallowed_outbound_hosts = [\"{allowed}\"]\nhttp_timeout = \"1s\"\n\
         wall_timeout = \"2s\"\n[plugin.secrets]\nCHAT_TOKEN = {{ env = \"TEST_CHAT_TOKEN\" }}\n\n{}{}{}{}{}",
        trigger("chat-ok", &format!("{allowed}/chat")),
        trigger("chat-forbidden", &format!("{forbidden}/chat")),
        trigger("chat-redirect", &format!("{allowed}/redirect")),
        trigger("chat-hang", &format!("{allowed}/hang")),
        trigger("chat-drip", &format!("{allowed}/drip")),
    );
    std::fs::write(plugins.join("chat_poster.toml"), manifest).unwrap();
    std::fs::write(
        plugins.join("legacy.toml"),
        "[[trigger]]\nid = \"legacy\"\nkind = \"api\"\ntopic = \"legacy.out\"\nplugin = \"legacy\"\n",
    )
    .unwrap();
    let config = dir.join("wasmsched.toml");
    std::fs::write(&config, "[plugins]\nwatch = false\ncache = false\n").unwrap();
    config
}

async fn fire(base: &str, id: &str) -> (u16, Value) {
    post_json(
        format!("{base}/api/triggers/{id}/trigger"),
        json!({"data": {
            "level": "ERROR", "service": "db", "message": "disk full"
        }}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_reach_allowed_origins_only_within_their_limits() {
    let shared = Shared::default();
    let forbidden = forbidden_server(shared.clone()).await;
    let allowed = chat_server(shared.clone(), forbidden.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_host(dir.path(), &allowed, &forbidden);
    let token = format!("s3cr3t-{}", uuid::Uuid::now_v7().simple());
    let host = Replica::start_with_env(
        &config,
        &[
            ("TEST_CHAT_TOKEN", &token),
            ("RUST_LOG", "debug,hyper=info,h2=info"),
        ],
    )
    .await;
    let base = host.base.clone();

    // An allowed origin, with the secret as a bearer token.
    let (status, body) = fire(&base, "chat-ok").await;
    assert_eq!(status, 200, "{body}");
    {
        let chat = shared.lock().unwrap();
        assert_eq!(chat.posts.len(), 1);
        assert_eq!(
            chat.posts[0].0.as_deref(),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(
            chat.posts[0].1["text"],
            "[ERROR] db: disk full (trigger chat-ok)"
        );
    }

    // Another origin, directly or through a redirect: refused inside the
    // plugin, which reports the wasi:http error code.
    for id in ["chat-forbidden", "chat-redirect"] {
        let (status, body) = fire(&base, id).await;
        assert_eq!(status, 500, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("HttpRequestDenied"), "{id}: {error}");
        assert!(error.contains(&forbidden), "{id}: {error}");
    }
    assert_eq!(shared.lock().unwrap().forbidden_hits, 0);

    // A server that never answers: the request's own time limit.
    let (status, body) = fire(&base, "chat-hang").await;
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    // (ConnectionReadTimeout: no first byte in time; HttpResponseTimeout:
    // no response head in time. Both are the grant's http_timeout.)
    assert!(error.contains("Timeout"), "{error}");

    // A body that never ends: the call's wall-clock limit, while the other
    // triggers (a 0.1.0 plugin among them) keep answering.
    let drip = tokio::spawn({
        let base = base.clone();
        async move { fire(&base, "chat-drip").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let (status, body) = fire(&base, "legacy").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = fire(&base, "chat-ok").await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(!drip.is_finished(), "the other calls ran while drip waited");
    let (status, body) = drip.await.unwrap();
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("wall-clock limit (2s"), "{error}");

    // The 0.1.0 plugin's output, and what the admin API says of both.
    let (_, runs) = get(format!("{base}/api/admin/triggers/legacy/runs?limit=1")).await;
    assert_eq!(runs[0]["outcome"], "ok", "{runs}");
    let (_, plugins) = get(format!("{base}/api/admin/plugins")).await;
    let by_name = |name: &str| {
        plugins
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("legacy")["version"], "0.1.0");
    let chat = by_name("chat_poster");
    assert_eq!(chat["version"], "0.2.0");
    assert_eq!(chat["grants"]["allowed_outbound_hosts"], json!([allowed]));
    assert_eq!(chat["grants"]["secrets"], json!(["CHAT_TOKEN"]));
    assert_eq!(chat["stats"]["timeouts"], 1, "{chat}");

    // The secret is in no answer of the admin API and no log line.
    let mut answers = plugins.to_string();
    for path in [
        "/api/admin/triggers",
        "/api/admin/triggers/chat-ok",
        "/api/admin/triggers/chat-ok/runs",
        "/healthz",
        "/api/admin/deadletters",
    ] {
        answers.push_str(&get(format!("{base}{path}")).await.1.to_string());
    }
    answers.push_str(&wasmsched_test_support::http::text(format!("{base}/metrics")).await);
    assert!(!answers.contains(&token), "the admin API shows the secret");
    let log = host.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l.contains("outbound HTTP request refused")),
        "the refusals are logged"
    );
    let leaks: Vec<&String> = log.iter().filter(|l| l.contains(&token)).collect();
    assert!(leaks.is_empty(), "the secret is logged: {leaks:?}");
}
