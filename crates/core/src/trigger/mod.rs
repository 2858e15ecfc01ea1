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
mod plumbing;
mod spec;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::api::ApiTrigger;
pub use self::catch_up::{CatchUp, CatchUpPolicy};
pub use self::cron::CronTrigger;
pub(crate) use self::cron::StartQueue;
pub use self::dispatch::{
    BACKFILL_HEADER, CATCH_UP_HEADER, FireError, TRIGGER_HEADER, TriggerStats,
};
pub(crate) use self::dispatch::{Dispatcher, TriggerCounters};
pub use self::event::EventTrigger;
pub use self::overlap::OverlapPolicy;
pub(crate) use self::plumbing::{Binding, StartReason, TriggerState};
pub use self::spec::{ApiAuth, ApiSpec, CronSpec, EventSpec, TriggerSpec};
use crate::broker::BrokerError;
use crate::cron::CronError;
use crate::firing::{Factory, Filter};
pub use crate::firing::{TriggerKind, UnknownKind};
use crate::topic::TopicError;

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

/// The trigger port: what the scheduler starts and stops, and what the
/// host asks of a registered trigger. Sealed: the three kinds here are all
/// there is ([`create_trigger`] makes them); what a trigger does when it
/// fires is its [`Factory`] and [`Filter`], which embedders write.
#[async_trait]
pub trait Trigger: plumbing::Sealed + Send + Sync + 'static {
    /// Cron, api or event.
    fn kind(&self) -> TriggerKind;

    /// Starts firing; events go to `binding.topic` through `binding.broker`
    /// (the scheduler calls it).
    #[doc(hidden)]
    async fn start(&self, binding: Binding) -> Result<(), TriggerError>;

    /// Stops firing. Firings already under way finish first.
    async fn stop(&self);

    /// The running flag and counters every trigger keeps.
    #[doc(hidden)]
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
