//! Triggers: what fires. One trait, three kinds (cron, api, event), and
//! the seed's constructors.

mod api;
pub mod catch_up;
mod cron;
mod dead_letter;
mod dispatch;
mod event;
pub mod flow;
pub mod health;
pub mod overlap;
mod spec;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

pub use self::api::ApiTrigger;
pub use self::catch_up::{CatchUp, CatchUpPolicy};
pub use self::cron::{CronTrigger, StartQueue};
pub use self::dispatch::{
    BACKFILL_HEADER, CATCH_UP_HEADER, Dispatcher, FireError, TRIGGER_HEADER, TriggerCounters,
    TriggerStats,
};
pub use self::event::EventTrigger;
pub use self::overlap::OverlapPolicy;
pub use self::spec::{ApiAuth, ApiSpec, CronSpec, EventSpec, TriggerSpec};
use crate::bounded::EventLimits;
use crate::broker::{Broker, BrokerError};
use crate::clock::Clock;
use crate::cron::CronError;
use crate::firing::{Factory, Filter};
pub use crate::firing::{TriggerKind, UnknownKind};
use crate::state::{RunLog, StateStore};
use crate::timer::TimerHandle;
use crate::topic::{Topic, TopicError};

/// Why a trigger could not be created, started or fired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// Not `cron`, `api` or `event`.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    /// The cron expression or time zone is wrong (named as its key).
    #[error("`{key}`: {0}", key = .0.key())]
    Cron(#[from] CronError),
    /// A topic or pattern is wrong.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// Fired while stopped or paused.
    #[error("trigger is not running")]
    NotRunning,
    /// Started twice.
    #[error("trigger is already running")]
    AlreadyRunning,
    /// The broker refused to subscribe.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The firing failed (factory, limits or publishing).
    #[error(transparent)]
    Fire(#[from] FireError),
    /// The filter or the firing failed on a replayed event (the reason).
    #[error("{0}")]
    Failed(String),
    /// This kind of trigger cannot do that (e.g. replay an event).
    #[error("a {0} trigger cannot replay an event")]
    CannotReplay(TriggerKind),
    /// Only cron triggers have instants to backfill.
    #[error("a {0} trigger has no schedule to backfill")]
    CannotBackfill(TriggerKind),
}

/// What the scheduler hands a trigger when it starts it.
#[derive(Clone)]
pub struct Binding {
    /// The id it is registered under.
    pub trigger_id: String,
    /// Where its events go.
    pub topic: Topic,
    /// What publishes them (and feeds event triggers).
    pub broker: Arc<dyn Broker>,
    /// The scheduler's cron timer.
    pub timer: TimerHandle,
    /// The scheduler's clock.
    pub clock: Clock,
    /// What one event and one firing may carry.
    pub limits: EventLimits,
    /// Where last fires are claimed (none: every replica fires, the
    /// broker's dedupe publishes once, and nothing is caught up).
    pub store: Option<Arc<dyn StateStore>>,
    /// Where runs go (none: no history).
    pub runs: Option<RunLog>,
    /// Why the trigger starts.
    pub start: StartReason,
    /// The scheduler's time-keeping counters.
    pub health: Arc<health::ScheduleHealth>,
    /// Where cron triggers start against `store`, in batches (none
    /// without a store).
    pub cron_starts: Option<StartQueue>,
}

/// Why a trigger starts: a cron trigger does not catch up the instants
/// that fell during a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartReason {
    /// The scheduler started, or the trigger was registered.
    Start,
    /// The trigger was paused and is resumed.
    Resume,
}

/// The trigger port.
#[async_trait]
pub trait Trigger: Send + Sync + 'static {
    /// Cron, api or event.
    fn kind(&self) -> TriggerKind;

    /// Starts firing; events go to `binding.topic` through `binding.broker`.
    async fn start(&self, binding: Binding) -> Result<(), TriggerError>;

    /// Stops firing. Firings already under way finish first.
    async fn stop(&self);

    /// The running flag and counters every trigger keeps.
    fn state(&self) -> &TriggerState;

    /// Started and not stopped (nor paused).
    fn is_running(&self) -> bool {
        self.state().is_running()
    }

    /// Counters: fires, errors, events published, filter decisions.
    fn stats(&self) -> TriggerStats {
        self.state().counters.snapshot()
    }

    /// Fires once now, whatever the schedule or filter says ("run now").
    /// `payload` is the api payload, or the data of the source event an
    /// event trigger is handed. Returns the fire count.
    async fn run_now(&self, payload: Option<serde_json::Value>) -> Result<u64, TriggerError>;

    /// Handles `event` again, as a delivery of it (an event trigger's
    /// dead letter, replayed): the filter, then the factory.
    async fn replay(&self, event: crate::event::Event) -> Result<(), TriggerError> {
        let _ = event;
        Err(TriggerError::CannotReplay(self.kind()))
    }

    /// Fires once for scheduled `instant`, marked as a backfill (cron
    /// triggers; the others cannot).
    async fn backfill(&self, instant: chrono::DateTime<chrono::Utc>) -> Result<(), TriggerError> {
        let _ = instant;
        Err(TriggerError::CannotBackfill(self.kind()))
    }

    /// How many times the trigger has fired.
    fn fire_count(&self) -> u64 {
        self.stats().fires
    }

    /// The next `n` instants it fires at on its own (cron triggers; none
    /// for the others).
    fn next_fires(&self, n: usize) -> Vec<chrono::DateTime<chrono::Utc>> {
        let _ = n;
        Vec::new()
    }
}

