//! The broker port: publish events, subscribe to topic patterns.
//!
//! [`memory::MemoryBroker`] is the embedded default; `wasmsched_nats::NatsBroker`
//! keeps events in a NATS JetStream stream shared by several hosts.
//! Publishing is async and can fail, and a delivery to a trigger
//! subscription is acknowledged once the trigger has dealt with it.

pub mod memory;
pub mod retry;

use async_trait::async_trait;
use serde::Serialize;

use crate::event::Event;
use crate::topic::TopicPattern;

pub use memory::MemoryBroker;
pub use retry::{DEAD_LETTER_PREFIX, RetryPolicy, dead_letter_topic, reaches_trigger};

/// Why the broker refused an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker was shut down.
    #[error("broker is closed")]
    Closed,
    /// The broker cannot be reached now (the reason); it may come back.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker could not be set up as configured.
    #[error("{0}")]
    Setup(String),
}

/// Who is subscribing, which decides what happens when they fall behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberKind {
    /// An event trigger: deliveries are never dropped; a full queue makes
    /// publishers wait (backpressure). `name` identifies the durable consumer.
    Trigger {
        /// The trigger's id.
        name: String,
    },
    /// An observer such as a live tail: when it lags, events are dropped
    /// and counted rather than slowing anyone down.
    Observer,
}

/// The broker port.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Publishes `event` to every subscription whose pattern matches its topic.
    async fn publish(&self, event: Event) -> Result<(), BrokerError>;

    /// Publishes `event` unless an event with the same `key` was published
    /// recently: hosts that fire the same cron instant, or handle the same
    /// event again, publish once. A broker that cannot be shared by several
    /// hosts just publishes.
    async fn publish_once(&self, event: Event, key: String) -> Result<(), BrokerError> {
        let _ = key;
        self.publish(event).await
    }

    /// Subscribes to events whose topic matches `pattern`. Dropping the
    /// subscription unsubscribes.
    async fn subscribe(
        &self,
        pattern: &TopicPattern,
        kind: SubscriberKind,
    ) -> Result<Subscription, BrokerError>;

    /// What `/healthz` reports about this broker.
    fn health(&self) -> BrokerHealth;

    /// Sends what is still buffered (acknowledgements above all) before
    /// the process exits.
    async fn flush(&self) {}

    /// The largest event (data plus headers, in bytes) this broker can
    /// carry, if it has a limit of its own; [`crate::EventLimits`] is
    /// lowered to it.
    fn max_event_bytes(&self) -> Option<u64> {
        None
    }

    /// How many deliveries an event trigger may handle at once. 1 (the
    /// default) handles them one by one, in the order they arrive.
    fn max_in_flight(&self) -> usize {
        1
    }

    /// How often an event a trigger fails on is tried before it is a dead
    /// letter, and how long apart (default [`RetryPolicy::default`]).
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
}

/// The state of a broker's connection, as `/healthz` shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct BrokerHealth {
    /// `memory` or `nats`.
    pub kind: &'static str,
    /// Whether the broker is reachable now.
    pub connected: bool,
    /// The server it talks to (NATS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The stream that keeps the events (NATS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Publishes the broker dropped as duplicates of a recent one (by key).
    pub duplicates: u64,
}

/// A stream of deliveries for one subscription.
pub struct Subscription {
    source: Box<dyn DeliverySource>,
}

impl Subscription {
    /// A subscription fed by `source`.
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
    /// The next delivery, or `None` once the broker is gone.
    async fn next(&mut self) -> Option<Delivery>;
    /// Deliveries dropped because the subscriber lagged (observers only).
    fn dropped(&self) -> u64;
}

/// One event delivered to a subscription, to be acknowledged when handled.
pub struct Delivery {
    /// The event delivered.
    pub event: Event,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    acknowledger: Option<Box<dyn Acknowledge>>,
}

impl Delivery {
    /// A delivery that needs no acknowledgement (in-memory, observers):
    /// the broker never delivers it again, so the trigger retries it.
    pub fn unacknowledged(event: Event) -> Self {
        Self {
            event,
            attempt: 1,
            acknowledger: None,
        }
    }

    /// The `attempt`th delivery of `event`, that `acknowledger` settles
    /// with the broker (which delivers it again after a nack).
    pub fn with_acknowledger(
        event: Event,
        attempt: u32,
        acknowledger: Box<dyn Acknowledge>,
    ) -> Self {
        Self {
            event,
            attempt,
            acknowledger: Some(acknowledger),
        }
    }

    /// Does the broker deliver the event again after [`Self::nack`]? If
    /// not, whoever handles it retries.
    pub fn redelivers(&self) -> bool {
        self.acknowledger.is_some()
    }

    /// The event was handled: do not deliver it again.
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.acknowledger {
            Some(a) => a.ack().await,
            None => Ok(()),
        }
    }

    /// Handling failed: the broker delivers it again after `delay`.
    pub async fn nack(self, delay: std::time::Duration) -> Result<(), BrokerError> {
        match self.acknowledger {
            Some(a) => a.nack(delay).await,
            None => Ok(()),
        }
    }

    /// Not handled (the subscriber is going away): deliver it again soon,
    /// to anyone, without counting a failure.
    pub async fn release(self) {
        if let Some(a) = self.acknowledger {
            a.release().await;
        }
    }
}

/// Broker-specific acknowledgement of one delivery.
#[async_trait]
pub trait Acknowledge: Send {
    /// See [`Delivery::ack`].
    async fn ack(self: Box<Self>) -> Result<(), BrokerError>;
    /// See [`Delivery::nack`].
    async fn nack(self: Box<Self>, delay: std::time::Duration) -> Result<(), BrokerError>;
    /// See [`Delivery::release`].
    async fn release(self: Box<Self>);
}
