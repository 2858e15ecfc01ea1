//! The NATS JetStream broker: events kept in one stream that several hosts
//! (replicas) share.
//!
//! - Every event is a JSON message on `<prefix>.<topic>` in one stream
//!   (created if missing, checked if present); publishing returns once
//!   JetStream has stored it.
//! - An event trigger consumes through durable pull consumers named after
//!   its id, shared by every replica, so each event goes to one of them.
//!   A delivery is acknowledged after the trigger published its events; a
//!   failure asks for redelivery after a backoff, and after `max_deliver`
//!   attempts the event goes to `deadletter.<trigger id>` with the error.
//! - Publishes with a key (cron instants, a trigger's output for one source
//!   event) carry it as `Nats-Msg-Id`, so the stream keeps one of several
//!   identical publishes made within its duplicate window.
//! - Observers (live tail, the event log) read through ordered consumers
//!   that start at new events.
//!
//! Written for nats-server 2.9 (Debian's), which ignores configuration
//! fields it does not know: what the server returns is compared with what
//! was asked for.

mod consume;
mod options;
mod setup;
pub mod subjects;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_nats::connection::State;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage};

use async_trait::async_trait;
use tokio::sync::mpsc;
use wasmsched_core::broker::RetryPolicy;

use self::consume::{Feed, FeedSource, NatsSubscription};
use self::subjects::Subjects;
use wasmsched_core::broker::{Broker, BrokerError, BrokerHealth, SubscriberKind, Subscription};
use wasmsched_core::event::Event;
use wasmsched_core::topic::TopicPattern;

pub use self::options::NatsOptions;
pub use self::setup::{check_replicas, replicas_hint, while_cluster_settles};

/// How long stopping waits for buffered messages to reach NATS.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes of a message kept for what an event carries besides its data and
/// headers (id, topic, time, JSON framing and escapes).
const ENVELOPE_RESERVE: u64 = 8 << 10;

/// How many events an observer's subscription holds ready.
const OBSERVER_QUEUE: usize = 64;

/// A broker on a NATS JetStream stream.
#[derive(Clone)]
pub struct NatsBroker {
    shared: Arc<Shared>,
}

struct Shared {
    options: NatsOptions,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    subjects: Subjects,
    duplicates: AtomicU64,
}

impl NatsBroker {
    /// Connects to `options.url`, then creates the stream or checks the
    /// one there. Fails with a message naming the server and the stream.
    pub async fn connect(options: NatsOptions) -> Result<Self, BrokerError> {
        options.validate().map_err(BrokerError::Setup)?;
        let subjects = Subjects::new(&options.subject_prefix).map_err(BrokerError::Setup)?;
        let client = setup::connect(&options.url).await?;
        let jetstream = jetstream::new(client.clone());
        let stream = setup::ensure_stream(&jetstream, &options, &subjects).await?;
        tracing::info!(url = %options.url, stream = %options.stream, subjects = %subjects.stream_subject(), "using NATS JetStream");
        Ok(Self {
            shared: Arc::new(Shared {
                options,
                client,
                jetstream,
                stream,
                subjects,
                duplicates: AtomicU64::new(0),
            }),
        })
    }

    /// The settings it connected with.
    pub fn options(&self) -> &NatsOptions {
        &self.shared.options
    }

    /// Its JetStream context (the state store shares the connection).
    pub fn jetstream(&self) -> jetstream::Context {
        self.shared.jetstream.clone()
    }
}

impl Shared {
    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Creates the stream again if it is gone, or checks it.
    async fn recover_stream(&self) -> Result<(), BrokerError> {
        setup::ensure_stream(&self.jetstream, &self.options, &self.subjects)
            .await
            .map(drop)
    }

