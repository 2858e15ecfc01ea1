//! What the scheduler hands a trigger and what every trigger keeps: the
//! plumbing behind the [`Trigger`](super::Trigger) port. Public types in a
//! private module: nameable here, not outside the crate, so no one else
//! starts a trigger or implements the (sealed) port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Dispatcher, StartQueue, TriggerCounters, TriggerError, health};
use crate::bounded::EventLimits;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::firing::Factory;
use crate::state::{RunLog, StateStore};
use crate::timer::TimerHandle;
use crate::topic::Topic;

/// Implemented by the three trigger kinds only.
pub trait Sealed {}

impl Sealed for super::ApiTrigger {}
impl Sealed for super::CronTrigger {}
impl Sealed for super::EventTrigger {}

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
    pub(crate) fn dispatcher(
        &self,
        binding: &Binding,
        factory: &Option<Arc<dyn Factory>>,
    ) -> Dispatcher {
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
