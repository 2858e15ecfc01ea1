//! The embedded in-memory broker: no services needed, one process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{
    Broker, BrokerError, BrokerHealth, Delivery, DeliverySource, RetryPolicy, SubscriberKind,
    Subscription, reaches_trigger,
};
use crate::event::Event;
use crate::topic::TopicPattern;

/// Queue length of each trigger subscription unless configured otherwise.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Queue length of each observer subscription (an event stream's client,
/// the event log) unless configured otherwise: a burst of 10 000 cron
/// firings due at one instant reaches a client that reads as fast as it
/// can. The queue grows only as it fills (32 events at a time).
pub const OBSERVER_QUEUE_CAPACITY: usize = 16_384;

/// In-memory broker with one bounded queue per subscription.
///
/// Trigger subscriptions apply backpressure: `publish` waits for room in
/// their queue. Observer subscriptions never make `publish` wait: when their
/// queue is full the event is dropped for them and counted.
#[derive(Clone)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

struct Shared {
    subscriptions: RwLock<Vec<Entry>>,
    next_id: AtomicU64,
    capacity: usize,
    observer_capacity: usize,
    retry: RetryPolicy,
}

#[derive(Clone)]
struct Entry {
    id: u64,
    pattern: TopicPattern,
    sender: mpsc::Sender<Event>,
    kind: SubscriberKind,
    dropped: Arc<AtomicU64>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::with_retry_policy(RetryPolicy::default())
    }
}

impl MemoryBroker {
    /// A broker with the default queue size per trigger subscription.
    pub fn new() -> Self {
        Self::default()
    }

    /// A broker whose subscription queues (triggers' and observers')
    /// hold `capacity` events each.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::build(capacity, capacity, RetryPolicy::default())
    }

    /// A broker whose triggers retry the events they fail on by `retry`.
    pub fn with_retry_policy(retry: RetryPolicy) -> Self {
        Self::build(DEFAULT_QUEUE_CAPACITY, OBSERVER_QUEUE_CAPACITY, retry)
    }

    fn build(capacity: usize, observer_capacity: usize, retry: RetryPolicy) -> Self {
        Self {
            shared: Arc::new(Shared {
                subscriptions: RwLock::new(Vec::new()),
                next_id: AtomicU64::new(0),
                capacity: capacity.max(1),
                observer_capacity: observer_capacity.max(1),
                retry,
            }),
        }
    }

    /// Number of live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.shared.read().len()
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.subscriptions.read().unwrap_or_else(|p| p.into_inner())
    }

    fn remove(&self, id: u64) {
        self.subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|e| e.id != id);
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, event: Event) -> Result<(), BrokerError> {
        let targets: Vec<Entry> = self
            .shared
            .read()
            .iter()
            .filter(|e| match e.kind {
                SubscriberKind::Trigger { .. } => reaches_trigger(&e.pattern, &event.topic),
                SubscriberKind::Observer => e.pattern.matches(&event.topic),
            })
            .cloned()
            .collect();
        for entry in targets {
            let delivered = match entry.kind {
                SubscriberKind::Trigger { .. } => entry.sender.send(event.clone()).await.is_ok(),
                SubscriberKind::Observer => match entry.sender.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        entry.dropped.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            };
            if !delivered {
                self.shared.remove(entry.id);
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        pattern: &TopicPattern,
        kind: SubscriberKind,
    ) -> Result<Subscription, BrokerError> {
        let capacity = match kind {
            SubscriberKind::Observer => self.shared.observer_capacity,
            _ => self.shared.capacity,
        };
        let (sender, receiver) = mpsc::channel(capacity);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        self.shared
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Entry {
                id,
                pattern: pattern.clone(),
                sender,
                kind,
                dropped: dropped.clone(),
            });
        Ok(Subscription::new(MemorySubscription {
            id,
            receiver,
            dropped,
            broker: Arc::downgrade(&self.shared),
        }))
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.shared.retry.clone()
    }

    fn health(&self) -> BrokerHealth {
        BrokerHealth {
            kind: "memory",
            connected: true,
            url: None,
            stream: None,
            duplicates: 0,
        }
    }
}

struct MemorySubscription {
    id: u64,
    receiver: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
    broker: Weak<Shared>,
}

#[async_trait]
impl DeliverySource for MemorySubscription {
    async fn next(&mut self) -> Option<Delivery> {
        self.receiver.recv().await.map(Delivery::unacknowledged)
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        if let Some(shared) = self.broker.upgrade() {
            shared.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::Topic;
    use serde_json::json;
    use std::time::Duration;

    fn event(topic: &str, n: i64) -> Event {
        Event::new(Topic::new(topic).unwrap(), json!({ "n": n }))
    }
    fn trigger() -> SubscriberKind {
        SubscriberKind::Trigger { name: "t".into() }
    }

    #[tokio::test]
    async fn delivers_by_pattern_and_unsubscribes_on_drop() {
        let broker = MemoryBroker::new();
        let pattern = TopicPattern::new("logs.**").unwrap();
        let mut sub = broker.subscribe(&pattern, trigger()).await.unwrap();
        broker.publish(event("logs.app.error", 1)).await.unwrap();
        broker.publish(event("metrics.cpu", 2)).await.unwrap();
        broker.publish(event("logs", 3)).await.unwrap();
        assert_eq!(sub.next().await.unwrap().event.data["n"], 1);
        assert_eq!(sub.next().await.unwrap().event.data["n"], 3);
        assert_eq!(broker.subscription_count(), 1);
        drop(sub);
        assert_eq!(broker.subscription_count(), 0);
    }

    #[tokio::test]
    async fn trigger_subscriptions_apply_backpressure_and_lose_nothing() {
        let broker = MemoryBroker::with_capacity(2);
        let pattern = TopicPattern::new("a").unwrap();
        let mut sub = broker.subscribe(&pattern, trigger()).await.unwrap();
        let publisher = {
            let broker = broker.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    broker.publish(event("a", n)).await.unwrap();
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!publisher.is_finished(), "publisher should wait for room");
        for n in 0..10 {
            assert_eq!(sub.next().await.unwrap().event.data["n"], n);
        }
        publisher.await.unwrap();
        assert_eq!(sub.dropped(), 0);
    }

    #[tokio::test]
    async fn lagging_observers_drop_and_count() {
        let broker = MemoryBroker::with_capacity(2);
        let pattern = TopicPattern::new("**").unwrap();
        let mut sub = broker
            .subscribe(&pattern, SubscriberKind::Observer)
            .await
            .unwrap();
        for n in 0..5 {
            broker.publish(event("a.b", n)).await.unwrap();
        }
        assert_eq!(sub.dropped(), 3);
        assert_eq!(sub.next().await.unwrap().event.data["n"], 0);
        assert_eq!(sub.next().await.unwrap().event.data["n"], 1);
    }
}
