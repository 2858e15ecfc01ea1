//! Event triggers: fire for broker events whose topic matches a pattern
//! and that the filter (if any) accepts, through the trigger's flow
//! control (`flow/`) if it has any.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::Dispatcher;
use super::dead_letter::{MAX_RETRYING, RetryQueue, Undertaker};
use super::flow::FlowSpec;
use super::flow::gate::FlowGate;
use super::flow::window::{COUNT_HEADER, Dropped, Release, Step};
use super::{Binding, Trigger, TriggerError, TriggerKind, TriggerState};
use crate::bounded;
use crate::broker::{Delivery, RetryPolicy, SubscriberKind, Subscription};
use crate::event::Event;
use crate::firing::{Cause, Factory, Filter};
use crate::state::Outcome;
use crate::supervise::panic_message;
use crate::supervise::{self, Task};
use crate::topic::{Topic, TopicPattern};
use crate::trace;
use serde_json::Value;

/// Subscribes to `source` and fires for each accepted event; retries the
/// ones it fails on, and gives up on them as dead letters
/// ([`super::dead_letter`]).
pub struct EventTrigger {
    source: TopicPattern,
    flow: FlowSpec,
    factory: Option<Arc<dyn Factory>>,
    filter: Option<Arc<dyn Filter>>,
    /// Overrides the broker's retry policy.
    retry: Option<RetryPolicy>,
    /// Overrides the broker's events in flight per trigger.
    max_in_flight: Option<usize>,
    state: TriggerState,
    active: Mutex<Option<Active>>,
}

struct Active {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    consumer: Arc<Consumer>,
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
            flow: FlowSpec::default(),
            factory,
            filter,
            retry: None,
            max_in_flight: None,
            state: TriggerState::default(),
            active: Mutex::new(None),
        }
    }

    /// Retries the events it fails on by `retry` rather than by the
    /// broker's policy (a sink's own `max_attempts` and `backoff`).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Handles up to `n` events at once rather than as many as the broker
    /// says (at least 1).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n.max(1));
        self
    }

    /// Applies `flow` (checked with [`FlowSpec::validate`]) to the events
    /// its filter accepts.
    pub fn with_flow(mut self, flow: FlowSpec) -> Self {
        self.flow = flow;
        self
    }

    /// Its flow control.
    pub fn flow(&self) -> &FlowSpec {
        &self.flow
    }

    /// The pattern it watches.
    pub fn source(&self) -> &TopicPattern {
        &self.source
    }

    fn consumer(&self) -> Result<Arc<Consumer>, TriggerError> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let consumer = active.as_ref().map(|a| a.consumer.clone());
        consumer.ok_or(TriggerError::NotRunning)
    }
}

/// The consuming side of a running event trigger.
struct Consumer {
    dispatcher: Arc<Dispatcher>,
    filter: Option<Arc<dyn Filter>>,
    undertaker: Undertaker,
    /// Flow control, if the trigger has any.
    flow: Option<Arc<FlowGate>>,
}

/// How many times a consumer whose loop panicked starts again.
const CONSUMER_RESTARTS: u32 = 3;

/// A retry to schedule: when, the delivery, and why.
type Retry = Option<(Instant, Delivery, String)>;

