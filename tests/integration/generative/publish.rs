//! Publishing (`POST /api/events`) on a served host, as raw HTTP: own
//! shape (`{"topic", "data", "headers"}`, each missing or of any type) and
//! CloudEvents in structured and binary mode (odd-case `ce-*` names,
//! non-UTF-8 values). Never a dropped connection or a 5xx; a 422 names the
//! field; a 202 published the topic, data and headers the CloudEvents
//! mapping says.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::edges::{json_value, names, odd_text, short, topic_text};
use super::harness::check;
use super::host::{Fixture, seen};
use super::raw::{Raw, content_type, fire_body, header_value, send};

/// How an event is sent to `POST /api/events`.
#[derive(Debug, Clone)]
enum Publish {
    /// `{"topic", "data", "headers"}` (each may be missing or of any type).
    Own {
        fields: Vec<(&'static str, Value)>,
        content_type: Option<Vec<u8>>,
    },
    /// The CloudEvent as the body.
    Structured {
        attributes: Vec<(String, Value)>,
        content_type: &'static str,
    },
    /// `ce-*` headers, the data as the body.
    Binary {
        headers: Vec<(String, Vec<u8>)>,
        content_type: Option<Vec<u8>>,
        body: Vec<u8>,
    },
}

fn attribute_name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "specversion", "id", "source", "type", "subject", "time", "datacontenttype",
            "dataschema", "data_base64", "traceparent", "myext", "comexampleext", "",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z0-9]{1,8}",
        1 => odd_text(),
    ]
    .boxed()
}

fn publish() -> BoxedStrategy<Publish> {
    let topic = prop_oneof![4 => Just(json!("gen.pub")), 2 => topic_text().prop_map(Value::String), 1 => json_value()];
    let headers = prop_oneof![
        2 => prop::collection::btree_map(odd_text(), odd_text(), 0..3).prop_map(|m| json!(m)),
        1 => json_value(),
    ];
    let own = (
        prop::option::weighted(0.9, topic.clone()),
        prop::option::weighted(0.9, json_value()),
        prop::option::weighted(0.5, headers),
        content_type(),
    )
        .prop_map(|(topic, data, headers, content_type)| {
            let fields = [("topic", topic), ("data", data), ("headers", headers)]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect();
            Publish::Own {
                fields,
                content_type,
            }
        });
    let required = (
        prop_oneof![4 => Just(json!("1.0")), 1 => json_value()],
        prop_oneof![4 => Just(json!("A-1")), 1 => json_value()],
        prop_oneof![4 => Just(json!("/ci")), 1 => json_value()],
        topic,
    );
    let extra = prop::collection::vec((attribute_name(), json_value()), 0..3);
    let structured = (
        required.clone(),
        extra.clone(),
        prop::option::weighted(0.8, json_value()),
        prop::sample::select(vec![
            "application/cloudevents+json",
            "application/cloudevents+json; charset=utf-8",
            "application/cloudevents+jsonx",
            "Application/CloudEvents+JSON",
        ]),
    )
        .prop_map(|((spec, id, source, kind), extra, data, content_type)| {
            let mut attributes = vec![
                ("specversion".to_owned(), spec),
                ("id".to_owned(), id),
                ("source".to_owned(), source),
                ("type".to_owned(), kind),
            ];
            attributes.extend(extra);
            if let Some(data) = data {
                attributes.push(("data".to_owned(), data));
            }
            Publish::Structured {
                attributes,
                content_type,
            }
        });
    let ce_name = prop::sample::select(vec!["ce-", "CE-", "Ce-", "cE-"]);
    let binary_header = (
        ce_name,
        attribute_name(),
        prop_oneof![
            3 => "[ -~]{0,12}".prop_map(String::into_bytes),
            1 => prop::sample::select(vec!["%41%42", "caf%C3%A9", "%", "%2", "%zz", "%FF", "a%20b"])
                .prop_map(|v| v.as_bytes().to_vec()),
            1 => header_value(),
        ],
    )
        .prop_map(|(prefix, name, value)| (format!("{prefix}{name}"), value));
    let binary = (
        prop::collection::vec(binary_header, 0..3),
        prop::sample::select(vec!["ce-specversion", "CE-SpecVersion"]),
        prop::sample::select(vec!["ce-type", "Ce-Type"]),
        prop_oneof![4 => Just("gen.bin".to_owned()), 1 => topic_text()],
        content_type(),
        prop_oneof![4 => json_value().prop_map(|v| v.to_string().into_bytes()), 1 => fire_body()],
    )
        .prop_map(|(mut headers, spec, kind, topic, content_type, body)| {
            headers.splice(
                0..0,
                [
                    (spec.to_owned(), b"1.0".to_vec()),
                    ("ce-id".to_owned(), b"B-1".to_vec()),
                    ("ce-source".to_owned(), b"/ci".to_vec()),
                    (kind.to_owned(), topic.into_bytes()),
                ],
            );
            Publish::Binary {
                headers,
                content_type,
                body,
            }
        });
    prop_oneof![own, structured, binary].boxed()
}

/// The CloudEvent attributes as strings (what the host keeps), later ones
/// winning, and its data.
fn attributes_of(pairs: &[(String, Value)]) -> (BTreeMap<String, String>, Value) {
    let mut attributes = BTreeMap::new();
    let mut data = json!({});
    for (name, value) in pairs {
        match (name.as_str(), value) {
            ("data", value) => data = value.clone(),
            (_, Value::Null) => {
                attributes.remove(name);
            }
            (_, Value::String(text)) => {
                attributes.insert(name.clone(), text.clone());
            }
            (_, other) => {
                attributes.insert(name.clone(), other.to_string());
            }
        }
    }
    (attributes, data)
}

