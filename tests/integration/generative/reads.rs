//! GET endpoints (API and dashboard) with random ids and query strings,
//! and the dashboard's forms: never a dropped connection or a 5xx; an
//! API 400 names the query parameter at fault.

use proptest::prelude::*;

use super::edges::{cron_text, names, odd_text, short, topic_text, zone_text};
use super::harness::check;
use super::host::{Fixture, segment};

#[derive(Debug, Clone)]
pub enum Read {
    /// GET `path?pairs`.
    Get {
        path: String,
        pairs: Vec<(String, String)>,
        raw: Option<String>,
    },
    /// A dashboard form, POSTed url-encoded.
    Form {
        path: String,
        pairs: Vec<(String, String)>,
    },
    /// An admin action on an id (real or not), with a JSON body or none.
    Admin {
        method: &'static str,
        path: String,
        body: Option<serde_json::Value>,
    },
}

fn value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0", "-1", "1", "1000", "1001", "18446744073709551615", "18446744073709551616",
            "1e3", "", "abc", "**", "cloudevents", "wasmsched", "CloudEvents", "nightly", "hook",
            "sink:x", "/", "//evil.example", "/\\evil", "1.5",
        ])
        .prop_map(str::to_owned),
        1 => odd_text(),
        1 => topic_text(),
        1 => cron_text(),
        1 => zone_text(),
    ]
    .boxed()
}

fn pairs() -> BoxedStrategy<Vec<(String, String)>> {
    let name = prop_oneof![
        5 => prop::sample::select(vec![
            "limit", "topic", "pattern", "format", "trigger", "page", "expr", "tz", "next",
            "published", "error", "data",
        ])
        .prop_map(str::to_owned),
        1 => odd_text(),
    ];
    prop::collection::vec((name, value()), 0..4).boxed()
}

fn read() -> BoxedStrategy<Read> {
    let id = prop_oneof![
        2 => prop::sample::select(vec!["nightly", "hook", "nope"]).prop_map(str::to_owned),
        1 => odd_text(),
    ];
    let path = (
        prop::sample::select(vec![
            "/api/admin/triggers",
            "/api/admin/triggers/{}",
            "/api/admin/triggers/{}/runs",
            "/api/admin/triggers/{}/backfill",
            "/api/admin/match",
            "/api/admin/deadletters",
            "/api/admin/timers",
            "/api/admin/plugins",
            "/api/admin/sinks",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/",
            "/triggers/{}",
            "/plugins",
            "/events",
            "/events/{}",
            "/queues",
            "/cron",
            "/docs",
            "/login",
            "/api/events/stream",
            "/api/triggers/{}/status",
            "/{}/status",
            "/{}",
        ]),
        id.clone(),
    )
        .prop_map(|(path, id)| path.replace("{}", &segment(&id)));
    let raw = prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec!["%FF", "%", "limit=%FF", "a&&b", "==", "limit=1&limit=2",
            "pattern=%2A%2A", "%00=%00", "expr=*+*+*+*+*"]).prop_map(|q| Some(q.to_owned())),
    ];
    let form = (
        prop::sample::select(vec![
            "/events/publish",
            "/triggers/{}/pause",
            "/triggers/{}/resume",
            "/triggers/{}/run",
            "/queues/timers/{}/cancel",
            "/queues/deadletters/{}/replay",
            "/queues/deadletters/{}/discard",
            "/queues/sinks/{}/pause",
            "/queues/sinks/{}/x",
            "/login",
            "/logout",
        ]),
        id,
    )
        .prop_map(|(path, id)| path.replace("{}", &segment(&id)));
    let admin = (
        prop::sample::select(vec![
            ("POST", "/api/admin/triggers/{}/pause"),
            ("POST", "/api/admin/triggers/{}/resume"),
            ("POST", "/api/admin/triggers/{}/run"),
            ("POST", "/api/admin/triggers/{}/backfill"),
            ("DELETE", "/api/admin/triggers/{}/backfill"),
            ("DELETE", "/api/admin/timers/{}"),
            ("POST", "/api/admin/deadletters/{}/replay"),
            ("DELETE", "/api/admin/deadletters/{}"),
            ("POST", "/api/admin/sinks/{}/pause"),
            ("POST", "/api/admin/sinks/{}/resume"),
            ("PUT", "/api/admin/triggers/{}"),
        ]),
        prop_oneof![
            3 => prop::sample::select(vec!["nightly", "hook", "nope", "0190a000-0000-7000-8000-000000000000"])
                .prop_map(str::to_owned),
            1 => odd_text(),
        ],
        prop::option::of(super::edges::json_value()),
    )
        .prop_map(|((method, path), id, body)| Read::Admin {
            method,
            path: path.replace("{}", &segment(&id)),
            body,
        });
    prop_oneof![
        2 => admin,
        4 => (path, pairs(), raw).prop_map(|(path, pairs, raw)| Read::Get { path, pairs, raw }),
        1 => (form, pairs()).prop_map(|(path, pairs)| Read::Form { path, pairs }),
    ]
    .boxed()
}