impl Consumer {
    /// [`Self::consume`] until stopped; a panic in its loop (counted and
    /// logged by [`supervise`]) starts it again on the same subscription,
    /// a second later, up to [`CONSUMER_RESTARTS`] times.
    async fn run(
        self: Arc<Self>,
        mut subscription: Subscription,
        stop: watch::Receiver<bool>,
        in_flight: usize,
    ) {
        let id = self.dispatcher.trigger_id.clone();
        for restart in 0..=CONSUMER_RESTARTS {
            let consume = self.consume(&mut subscription, stop.clone(), in_flight);
            if supervise::catch(Task::Consumer, &id, consume).await.is_ok() {
                return;
            }
            if restart < CONSUMER_RESTARTS {
                tracing::warn!(trigger = %id, "taking events again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        tracing::error!(trigger = %id, "stopped taking events after {CONSUMER_RESTARTS} restarts; pause and resume it to try again");
    }

    /// Handles up to `in_flight` deliveries at once (the broker says how
    /// many; 1 keeps publish order), and retries the ones the broker does
    /// not deliver again, starting with those owed from before. On stop,
    /// those under way finish first; those waiting for a retry stay kept
    /// in the store (without one, they become dead letters).
    async fn consume(
        &self,
        subscription: &mut Subscription,
        mut stop: watch::Receiver<bool>,
        in_flight: usize,
    ) {
        let mut handling: FuturesUnordered<BoxFuture<'_, Retry>> = FuturesUnordered::new();
        let mut retries = RetryQueue::default();
        let flow = self.flow.clone();
        let mut rescan = flow
            .as_ref()
            .and_then(|gate| gate.rescan_every())
            .map(tokio::time::interval);
        for (at, delivery, reason) in self.undertaker.owed(&self.dispatcher).await {
            retries.push(at, delivery, reason);
        }
        loop {
            let next_retry = retries.next_due();
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some(retry) = handling.next(), if !handling.is_empty() => {
                    if let Some((at, delivery, reason)) = retry {
                        retries.push(at, delivery, reason);
                    }
                }
                () = sleep_until(next_retry), if next_retry.is_some() && handling.len() < in_flight => {
                    let room = in_flight - handling.len();
                    for mut delivery in retries.take_due(Instant::now(), room) {
                        delivery.attempt += 1;
                        handling.push(self.handle(delivery).boxed());
                    }
                }
                // No arm awaits the store or a key's lock itself: a firing
                // in `handling` may hold that lock, and it is not polled
                // while an arm runs (a debounce fed every quarter period
                // stopped for good that way). Both go in as futures.
                () = next_due(&flow), if flow.is_some() => {
                    let gate = flow.as_ref().expect("checked");
                    for key in gate.due_keys() {
                        handling.push(self.deferred(gate.clone(), key).boxed());
                    }
                }
                _ = tick(&mut rescan), if rescan.is_some() => {
                    let gate = flow.clone().expect("rescans need flow control");
                    let trigger = self.dispatcher.trigger_id.clone();
                    handling.push(async move {
                        if let Err(error) = gate.load().await {
                            tracing::warn!(%trigger, "rereading flow-control windows failed: {error}");
                        }
                        None
                    }.boxed());
                }
                delivery = subscription.next(),
                    if handling.len() < in_flight && retries.len() < MAX_RETRYING => match delivery {
                    Some(delivery) => handling.push(self.handle(delivery).boxed()),
                    None => break,
                },
            }
        }
        while let Some(retry) = handling.next().await {
            if let Some((at, delivery, reason)) = retry {
                retries.push(at, delivery, reason);
            }
        }
        // Kept in the store, the retries resume when the trigger starts
        // again; without one, they become dead letters rather than vanish.
        if self.undertaker.store.is_none() {
            for (delivery, reason) in retries.drain() {
                let reason = format!("the trigger stopped while it waited to retry ({reason})");
                self.undertaker
                    .bury(&self.dispatcher, delivery, reason)
                    .await;
            }
        }
    }

    /// Filters, fires, then acknowledges; a failure is retried or given up
    /// on ([`Undertaker::failed`]). Returns a delivery to retry here, and when.
    async fn handle(&self, delivery: Delivery) -> Retry {
        let span = trace::event_span(&self.dispatcher.trigger_id, &delivery.event);
        let attempt = self.attempt(&delivery.event, false).instrument(span);
        // A panic is retried and dead-lettered like any failure.
        let attempted = supervise::catch(Task::Event, &self.dispatcher.trigger_id, attempt)
            .await
            .and_then(|attempted| attempted);
        match attempted {
            Ok(()) => {
                let owed = self.undertaker.owed_id(&self.dispatcher, &delivery);
                self.undertaker.settled(&self.dispatcher, owed).await;
                if let Err(error) = delivery.ack().await {
                    tracing::warn!(trigger = %self.dispatcher.trigger_id, "acknowledging a delivery failed: {error}");
                }
                None
            }
            Err(reason) => {
                self.undertaker
                    .failed(&self.dispatcher, delivery, reason)
                    .await
            }
        }
    }

    /// Asks the filter, then fires (through flow control, unless
    /// `replay`): what a delivery (or a replay) does.
    async fn attempt(&self, event: &Event, replay: bool) -> Result<(), String> {
        match self.accepts(event).await {
            Ok(false) => {
                self.record_unfired(event, Outcome::Filtered, None).await;
                Ok(())
            }
            Ok(true) => match &self.flow {
                Some(gate) if !replay => self.through_flow(gate, event).await,
                _ => {
                    let firing = self.dispatcher.firing(Cause::Event {
                        source: event.clone(),
                    });
                    self.fire(firing).await
                }
            },
            Err(error) => {
                self.dispatcher
                    .counters
                    .errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(trigger = %self.dispatcher.trigger_id, event = %event.id, "{error}");
                self.record_unfired(event, Outcome::Error, Some(error.clone()))
                    .await;
                Err(error)
            }
        }
    }

    /// Dedupe, throttle, debounce or batch, then (now or later) fire.
    async fn through_flow(&self, gate: &FlowGate, event: &Event) -> Result<(), String> {
        let key = gate.key_of(event);
        let unfired = match gate.admit(&key, event).await? {
            Step::Fire(release) => {
                if release.batched {
                    self.record_unfired(event, Outcome::Batched, None).await;
                }
                return self.fire_release(gate, &key, release).await;
            }
            Step::Dropped(Dropped::Deduplicated) => Some((event.clone(), Outcome::Deduplicated)),
            Step::Dropped(Dropped::Throttled) => Some((event.clone(), Outcome::Throttled)),
            Step::Held { replaced } => replaced.map(|old| (*old, Outcome::Debounced)),
            Step::Collected => Some((event.clone(), Outcome::Batched)),
        };
        if let Some((event, outcome)) = unfired {
            self.record_unfired(&event, outcome, None).await;
        }
        Ok(())
    }

    /// Fires what flow control released, in a `concurrency` slot of its key.
    async fn fire_release(
        &self,
        gate: &FlowGate,
        key: &str,
        release: Release,
    ) -> Result<(), String> {
        let _slot = gate.slot(key).await;
        let count = release.stands_for.to_string();
        let mut events = release.events;
        if let Some(last) = events.pop() {
            events.push(last.with_header(COUNT_HEADER, count));
        }
        let cause = match release.batched {
            true => Cause::Batch { events },
            false => Cause::Event {
                source: events.pop().expect("a release has an event"),
            },
        };
        self.fire(self.dispatcher.firing(cause)).await
    }

    /// Fires the held event or batch of `key` if its time came. Its events
    /// were acknowledged when they were held: if the firing fails, each
    /// becomes a dead letter of the trigger (replayed one by one, without
    /// flow control).
    async fn deferred(&self, gate: Arc<FlowGate>, key: String) -> Retry {
        let release = gate.take(&key).await?;
        let events = release.events.clone();
        // The firing continues the trace of the (last) event it stands for.
        let span = match events.last() {
            Some(last) => trace::event_span(&self.dispatcher.trigger_id, last),
            None => tracing::Span::none(),
        };
        let fire = self.fire_release(&gate, &key, release).instrument(span);
        let fired = supervise::catch(Task::Deferred, &self.dispatcher.trigger_id, fire)
            .await
            .and_then(|fired| fired);
        if let Err(reason) = fired {
            for event in events {
                let delivery = Delivery::unacknowledged(event);
                self.undertaker
                    .bury(&self.dispatcher, delivery, reason.clone())
                    .await;
            }
        }
        None
    }

    async fn fire(&self, firing: crate::firing::Firing) -> Result<(), String> {
        self.dispatcher
            .fire(firing)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
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
        let span = trace::call_span("filter", || filter.plugin());
        let accepted = AssertUnwindSafe(filter.accept(event))
            .catch_unwind()
            .instrument(span)
            .await;
        let decision = match accepted {
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
        let flow = match self.flow.is_active() {
            true => {
                let gate = FlowGate::new(
                    self.flow.clone(),
                    &binding.trigger_id,
                    binding.store.clone(),
                    dispatcher.clock,
                    dispatcher.counters.clone(),
                );
                if let Err(error) = gate.load().await {
                    self.state.end();
                    return Err(TriggerError::Failed(format!(
                        "reading the flow-control windows: {error}"
                    )));
                }
                Some(Arc::new(gate))
            }
            false => None,
        };
        let consumer = Arc::new(Consumer {
            dispatcher: dispatcher.clone(),
            flow,
            filter: self.filter.clone(),
            undertaker: Undertaker {
                store: binding.store.clone(),
                retry: self
                    .retry
                    .clone()
                    .unwrap_or_else(|| binding.broker.retry_policy()),
            },
        });
        let (stop, stop_receiver) = watch::channel(false);
        let in_flight = self
            .max_in_flight
            .unwrap_or_else(|| binding.broker.max_in_flight().max(1));
        let task = tokio::spawn(consumer.clone().run(subscription, stop_receiver, in_flight));
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(Active {
            stop,
            task,
            consumer,
        });
        Ok(())
    }

    async fn stop(&self) {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(active) = active {
            let _ = active.stop.send(true);
            // The event being handled, if any, finishes first.
            let _ = active.task.await;
        }
        self.state.end();
    }

    /// Fires with a source event made up on the spot: on the pattern's
    /// literal prefix (or `manual`), carrying `payload` as its data. The
    /// filter is not asked.
    async fn run_now(&self, payload: Option<Value>) -> Result<u64, TriggerError> {
        let dispatcher = self.consumer()?.dispatcher.clone();
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

    /// Asks the filter and fires, as for a delivery of `event`, once.
    async fn replay(&self, event: Event) -> Result<(), TriggerError> {
        let consumer = self.consumer()?;
        consumer
            .attempt(&event, true)
            .await
            .map_err(TriggerError::Failed)
    }

    fn state(&self) -> &TriggerState {
        &self.state
    }
}

/// The next flow-control deadline; never, without flow control.
async fn next_due(flow: &Option<Arc<FlowGate>>) {
    match flow {
        Some(gate) => gate.next_due().await,
        None => std::future::pending().await,
    }
}

/// The next tick; never, without an interval.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never returns for `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
