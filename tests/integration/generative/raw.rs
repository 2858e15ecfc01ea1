//! Raw HTTP/1.1 on the wire, so that header names keep their case and
//! values may be any bytes, and the generators of what goes in it.

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::edges::{json_object, json_value, mib, odd_text, short};
use super::host::Fixture;

/// A request as bytes on the wire.
#[derive(Debug, Clone)]
pub struct Raw {
    pub method: &'static str,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// An answer read off the wire: status and body (`None`: the connection
/// closed without one).
async fn exchange(fx: &Fixture, raw: &Raw) -> Option<(u16, Vec<u8>)> {
    let address = fx.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!(
        "{} {} HTTP/1.1\r\nhost: 127.0.0.1\r\n",
        raw.method, raw.target
    )
    .into_bytes();
    for (name, value) in &raw.headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    let length = format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        raw.body.len()
    );
    request.extend_from_slice(length.as_bytes());
    request.extend_from_slice(&raw.body);
    // The server may answer (413) before it read everything.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = answer[head_end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    Some((status, body))
}

fn unchunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..end]).trim(), 16);
        let Ok(size) = size else { break };
        let start = end + 2;
        if size == 0 || rest.len() < start + size {
            break;
        }
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    body
}

/// Sends `raw`: status and JSON body; fails if there is no answer, a 5xx,
/// or a 4xx that is not a JSON error (hyper's own 400s for what is not
/// HTTP have no body).
pub async fn send(fx: &Fixture, what: &str, raw: &Raw) -> Result<(u16, Value), TestCaseError> {
    let mark = fx.mark();
    let Some((status, body)) = exchange(fx, raw).await else {
        fx.no_host_panic(mark, what)?;
        return Err(TestCaseError::fail(format!(
            "{what}: the connection closed without an answer"
        )));
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    prop_assert!(status < 500, "{}: {} {}", what, status, short(&text, 300));
    fx.no_host_panic(mark, what)?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status >= 400 && !body.is_empty() {
        prop_assert!(
            json["error"].is_string(),
            "{}: {} {}",
            what,
            status,
            short(&text, 300)
        );
    }
    Ok((status, json))
}

/// Header values: edges, text, any bytes but CR and LF.
pub fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => odd_text().prop_map(|t| t.replace(['\r', '\n'], "").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(|v| v.into_iter().filter(|b| *b != b'\r' && *b != b'\n').collect()),
        1 => Just(vec![0xff, 0xfe]),
    ]
    .boxed()
}

pub fn content_type() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        6 => Just(Some(b"application/json".to_vec())),
        3 => prop::sample::select(vec![
            "APPLICATION/JSON; charset=utf-8", "application/json;", " application/json",
            "application/jsonx", "text/plain", "application/cloudevents+json", "",
            "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
        ])
        .prop_map(|t| Some(t.as_bytes().to_vec())),
        1 => Just(None),
        1 => header_value().prop_map(Some),
    ]
    .boxed()
}

/// A query string: pairs of odd names and values, percent sequences
/// valid and not.
pub fn query() -> BoxedStrategy<String> {
    let part = prop::sample::select(vec![
        "limit",
        "topic",
        "pattern",
        "format",
        "trigger",
        "page",
        "expr",
        "tz",
        "next",
        "x",
        "%FF",
        "%",
        "a%2",
        "",
        "=",
        "&",
        "+",
        "%00",
        "%C3%A9",
        "data",
        "1e300",
        "-1",
        "0",
        "18446744073709551616",
        "cloudevents",
        "**",
        "a..b",
    ]);
    prop::collection::vec((part.clone(), part), 0..4)
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
        .boxed()
}

/// Extra headers: odd-case names of headers the host reads, and others.
pub fn extra_headers() -> BoxedStrategy<Vec<(String, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        "Authorization",
        "AUTHORIZATION",
        "x-hub-signature-256",
        "X-Hub-Signature-256",
        "traceparent",
        "TraceParent",
        "tracestate",
        "X-Odd",
        "Sec-Fetch-Site",
        "Origin",
        "ce-specversion",
        "CE-Type",
    ])
    .prop_map(str::to_owned);
    let value = prop_oneof![
        2 => prop::sample::select(vec![
            "Bearer tok", "bearer tok", "Bearer  tok", "Bearer", "tok", "sha256=", "sha256=zz",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-0000000000000000-01", "ff-x-y-z", "same-origin",
            "cross-site", "http://evil.example", "1.0",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
        1 => header_value(),
    ];
    prop::collection::vec((name, value), 0..3).boxed()
}

/// A body: `{"data": {...}}`, other JSON, bytes, nothing, over 1 MiB.
pub fn fire_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        6 => json_object().prop_map(|data| json!({"data": data}).to_string().into_bytes()),
        2 => json_value().prop_map(|data| json!({"data": data}).to_string().into_bytes()),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..32),
        1 => Just(Vec::new()),
        1 => Just(vec![0xff, 0xfe, b'{']),
        1 => Just(format!("{{\"data\": {{\"x\": \"{}\"}}}}", mib()).into_bytes()),
    ]
    .boxed()
}
