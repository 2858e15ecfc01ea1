//! Cron triggers: fire at the instants of a crontab schedule.
//!
//! With a state store, each instant is *claimed* before the factory runs:
//! a compare-and-set moves the trigger's last fire forward, and only the
//! replica whose write lands runs the instant. On starting, the instants
//! that fell since the last fire are caught up or recorded as missed
//! ([`super::catch_up`]), then the schedule is followed from there.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::catch_up::{self, CatchUp};
use super::health::{MissReason, ScheduleHealth};
use super::overlap::{Admit, Overlap, OverlapPolicy};
use super::{Binding, Dispatcher, StartReason, Trigger, TriggerError, TriggerKind, TriggerState};
use crate::cron::CronSchedule;
use crate::firing::{Cause, CronRun, Factory, Firing};
use crate::state::{LastFire, Outcome, StateError, StateStore, Stored};
use crate::timer::{OnFire, TimerHandle, TimerKey};

/// How many missed instants a start lists in the run history (the rest
/// are counted).
const MISSED_LISTED: usize = 100;

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
    claims: Option<Arc<Claims>>,
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
    /// Runs `task`, counted among the tasks the stop waits for.
    fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let done = Done(self.clone());
        tokio::spawn(async move {
            task.await;
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
                Some(claims) => Box::pin(claims.claim_or_fire_anyway(instant)).await,
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

/// A trigger's last fire in the store, and the revision this replica saw
/// last (so a claim usually costs one write).
struct Claims {
    store: Arc<dyn StateStore>,
    trigger: String,
    /// `<expression> @ <zone>`.
    schedule: String,
    seen: Mutex<Option<Stored<LastFire>>>,
}

/// How long a claim is tried again while the store cannot be reached.
const CLAIM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Claims give up after this many lost races in a row.
const CLAIM_ATTEMPTS: usize = 8;

impl Claims {
    /// Claims `instant`: `true` if this replica runs it, `false` if
    /// another replica did (or will).
    async fn claim(&self, instant: DateTime<Utc>) -> Result<bool, StateError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for _ in 0..CLAIM_ATTEMPTS {
            if seen.as_ref().is_some_and(|s| s.value.instant >= instant) {
                return Ok(false);
            }
            let next = LastFire {
                instant,
                schedule: self.schedule.clone(),
            };
            let revision = seen.as_ref().map(|s| s.revision);
            match self
                .store
                .claim_fire(&self.trigger, &next, revision)
                .await?
            {
                Some(new) => {
                    tracing::debug!(trigger = %self.trigger, %instant, ?revision, new, "claimed");
                    let stored = Stored {
                        value: next,
                        revision: new,
                    };
                    *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(stored);
                    return Ok(true);
                }
                None => {
                    seen = self.store.last_fire(&self.trigger).await?;
                    tracing::debug!(trigger = %self.trigger, %instant, ?revision, seen = ?seen.as_ref().map(|s| (s.value.instant, s.revision)), "claim lost");
                }
            }
        }
        tracing::warn!(trigger = %self.trigger, %instant, "gave up claiming a cron instant after {CLAIM_ATTEMPTS} lost races");
        Ok(false)
    }

    /// Claims `instant`, trying again while the store cannot be reached
    /// (a NATS cluster electing a new leader takes seconds); past
    /// [`CLAIM_PATIENCE`] it fires without a claim (the broker's dedupe
    /// still publishes once) rather than not at all.
    async fn claim_or_fire_anyway(&self, instant: DateTime<Utc>) -> bool {
        let deadline = tokio::time::Instant::now() + CLAIM_PATIENCE;
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            match self.claim(instant).await {
                Ok(claimed) => return claimed,
                Err(error) if tokio::time::Instant::now() + wait > deadline => {
                    tracing::warn!(trigger = %self.trigger, %instant, "firing without a claim: {error}");
                    return true;
                }
                Err(error) => {
                    tracing::debug!(trigger = %self.trigger, %instant, "claim failed ({error}); trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(4));
                }
            }
        }
    }
}

/// Fires the instants missed since the last fire (by the trigger's
/// policy), records the others, then follows the schedule from `now`.
struct Start {
    claims: Option<Arc<Claims>>,
    /// The started trigger (its dispatcher, its stop).
    firer: Arc<Firer>,
    schedule: Arc<CronSchedule>,
    catch_up: CatchUp,
    reason: StartReason,
    /// The trigger's jitter: a replica that is up may still be waiting to
    /// claim an instant this recent.
    jitter: std::time::Duration,
    /// Where instants not run are counted.
    health: Arc<ScheduleHealth>,
}

/// How long a replica that is up may take to claim an instant it fires:
/// instants this recent (plus the jitter) are left to the schedule, not
/// caught up, so a replica starting next to a running one does not take
/// them as missed.
const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Start {
    /// Catches up the instants up to a little before now; returns the
    /// instant after which the schedule (and its claims) takes over.
    async fn catch_up(&self) -> DateTime<Utc> {
        let now = self.firer.dispatcher.clock.now();
        let Some(claims) = &self.claims else {
            return now;
        };
        let settled = TimeDelta::from_std(self.jitter + CLAIM_GRACE).unwrap_or_default();
        let cut = now - settled;
        let last = match claims.store.last_fire(&claims.trigger).await {
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(trigger = %claims.trigger, "not catching up: {error}");
                return now;
            }
        };
        let last = match last {
            Some(last) if last.value.schedule == claims.schedule => last,
            other => {
                // New, or its schedule changed: nothing is owed before now.
                if other.is_some() {
                    tracing::info!(trigger = %claims.trigger, "schedule changed: instants of the old one are not caught up");
                }
                *claims.seen.lock().unwrap_or_else(|p| p.into_inner()) = other;
                let _ = claims.claim_or_fire_anyway(now).await;
                return now;
            }
        };
        let from = last.value.instant;
        *claims.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
        let paused = self.reason == StartReason::Resume;
        if from >= cut {
            return from;
        }
        // A long downtime is up to a million instants to walk: off the
        // runtime's workers.
        let (schedule, policy) = (self.schedule.clone(), self.catch_up);
        let planned = tokio::task::spawn_blocking(move || {
            catch_up::plan(&schedule, from, cut, &policy, paused, MISSED_LISTED)
        });
        let Ok(plan) = planned.await else {
            return cut;
        };
        let Some(newest) = plan.newest else {
            return cut;
        };
        // The replica that claims the first instant of the plan records
        // what is not run; each instant then runs where its claim lands.
        let claimed: Vec<DateTime<Utc>> = match plan.fire.is_empty() {
            true => vec![newest],
            false => plan.fire.clone(),
        };
        for (index, instant) in claimed.iter().enumerate() {
            if self.firer.is_stopped() {
                break;
            }
            if !claims.claim_or_fire_anyway(*instant).await {
                continue;
            }
            if index == 0 {
                self.record_not_run(&plan, paused).await;
            }
            if !plan.fire.is_empty() {
                let late = firing(&self.firer.dispatcher, *instant, CronRun::CatchUp);
                // Errors are counted, logged and recorded by the dispatcher.
                let _ = self.firer.dispatcher.fire(late).await;
            }
        }
        cut
    }

    async fn record_not_run(&self, plan: &catch_up::Plan, paused: bool) {
        if plan.missed_count == 0 {
            return;
        }
        let dispatcher = &self.firer.dispatcher;
        let (first, last) = (
            plan.first_missed.unwrap_or_default(),
            plan.missed.last().map(|m| m.0).unwrap_or_default(),
        );
        let (outcome, count) = (
            if paused {
                Outcome::Skipped
            } else {
                Outcome::Missed
            },
            plan.missed_count,
        );
        let health = &self.health;
        if paused {
            health.record_missed(MissReason::Paused, count as u64);
            tracing::info!(trigger = %dispatcher.trigger_id, "{count} instants skipped while paused ({first} to {last})");
        } else {
            let outside = plan.outside_window;
            let in_window = match self.catch_up.policy {
                catch_up::CatchUpPolicy::All => MissReason::OverMax,
                _ => MissReason::Policy,
            };
            health.record_missed(MissReason::OutsideWindow, outside as u64);
            health.record_missed(in_window, count.saturating_sub(outside) as u64);
            let more = if count >= catch_up::MAX_SCAN { "+" } else { "" };
            dispatcher
                .counters
                .missed
                .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                trigger = %dispatcher.trigger_id,
                "{count}{more} instants missed while no replica ran the trigger ({first} to {last}); \
                 {} run late (catch_up = {:?}, window {})",
                plan.fire.len(),
                self.catch_up.policy,
                crate::units::format_duration(self.catch_up.window),
            );
        }
        for (instant, reason) in &plan.missed {
            let run =
                dispatcher.unfired(TriggerKind::Cron, *instant, outcome, Some(reason.clone()));
            dispatcher.record(run).await;
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
        let claims = binding.store.clone().map(|store| {
            Arc::new(Claims {
                store,
                trigger: binding.trigger_id.clone(),
                schedule: format!("{} @ {}", self.schedule.expression(), self.schedule.zone()),
                seen: Mutex::new(None),
            })
        });
        let firer = Arc::new(Firer {
            dispatcher,
            claims: claims.clone(),
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
        if claims.is_none() {
            // No store, nothing owed: straight to the timer, without a task
            // (100 000 triggers starting at once spawned 100 000 of them,
            // and the allocator kept what they used; BENCHMARKS.md).
            let now = firer.dispatcher.clock.now();
            *firer.lock_key() = Some(timer.add_after(schedule, now, firer.clone()));
            return Ok(());
        }
        let start = Start {
            claims,
            firer: firer.clone(),
            schedule: self.schedule.clone(),
            catch_up: self.catch_up,
            reason: binding.start,
            jitter: self.jitter,
            health: binding.health.clone(),
        };
        firer.spawn(async move {
            let from = start.catch_up().await;
            // The instants after the catch-up's cut (the last seconds, and
            // any that fell while it ran) go the regular way: each claimed,
            // and run where its claim lands. Then the timer takes over.
            let firer = &start.firer;
            let now = firer.dispatcher.clock.now();
            for instant in schedule.fires_after(from).take_while(|t| *t <= now) {
                firer.clone().fire(instant);
            }
            // A trigger stopped while it caught up is not added to the
            // timer: the stop marks it stopped, then takes the key.
            let mut key = firer.lock_key();
            if !firer.is_stopped() {
                *key = Some(timer.add_after(schedule, now, firer.clone()));
            }
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
