//! Cron triggers: fire at the instants of a crontab schedule.
//!
//! With a state store, each instant is *claimed* before the factory runs:
//! a compare-and-set moves the trigger's last fire forward, and only the
//! replica whose write lands runs the instant. On starting, the instants
//! that fell since the last fire are caught up or recorded as missed
//! ([`super::catch_up`]), then the schedule is followed from there
//! ([`start`]: many triggers start with one read and one write).

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::catch_up::CatchUp;
use super::health::ScheduleHealth;
use super::overlap::{Admit, Overlap, OverlapPolicy};
use super::{Binding, Dispatcher, Trigger, TriggerError, TriggerKind, TriggerState};
use crate::cron::CronSchedule;
use crate::firing::{Cause, CronRun, Factory, Firing};
use crate::state::Outcome;

mod claims;
mod start;

use self::claims::{ClaimQueue, Claims, Seen};
use self::start::Start;
pub use self::start::StartQueue;
use crate::timer::{OnFire, TimerHandle, TimerKey};

/// Fires at every instant of its schedule, through the scheduler's shared timer.
pub struct CronTrigger {
    schedule: Arc<CronSchedule>,
    factory: Option<Arc<dyn Factory>>,
    catch_up: CatchUp,
    jitter: std::time::Duration,
    overlap: OverlapPolicy,
    state: TriggerState,
    active: Mutex<Option<Active>>,
}

/// A started cron trigger: the timer it is on, and what fires it.
struct Active {
    timer: TimerHandle,
    firer: Arc<Firer>,
}

impl CronTrigger {
    /// A cron trigger on `schedule` running `factory` (none: publish the
    /// scheduled instant), catching up by [`CatchUp::default`].
    pub fn new(schedule: impl Into<Arc<CronSchedule>>, factory: Option<Arc<dyn Factory>>) -> Self {
        Self {
            schedule: schedule.into(),
            factory,
            catch_up: CatchUp::default(),
            jitter: std::time::Duration::ZERO,
            overlap: OverlapPolicy::Allow,
            state: TriggerState::default(),
            active: Mutex::default(),
        }
    }

    /// Sets what it runs of the instants it missed (with a state store).
    pub fn with_catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Delays each fire by [`crate::cron::jitter_offset`] of `jitter`
    /// (known once started, from the id it is registered under); the
    /// firing still carries its scheduled instant.
    pub fn with_jitter(mut self, jitter: std::time::Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets what happens to an instant due while a firing still runs.
    pub fn with_overlap(mut self, overlap: OverlapPolicy) -> Self {
        self.overlap = overlap;
        self
    }

    /// The jitter its fires are spread over.
    pub fn jitter(&self) -> std::time::Duration {
        self.jitter
    }

    /// When it fires.
    pub fn schedule(&self) -> &CronSchedule {
        &self.schedule
    }

    /// What it runs of the instants it missed.
    pub fn catch_up(&self) -> CatchUp {
        self.catch_up
    }

    fn firer(&self) -> Option<Arc<Firer>> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.as_ref().map(|a| a.firer.clone())
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Option<Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn firing(dispatcher: &Dispatcher, instant: DateTime<Utc>, run: CronRun) -> Firing {
    Firing::new(dispatcher.trigger_id.clone(), instant, Cause::Cron { run })
}

/// What a started cron trigger holds, in one allocation (100 000 triggers
/// are 100 000 of these; BENCHMARKS.md): what publishes its firings, the
/// claims and overlap state, its place on the timer, and its firings
/// under way, which its stop waits for. It is the timer's callback.
struct Firer {
    dispatcher: Dispatcher,
    /// Boxed: 8 bytes for the many triggers without a store.
    claims: Option<Box<Claims>>,
    overlap: Overlap,
    health: Arc<ScheduleHealth>,
    /// The trigger's jitter offset: each fire waits this long.
    offset: std::time::Duration,
    /// Set once the instants missed before the start are dealt with.
    timer_key: Mutex<Option<TimerKey>>,
    /// Tasks under way: firings, and the start's catch-up.
    in_flight: AtomicUsize,
    stopped: AtomicBool,
    /// Wakes the stop when the last task ends, and tasks waiting out
    /// their jitter when the trigger stops.
    wake: Notify,
}

impl OnFire for Firer {
    /// Spawns the firing of `instant`: the jitter wait, the overlap
    /// policy, the claim, the factory.
    fn fire(self: Arc<Self>, instant: DateTime<Utc>) {
        let firer = self.clone();
        self.spawn(async move { firer.run(instant).await });
    }
}

impl Firer {
    /// Counts a task in among those the stop waits for, until the guard
    /// is dropped.
    fn count_in(self: &Arc<Self>) -> Done {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Done(self.clone())
    }

    /// Runs `task`, counted among the tasks the stop waits for.
    fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        let done = self.count_in();
        let id = self.dispatcher.trigger_id.clone();
        tokio::spawn(async move {
            // A panic loses this instant only (counted and logged); the
            // trigger goes on with the next.
            let _ = crate::supervise::catch(crate::supervise::Task::Cron, &id, task).await;
            drop(done);
        });
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Returns once the trigger stops.
    async fn stopped(&self) {
        loop {
            let mut woken = pin!(self.wake.notified());
            woken.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            woken.await;
        }
    }

    /// Stops: later instants are not fired, tasks waiting out their
    /// jitter give up, and this returns once every task has ended.
    async fn stop(&self, timer: &TimerHandle) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(key) = self.lock_key().take() {
            timer.remove(key);
        }
        // Tasks waiting out their jitter give up.
        self.wake.notify_waiters();
        loop {
            let mut woken = pin!(self.wake.notified());
            woken.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            woken.await;
        }
    }

    fn lock_key(&self) -> std::sync::MutexGuard<'_, Option<TimerKey>> {
        self.timer_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits out the jitter offset of `instant`; false if the trigger
    /// stopped meanwhile (the instant is left unclaimed: the next start
    /// catches it up).
    async fn wait_out_jitter(&self, instant: DateTime<Utc>) -> bool {
        let at = instant + TimeDelta::from_std(self.offset).unwrap_or_default();
        tokio::select! {
            () = self.dispatcher.clock.sleep_until(at) => true,
            () = self.stopped() => false,
        }
    }

    async fn run(&self, instant: DateTime<Utc>) {
        let dispatcher = &self.dispatcher;
        // Paths most firings do not take are boxed: the firing's future
        // stays small, and 10 000 of them start sooner (BENCHMARKS.md).
        if !self.offset.is_zero() && !Box::pin(self.wait_out_jitter(instant)).await {
            return;
        }
        match self.overlap.admit(instant) {
            Admit::Run => {}
            Admit::Buffered => return,
            Admit::Skip => {
                let why = "the previous firing still runs (overlap)".to_owned();
                let run =
                    dispatcher.unfired(TriggerKind::Cron, instant, Outcome::Skipped, Some(why));
                return Box::pin(dispatcher.record(run)).await;
            }
        }
        let jitter_delta = TimeDelta::from_std(self.offset).unwrap_or_default();
        let mut instant = instant;
        loop {
            let claimed = match &self.claims {
                Some(claims) => {
                    Box::pin(claims.claim_or_fire_anyway(&dispatcher.trigger_id, instant)).await
                }
                None => true,
            };
            if claimed {
                let late = dispatcher.clock.now() - instant - jitter_delta;
                self.health
                    .record_lateness(late.to_std().unwrap_or_default());
                // Errors are counted and logged by the dispatcher.
                // Boxed: the task spawned per firing shrinks from 952 to
                // 128 bytes, and 10 000 due at once start ~1.6x sooner.
                let firing = firing(dispatcher, instant, CronRun::OnTime);
                let _ = Box::pin(dispatcher.fire(firing)).await;
            } else {
                tracing::debug!(trigger = %dispatcher.trigger_id, %instant, "another replica runs this instant");
            }
            match self.overlap.done() {
                // Once stopped, a buffered instant is left to the next
                // start's catch-up.
                Some(buffered) if !self.is_stopped() => instant = buffered,
                _ => break,
            }
        }
    }
}

/// Counts a task of a [`Firer`] out when it ends (or is dropped with its
/// runtime), waking the stop after the last one.
struct Done(Arc<Firer>);

impl Drop for Done {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.wake.notify_waiters();
        }
    }
}

