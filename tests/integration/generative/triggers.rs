//! Trigger tables on a served host (`POST /api/admin/triggers`): each case
//! starts from a valid table of a kind and sets one or two keys (of that
//! kind or any) to generated values. Never a dropped connection or a 5xx;
//! a 4xx names a key it was sent; an accepted table comes back from GET as
//! sent, and works: an api trigger answers at its path, an event trigger
//! takes events (flow control included) without a task panicking.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use wasmsched::units::parse_duration;
use wasmsched::{Event, Topic};

use super::body::{Body, key, text, words};
use super::edges::{
    cron_text, duration_json, json_value, number_json, odd_text, rate_text, short, topic_text,
    zone_text,
};
use super::harness::check;
use super::host::{Fixture, segment};

fn flow(fields: &[(&'static str, bool)]) -> BoxedStrategy<Option<Value>> {
    let values: Vec<_> = fields
        .iter()
        .map(|(name, duration)| {
            let value = match duration {
                true => duration_json(),
                false => number_json(),
            };
            (Just(*name), value)
        })
        .collect();
    prop_oneof![
        6 => values.prop_map(|v| Some(Value::Object(v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))),
        1 => json_value().prop_map(Some),
    ]
    .boxed()
}

fn cron_keys() -> BoxedStrategy<(&'static str, Option<Value>)> {
    prop_oneof![
        key("schedule", text(cron_text())),
        key("timezone", text(zone_text())),
        key("catch_up", words(&["skip", "latest", "all", "ALL", ""])),
        key("catch_up_window", duration_json().prop_map(Some)),
        key("catch_up_max", number_json().prop_map(Some)),
        key("jitter", duration_json().prop_map(Some)),
        key(
            "overlap",
            words(&["allow", "skip", "buffer_one", "BufferOne"])
        ),
    ]
    .boxed()
}

fn api_keys() -> BoxedStrategy<(&'static str, Option<Value>)> {
    let auth = prop_oneof![
        odd_text().prop_map(|t| Some(json!({"bearer_token": t}))),
        (odd_text(), odd_text())
            .prop_map(|(s, h)| Some(json!({"hmac_secret": s, "signature_header": h}))),
        json_value().prop_map(Some),
    ];
    let path = prop_oneof![
        prop::sample::select(vec![
            "/hooks/x",
            "/",
            "",
            "hooks",
            "/api/admin/x",
            "/a b",
            "/é",
            "/%FF",
            "/a/../b",
            "//x",
            "/x?y",
            "/x#y",
            "/triggers",
            "/hooks/",
            "/api/triggers/hook",
        ])
        .prop_map(str::to_owned),
        odd_text().prop_map(|t| format!("/g/{t}")),
    ];
    prop_oneof![
        key("path", text(path.boxed())),
        key("auth", auth),
        key("rate_limit", text(rate_text())),
    ]
    .boxed()
}

fn event_keys() -> BoxedStrategy<(&'static str, Option<Value>)> {
    let pointer = prop::sample::select(vec!["/service", "", "service", "/a/b", "/~0", "/日本"])
        .prop_map(str::to_owned);
    prop_oneof![
        key("source", text(topic_text())),
        key("key", text(prop_oneof![pointer, odd_text()].boxed())),
        key("dedupe", flow(&[("window", true)])),
        key("throttle", flow(&[("limit", false), ("period", true)])),
        key("debounce", flow(&[("period", true), ("max_wait", true)])),
        key("batch", flow(&[("max_events", false), ("max_wait", true)])),
        key("concurrency", number_json().prop_map(Some)),
    ]
    .boxed()
}

fn any_keys() -> BoxedStrategy<(&'static str, Option<Value>)> {
    prop_oneof![
        key("id", text(odd_text())),
        key("topic", text(topic_text())),
        key("config", json_value().prop_map(Some)),
        key("plugin", text(odd_text())),
        key("shedule", json_value().prop_map(Some)),
        key("topic", Just(None)),
        cron_keys(),
        api_keys(),
        event_keys(),
    ]
    .boxed()
}

/// A trigger table: its kind, then keys of that kind or any.
/// The data of the events an event trigger is sent: its flow-control key
/// (`/service`) of any type and size, or any JSON.
fn event_data() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => Just(json!({"service": "db"})),
        2 => json_value().prop_map(|service| json!({"service": service, "a": {"b": 1}})),
        1 => json_value(),
    ]
    .boxed()
}

fn trigger_table() -> BoxedStrategy<(usize, Body, Value)> {
    (0usize..4)
        .prop_flat_map(|kind| {
            let own = match kind {
                0 => cron_keys(),
                1 => api_keys(),
                2 => event_keys(),
                _ => any_keys(),
            };
            let mutations = prop::collection::vec(prop_oneof![4 => own, 1 => any_keys()], 1..=2);
            let odd_kind = prop_oneof![
                6 => Just(None),
                1 => words(&["CRON", "Api", "timer", ""]).prop_map(Some),
            ];
            (Just(kind), mutations, odd_kind, event_data())
        })
        .prop_map(|(kind, mut mutations, odd_kind, data)| {
            if let Some(kind) = odd_kind {
                mutations.push(("kind", kind));
            }
            (kind, table(kind, mutations), data)
        })
        .boxed()
}

