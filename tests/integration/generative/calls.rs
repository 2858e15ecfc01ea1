//! Api trigger calls (`POST {path}/trigger`, `GET {path}/status`) on a
//! served host, as raw HTTP: random methods, paths, query strings, content
//! types, odd-case and non-UTF-8 headers, bearer tokens and signatures,
//! bodies of any bytes. Never a dropped connection or a 5xx; a 4xx is JSON
//! naming what is wrong; a 200 published the `data` that was sent.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::edges::names;
use super::harness::check;
use super::host::{Fixture, seen};
use super::raw::{Raw, content_type, extra_headers, fire_body, query, send};

/// The api triggers of the fixture: id, topic, path.
const CALLED: [(&str, &str); 4] = [
    ("hook", "hooks.in"),
    ("bearer", "calls.bearer"),
    ("signed", "calls.signed"),
    ("limited", "calls.limited"),
];

#[derive(Debug, Clone)]
struct Call {
    target: usize,
    suffix: &'static str,
    method: &'static str,
    query: String,
    content_type: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    authorized: bool,
}

fn call() -> BoxedStrategy<Call> {
    let suffix = prop_oneof![
        8 => Just("/trigger"),
        1 => prop::sample::select(vec!["/status", "/triggerx", "", "/trigger/", "/TRIGGER"]),
    ];
    let method = prop_oneof![
        8 => Just("POST"),
        1 => prop::sample::select(vec!["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    ];
    (
        0..CALLED.len(),
        suffix,
        method,
        query(),
        content_type(),
        extra_headers(),
        fire_body(),
        any::<bool>(),
    )
        .prop_map(
            |(target, suffix, method, query, content_type, headers, body, authorized)| Call {
                target,
                suffix,
                method,
                query,
                content_type,
                headers,
                body,
                authorized,
            },
        )
        .boxed()
}

async fn call_case(fx: &Fixture, call: Call) -> Result<(), TestCaseError> {
    let (id, topic) = CALLED[call.target];
    let mut headers = call.headers.clone();
    if let Some(content_type) = &call.content_type {
        headers.push(("Content-Type".into(), content_type.clone()));
    }
    if call.authorized && id == "bearer" {
        headers.push(("authorization".into(), b"Bearer tok".to_vec()));
    }
    if call.authorized && id == "signed" {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3").unwrap();
        mac.update(&call.body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        headers.push(("X-Hub-Signature-256".into(), signature.into_bytes()));
    }
    let target = match call.query.is_empty() {
        true => format!("/api/triggers/{id}{}", call.suffix),
        false => format!("/api/triggers/{id}{}?{}", call.suffix, call.query),
    };
    let raw = Raw {
        method: call.method,
        target,
        headers,
        body: call.body.clone(),
    };
    let mut events = fx.observe().await;
    let (status, answer) = send(fx, "calling an api trigger", &raw).await?;
    let message = answer["error"].as_str().unwrap_or_default();
    match status {
        422 => prop_assert!(
            names(message, "data") || names(message, "body"),
            "422 names neither `data` nor the body: {}",
            message
        ),
        415 => prop_assert!(message.contains("Content-Type"), "415: {}", message),
        200 if call.suffix == "/trigger" && call.method == "POST" => {
            let sent: Value = serde_json::from_slice(&call.body).unwrap();
            let data = sent["data"].clone();
            let published =
                seen(&mut events, |e| e.topic.as_str() == topic && e.data == data).await;
            prop_assert!(
                published.is_some(),
                "answered 200, but {} was not published",
                data
            );
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn api_trigger_calls() {
    let fx = Fixture::start("calls");
    fx.rt.block_on(async {
        for table in [
            json!({"id": "bearer", "kind": "api", "topic": "calls.bearer",
                "auth": {"bearer_token": "tok"}}),
            json!({"id": "signed", "kind": "api", "topic": "calls.signed",
                "auth": {"hmac_secret": "s3"}}),
            json!({"id": "limited", "kind": "api", "topic": "calls.limited",
                "rate_limit": "1000000/s"}),
        ] {
            let url = fx.url("/api/admin/triggers");
            let made = fx.client.post(url).json(&table).send().await.unwrap();
            assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
        }
    });
    check("api trigger calls", 1200, call(), |call| {
        fx.case(call, |call| call_case(&fx, call))
    });
}