#[async_trait]
impl Trigger for CronTrigger {
    /// The next `n` fire instants from now.
    fn next_fires(&self, n: usize) -> Vec<DateTime<Utc>> {
        self.schedule.fires_after(Utc::now()).take(n).collect()
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::Cron
    }

    async fn start(&self, binding: Binding) -> Result<(), TriggerError> {
        self.state.begin()?;
        let dispatcher = self.state.dispatcher(&binding, &self.factory);
        // With a store, claims go through the scheduler's queue, batched
        // with the other triggers' claims of the same instant.
        let claims = (binding.cron_starts.as_ref())
            .map(|queue| Box::new(Claims::new(queue.claims().clone(), self.schedule.clone())));
        let firer = Arc::new(Firer {
            dispatcher,
            claims,
            overlap: Overlap::new(self.overlap),
            health: binding.health.clone(),
            offset: crate::cron::jitter_offset(&binding.trigger_id, self.jitter),
            timer_key: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let timer = binding.timer.clone();
        *self.active() = Some(Active {
            timer: timer.clone(),
            firer: firer.clone(),
        });
        let schedule = self.schedule.clone();
        let Some(queue) = binding.cron_starts else {
            // No store, nothing owed: straight to the timer, without a task
            // (100 000 triggers starting at once spawned 100 000 of them,
            // and the allocator kept what they used; BENCHMARKS.md).
            let now = firer.dispatcher.clock.now();
            *firer.lock_key() = Some(timer.add_after(schedule, now, firer.clone()));
            return Ok(());
        };
        queue.submit(Start {
            counted: firer.count_in(),
            _starting: queue.starting_guard(),
            firer,
            schedule,
            timer,
            catch_up: self.catch_up,
            reason: binding.start,
            jitter: self.jitter,
            health: binding.health.clone(),
        });
        Ok(())
    }

    async fn stop(&self) {
        let active = self.active().take();
        if let Some(active) = active {
            active.firer.stop(&active.timer).await;
        }
        self.state.end();
    }

    async fn run_now(&self, _payload: Option<serde_json::Value>) -> Result<u64, TriggerError> {
        let firer = self.firer().ok_or(TriggerError::NotRunning)?;
        let dispatcher = &firer.dispatcher;
        dispatcher
            .fire(firing(dispatcher, Utc::now(), CronRun::OnTime))
            .await?;
        Ok(self.fire_count())
    }

    /// Runs the factory for scheduled `instant`, marked as a backfill
    /// (no claim: a backfill is asked for, on one replica).
    async fn backfill(&self, instant: DateTime<Utc>) -> Result<(), TriggerError> {
        let firer = self.firer().ok_or(TriggerError::NotRunning)?;
        let dispatcher = &firer.dispatcher;
        dispatcher
            .fire(firing(dispatcher, instant, CronRun::Backfill))
            .await?;
        Ok(())
    }

    fn state(&self) -> &TriggerState {
        &self.state
    }
}
