//! Dispatch: what a started trigger does with a firing. The factory (or
//! the default event) makes the events, [`EventLimits`] checks them, and
//! the broker publishes them, once per key where the firing has one; the
//! trigger's counters count it all.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;

use crate::bounded::{self, EventLimits, LimitError};
use crate::broker::{Broker, BrokerError};
use crate::clock::Clock;
use crate::event::{Event, NewEvent};
use crate::firing::{Cause, CronRun, Factory, Firing, TriggerKind};
use crate::histogram::{Histogram, HistogramSnapshot};
use crate::state::{Outcome, Run, RunLog};
use crate::supervise::panic_message;
use crate::topic::Topic;
use crate::trace;

/// Counters kept per trigger.
#[derive(Debug, Default)]
pub struct TriggerCounters {
    /// Firings started.
    pub fires: AtomicU64,
    /// Firings and filter calls that failed.
    pub errors: AtomicU64,
    /// Events published.
    pub events_published: AtomicU64,
    /// Events the filter accepted.
    pub filter_accepted: AtomicU64,
    /// Events the filter rejected.
    pub filter_rejected: AtomicU64,
    /// Cron instants that fell while no replica ran the trigger, not run.
    pub missed: AtomicU64,
    /// Cron instants run late, after downtime.
    pub catch_ups: AtomicU64,
    /// Events dropped by `dedupe`.
    pub deduplicated: AtomicU64,
    /// Events dropped by `throttle`.
    pub throttled: AtomicU64,
    /// Events replaced by a later one under `debounce`.
    pub debounced: AtomicU64,
    /// Events collected into batches.
    pub batched: AtomicU64,
    /// Firings that waited for a `concurrency` slot of their key.
    pub concurrency_waits: AtomicU64,
    /// How long they waited (made at the first wait: most triggers never
    /// wait, and 100 000 triggers keep 16 bytes each for it).
    pub concurrency_wait: std::sync::OnceLock<Box<Histogram>>,
    /// Not a counter: when (ms since the epoch, by the scheduler's clock)
    /// a firing's events were last copied to the run log's recent events.
    /// One firing per [`KEEP_EVERY_MS`] is, so a busy trigger pays for
    /// few copies and cannot flush the other triggers' events out.
    pub recent_kept_ms: AtomicI64,
}

/// At most one firing of a trigger per this many milliseconds has its
/// events kept among the recent events.
pub const KEEP_EVERY_MS: i64 = 10;

/// Upper bounds (seconds) of the flow-control wait histogram's buckets.
pub const FLOW_WAIT_BOUNDS: [f64; 10] = [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0];

/// A snapshot of [`TriggerCounters`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TriggerStats {
    /// Firings started.
    pub fires: u64,
    /// Firings and filter calls that failed.
    pub errors: u64,
    /// Events published.
    pub events_published: u64,
    /// Events the filter accepted.
    pub filter_accepted: u64,
    /// Events the filter rejected.
    pub filter_rejected: u64,
    /// Cron instants that fell while no replica ran the trigger, not run.
    pub missed: u64,
    /// Cron instants run late, after downtime.
    pub catch_ups: u64,
    /// Events dropped by `dedupe`.
    pub deduplicated: u64,
    /// Events dropped by `throttle`.
    pub throttled: u64,
    /// Events replaced by a later one under `debounce`.
    pub debounced: u64,
    /// Events collected into batches.
    pub batched: u64,
    /// Firings that waited for a `concurrency` slot of their key.
    pub concurrency_waits: u64,
}

impl TriggerStats {
    /// These counters and `other`'s, added.
    pub fn plus(&self, other: &TriggerStats) -> TriggerStats {
        TriggerStats {
            fires: self.fires + other.fires,
            errors: self.errors + other.errors,
            events_published: self.events_published + other.events_published,
            filter_accepted: self.filter_accepted + other.filter_accepted,
            filter_rejected: self.filter_rejected + other.filter_rejected,
            missed: self.missed + other.missed,
            catch_ups: self.catch_ups + other.catch_ups,
            deduplicated: self.deduplicated + other.deduplicated,
            throttled: self.throttled + other.throttled,
            debounced: self.debounced + other.debounced,
            batched: self.batched + other.batched,
            concurrency_waits: self.concurrency_waits + other.concurrency_waits,
        }
    }
}