/// State every trigger kind keeps: running flag and counters.
#[derive(Default)]
pub struct TriggerState {
    running: AtomicBool,
    /// Fires, errors, events published, filter decisions.
    pub counters: Arc<TriggerCounters>,
}

impl TriggerState {
    /// Marks the trigger running; fails if it already was.
    pub fn begin(&self) -> Result<(), TriggerError> {
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(TriggerError::AlreadyRunning);
        }
        Ok(())
    }

    /// Marks the trigger stopped; returns whether it was running.
    pub fn end(&self) -> bool {
        self.running.swap(false, Ordering::SeqCst)
    }

    /// Between [`Self::begin`] and [`Self::end`].
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// The dispatcher a trigger started with `binding` fires through.
    fn dispatcher(&self, binding: &Binding, factory: &Option<Arc<dyn Factory>>) -> Dispatcher {
        Dispatcher {
            trigger_id: binding.trigger_id.clone(),
            topic: binding.topic.clone(),
            broker: binding.broker.clone(),
            factory: factory.clone(),
            counters: self.counters.clone(),
            limits: binding.limits,
            clock: binding.clock,
            runs: binding.runs.clone(),
        }
    }
}

/// Creates the trigger `spec` describes (the seed's
/// `TriggerFactory::create_trigger`, by kind), running `factory` and, for
/// an event trigger, asking `filter`.
pub fn create_trigger(
    spec: &TriggerSpec,
    factory: Option<Arc<dyn Factory>>,
    filter: Option<Arc<dyn Filter>>,
) -> Result<Arc<dyn Trigger>, TriggerError> {
    Ok(match spec {
        TriggerSpec::Cron(cron) => {
            let zone = cron.timezone.as_deref().unwrap_or("UTC");
            let schedule = crate::cron::CronSchedule::shared(&cron.schedule, zone)?;
            let trigger = CronTrigger::new(schedule, factory)
                .with_catch_up(cron.catch_up)
                .with_jitter(cron.jitter)
                .with_overlap(cron.overlap);
            Arc::new(trigger)
        }
        TriggerSpec::Api(_) => Arc::new(ApiTrigger::new(factory)),
        TriggerSpec::Event(event) => {
            event.flow.validate().map_err(TriggerError::Failed)?;
            Arc::new(
                EventTrigger::new(event.source.clone(), factory, filter)
                    .with_flow(event.flow.clone()),
            )
        }
    })
}

/// A cron trigger in UTC (the seed's `create_cron_trigger`).
pub fn create_cron_trigger(
    expression: &str,
    factory: Option<Arc<dyn Factory>>,
) -> Result<Arc<CronTrigger>, TriggerError> {
    let schedule = crate::cron::CronSchedule::utc(expression)?;
    Ok(Arc::new(CronTrigger::new(schedule, factory)))
}

/// An api trigger (the seed's `create_api_trigger`).
pub fn create_api_trigger(factory: Option<Arc<dyn Factory>>) -> Arc<ApiTrigger> {
    Arc::new(ApiTrigger::new(factory))
}

/// An event trigger on `source` (the seed's `create_event_trigger`; the
/// broker comes from the scheduler it is registered with).
pub fn create_event_trigger(
    source: &str,
    factory: Option<Arc<dyn Factory>>,
    filter: Option<Arc<dyn Filter>>,
) -> Result<Arc<EventTrigger>, TriggerError> {
    Ok(Arc::new(EventTrigger::new(
        source.parse()?,
        factory,
        filter,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_case_insensitively() {
        assert_eq!("CRON".parse::<TriggerKind>().unwrap(), TriggerKind::Cron);
        assert_eq!("Api".parse::<TriggerKind>().unwrap(), TriggerKind::Api);
        assert_eq!("event".parse::<TriggerKind>().unwrap(), TriggerKind::Event);
        let err = "webhook".parse::<TriggerKind>().unwrap_err().to_string();
        assert!(err.contains("`webhook`") && err.contains("`cron`"), "{err}");
    }
}
