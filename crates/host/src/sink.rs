//! Sinks: every event matching a pattern POSTed to an HTTP endpoint, at
//! least once.
//!
//! A sink runs as an event trigger whose factory is a [`Webhook`]: the
//! delivery. So it gets what event triggers have: a durable consumer on
//! JetStream (each event delivered by one replica), retries with the
//! sink's backoff (jittered), dead letters after `max_attempts` (listed and
//! replayed like a trigger's, under `sink:<id>`), a run per attempt in the
//! history, pause and resume. It publishes nothing.
//!
//! The body is the event as JSON: `{"id", "topic", "time", "data",
//! "headers"}`, or with `format = "cloudevents"` a CloudEvent in structured
//! mode (`application/cloudevents+json`, see [`wasmsched_core::cloudevent`]). With a
//! secret, each delivery is signed as Standard Webhooks
//! says: `webhook-id` (the event id), `webhook-timestamp` (Unix seconds),
//! `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use tracing::Instrument;

use crate::config::{SigningSecret, SinkConfig, SinkFormat, SinkId};
use wasmsched_core::bounded;
use wasmsched_core::cloudevent::{self, to_cloudevent};
use wasmsched_core::event::{Event, NewEvent};
use wasmsched_core::firing::{BoxError, Factory, Firing};
use wasmsched_core::histogram::{Histogram, HistogramSnapshot};
use wasmsched_core::trace;
use wasmsched_core::trigger::EventTrigger;

/// How much of an endpoint's answer goes into an error.
const ANSWER_BYTES: usize = 512;

/// Upper bounds (seconds) of the delivery time histogram's buckets.
pub const DELIVERY_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one sink.
#[derive(Debug)]
pub struct SinkCounters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    /// How long each attempt took, answered or not.
    delivery_time: Histogram,
}

impl Default for SinkCounters {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::default(),
            failed_attempts: AtomicU64::default(),
            last_error: std::sync::Mutex::default(),
            delivery_time: Histogram::new(&DELIVERY_BOUNDS),
        }
    }
}

/// A snapshot of [`SinkCounters`].
#[derive(utoipa::ToSchema, Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Events the endpoint took (2xx).
    pub delivered: u64,
    /// Attempts that failed (each is retried, or the event is a dead letter).
    pub failed_attempts: u64,
    /// The last failure, if any since the start.
    pub last_error: Option<String>,
}

impl SinkCounters {
    /// How long attempts took (seconds).
    pub fn delivery_time(&self) -> HistogramSnapshot {
        self.delivery_time.snapshot()
    }

    /// The counters now.
    pub fn snapshot(&self) -> SinkStats {
        SinkStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// `url` as logs, errors and the admin API show it: the scheme, host and
/// port, and `/…` for a path or query (webhook URLs often carry their
/// token there).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("?");
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = match (parsed.path(), parsed.query()) {
                ("/" | "", None) => "",
                _ => "/…",
            };
            format!("{}://{host}{port}{rest}", parsed.scheme())
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// Delivers the events a sink's trigger is handed.
pub struct Webhook {
    sink: SinkId,
    url: String,
    /// `url`, [`redacted`].
    shown: String,
    secret: Option<SigningSecret>,
    format: SinkFormat,
    client: reqwest::Client,
    counters: Arc<SinkCounters>,
}

impl Webhook {
    /// The delivery of `config`'s events, counted in `counters`.
    pub fn new(config: &SinkConfig, counters: Arc<SinkCounters>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wasmsched/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            sink: config.id.clone(),
            url: config.url.clone(),
            shown: redacted(&config.url),
            secret: config.secret.clone(),
            format: config.format,
            client,
            counters,
        })
    }

    /// One attempt; `span`'s trace context goes along as `traceparent`.
    async fn deliver(&self, event: &Event, span: &tracing::Span) -> Result<(), String> {
        let (body, content_type) = match self.format {
            SinkFormat::Wasmsched => (
                json!({
                    "id": event.id,
                    "topic": event.topic,
                    "time": event.time,
                    "data": event.data,
                    "headers": event.headers,
                }),
                "application/json",
            ),
            SinkFormat::CloudEvents => (to_cloudevent(event), cloudevent::STRUCTURED),
        };
        let body = body.to_string();
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", content_type);
        let mut context = std::collections::BTreeMap::new();
        trace::inject(span, &mut context);
        for (name, value) in context {
            request = request.header(name, value);
        }
        if let Some(secret) = &self.secret {
            let timestamp = chrono::Utc::now().timestamp();
            let id = event.id.to_string();
            request = request
                .header("webhook-id", &id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", sign(secret, &id, timestamp, &body));
        }
        let response = request.body(body).send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.without_url().to_string()
            };
            format!("POST {}: {what}", self.shown)
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = first_bytes(response, ANSWER_BYTES).await;
        let answer = bounded::cut(answer.trim(), ANSWER_BYTES);
        Err(match answer.is_empty() {
            true => format!("POST {}: {status}", self.shown),
            false => format!("POST {}: {status}: {answer}", self.shown),
        })
    }
}

/// The start of `response`'s body, at most `most` bytes read (an endpoint
/// answering an error with a huge page is not buffered whole).
async fn first_bytes(mut response: reqwest::Response, most: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < most {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(most);
    String::from_utf8_lossy(&bytes).into_owned()
}

#[async_trait]
impl Factory for Webhook {
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, BoxError> {
        let event = firing
            .source()
            .ok_or("a sink delivers events; it was fired without one")?;
        let started = std::time::Instant::now();
        let span = trace::deliver_span(&self.shown);
        let delivered = self.deliver(event, &span).instrument(span.clone()).await;
        self.counters.delivery_time.observe(started.elapsed());
        if let Err(error) = &delivered {
            trace::record_error(&span, error);
        }
        match delivered {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(Vec::new())
            }
            Err(error) => {
                self.counters
                    .failed_attempts
                    .fetch_add(1, Ordering::Relaxed);
                *self
                    .counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
                Err(error.into())
            }
        }
    }

    fn describe(&self, _trigger: &str) -> String {
        format!("delivery of sink `{}`", self.sink)
    }
}

/// The Standard Webhooks signature of `body` sent as message `id` at
/// `timestamp` (Unix seconds): `v1,<base64 HMAC-SHA256>`.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.key()).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{signature}")
}

/// The event trigger that runs sink `config`, and its counters.
pub fn create_sink_trigger(
    config: &SinkConfig,
) -> Result<(Arc<EventTrigger>, Arc<SinkCounters>), reqwest::Error> {
    let counters = Arc::new(SinkCounters::default());
    let webhook = Webhook::new(config, counters.clone())?;
    let trigger = EventTrigger::new(config.pattern.clone(), Some(Arc::new(webhook)), None)
        .with_retry_policy(config.retry_policy())
        .with_max_in_flight(config.max_in_flight);
    Ok((Arc::new(trigger), counters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_path_or_query() {
        assert_eq!(
            redacted("https://hooks.example.com/T0/B1/secret"),
            "https://hooks.example.com/…"
        );
        assert_eq!(
            redacted("http://127.0.0.1:9000/hooks?token=x"),
            "http://127.0.0.1:9000/…"
        );
        assert_eq!(redacted("https://example.com"), "https://example.com");
    }

    #[test]
    fn signs_like_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret =
            SigningSecret::try_from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()).unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
