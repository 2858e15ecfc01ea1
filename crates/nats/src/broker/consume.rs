//! Reading a subscription's messages from JetStream, and acknowledging,
//! retrying or dead-lettering them.
//!
//! Each filter subject of a subscription has a [`Feed`] task that pulls
//! from its consumer and forwards deliveries to the subscription's queue.
//! A feed outlives a lost connection, a NATS restart, even a lost stream
//! or consumer: when its message stream fails it opens it again,
//! recreating what is missing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker};
use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::setup;
use wasmsched_core::broker::reaches_trigger;
use wasmsched_core::broker::{Acknowledge, BrokerError, Delivery, DeliverySource};
use wasmsched_core::event::Event;
use wasmsched_core::topic::TopicPattern;

/// How long one pull request waits on the server, and how often the
/// server proves it is alive meanwhile: a dead connection is noticed
/// within a few heartbeats.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
const PULL_HEARTBEAT: Duration = Duration::from_secs(3);
/// An observer's consumer is removed this long after its host stopped
/// reading (crashed, or the live stream was closed).
const OBSERVER_INACTIVE: Duration = Duration::from_secs(30);

/// Where a feed reads from.
pub enum FeedSource {
    /// A trigger's durable consumer: acknowledged deliveries. Should it
    /// have to be made again, it resumes at `seen` (the publish time of
    /// the last event forwarded, or when the feed started).
    Durable {
        trigger: String,
        filter: String,
        seen: Mutex<Option<time::OffsetDateTime>>,
    },
    /// An ephemeral consumer without acknowledgements, for observers; it
    /// resumes after the last event it forwarded when it is recreated.
    Observer { filter: String, next: AtomicU64 },
}

/// One filter subject of a subscription, forwarded to its queue.
pub struct Feed {
    pub shared: Arc<Shared>,
    pub pattern: TopicPattern,
    pub source: FeedSource,
    pub sender: mpsc::Sender<Delivery>,
}

pub type Messages =
    std::pin::Pin<Box<dyn Stream<Item = Result<async_nats::jetstream::Message, String>> + Send>>;