impl TriggerCounters {
    /// Counts a wait of `waited` for a `concurrency` slot.
    pub fn record_concurrency_wait(&self, waited: std::time::Duration) {
        self.concurrency_wait
            .get_or_init(|| Box::new(Histogram::new(&FLOW_WAIT_BOUNDS)))
            .observe(waited);
    }

    /// How long firings waited for a `concurrency` slot; `None` if none did.
    pub fn concurrency_wait(&self) -> Option<HistogramSnapshot> {
        self.concurrency_wait.get().map(|h| h.snapshot())
    }

    /// The counters now.
    pub fn snapshot(&self) -> TriggerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TriggerStats {
            fires: get(&self.fires),
            errors: get(&self.errors),
            events_published: get(&self.events_published),
            filter_accepted: get(&self.filter_accepted),
            filter_rejected: get(&self.filter_rejected),
            missed: get(&self.missed),
            catch_ups: get(&self.catch_ups),
            deduplicated: get(&self.deduplicated),
            throttled: get(&self.throttled),
            debounced: get(&self.debounced),
            batched: get(&self.batched),
            concurrency_waits: get(&self.concurrency_waits),
        }
    }
}

/// Why a firing published nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FireError {
    #[error("{factory} failed: {message}")]
    /// The factory failed or panicked.
    Factory {
        /// The trigger's id.
        trigger: String,
        /// The factory as its user knows it ([`crate::firing::Factory::describe`]).
        factory: String,
        /// What it said, cut to [`bounded::MAX_ERROR_BYTES`].
        message: String,
        /// It ran out of time ([`Factory::is_timeout`]).
        timeout: bool,
    },
    #[error("publishing for trigger `{trigger}` failed: {source}")]
    /// The broker refused an event.
    Publish {
        /// The trigger's id.
        trigger: String,
        /// Why.
        #[source]
        source: BrokerError,
    },
    /// The events broke [`EventLimits`]; none was published.
    #[error("trigger `{trigger}` published nothing{}: {source}", made_by(plugin))]
    Limit {
        /// The trigger's id.
        trigger: String,
        /// The plugin that made the events, if a plugin did.
        plugin: Option<String>,
        /// Which limit, and by how much.
        #[source]
        source: Box<LimitError>,
    },
}

fn made_by(plugin: &Option<String>) -> String {
    match plugin {
        Some(plugin) => format!(" (events from plugin `{plugin}`)"),
        None => String::new(),
    }
}

/// Everything a started trigger needs to turn a firing into published events.
pub struct Dispatcher {
    /// The trigger's id.
    pub trigger_id: String,
    /// Where events go unless they name a topic.
    pub topic: Topic,
    /// What publishes them.
    pub broker: Arc<dyn Broker>,
    /// Makes the events; none: the default event.
    pub factory: Option<Arc<dyn Factory>>,
    /// The trigger's counters.
    pub counters: Arc<TriggerCounters>,
    /// Checked before anything of a firing is published.
    pub limits: EventLimits,
    /// Stamps api and event firings.
    pub clock: Clock,
    /// Where each firing's [`Run`] goes (none: no history).
    pub runs: Option<RunLog>,
}

impl Dispatcher {
    /// A firing of this trigger now (by the scheduler's clock).
    pub fn firing(&self, cause: Cause) -> Firing {
        Firing::new(self.trigger_id.clone(), self.clock.now(), cause)
    }

    /// Runs the factory (or the default) and publishes what it returns.
    /// Failures are counted and logged with the trigger id; the run goes
    /// to the history.
    pub async fn fire(&self, firing: Firing) -> Result<usize, FireError> {
        let span = trace::firing_span(&self.trigger_id, firing.kind());
        let fired = self.fire_traced(firing).instrument(span.clone()).await;
        match &fired {
            Ok(count) => {
                span.record("events", count);
            }
            Err(error) => trace::record_error(&span, error),
        }
        fired
    }

    async fn fire_traced(&self, firing: Firing) -> Result<usize, FireError> {
        self.counters.fires.fetch_add(1, Ordering::Relaxed);
        if cron_run(&firing) == Some(CronRun::CatchUp) {
            self.counters.catch_ups.fetch_add(1, Ordering::Relaxed);
        }
        let started = Instant::now();
        // Read only for the history: 10 000 firings due at once skip it.
        let began = self.runs.is_some().then(|| self.clock.now());
        let mut published = Published {
            keep: began.is_some_and(|at| self.keep_copies(at)),
            ..Published::default()
        };
        let result = self.publish_firing(&firing, &mut published).await;
        if let Err(error) = &result {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(trigger = %self.trigger_id, "{error}");
        }
        let count = published.ids.len();
        if let Some(runs) = &self.runs {
            let (outcome, error) = match &result {
                Ok(()) => (Outcome::Ok, None),
                Err(FireError::Factory { timeout: true, .. }) => {
                    (Outcome::Timeout, Some(result_text(&result)))
                }
                Err(_) => (Outcome::Error, Some(result_text(&result))),
            };
            let mut run = self.run(&firing, outcome, started.elapsed(), error);
            run.events = published.ids;
            run.started = began;
            runs.record_published(run, published.copies, published.bytes)
                .await;
        }
        result.map(|()| count)
    }

