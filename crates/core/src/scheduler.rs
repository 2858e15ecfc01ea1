//! The scheduler: a registry of triggers bound to topics, started and
//! stopped together, changeable while running. It owns what runs: which
//! triggers are registered, paused, and started.
//!
//! Two locks: `state` (a plain mutex, never held across an `.await`)
//! guards the registry, so reading it (`/healthz`, `/metrics`, the admin
//! API) never waits; `changes` (async) puts changes in a row, and is held
//! while a trigger starts or stops, which on JetStream creates or drains a
//! durable consumer over the network.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::bounded::EventLimits;
use crate::broker::Broker;
use crate::clock::Clock;
use crate::firing::TriggerKind;
use crate::state::{RunLog, StateError, StateStore};
use crate::timer::TimerHandle;
use crate::topic::Topic;
use crate::trigger::health::ScheduleHealth;
use crate::trigger::{Binding, StartQueue, StartReason, Trigger, TriggerError};

/// Why a scheduler operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The id is taken.
    #[error("a trigger with id `{0}` is already registered")]
    DuplicateId(String),
    /// No trigger has this id.
    #[error("no trigger with id `{0}` is registered")]
    UnknownId(String),
    /// Ids must not be empty.
    #[error("trigger id must not be empty")]
    EmptyId,
    /// The trigger could not be started.
    #[error("trigger `{id}`: {source}")]
    Trigger {
        /// Its id.
        id: String,
        /// Why.
        #[source]
        source: TriggerError,
    },
    /// The state store refused the change; nothing changed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// How long a stop waits for the run history to be written.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A registered trigger and the topic it publishes to.
#[derive(Clone)]
pub struct Registration {
    /// The trigger.
    pub trigger: Arc<dyn Trigger>,
    /// Where its events are published (unless an event names its own).
    pub topic: Topic,
}

/// Runs triggers and publishes what their factories make.
pub struct Scheduler {
    broker: Arc<dyn Broker>,
    clock: Clock,
    timer: OnceLock<TimerHandle>,
    limits: EventLimits,
    store: Option<Arc<dyn StateStore>>,
    runs: OnceLock<RunLog>,
    /// Where cron triggers start against the store, made on first use.
    cron_starts: OnceLock<StartQueue>,
    health: Arc<ScheduleHealth>,
    state: Mutex<State>,
    /// Held by every change, across the starts and stops it awaits.
    changes: tokio::sync::Mutex<()>,
}

impl State {
    fn registration(&self, id: &str) -> Result<Registration, SchedulerError> {
        self.triggers
            .get(id)
            .cloned()
            .ok_or_else(|| SchedulerError::UnknownId(id.to_owned()))
    }
}

#[derive(Default)]
struct State {
    running: bool,
    triggers: BTreeMap<String, Registration>,
    /// Registered but held stopped until resumed.
    paused: BTreeSet<String>,
}