impl Feed {
    /// Forwards `first` (opened by the subscriber, so that a subscription
    /// sees every event published after it was made), then reopens the
    /// message stream whenever it fails, for as long as the subscription
    /// exists. The first failure of a series is logged as a warning.
    pub async fn run(self, first: Messages) {
        let mut opened = Ok(first);
        let mut failures: u32 = 0;
        loop {
            match opened {
                Ok(mut messages) => {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(message) => {
                                failures = 0;
                                if !self.forward(message).await {
                                    return;
                                }
                            }
                            Err(error) => {
                                if failures == 0 {
                                    tracing::warn!(source = %self.describe(), "reading from NATS failed: {error}; reopening");
                                }
                                failures += 1;
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    if failures <= 1 {
                        tracing::warn!(source = %self.describe(), "cannot read from NATS: {error}; retrying");
                    }
                    failures += 1;
                }
            }
            if self.sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200) * failures.clamp(1, 10)).await;
            opened = self.open().await;
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            FeedSource::Durable {
                trigger, filter, ..
            } => format!("trigger `{trigger}` (consumer of `{filter}`)"),
            FeedSource::Observer { filter, .. } => format!("observer of `{filter}`"),
        }
    }

    /// Opens the message stream, recreating the stream or the consumer
    /// if they are gone (a NATS server restarted with an empty store, a
    /// consumer deleted by hand).
    pub async fn open(&self) -> Result<Messages, String> {
        match self.try_open().await {
            Ok(messages) => Ok(messages),
            Err(first) => {
                self.shared
                    .recover_stream()
                    .await
                    .map_err(|e| e.to_string())?;
                self.try_open()
                    .await
                    .map_err(|again| format!("{first}; after checking the stream: {again}"))
            }
        }
    }

    async fn try_open(&self) -> Result<Messages, String> {
        let shared = &self.shared;
        let consumer: PullConsumer = match &self.source {
            FeedSource::Durable {
                trigger,
                filter,
                seen,
            } => {
                let resume_from = *seen.lock().unwrap_or_else(|p| p.into_inner());
                let name = setup::durable_consumer(
                    &shared.stream,
                    &shared.options,
                    trigger,
                    filter,
                    resume_from,
                )
                .await
                .map_err(|e| e.to_string())?;
                let consumer = shared
                    .stream
                    .get_consumer(&name)
                    .await
                    .map_err(|e| e.to_string())?;
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(time::OffsetDateTime::now_utc);
                consumer
            }
            FeedSource::Observer { filter, next } => {
                let last = shared
                    .stream
                    .get_info()
                    .await
                    .map_err(|e| e.to_string())?
                    .state
                    .last_sequence;
                // 0: just subscribed. Beyond the end: the stream was made anew.
                let start = match next.load(Ordering::Relaxed) {
                    n if n == 0 || n > last + 1 => last + 1,
                    n => n,
                };
                next.store(start, Ordering::Relaxed);
                shared
                    .stream
                    .create_consumer(pull::Config {
                        filter_subject: filter.clone(),
                        deliver_policy: DeliverPolicy::ByStartSequence {
                            start_sequence: start,
                        },
                        ack_policy: AckPolicy::None,
                        inactive_threshold: OBSERVER_INACTIVE,
                        memory_storage: true,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        let batch = shared.options.in_flight_per_trigger.max(8);
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(PULL_EXPIRES)
            .heartbeat(PULL_HEARTBEAT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Box::pin(messages.map(|m| m.map_err(|e| e.to_string()))))
    }

    /// Decodes, filters and queues one message; false once the
    /// subscription is gone.
    async fn forward(&self, message: async_nats::jetstream::Message) -> bool {
        let Ok(info) = message.info() else {
            tracing::warn!(subject = %message.subject, "skipping a message without JetStream metadata");
            return true;
        };
        let (sequence, delivered, published) = (
            info.stream_sequence,
            info.delivered.max(1) as u64,
            info.published,
        );
        let (message, acker) = message.split();
        let event = decode(&self.shared, &message.subject, &message.payload, sequence);
        let delivery = match (&self.source, event) {
            (FeedSource::Durable { seen, .. }, Some(event)) if self.wants(&event) => {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(published);
                let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
                Delivery::with_acknowledger(event, attempt, Box::new(Retry { acker }))
            }
            (FeedSource::Observer { next, .. }, event) => {
                next.store(sequence + 1, Ordering::Relaxed);
                match event {
                    Some(event) if self.wants(&event) => Delivery::unacknowledged(event),
                    _ => return true,
                }
            }
            (FeedSource::Durable { .. }, event) => {
                if event.is_none() {
                    tracing::warn!(subject = %message.subject, "skipping a message whose subject is not a topic");
                }
                let _ = acker.ack().await;
                return true;
            }
        };
        self.sender.send(delivery).await.is_ok()
    }

    /// Does the pattern match (a filter subject may select more)? Dead
    /// letters reach only triggers whose pattern names them
    /// ([`reaches_trigger`]); observers see everything.
    fn wants(&self, event: &Event) -> bool {
        match self.source {
            FeedSource::Observer { .. } => self.pattern.matches(&event.topic),
            FeedSource::Durable { .. } => reaches_trigger(&self.pattern, &event.topic),
        }
    }
}

/// A message as an event: one wasmsched published, or a plain payload
/// another NATS client published on a topic's subject (JSON, or else
/// text), whose id is derived from its stream sequence so that every
/// delivery of it has the same id.
fn decode(shared: &Shared, subject: &str, payload: &[u8], sequence: u64) -> Option<Event> {
    if let Ok(event) = serde_json::from_slice::<Event>(payload) {
        return Some(event);
    }
    let topic = shared.subjects.topic_of(subject)?;
    let data = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    let seed = format!("{}:{sequence}", shared.options.stream);
    let digest = Sha256::digest(seed.as_bytes());
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    let mut event = Event::new(topic, data);
    event.id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
    Some(event)
}

/// The acknowledgement of one delivery to a trigger: done, or delivered
/// again after a backoff (the trigger decides when to give up).
struct Retry {
    acker: Acker,
}

#[async_trait]
impl Acknowledge for Retry {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.acker.ack().await.map_err(unavailable)
    }

    async fn nack(self: Box<Self>, delay: Duration) -> Result<(), BrokerError> {
        self.acker
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(unavailable)
    }

    async fn release(self: Box<Self>) {
        let _ = self.acker.ack_with(AckKind::Nak(None)).await;
    }
}

fn unavailable(error: async_nats::Error) -> BrokerError {
    BrokerError::Unavailable(format!("acknowledging to NATS: {error}"))
}

/// The receiving end of a NATS subscription; dropping it stops its feeds
/// and hands the deliveries it had queued back to the server at once.
pub struct NatsSubscription {
    receiver: mpsc::Receiver<Delivery>,
    feeds: Vec<JoinHandle<()>>,
}

impl NatsSubscription {
    pub fn new(receiver: mpsc::Receiver<Delivery>) -> Self {
        Self {
            receiver,
            feeds: Vec::new(),
        }
    }

    pub fn add_feed(&mut self, feed: JoinHandle<()>) {
        self.feeds.push(feed);
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        for feed in &self.feeds {
            feed.abort();
        }
        self.receiver.close();
        let mut queued = Vec::new();
        while let Ok(delivery) = self.receiver.try_recv() {
            queued.push(delivery);
        }
        if let (false, Ok(runtime)) = (queued.is_empty(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                for delivery in queued {
                    delivery.release().await;
                }
            });
        }
    }
}

#[async_trait]
impl DeliverySource for NatsSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        self.receiver.recv().await
    }

    fn dropped(&self) -> u64 {
        0
    }
}