pub async fn read_case(fx: &Fixture, read: Read) -> Result<(), TestCaseError> {
    match read {
        Read::Get { path, pairs, raw } => {
            let mut url = reqwest::Url::parse(&fx.url(&path)).unwrap();
            if !pairs.is_empty() {
                url.query_pairs_mut().extend_pairs(&pairs);
            }
            if let Some(raw) = raw {
                url.set_query(Some(&raw));
            }
            let what = format!("GET {}", short(url.as_str(), 200));
            if path == "/api/events/stream" {
                // A stream: its status only (the body never ends).
                let mark = fx.mark();
                let response = fx.client.get(url.clone()).send().await;
                if response.as_ref().is_err_and(reqwest::Error::is_builder) {
                    return Err(TestCaseError::reject("the client cannot send it"));
                }
                fx.no_host_panic(mark, &what)?;
                let status = response.map(|r| r.status().as_u16());
                prop_assert!(
                    status.as_ref().is_ok_and(|s| *s < 500),
                    "{}: {:?}",
                    what,
                    status
                );
                return Ok(());
            }
            let answer = fx.send(&what, fx.client.get(url.clone())).await?;
            let api = path.starts_with("/api/");
            if api && answer.status >= 400 {
                prop_assert!(
                    answer.json["error"].is_string(),
                    "{}: {} {}",
                    what,
                    answer.status,
                    short(&answer.text, 300)
                );
            }
            if api && answer.status == 400 {
                let message = answer.error();
                let named = url
                    .query_pairs()
                    .any(|(name, _)| !name.is_empty() && names(message, &name))
                    || message.contains("query string");
                prop_assert!(
                    named,
                    "{}: 400 names no parameter: {}",
                    what,
                    short(message, 300)
                );
            }
        }
        Read::Admin { method, path, body } => {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = fx.client.request(method.clone(), fx.url(&path));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let answer = fx.send_api(&format!("{method} {path}"), request).await?;
            // Fired or paused "nightly"/"hook": put them back as they were.
            if path.ends_with("/pause") && answer.status == 200 {
                let resume = path.replace("/pause", "/resume");
                fx.send_api("resume", fx.client.post(fx.url(&resume)))
                    .await?;
            }
        }
        Read::Form { path, pairs } => {
            let body: String = url_encode(&pairs);
            let request = fx
                .client
                .post(fx.url(&path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            fx.send(&format!("POST {path}"), request).await?;
        }
    }
    Ok(())
}

fn url_encode(pairs: &[(String, String)]) -> String {
    let mut url = reqwest::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

#[test]
fn reads_and_forms() {
    let fx = Fixture::start("reads");
    check("GET and forms", 1200, read(), |read| {
        fx.case(read, |read| read_case(&fx, read))
    });
}