    /// Publishes `event`, with `key` as its `Nats-Msg-Id` if given, and
    /// waits for JetStream to store it.
    async fn send(&self, event: &Event, key: Option<String>) -> Result<(), BrokerError> {
        let unavailable = |error: String| {
            BrokerError::Unavailable(format!(
                "publishing `{}` to NATS stream `{}` at {}: {error}",
                event.topic, self.options.stream, self.options.url
            ))
        };
        // While disconnected the client would buffer the publish and send
        // it after reconnecting, possibly after we gave up on its ack:
        // refuse at once instead, so an error means "not published".
        if !self.is_connected() {
            return Err(unavailable("not connected".to_owned()));
        }
        let payload = serde_json::to_vec(event).map_err(|e| unavailable(e.to_string()))?;
        let mut message = PublishMessage::build().payload(payload.into());
        if let Some(key) = key {
            message = message.message_id(key);
        }
        let subject = self.subjects.for_topic(&event.topic);
        let publish = || async {
            let pending = self
                .jetstream
                .send_publish(subject.clone(), message.clone())
                .await?;
            pending.await
        };
        let ack = match publish().await {
            // The server lost the stream (restarted with an empty store).
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                self.recover_stream().await?;
                publish().await
            }
            other => other,
        }
        .map_err(|e| unavailable(e.to_string()))?;
        if ack.duplicate {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(topic = %event.topic, "duplicate publish dropped by the stream");
        }
        Ok(())
    }
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, event: Event) -> Result<(), BrokerError> {
        self.shared.send(&event, None).await
    }

    async fn publish_once(&self, event: Event, key: String) -> Result<(), BrokerError> {
        self.shared.send(&event, Some(key)).await
    }

    async fn subscribe(
        &self,
        pattern: &TopicPattern,
        kind: SubscriberKind,
    ) -> Result<Subscription, BrokerError> {
        if !self.shared.is_connected() {
            return Err(BrokerError::Unavailable(format!(
                "subscribing to `{pattern}`: not connected to NATS at {}",
                self.shared.options.url
            )));
        }
        // A trigger's queue holds one delivery beyond those it handles: a
        // delivery waiting here counts against `ack_wait` already.
        let queue = match kind {
            SubscriberKind::Trigger { .. } => 1,
            SubscriberKind::Observer => OBSERVER_QUEUE,
        };
        let (sender, receiver) = mpsc::channel(queue);
        // Made first, so that an error below stops the feeds started so far.
        let mut subscription = NatsSubscription::new(receiver);
        for filter in self.shared.subjects.filters(pattern).subjects {
            let source = match &kind {
                SubscriberKind::Trigger { name } => FeedSource::Durable {
                    trigger: name.clone(),
                    filter,
                    seen: Mutex::new(None),
                },
                SubscriberKind::Observer => FeedSource::Observer {
                    filter,
                    next: AtomicU64::new(0),
                },
            };
            let feed = Feed {
                shared: self.shared.clone(),
                pattern: pattern.clone(),
                source,
                sender: sender.clone(),
            };
            let first = feed.open().await.map_err(|error| {
                let message = format!(
                    "subscribing to `{pattern}` on NATS stream `{}` at {}: {error}",
                    self.shared.options.stream, self.shared.options.url
                );
                match self.shared.is_connected() {
                    true => BrokerError::Setup(message),
                    false => BrokerError::Unavailable(message),
                }
            })?;
            subscription.add_feed(tokio::spawn(feed.run(first)));
        }
        Ok(Subscription::new(subscription))
    }

    async fn flush(&self) {
        // Bounded: with NATS unreachable, stopping must not wait for it.
        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, self.shared.client.flush()).await;
        if let Err(error) = flushed
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::warn!(url = %self.shared.options.url, "flushing to NATS before stopping: {error}");
        }
    }

    /// The server's `max_payload` less [`ENVELOPE_RESERVE`] for the rest of
    /// the message (id, topic, time, JSON framing).
    fn max_event_bytes(&self) -> Option<u64> {
        let max_payload = self.shared.client.server_info().max_payload as u64;
        Some(max_payload.saturating_sub(ENVELOPE_RESERVE))
    }

    fn max_in_flight(&self) -> usize {
        self.shared.options.in_flight_per_trigger
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.shared.options.retry_policy()
    }

    fn health(&self) -> BrokerHealth {
        BrokerHealth {
            kind: "nats",
            connected: self.shared.is_connected(),
            url: Some(self.shared.options.url.clone()),
            stream: Some(self.shared.options.stream.clone()),
            duplicates: self.shared.duplicates.load(Ordering::Relaxed),
        }
    }
}
