//! What an event trigger does with an event it failed on: try again after
//! the broker's backoff ([`RetryPolicy`]), and after `max_deliver`
//! attempts give up on it as a dead letter, kept in the state store and
//! published to `deadletter.<trigger id>`.
//!
//! A broker that delivers again (JetStream) is asked to, after the
//! backoff; for one that does not (the memory broker) the trigger keeps
//! the event in a [`RetryQueue`] and tries it again itself, having first
//! written the retry down in the state store ([`PendingRetry`]), so that a
//! restart resumes it. Either way a failing event does not hold up the
//! ones after it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use serde_json::json;
use tokio::time::Instant;

use super::Dispatcher;
use crate::broker::{Delivery, RetryPolicy, dead_letter_topic};
use crate::event::Event;
use crate::state::{DeadLetter, PendingRetry, StateStore};

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

    /// Takes at most `most` of the events due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant, most: usize) -> Vec<Delivery> {
        let mut due = Vec::new();
        while let Some(Reverse((at, key))) = self.queue.peek().copied() {
            if at > now || due.len() >= most {
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
            let trigger = &dispatcher.trigger_id;
            let pending = PendingRetry {
                id: DeadLetter::id_for(trigger, delivery.event.id),
                trigger: trigger.clone(),
                event: delivery.event.clone(),
                error: reason.clone(),
                attempts: delivery.attempt,
                due: dispatcher.clock.now() + delay,
            };
            self.keep_pending(pending).await;
            return Some((Instant::now() + delay, delivery, reason));
        }
        if let Err(error) = delivery.nack(delay).await {
            tracing::warn!(trigger = %dispatcher.trigger_id, "asking for a retry failed: {error}");
        }
        None
    }

    /// Writes down a retry this trigger owes (a broker that does not
    /// deliver again), so that a restart picks it up.
    async fn keep_pending(&self, pending: PendingRetry) {
        let Some(store) = &self.store else { return };
        if let Err(error) = store.put_pending(&pending).await {
            tracing::warn!(trigger = %pending.trigger, event = %pending.event.id, "a retry is not kept, a restart would lose it: {error}");
        }
    }

    /// The id of the retry `delivery` is, if it is one this trigger owed
    /// (so that [`Self::settled`] forgets it).
    pub fn owed_id(&self, dispatcher: &Dispatcher, delivery: &Delivery) -> Option<uuid::Uuid> {
        let owed = self.store.is_some() && !delivery.redelivers() && delivery.attempt >= 2;
        owed.then(|| DeadLetter::id_for(&dispatcher.trigger_id, delivery.event.id))
    }

    /// A delivery is settled (handled, or given up on): forgets the retry
    /// it was (`owed`, from [`Self::owed_id`]).
    pub async fn settled(&self, dispatcher: &Dispatcher, owed: Option<uuid::Uuid>) {
        if let (Some(store), Some(id)) = (&self.store, owed)
            && let Err(error) = store.delete_pending(id).await
        {
            tracing::warn!(trigger = %dispatcher.trigger_id, "a done retry is still kept: {error}");
        }
    }

    /// The retries this trigger owed when it last stopped (or its process
    /// died), each with when it is due.
    pub async fn owed(&self, dispatcher: &Dispatcher) -> Vec<(Instant, Delivery, String)> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let pending = match store.pending(&dispatcher.trigger_id).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(trigger = %dispatcher.trigger_id, "retries owed are not resumed: {error}");
                return Vec::new();
            }
        };
        let now = dispatcher.clock.now();
        pending
            .into_iter()
            .map(|p| {
                let wait = (p.due - now).to_std().unwrap_or_default();
                let mut delivery = Delivery::unacknowledged(p.event);
                delivery.attempt = p.attempts;
                (Instant::now() + wait, delivery, p.error)
            })
            .collect()
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
        let owed = self.owed_id(dispatcher, &delivery);
        self.settled(dispatcher, owed).await;
        if let Err(error) = delivery.ack().await {
            tracing::warn!(%trigger, "acknowledging a dead letter failed: {error}");
        }
    }
}
