//! Reading a subscription's messages from JetStream, and acknowledging,
//! retrying or dead-lettering them.
//!
//! Each filter subject of a subscription has a [`Feed`] task that pulls
//! from its consumer and forwards deliveries to the subscription's queue.
//! A feed outlives a lost connection: when its message stream fails or
//! ends it opens it again, so a host carries on after NATS restarts.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker};
use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::subjects::dead_letter_topic;
use crate::broker::{Acknowledge, BrokerError, Delivery, DeliverySource};
use crate::event::Event;
use crate::topic::TopicPattern;

/// Messages a feed asks for at a time. A replica holds at most this many
/// of a trigger's events it has not handled yet (another replica gets
/// them after `ack_wait` if it dies).
const PULL_BATCH: usize = 32;
/// How long one pull request waits on the server, and how often the
/// server proves it is alive meanwhile: a dead connection is noticed
/// within a few heartbeats.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
const PULL_HEARTBEAT: Duration = Duration::from_secs(3);

/// Where a feed reads from.
pub enum FeedSource {
    /// A trigger's durable consumer: acknowledged deliveries.
    Durable { trigger: String, consumer: String },
    /// An ordered consumer starting at new events: no acknowledgements.
    Ordered { filter: String },
}

/// One filter subject of a subscription, forwarded to its queue.
pub struct Feed {
    pub shared: Arc<Shared>,
    /// Set when the filter selects more than the pattern (`a.**.z`).
    pub pattern: Option<TopicPattern>,
    pub source: FeedSource,
    pub sender: mpsc::Sender<Delivery>,
}

pub type Messages =
    std::pin::Pin<Box<dyn Stream<Item = Result<async_nats::jetstream::Message, String>> + Send>>;

impl Feed {
    /// Forwards `first` (opened by the subscriber, so that a subscription
    /// sees every event published after it was made), then reopens the
    /// message stream whenever it fails, for as long as the subscription
    /// exists.
    pub async fn run(self, first: Messages) {
        let mut opened = Ok(first);
        let mut attempt: u32 = 0;
        loop {
            match opened {
                Ok(mut messages) => {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(message) => {
                                attempt = 0;
                                if !self.forward(message).await {
                                    return;
                                }
                            }
                            Err(error) => {
                                tracing::debug!(source = %self.describe(), "pulling: {error}")
                            }
                        }
                    }
                }
                Err(error) => {
                    if attempt == 0 {
                        tracing::warn!(source = %self.describe(), "cannot read from NATS: {error}; retrying");
                    }
                }
            }
            if self.sender.is_closed() {
                return;
            }
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(Duration::from_millis(200) * attempt.min(10)).await;
            opened = self.open().await;
        }
    }

    fn describe(&self) -> String {
        match &self.source {
            FeedSource::Durable { trigger, consumer } => {
                format!("trigger `{trigger}` (consumer `{consumer}`)")
            }
            FeedSource::Ordered { filter } => format!("observer of `{filter}`"),
        }
    }

    pub async fn open(&self) -> Result<Messages, String> {
        let stream = &self.shared.stream;
        match &self.source {
            FeedSource::Durable { consumer, .. } => {
                let consumer: PullConsumer = stream
                    .get_consumer(consumer)
                    .await
                    .map_err(|e| e.to_string())?;
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(PULL_BATCH)
                    .expires(PULL_EXPIRES)
                    .heartbeat(PULL_HEARTBEAT)
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Box::pin(messages.map(|m| m.map_err(|e| e.to_string()))))
            }
            FeedSource::Ordered { filter } => {
                let consumer = stream
                    .create_consumer(pull::OrderedConfig {
                        filter_subject: filter.clone(),
                        deliver_policy: DeliverPolicy::New,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let messages = consumer.messages().await.map_err(|e| e.to_string())?;
                Ok(Box::pin(messages.map(|m| m.map_err(|e| e.to_string()))))
            }
        }
    }

    /// Decodes, filters and queues one message; false once the
    /// subscription is gone.
    async fn forward(&self, message: async_nats::jetstream::Message) -> bool {
        let delivered = message
            .info()
            .map_or(1, |info| info.delivered.max(1) as u64);
        let (message, acker) = message.split();
        let event = decode(&self.shared, &message.subject, &message.payload);
        let wanted = event
            .as_ref()
            .is_some_and(|e| self.pattern.as_ref().is_none_or(|p| p.matches(&e.topic)));
        let delivery = match (&self.source, event) {
            (FeedSource::Durable { trigger, .. }, Some(event)) if wanted => {
                let retry = Retry {
                    shared: self.shared.clone(),
                    acker,
                    delivered,
                    trigger: trigger.clone(),
                    event: event.clone(),
                };
                Delivery::with_acknowledger(event, Box::new(retry))
            }
            (FeedSource::Ordered { .. }, Some(event)) if wanted => Delivery::unacknowledged(event),
            (source, event) => {
                if event.is_none() {
                    tracing::warn!(subject = %message.subject, "skipping a message whose subject is not a topic");
                }
                if let FeedSource::Durable { .. } = source {
                    let _ = acker.ack().await;
                }
                return true;
            }
        };
        self.sender.send(delivery).await.is_ok()
    }
}

/// A message as an event: one wasmsched published, or a plain payload
/// another NATS client published on a topic's subject (JSON, or else
/// text), which gets a new id and the current time.
fn decode(shared: &Shared, subject: &str, payload: &[u8]) -> Option<Event> {
    if let Ok(event) = serde_json::from_slice::<Event>(payload) {
        return Some(event);
    }
    let topic = shared.subjects.topic_of(subject)?;
    let data = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    Some(Event::new(topic, data))
}

/// The acknowledgement of one delivery to a trigger: done, or retried
/// after a backoff, or dead-lettered after `max_deliver` attempts.
struct Retry {
    shared: Arc<Shared>,
    acker: Acker,
    delivered: u64,
    trigger: String,
    event: Event,
}

#[async_trait]
impl Acknowledge for Retry {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError> {
        self.acker.ack().await.map_err(unavailable)
    }

    async fn nack(self: Box<Self>, reason: &str) -> Result<(), BrokerError> {
        let options = &self.shared.options;
        if self.delivered < u64::from(options.max_deliver) {
            let delay = options.retry_delay(self.delivered);
            return self
                .acker
                .ack_with(AckKind::Nak(Some(delay)))
                .await
                .map_err(unavailable);
        }
        let topic = dead_letter_topic(&self.trigger);
        let letter = Event::new(
            topic.clone(),
            json!({
                "trigger": self.trigger,
                "error": reason,
                "deliveries": self.delivered,
                "event": self.event,
            }),
        );
        let key = format!("deadletter:{}:{}", self.trigger, self.event.id);
        match self.shared.send(&letter, Some(key)).await {
            Ok(()) => {
                tracing::warn!(trigger = %self.trigger, event = %self.event.id, deliveries = self.delivered, "gave up on an event ({reason}); published it to `{topic}`");
                self.acker
                    .ack_with(AckKind::Term)
                    .await
                    .map_err(unavailable)
            }
            Err(error) => {
                tracing::warn!(trigger = %self.trigger, event = %self.event.id, "cannot dead-letter an event ({error}); it will be retried");
                let delay = options.retry_delay(self.delivered);
                self.acker
                    .ack_with(AckKind::Nak(Some(delay)))
                    .await
                    .map_err(unavailable)
            }
        }
    }
}

fn unavailable(error: async_nats::Error) -> BrokerError {
    BrokerError::Unavailable(format!("acknowledging to NATS: {error}"))
}

/// The receiving end of a NATS subscription; dropping it stops its feeds.
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
