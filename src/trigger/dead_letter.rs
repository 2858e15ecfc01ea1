//! What an event trigger does with an event it failed on: try again after
//! the broker's backoff ([`RetryPolicy`]), and after `max_deliver`
//! attempts give up on it as a dead letter, kept in the state store and
//! published to `deadletter.<trigger id>`.
//!
//! A broker that delivers again (JetStream) is asked to, after the
//! backoff; for one that does not (the memory broker) the trigger keeps
//! the event in a [`RetryQueue`] and tries it again itself. Either way a
//! failing event does not hold up the ones after it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use serde_json::json;
use tokio::time::Instant;

use super::Dispatcher;
use crate::broker::{Delivery, RetryPolicy, dead_letter_topic};
use crate::event::Event;
use crate::state::{DeadLetter, StateStore};

/// The most events one trigger keeps waiting for an in-process retry;
/// beyond it the trigger takes no new event until one is done.
pub(crate) const MAX_RETRYING: usize = 1024;

/// Events waiting for their retry, earliest first.
#[derive(Default)]
pub(crate) struct RetryQueue {
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    waiting: std::collections::HashMap<u64, (Delivery, String)>,
    next: u64,
}

impl RetryQueue {
    /// Keeps `delivery` (which failed with `reason`) until `at`.
    pub fn push(&mut self, at: Instant, delivery: Delivery, reason: String) {
        let key = self.next;
        self.next += 1;
        self.queue.push(Reverse((at, key)));
        self.waiting.insert(key, (delivery, reason));
    }

    /// How many events wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// When the earliest is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the events due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<Delivery> {
        let mut due = Vec::new();
        while let Some(Reverse((at, key))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            if let Some((delivery, _)) = self.waiting.remove(&key) {
                due.push(delivery);
            }
        }
        due
    }

    /// Takes every waiting event with its last error (the trigger stops).
    pub fn drain(&mut self) -> Vec<(Delivery, String)> {
        self.queue.clear();
        self.waiting.drain().map(|(_, waiting)| waiting).collect()
    }
}

/// Gives up on events for one trigger.
pub(crate) struct Undertaker {
    /// Where the dead letters are kept (none: only published).
    pub store: Option<Arc<dyn StateStore>>,
    /// How often an event is tried.
    pub retry: RetryPolicy,
}

impl Undertaker {
    /// Settles a failed delivery: asks the broker to deliver it again,
    /// gives up on it, or (a broker that does not deliver again) hands it
    /// back to be retried here after the backoff.
    pub async fn failed(
        &self,
        dispatcher: &Dispatcher,
        delivery: Delivery,
        reason: String,
    ) -> Option<(Instant, Delivery, String)> {
        if self.retry.gives_up(delivery.attempt) {
            self.bury(dispatcher, delivery, reason).await;
            return None;
        }
        let delay = self.retry.delay(delivery.attempt);
        if !delivery.redelivers() {
            return Some((Instant::now() + delay, delivery, reason));
        }
        if let Err(error) = delivery.nack(delay).await {
            tracing::warn!(trigger = %dispatcher.trigger_id, "asking for a retry failed: {error}");
        }
        None
    }

    /// Keeps `delivery`'s event as a dead letter and publishes it to
    /// `deadletter.<trigger id>`, then acknowledges it. If it can be
    /// neither kept nor published, a broker that delivers again is asked
    /// to (nothing is lost); otherwise the error is logged.
    pub async fn bury(&self, dispatcher: &Dispatcher, delivery: Delivery, reason: String) {
        let trigger = &dispatcher.trigger_id;
        let letter = DeadLetter {
            id: DeadLetter::id_for(trigger, delivery.event.id),
            trigger: trigger.clone(),
            event: delivery.event.clone(),
            error: reason,
            attempts: delivery.attempt,
            at: dispatcher.clock.now(),
        };
        let kept = match &self.store {
            Some(store) => store
                .put_dead_letter(&letter)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no state store".to_owned()),
        };
        let topic = dead_letter_topic(trigger);
        let published = Event::new(
            topic.clone(),
            json!({
                "dead_letter": letter.id,
                "trigger": trigger,
                "error": letter.error,
                "deliveries": letter.attempts,
                "event": letter.event,
            }),
        );
        let key = format!("deadletter:{trigger}:{}", letter.event.id);
        let published = dispatcher.broker.publish_once(published, key).await;
        let (event, attempts, error) = (letter.event.id, letter.attempts, &letter.error);
        match (kept, published) {
            (Err(not_kept), Err(not_published)) if delivery.redelivers() => {
                tracing::warn!(%trigger, %event, "cannot give up on an event ({not_kept}; {not_published}); it will be retried");
                let _ = delivery.nack(self.retry.delay(attempts)).await;
                return;
            }
            (Err(not_kept), Err(not_published)) => {
                tracing::error!(%trigger, %event, "gave up on an event after {attempts} attempts ({error}) and could not keep it: {not_kept}; {not_published}");
            }
            _ => {
                tracing::warn!(%trigger, %event, dead_letter = %letter.id, "gave up on an event after {attempts} attempts ({error}); kept as a dead letter, published to `{topic}`");
            }
        }
        if let Err(error) = delivery.ack().await {
            tracing::warn!(%trigger, "acknowledging a dead letter failed: {error}");
        }
    }
}
