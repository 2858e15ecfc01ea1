//! The broker port: publish events, subscribe to topic patterns.
//!
//! [`memory::MemoryBroker`] is the embedded default. A networked adapter
//! (NATS JetStream) implements the same trait: publishing is async and can
//! fail, and a delivery to a trigger subscription is acknowledged once the
//! trigger has dealt with it.

pub mod memory;

use async_trait::async_trait;

use crate::event::Event;
use crate::topic::TopicPattern;

pub use memory::MemoryBroker;

/// Why the broker refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker is closed")]
    Closed,
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Who is subscribing, which decides what happens when they fall behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberKind {
    /// An event trigger: deliveries are never dropped; a full queue makes
    /// publishers wait (backpressure). `name` identifies the durable consumer.
    Trigger { name: String },
    /// An observer such as a live tail: when it lags, events are dropped
    /// and counted rather than slowing anyone down.
    Observer,
}

/// The broker port.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `event` to every subscription whose pattern matches its topic.
    async fn publish(&self, event: Event) -> Result<(), BrokerError>;

    /// Subscribes to events whose topic matches `pattern`. Dropping the
    /// subscription unsubscribes.
    async fn subscribe(
        &self,
        pattern: &TopicPattern,
        kind: SubscriberKind,
    ) -> Result<Subscription, BrokerError>;
}

/// A stream of deliveries for one subscription.
pub struct Subscription {
    source: Box<dyn DeliverySource>,
}

impl Subscription {
    pub fn new(source: impl DeliverySource + 'static) -> Self {
        Self {
            source: Box::new(source),
        }
    }

    /// The next delivery, or `None` once the broker is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.source.next().await
    }

    /// How many events this subscription dropped because it lagged
    /// (always 0 for trigger subscriptions).
    pub fn dropped(&self) -> u64 {
        self.source.dropped()
    }
}

/// What a broker adapter implements to feed a [`Subscription`].
#[async_trait]
pub trait DeliverySource: Send {
    async fn next(&mut self) -> Option<Delivery>;
    fn dropped(&self) -> u64;
}

/// One event delivered to a subscription, to be acknowledged when handled.
pub struct Delivery {
    pub event: Event,
    acknowledger: Option<Box<dyn Acknowledge>>,
}

impl Delivery {
    /// A delivery that needs no acknowledgement (in-memory, observers).
    pub fn unacknowledged(event: Event) -> Self {
        Self {
            event,
            acknowledger: None,
        }
    }

    pub fn with_acknowledger(event: Event, acknowledger: Box<dyn Acknowledge>) -> Self {
        Self {
            event,
            acknowledger: Some(acknowledger),
        }
    }

    /// The event was handled: do not deliver it again.
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.acknowledger {
            Some(a) => a.ack().await,
            None => Ok(()),
        }
    }

    /// Handling failed: the broker may deliver it again later.
    pub async fn nack(self, reason: &str) -> Result<(), BrokerError> {
        match self.acknowledger {
            Some(a) => a.nack(reason).await,
            None => Ok(()),
        }
    }
}

/// Broker-specific acknowledgement of one delivery.
#[async_trait]
pub trait Acknowledge: Send {
    async fn ack(self: Box<Self>) -> Result<(), BrokerError>;
    async fn nack(self: Box<Self>, reason: &str) -> Result<(), BrokerError>;
}