impl Scheduler {
    /// A scheduler publishing to `broker`, on the system clock.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self::with_clock(broker, Clock::system())
    }

    /// A scheduler on `clock` (see [`Clock::simulated`] for tests).
    pub fn with_clock(broker: Arc<dyn Broker>, clock: Clock) -> Self {
        Self {
            broker,
            clock,
            timer: OnceLock::new(),
            limits: EventLimits::default(),
            store: None,
            runs: OnceLock::new(),
            cron_starts: OnceLock::new(),
            health: Arc::default(),
            state: Mutex::new(State::default()),
            changes: tokio::sync::Mutex::new(()),
        }
        .with_event_limits(EventLimits::default())
    }

    /// Sets what one event and one firing may carry (default
    /// [`EventLimits::default`]: 1 MiB, 10 000 events). `max_bytes` is
    /// lowered to what the broker can carry ([`Broker::max_event_bytes`]).
    pub fn with_event_limits(mut self, mut limits: EventLimits) -> Self {
        if let Some(most) = self.broker.max_event_bytes() {
            limits.max_bytes = limits.max_bytes.min(most);
        }
        self.limits = limits;
        self
    }

    /// Keeps pauses, last fires and run history in `store`, and claims
    /// each cron instant there (so replicas sharing it run it once).
    /// Call [`Self::restore`] before registering triggers.
    pub fn with_state(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Holds paused the triggers the store says are paused (registered
    /// now or later).
    pub async fn restore(&self) -> Result<(), StateError> {
        if let Some(store) = &self.store {
            let paused = store.paused().await?;
            let _change = self.changes.lock().await;
            self.state().paused.extend(paused);
        }
        Ok(())
    }

    /// The state store, if any.
    pub fn store(&self) -> Option<&Arc<dyn StateStore>> {
        self.store.as_ref()
    }

    /// How well the cron schedule keeps time (lateness, missed instants).
    pub fn schedule_health(&self) -> &ScheduleHealth {
        &self.health
    }

    /// The run history's writer (with a state store, once started).
    pub fn run_log(&self) -> Option<&RunLog> {
        self.runs.get()
    }

    /// What one event and one firing may carry.
    pub fn event_limits(&self) -> EventLimits {
        self.limits
    }

    /// The broker it publishes to.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// The clock its triggers read.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Adds a trigger publishing to `topic`; while the scheduler runs, the
    /// trigger starts at once.
    pub async fn register_trigger<T: Trigger>(
        &self,
        id: impl Into<String>,
        trigger: Arc<T>,
        topic: Topic,
    ) -> Result<(), SchedulerError> {
        self.register(id.into(), trigger, topic).await
    }

    /// [`Self::register_trigger`] for a trigger already behind `dyn Trigger`.
    pub async fn register(
        &self,
        id: String,
        trigger: Arc<dyn Trigger>,
        topic: Topic,
    ) -> Result<(), SchedulerError> {
        if id.is_empty() {
            return Err(SchedulerError::EmptyId);
        }
        let _change = self.changes.lock().await;
        let (running, paused) = {
            let state = self.state();
            if state.triggers.contains_key(&id) {
                return Err(SchedulerError::DuplicateId(id));
            }
            (state.running, state.paused.contains(&id))
        };
        let registration = Registration { trigger, topic };
        if running && !paused {
            self.start_one(&id, &registration, StartReason::Start)
                .await?;
        }
        // Debug: a host registering 100 000 triggers logs one summary.
        tracing::debug!(trigger = %id, kind = %registration.trigger.kind(), topic = %registration.topic, paused, "registered trigger");
        self.state().triggers.insert(id, registration);
        Ok(())
    }

    /// Stops and removes a trigger, and forgets whether it was paused;
    /// returns it.
    pub async fn unregister_trigger(&self, id: &str) -> Result<Registration, SchedulerError> {
        let _change = self.changes.lock().await;
        let registration = self.withdraw_locked(id).await?;
        self.forget_locked(id).await;
        Ok(registration)
    }

    /// Stops and removes a trigger that is being replaced (a new table or
    /// plugin version on its way): a pause stays, and holds the trigger
    /// registered next under the same id. Returns the trigger.
    pub async fn withdraw(&self, id: &str) -> Result<Registration, SchedulerError> {
        let _change = self.changes.lock().await;
        self.withdraw_locked(id).await
    }

    async fn withdraw_locked(&self, id: &str) -> Result<Registration, SchedulerError> {
        let registration = self
            .state()
            .triggers
            .remove(id)
            .ok_or_else(|| SchedulerError::UnknownId(id.to_owned()))?;
        registration.trigger.stop().await;
        tracing::info!(trigger = %id, "unregistered trigger");
        Ok(registration)
    }

    /// Forgets what is kept for trigger `id` (see [`Self::withdraw`]):
    /// its pause and, in a store of its own, its last fire. A store shared
    /// with other replicas keeps them (the trigger may still run there);
    /// [`Self::forget_everywhere`] forgets them for all.
    pub async fn forget_pause(&self, id: &str) {
        let _change = self.changes.lock().await;
        self.forget_locked(id).await;
    }

    /// Forgets trigger `id`'s pause and last fire in the store, for every
    /// replica sharing it (the trigger is gone from all of them).
    pub async fn forget_everywhere(&self, id: &str) -> Result<(), StateError> {
        match &self.store {
            Some(store) => {
                store.set_paused(id, false).await?;
                store.forget_fire(id).await
            }
            None => Ok(()),
        }
    }

    async fn forget_locked(&self, id: &str) {
        self.state().paused.remove(id);
        if self.store.as_ref().is_some_and(|s| !s.is_shared())
            && let Err(error) = self.forget_everywhere(id).await
        {
            tracing::warn!(trigger = %id, "removed, but {error}");
        }
    }

    /// Starts every registered trigger. A trigger that fails to start is
    /// reported; the others still start.
    pub async fn start(&self) -> Result<(), SchedulerError> {
        let _change = self.changes.lock().await;
        let mut to_start: Vec<(String, Registration)> = {
            let mut state = self.state();
            state.running = true;
            let state = &*state;
            state
                .triggers
                .iter()
                .filter(|(id, r)| !r.trigger.is_running() && !state.paused.contains(*id))
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect()
        };
        // Subscribers first: an event trigger (or a sink) that is not yet
        // subscribed when a cron trigger catches up at start would miss
        // its events on a broker that keeps none (the memory broker).
        to_start.sort_by_key(|(_, registration)| start_rank(registration.trigger.kind()));
        let mut first_error = None;
        for (id, registration) in &to_start {
            if let Err(error) = self.start_one(id, registration, StartReason::Start).await {
                tracing::error!("{error}");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stops every trigger, letting firings under way finish.
    pub async fn stop(&self) {
        let _change = self.changes.lock().await;
        let registrations: Vec<Registration> = {
            let mut state = self.state();
            state.running = false;
            state.triggers.values().cloned().collect()
        };
        // Sources (cron, api) first, then the event triggers and sinks, so
        // what the sources' last firings publish still has its subscribers.
        // Each phase all at once: one trigger slow to stop holds up only
        // itself, and `Self::stopping` can name it.
        let (sources, subscribers): (Vec<_>, Vec<_>) = registrations
            .iter()
            .partition(|registration| registration.trigger.kind() != TriggerKind::Event);
        for phase in [sources, subscribers] {
            futures_util::future::join_all(phase.iter().map(|r| r.trigger.stop())).await;
        }
        if let Some(runs) = self.runs.get() {
            // A store that does not answer does not hold up the stop.
            let flushed = tokio::time::timeout(FLUSH_TIMEOUT, runs.flush()).await;
            if flushed.is_err() {
                tracing::warn!(
                    "run history: the last runs were not written (the state store does not answer)"
                );
            }
        }
    }

    /// Stops a trigger without unregistering it; it stays stopped across
    /// [`Self::start`] until [`Self::resume`], and (with a state store)
    /// across restarts and on every replica sharing the store.
    pub async fn pause(&self, id: &str) -> Result<(), SchedulerError> {
        let _change = self.changes.lock().await;
        self.state().registration(id)?;
        if let Some(store) = &self.store {
            store.set_paused(id, true).await?;
        }
        self.pause_locked(id).await
    }

    /// Resumes a paused trigger, or one that failed to start: it starts if
    /// the scheduler runs.
    pub async fn resume(&self, id: &str) -> Result<(), SchedulerError> {
        let _change = self.changes.lock().await;
        self.state().registration(id)?;
        let was_paused = self.state().paused.contains(id);
        if let Some(store) = &self.store {
            store.set_paused(id, false).await?;
        }
        let resumed = self.resume_locked(id).await;
        if let (Err(_), Some(store), true) = (&resumed, &self.store, was_paused) {
            // Still paused here: so it stays in the store.
            if let Err(error) = store.set_paused(id, true).await {
                tracing::warn!(trigger = %id, "failed to start, and {error}");
            }
        }
        resumed
    }

    /// Pauses or resumes trigger `id` here, as another replica did in the
    /// store (which is not written again). An id not registered here is
    /// held paused, or not, for when it is.
    pub async fn apply_pause(&self, id: &str, paused: bool) -> Result<(), SchedulerError> {
        let _change = self.changes.lock().await;
        let registered = self.state().triggers.contains_key(id);
        match (registered, paused) {
            (true, true) => self.pause_locked(id).await,
            (true, false) => self.resume_locked(id).await,
            (false, true) => {
                self.state().paused.insert(id.to_owned());
                Ok(())
            }
            (false, false) => {
                self.state().paused.remove(id);
                Ok(())
            }
        }
    }

    async fn pause_locked(&self, id: &str) -> Result<(), SchedulerError> {
        let registration = self.state().registration(id)?;
        registration.trigger.stop().await;
        self.state().paused.insert(id.to_owned());
        tracing::info!(trigger = %id, "paused trigger");
        Ok(())
    }

    async fn resume_locked(&self, id: &str) -> Result<(), SchedulerError> {
        let (registration, running, paused) = {
            let state = self.state();
            (
                state.registration(id)?,
                state.running,
                state.paused.contains(id),
            )
        };
        // Starts any stopped trigger, not only a paused one (one whose start
        // failed, say while the broker was unreachable); a paused trigger
        // that fails to start stays paused.
        if running && !registration.trigger.is_running() {
            let reason = match paused {
                true => StartReason::Resume,
                false => StartReason::Start,
            };
            self.start_one(id, &registration, reason).await?;
        }
        self.state().paused.remove(id);
        tracing::info!(trigger = %id, "resumed trigger");
        Ok(())
    }

    /// Is the trigger paused (or, withdrawn, held paused for its return)?
    pub async fn is_paused(&self, id: &str) -> bool {
        self.state().paused.contains(id)
    }

    /// The ids held paused (registered or not).
    pub async fn paused_ids(&self) -> BTreeSet<String> {
        self.state().paused.clone()
    }

    /// Has [`Self::start`] been called (and not [`Self::stop`] since)?
    pub async fn is_running(&self) -> bool {
        self.state().running
    }

    /// Trigger id -> (trigger, topic). Never waits for a change under way.
    pub async fn registered_triggers(&self) -> BTreeMap<String, Registration> {
        self.state().triggers.clone()
    }

    /// How many triggers are registered (cheap: nothing is copied).
    pub fn trigger_count(&self) -> usize {
        self.state().triggers.len()
    }

    /// Cron triggers still starting against the state store (reading
    /// their last fire, claiming their first instant, catching up): the
    /// start goes on after [`Self::start`] returns, and the scheduler is
    /// settled once this is 0.
    pub fn starting(&self) -> usize {
        self.cron_starts.get().map_or(0, StartQueue::starting)
    }

    /// The ids of the triggers that are running: during [`Self::stop`],
    /// those still stopping. Never waits for a change under way.
    pub fn running_ids(&self) -> Vec<String> {
        let state = self.state();
        let running = state.triggers.iter();
        running
            .filter(|(_, r)| r.trigger.is_running())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// One registered trigger. Never waits for a change under way.
    pub async fn trigger(&self, id: &str) -> Option<Registration> {
        self.state().triggers.get(id).cloned()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn start_one(
        &self,
        id: &str,
        registration: &Registration,
        start: StartReason,
    ) -> Result<(), SchedulerError> {
        let binding = Binding {
            trigger_id: id.to_owned(),
            topic: registration.topic.clone(),
            broker: self.broker.clone(),
            timer: self.timer().clone(),
            clock: self.clock,
            limits: self.limits,
            store: self.store.clone(),
            runs: self.run_log_started(),
            start,
            health: self.health.clone(),
            cron_starts: self.store.as_ref().map(|store| {
                self.cron_starts
                    .get_or_init(|| StartQueue::new(store.clone()))
                    .clone()
            }),
        };
        registration
            .trigger
            .start(binding)
            .await
            .map_err(|source| SchedulerError::Trigger {
                id: id.to_owned(),
                source,
            })
    }

    /// The run history's writer, spawned on first use (with a store).
    fn run_log_started(&self) -> Option<RunLog> {
        let store = self.store.as_ref().filter(|s| s.keeps_runs())?;
        Some(
            self.runs
                .get_or_init(|| RunLog::spawn(store.clone()))
                .clone(),
        )
    }

    /// The shared cron timer, spawned on first use.
    fn timer(&self) -> &TimerHandle {
        self.timer.get_or_init(|| TimerHandle::spawn(self.clock))
    }
}

/// The order triggers start in: event triggers (and sinks) subscribe
/// before the api and cron triggers whose events they take.
fn start_rank(kind: TriggerKind) -> u8 {
    match kind {
        TriggerKind::Event => 0,
        TriggerKind::Api => 1,
        TriggerKind::Cron => 2,
    }
}