/// A valid table of `kind` (0 cron, 1 api, 2 event, 3 cron) with
/// `mutations`.
pub fn table(kind: usize, mutations: Vec<(&'static str, Option<Value>)>) -> Body {
    let mut base = vec![("topic", json!("gen.out"))];
    match kind {
        0 | 3 => base.extend([
            ("kind", json!("cron")),
            ("schedule", json!("*/5 * * * *")),
            ("timezone", json!("Europe/Berlin")),
        ]),
        1 => base.push(("kind", json!("api"))),
        _ => base.extend([("kind", json!("event")), ("source", json!("gen.in.*"))]),
    }
    Body::new(&base, mutations)
}

#[derive(Deserialize)]
struct Millis(#[serde(deserialize_with = "wasmsched::units::deserialize_duration")] Duration);

/// A duration as the API reads it.
fn duration_of(value: &Value) -> Option<Duration> {
    serde_json::from_value::<Millis>(value.clone())
        .ok()
        .map(|m| m.0)
}

/// What GET shows of an accepted table is what was sent.
fn same_as_sent(body: &Body, id: &str, view: &Value) -> Result<(), TestCaseError> {
    let sent = |key: &str| body.get(key).cloned().unwrap_or(Value::Null);
    prop_assert_eq!(&view["id"], &json!(id));
    let kind = sent("kind").as_str().unwrap_or_default().to_lowercase();
    prop_assert_eq!(view["kind"].as_str(), Some(kind.as_str()));
    prop_assert_eq!(&view["topic"], &sent("topic"));
    let shows = |key: &str, view_value: &Value| -> Result<(), TestCaseError> {
        let Some(value) = body.get(key) else {
            return Ok(());
        };
        let shown = view_value.as_str().and_then(|t| parse_duration(t).ok());
        let sent = duration_of(value);
        let zero = sent.is_some_and(|d| d.is_zero()) && view_value.is_null();
        prop_assert!(
            zero || shown == sent,
            "`{}`: sent {}, read as {:?}; GET shows {} ({:?})",
            key,
            short(&value.to_string(), 80),
            sent,
            view_value,
            shown
        );
        Ok(())
    };
    match kind.as_str() {
        "cron" => {
            prop_assert_eq!(&view["schedule"], &sent("schedule"));
            let zone = body.get("timezone").filter(|z| !z.is_null()).cloned();
            let zone = zone.unwrap_or(json!("UTC"));
            prop_assert_eq!(&view["timezone"], &zone);
            shows("jitter", &view["jitter"])?;
        }
        "api" => {
            // `null`, as the document allows, is the default.
            let path = body
                .get("path")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!(format!("/api/triggers/{id}")));
            prop_assert_eq!(&view["path"], &path);
        }
        _ => {
            prop_assert_eq!(&view["source"], &sent("source"));
            for (table, fields) in [
                ("dedupe", &["window"][..]),
                ("throttle", &["period"]),
                ("debounce", &["period", "max_wait"]),
                ("batch", &["max_wait"]),
            ] {
                let Some(Value::Object(sent_table)) = body.get(table) else {
                    continue;
                };
                for field in fields {
                    let key = format!("{table}.{field}");
                    let value = sent_table.get(*field).cloned().unwrap_or(Value::Null);
                    let shown = &view["flow"][table][field];
                    let parsed = shown.as_str().and_then(|t| parse_duration(t).ok());
                    prop_assert_eq!(
                        parsed,
                        duration_of(&value),
                        "`{}`: sent {}, GET shows {}",
                        key,
                        short(&value.to_string(), 80),
                        shown
                    );
                }
            }
        }
    }
    Ok(())
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

pub fn serial() -> usize {
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// A topic the pattern `source` matches.
fn topic_for(source: &str) -> Option<Topic> {
    let segments: Vec<&str> = source
        .split('.')
        .map(|s| if s.starts_with('*') { "x" } else { s })
        .collect();
    Topic::new(segments.join(".")).ok()
}

async fn registered_trigger_works(
    fx: &Fixture,
    body: &Body,
    id: &str,
    view: &Value,
    data: &Value,
) -> Result<(), TestCaseError> {
    let path = segment(id);
    match view["kind"].as_str() {
        Some("api") => {
            // The default path holds the id: a client encodes it (a custom
            // path is plain characters only).
            let served = view["path"].as_str().unwrap();
            let served = match served.strip_prefix("/api/triggers/") {
                Some(rest) if rest == id => format!("/api/triggers/{path}"),
                _ => served.to_owned(),
            };
            let url = fx.url(&format!("{served}/trigger"));
            let payload = json!({"data": {"n": 1}});
            let mut request = fx.client.post(url).json(&payload);
            let auth = body.get("auth").cloned().unwrap_or(Value::Null);
            if let Some(token) = auth["bearer_token"].as_str()
                && let Ok(value) =
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            {
                request = request.header("authorization", value);
            }
            if let Some(secret) = auth["hmac_secret"].as_str() {
                use hmac::Mac;
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
                mac.update(payload.to_string().as_bytes());
                let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
                let name = auth["signature_header"]
                    .as_str()
                    .unwrap_or("x-hub-signature-256");
                if let Ok(name) = reqwest::header::HeaderName::from_bytes(name.as_bytes()) {
                    request = request.header(name, signature);
                }
            }
            let answer = fx.send_api("firing the api trigger", request).await?;
            prop_assert!(
                [200, 401, 429].contains(&answer.status),
                "firing it: {} {}",
                answer.status,
                short(&answer.text, 200)
            );
        }
        Some("event") => {
            let Some(topic) = view["source"].as_str().and_then(topic_for) else {
                return Ok(());
            };
            let broker = fx.host().broker();
            for n in 0..2 {
                let mut data = data.clone();
                if let Some(object) = data.as_object_mut() {
                    object.insert("n".into(), json!(n));
                }
                let event = Event::new(topic.clone(), data);
                broker.publish(event).await.unwrap();
            }
            // Until it has taken them in (no timing asserted: a slow host
            // only checks less). Debounce holds the second.
            let wanted = if view["flow"]["debounce"].is_object() {
                1
            } else {
                2
            };
            let deadline = Instant::now() + Duration::from_secs(3);
            let mark = fx.mark();
            while Instant::now() < deadline {
                let answer = fx
                    .send_api(
                        "GET the trigger",
                        fx.client
                            .get(fx.url(&format!("/api/admin/triggers/{path}"))),
                    )
                    .await?;
                let stats = &answer.json["stats"];
                let taken: u64 = [
                    "fires",
                    "errors",
                    "deduplicated",
                    "throttled",
                    "debounced",
                    "batched",
                ]
                .iter()
                .filter_map(|k| stats[k].as_u64())
                .sum();
                fx.no_host_panic(mark, "the event trigger, taking events")?;
                if taken >= wanted {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        _ => {}
    }
    Ok(())
}

pub async fn trigger_case(
    fx: &Fixture,
    kind: usize,
    body: Body,
    data: Value,
) -> Result<(), TestCaseError> {
    fx.forget_admin_triggers().await;
    let mut body = body;
    if body.get("id").is_none() && !body.mutated.contains(&"id") {
        body.fields
            .push(("id", Some(json!(format!("gen-{}", serial())))));
    }
    let request = fx
        .client
        .post(fx.url("/api/admin/triggers"))
        .json(&body.json());
    let answer = fx.send_api("POST /api/admin/triggers", request).await?;
    if answer.status != 201 {
        prop_assert!(
            answer.status >= 400,
            "POST: {} {}",
            answer.status,
            short(&answer.text, 200)
        );
        prop_assert!(
            !(body.mutated.is_empty() && kind < 3),
            "a valid table was refused: {}",
            short(&answer.text, 300)
        );
        return body.named_in(&answer);
    }
    let id = answer.json["id"].as_str().unwrap_or_default().to_owned();
    same_as_sent(&body, &id, &answer.json)?;
    let path = segment(&id);
    if id != "." && id != ".." {
        let got = fx
            .send_api(
                "GET the trigger",
                fx.client
                    .get(fx.url(&format!("/api/admin/triggers/{path}"))),
            )
            .await?;
        prop_assert_eq!(got.status, 200, "GET after POST: {}", short(&got.text, 200));
        same_as_sent(&body, &id, &got.json)?;
        registered_trigger_works(fx, &body, &id, &got.json, &data).await?;
        let run = fx
            .client
            .post(fx.url(&format!("/api/admin/triggers/{path}/run")));
        let run = fx
            .send_api("POST .../run", run.json(&json!({"n": 1})))
            .await?;
        prop_assert!([200, 409].contains(&run.status), "run now: {}", run.text);
        let list = fx
            .send_api(
                "GET /api/admin/triggers",
                fx.client.get(fx.url("/api/admin/triggers")),
            )
            .await?;
        let listed = list
            .json
            .as_array()
            .is_some_and(|l| l.iter().any(|t| t["id"] == json!(id)));
        prop_assert!(listed, "not listed");
        let deleted = fx
            .send_api(
                "DELETE the trigger",
                fx.client
                    .delete(fx.url(&format!("/api/admin/triggers/{path}"))),
            )
            .await?;
        prop_assert_eq!(deleted.status, 200, "DELETE: {}", short(&deleted.text, 200));
    }
    Ok(())
}

#[test]
fn admin_trigger_tables() {
    let fx = Fixture::start("triggers");
    check("POST /api/admin/triggers", 1200, trigger_table(), |table| {
        fx.case(table, |(kind, body, data)| {
            trigger_case(&fx, kind, body, data)
        })
    });
}