    /// Whether a firing beginning `at` copies its events for the recent
    /// events: the first in each [`KEEP_EVERY_MS`].
    fn keep_copies(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        let now = at.timestamp_millis();
        let last = self.counters.recent_kept_ms.load(Ordering::Relaxed);
        now - last >= KEEP_EVERY_MS
            && self
                .counters
                .recent_kept_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// A run of this trigger for the history.
    pub fn run(
        &self,
        firing: &Firing,
        outcome: Outcome,
        took: Duration,
        error: Option<String>,
    ) -> Run {
        Run {
            trigger: self.trigger_id.clone(),
            instant: firing.instant,
            kind: firing.kind(),
            outcome,
            duration_ms: took.as_secs_f64() * 1000.0,
            events: Vec::new(),
            error,
            catch_up: cron_run(firing) == Some(CronRun::CatchUp),
            backfill: cron_run(firing) == Some(CronRun::Backfill),
            source_event: firing.source().map(|e| e.id),
            started: None,
        }
    }

    /// A run of this trigger that did not fire (`filtered`, `missed`,
    /// `skipped`, a filter's error) for the history.
    pub fn unfired(
        &self,
        kind: TriggerKind,
        instant: chrono::DateTime<chrono::Utc>,
        outcome: Outcome,
        error: Option<String>,
    ) -> Run {
        Run {
            trigger: self.trigger_id.clone(),
            instant,
            kind,
            outcome,
            duration_ms: 0.0,
            events: Vec::new(),
            error,
            catch_up: false,
            backfill: false,
            source_event: None,
            started: None,
        }
    }

    /// Hands `run` to the history, if the trigger keeps one.
    pub async fn record(&self, run: Run) {
        if let Some(runs) = &self.runs {
            runs.record(run).await;
        }
    }

    async fn publish_firing(
        &self,
        firing: &Firing,
        published: &mut Published,
    ) -> Result<(), FireError> {
        let drafts = self.make_events(firing).await?;
        published.bytes = self
            .limits
            .check_firing(&drafts)
            .map_err(|source| FireError::Limit {
                trigger: self.trigger_id.clone(),
                plugin: self.factory.as_ref().and_then(|f| f.plugin()),
                source: Box::new(source),
            })?;
        let marked = match cron_run(firing) {
            Some(CronRun::CatchUp) => Some(CATCH_UP_HEADER),
            Some(CronRun::Backfill) => Some(BACKFILL_HEADER),
            _ => None,
        };
        for (index, draft) in drafts.into_iter().enumerate() {
            let mut event = draft
                .into_event(&self.topic)
                .with_header(TRIGGER_HEADER, self.trigger_id.as_str());
            if let Some(header) = marked {
                event = event.with_header(header, "true");
            }
            let id = event.id;
            tracing::debug!(trigger = %self.trigger_id, topic = %event.topic, id = %event.id, "publishing");
            let span = trace::publish_span(&mut event);
            if published.keep {
                published.copies.push(event.clone());
            }
            let outcome = match publish_key(firing, index) {
                Some(key) => self.broker.publish_once(event, key).instrument(span).await,
                None => self.broker.publish(event).instrument(span).await,
            };
            outcome.map_err(|source| FireError::Publish {
                trigger: self.trigger_id.clone(),
                source,
            })?;
            self.counters
                .events_published
                .fetch_add(1, Ordering::Relaxed);
            published.ids.push(id);
        }
        Ok(())
    }

    /// The factory's events; a panic or error (its message cut to
    /// [`bounded::MAX_ERROR_BYTES`]) fails the firing.
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, FireError> {
        let Some(factory) = &self.factory else {
            return Ok(vec![default_event(firing)]);
        };
        let span = trace::call_span("factory", || factory.plugin());
        let outcome = AssertUnwindSafe(factory.make_events(firing))
            .catch_unwind()
            .instrument(span)
            .await;
        let (message, timeout) = match outcome {
            Ok(Ok(events)) => return Ok(events),
            Ok(Err(error)) => (
                bounded::error(error.to_string()),
                factory.is_timeout(&*error),
            ),
            Err(panic) => (
                format!("panicked: {}", bounded::error(panic_message(&panic))),
                false,
            ),
        };
        Err(FireError::Factory {
            trigger: self.trigger_id.clone(),
            factory: factory.describe(&self.trigger_id),
            message,
            timeout,
        })
    }
}

/// What a firing has published so far: the ids for its run and, when the
/// trigger keeps history (and not for every firing of a busy trigger),
/// copies of the events for the run log's recent events, with the size
/// the limits measured.
#[derive(Default)]
struct Published {
    /// Whether to copy the events (see [`Dispatcher::keep_copies`]).
    keep: bool,
    ids: Vec<uuid::Uuid>,
    copies: Vec<Event>,
    bytes: u64,
}

/// The header on every event a trigger publishes: the trigger's id.
pub const TRIGGER_HEADER: &str = "wasmsched-trigger";
/// The header on every event of a catch-up firing (`true`).
pub const CATCH_UP_HEADER: &str = "wasmsched-catch-up";
/// The header on every event of a backfilled firing (`true`).
pub const BACKFILL_HEADER: &str = "wasmsched-backfill";

/// Why a cron firing runs; `None` for other kinds.
fn cron_run(firing: &Firing) -> Option<CronRun> {
    match firing.cause {
        Cause::Cron { run } => Some(run),
        _ => None,
    }
}

fn result_text(result: &Result<(), FireError>) -> String {
    result
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The key that makes publishing the `index`th event of `firing` happen
/// once however often it is repeated: by every replica firing the same
/// cron instant (`<trigger id>:<scheduled instant>`), or by a replica
/// handling a redelivered source event (`<trigger id>:<source event id>`).
/// Later events of one firing add `/<index>`. Api calls and backfills
/// (asked for, so run again however recently the instant ran) have no key.
fn publish_key(firing: &Firing, index: usize) -> Option<String> {
    let base = match &firing.cause {
        Cause::Cron {
            run: CronRun::Backfill,
        } => return None,
        Cause::Cron { .. } => format!("{}:{}", firing.trigger_id, firing.instant.to_rfc3339()),
        Cause::Event { source } => format!("{}:{}", firing.trigger_id, source.id),
        Cause::Batch { events } => format!("{}:{}", firing.trigger_id, events.first()?.id),
        Cause::Api { .. } => return None,
    };
    Some(match index {
        0 => base,
        n => format!("{base}/{n}"),
    })
}

/// What a trigger without a factory publishes: the api payload, the source
/// event's data, or the scheduled instant.
fn default_event(firing: &Firing) -> NewEvent {
    let data = match &firing.cause {
        Cause::Api { payload } => payload.clone(),
        Cause::Event { source } => source.data.clone(),
        Cause::Batch { events } => json!({
            "count": events.len(),
            "events": events.iter().map(|e| &e.data).collect::<Vec<_>>(),
        }),
        Cause::Cron { run } => {
            let mut data = json!({
                "trigger_id": firing.trigger_id,
                "scheduled": firing.instant.to_rfc3339(),
            });
            match run {
                CronRun::CatchUp => data["catch_up"] = json!(true),
                CronRun::Backfill => data["backfill"] = json!(true),
                _ => {}
            }
            data
        }
    };
    NewEvent::new(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use serde_json::Value;

    fn firing(cause: Cause) -> Firing {
        Firing::new("t", "2030-01-07T09:00:00Z".parse().unwrap(), cause)
    }

    #[test]
    fn publish_keys_name_the_trigger_and_what_fired_it() {
        let cron = firing(Cause::cron());
        assert_eq!(
            publish_key(&cron, 0).unwrap(),
            "t:2030-01-07T09:00:00+00:00"
        );
        assert_eq!(
            publish_key(&cron, 2).unwrap(),
            "t:2030-01-07T09:00:00+00:00/2"
        );
        let source = Event::new(Topic::new("a").unwrap(), Value::Null);
        let id = source.id;
        let event = firing(Cause::Event { source });
        assert_eq!(publish_key(&event, 0).unwrap(), format!("t:{id}"));
        let api = firing(Cause::Api {
            payload: Value::Null,
        });
        assert_eq!(publish_key(&api, 0), None);
    }
}