/// A binary-mode header value with its `%XX` escapes decoded (the HTTP
/// binding, 3.1.3.2).
fn percent_decoded(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let hex = value
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (value[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// What a CloudEvent should publish: topic, data, headers.
fn cloud_expected(
    attributes: BTreeMap<String, String>,
    data: Value,
) -> (String, Value, BTreeMap<String, String>) {
    let context = [
        "specversion",
        "type",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
    ];
    let headers = attributes
        .iter()
        .filter(|(name, _)| !context.contains(&name.as_str()))
        .map(|(name, value)| match name.as_str() {
            "id" | "source" | "subject" => (format!("ce-{name}"), value.clone()),
            _ => (name.clone(), value.clone()),
        })
        .collect();
    (
        attributes.get("type").cloned().unwrap_or_default(),
        data,
        headers,
    )
}

async fn publish_case(fx: &Fixture, publish: Publish) -> Result<(), TestCaseError> {
    // The fields of either shape (a content type may switch shapes), and
    // the attributes sent.
    let mut fields: Vec<String> = [
        "topic",
        "data",
        "headers",
        "specversion",
        "id",
        "source",
        "type",
        "data_base64",
        "attribute",
    ]
    .map(str::to_owned)
    .to_vec();
    match &publish {
        Publish::Structured { attributes, .. } => {
            fields.extend(attributes.iter().map(|(name, _)| name.clone()));
        }
        Publish::Binary { headers, .. } => fields.extend(headers.iter().map(|(name, _)| {
            let name = name.to_lowercase();
            name.strip_prefix("ce-").map_or(name.clone(), str::to_owned)
        })),
        Publish::Own { .. } => {}
    }
    fields.retain(|f| !f.is_empty());
    let (raw, expected) = match &publish {
        Publish::Own {
            fields,
            content_type,
        } => {
            let body: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let headers: Vec<_> = content_type
                .iter()
                .map(|t| ("Content-Type".to_owned(), t.clone()))
                .collect();
            let field = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
            let expected = (
                field("topic")
                    .and_then(|t| t.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                field("data").unwrap_or(Value::Null),
                field("headers")
                    .and_then(|h| serde_json::from_value(h).ok())
                    .unwrap_or_default(),
            );
            let raw = Raw {
                method: "POST",
                target: "/api/events".into(),
                headers,
                body: Value::Object(body).to_string().into_bytes(),
            };
            (raw, expected)
        }
        Publish::Structured {
            attributes,
            content_type,
        } => {
            let body: serde_json::Map<String, Value> = attributes.iter().cloned().collect();
            let (kept, data) = attributes_of(&body.clone().into_iter().collect::<Vec<_>>());
            let raw = Raw {
                method: "POST",
                target: "/api/events".into(),
                headers: vec![("Content-Type".into(), content_type.as_bytes().to_vec())],
                body: Value::Object(body).to_string().into_bytes(),
            };
            (raw, cloud_expected(kept, data))
        }
        Publish::Binary {
            headers,
            content_type,
            body,
        } => {
            let mut sent = headers.clone();
            sent.extend(
                content_type
                    .iter()
                    .map(|t| ("Content-Type".to_owned(), t.clone())),
            );
            let mut attributes = BTreeMap::new();
            for (name, value) in headers {
                if let Some(attribute) = name.to_lowercase().strip_prefix("ce-")
                    && let Ok(value) = String::from_utf8(percent_decoded(value.trim_ascii()))
                {
                    attributes.insert(attribute.to_owned(), value);
                }
            }
            let data = match body.is_empty() {
                true => json!({}),
                false => serde_json::from_slice(body).unwrap_or(Value::Null),
            };
            let raw = Raw {
                method: "POST",
                target: "/api/events".into(),
                headers: sent,
                body: body.clone(),
            };
            (raw, cloud_expected(attributes, data))
        }
    };
    let mut events = fx.observe().await;
    let (status, answer) = send(fx, "POST /api/events", &raw).await?;
    let message = answer["error"].as_str().unwrap_or_default();
    if status == 422 {
        prop_assert!(
            fields.iter().any(|f| names(message, f)),
            "422 names none of {:?}: {}",
            fields,
            short(message, 300)
        );
    }
    if status == 202 {
        let id = answer["id"].as_str().unwrap_or_default().to_owned();
        let event = seen(&mut events, |e| e.id.to_string() == id).await;
        prop_assert!(event.is_some(), "answered 202 {}, never published", answer);
        let event = event.unwrap();
        let (topic, data, headers) = expected;
        prop_assert_eq!(event.topic.as_str(), topic.as_str());
        prop_assert_eq!(&event.data, &data);
        for (name, value) in &headers {
            prop_assert_eq!(
                event.headers.get(name),
                Some(value),
                "header {:?} of {:?}",
                name,
                event.headers
            );
        }
    }
    Ok(())
}

#[test]
fn publishing_events() {
    let fx = Fixture::start("publish");
    check("POST /api/events", 1200, publish(), |publish| {
        fx.case(publish, |publish| publish_case(&fx, publish))
    });
}
