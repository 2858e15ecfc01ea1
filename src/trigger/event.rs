//! Event triggers: fire for broker events whose topic matches a pattern
//! and that the filter (if any) accepts.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Dispatcher;
use super::{Binding, Trigger, TriggerError, TriggerKind, TriggerState};
use crate::bounded;
use crate::broker::{Delivery, SubscriberKind, Subscription};
use crate::event::Event;
use crate::firing::{Cause, Factory, Filter, panic_message};
use crate::state::Outcome;
use crate::topic::{Topic, TopicPattern};
use serde_json::Value;

/// Subscribes to `source` and fires for each accepted event.
pub struct EventTrigger {
    source: TopicPattern,
    factory: Option<Arc<dyn Factory>>,
    filter: Option<Arc<dyn Filter>>,
    state: TriggerState,
    active: Mutex<Option<Active>>,
}

struct Active {
    stop: watch::Sender<bool>,
    consumer: JoinHandle<()>,
    dispatcher: Arc<Dispatcher>,
}

impl EventTrigger {
    /// An event trigger on `source`, asking `filter` (none: every event)
    /// and running `factory` (none: republish the event's data).
    pub fn new(
        source: TopicPattern,
        factory: Option<Arc<dyn Factory>>,
        filter: Option<Arc<dyn Filter>>,
    ) -> Self {
        Self {
            source,
            factory,
            filter,
            state: TriggerState::default(),
            active: Mutex::new(None),
        }
    }

    /// The pattern it watches.
    pub fn source(&self) -> &TopicPattern {
        &self.source
    }
}

/// The consuming side of a running event trigger.
struct Consumer {
    dispatcher: Arc<Dispatcher>,
    filter: Option<Arc<dyn Filter>>,
}

impl Consumer {
    /// Handles up to `in_flight` deliveries at once (the broker says how
    /// many; 1 keeps publish order). On stop, those under way finish first.
    async fn run(
        self,
        mut subscription: Subscription,
        mut stop: watch::Receiver<bool>,
        in_flight: usize,
    ) {
        let mut handling = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(()) = handling.next(), if !handling.is_empty() => {}
                delivery = subscription.next(), if handling.len() < in_flight => match delivery {
                    Some(delivery) => handling.push(self.handle(delivery)),
                    None => break,
                },
            }
        }
        while handling.next().await.is_some() {}
    }

    /// Filters, fires, then acknowledges; a failure asks for redelivery.
    async fn handle(&self, delivery: Delivery) {
        let outcome = match self.accepts(&delivery.event).await {
            Ok(false) => {
                self.record_unfired(&delivery.event, Outcome::Filtered, None)
                    .await;
                Ok(())
            }
            Ok(true) => {
                let firing = self.dispatcher.firing(Cause::Event {
                    source: delivery.event.clone(),
                });
                self.dispatcher
                    .fire(firing)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Err(error) => {
                self.dispatcher
                    .counters
                    .errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(trigger = %self.dispatcher.trigger_id, event = %delivery.event.id, "{error}");
                self.record_unfired(&delivery.event, Outcome::Error, Some(error.clone()))
                    .await;
                Err(error)
            }
        };
        let acknowledged = match outcome {
            Ok(()) => delivery.ack().await,
            Err(reason) => delivery.nack(&reason).await,
        };
        if let Err(error) = acknowledged {
            tracing::warn!(trigger = %self.dispatcher.trigger_id, "acknowledging a delivery failed: {error}");
        }
    }

    /// Records an event that did not fire the trigger.
    async fn record_unfired(&self, event: &Event, outcome: Outcome, error: Option<String>) {
        let dispatcher = &self.dispatcher;
        if dispatcher.runs.is_some() {
            let now = dispatcher.clock.now();
            let mut run = dispatcher.unfired(TriggerKind::Event, now, outcome, error);
            run.source_event = Some(event.id);
            dispatcher.record(run).await;
        }
    }

    /// The filter's decision; a panic or error (its message cut to
    /// [`bounded::MAX_ERROR_BYTES`]) is a failure.
    async fn accepts(&self, event: &Event) -> Result<bool, String> {
        let Some(filter) = &self.filter else {
            return Ok(true);
        };
        let decision = match AssertUnwindSafe(filter.accept(event)).catch_unwind().await {
            Ok(Ok(decision)) => decision,
            Ok(Err(error)) => {
                return Err(format!(
                    "filter failed: {}",
                    bounded::error(error.to_string())
                ));
            }
            Err(panic) => {
                let message = bounded::error(panic_message(&panic));
                return Err(format!("filter panicked: {message}"));
            }
        };
        let counter = match decision {
            true => &self.dispatcher.counters.filter_accepted,
            false => &self.dispatcher.counters.filter_rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(decision)
    }
}

#[async_trait]
impl Trigger for EventTrigger {
    fn kind(&self) -> TriggerKind {
        TriggerKind::Event
    }

    async fn start(&self, binding: Binding) -> Result<(), TriggerError> {
        self.state.begin()?;
        let kind = SubscriberKind::Trigger {
            name: binding.trigger_id.clone(),
        };
        let subscription = match binding.broker.subscribe(&self.source, kind).await {
            Ok(subscription) => subscription,
            Err(error) => {
                self.state.end();
                return Err(error.into());
            }
        };
        let dispatcher = Arc::new(self.state.dispatcher(&binding, &self.factory));
        let consumer = Consumer {
            dispatcher: dispatcher.clone(),
            filter: self.filter.clone(),
        };
        let (stop, stop_receiver) = watch::channel(false);
        let in_flight = binding.broker.max_in_flight().max(1);
        let consumer = tokio::spawn(consumer.run(subscription, stop_receiver, in_flight));
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(Active {
            stop,
            consumer,
            dispatcher,
        });
        Ok(())
    }

    async fn stop(&self) {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(active) = active {
            let _ = active.stop.send(true);
            // The event being handled, if any, finishes first.
            let _ = active.consumer.await;
        }
        self.state.end();
    }

    /// Fires with a source event made up on the spot: on the pattern's
    /// literal prefix (or `manual`), carrying `payload` as its data. The
    /// filter is not asked.
    async fn run_now(&self, payload: Option<Value>) -> Result<u64, TriggerError> {
        let dispatcher = {
            let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.as_ref().map(|a| a.dispatcher.clone())
        }
        .ok_or(TriggerError::NotRunning)?;
        let prefix = self.source.literal_prefix().join(".");
        let topic = Topic::new(if prefix.is_empty() {
            "manual".to_owned()
        } else {
            prefix
        })?;
        let source = Event::new(topic, payload.unwrap_or(Value::Null))
            .with_header("wasmsched-run-now", "true");
        dispatcher
            .fire(dispatcher.firing(Cause::Event { source }))
            .await?;
        Ok(self.fire_count())
    }

    fn state(&self) -> &TriggerState {
        &self.state
    }
}
