//! What a cron trigger does when it starts with a state store: read its
//! last fire; catch up the instants missed since (by its policy) and
//! record the others; claim the start instant of a new (or changed)
//! schedule, so a later start knows what it owes; then follow the
//! schedule on the timer.
//!
//! Triggers starting together (a host with 100 000 of them) start in
//! batches of up to [`BATCH`]: one task reads their last fires in one call
//! and writes their claims in one more (one transaction on SQLite),
//! instead of a task and two store round trips each. The rare trigger
//! that owes a catch-up, and any whose batch call failed, go on in a task
//! of its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use super::super::catch_up::{self, CatchUp};
use super::super::health::{MissReason, ScheduleHealth};
use super::super::{StartReason, TriggerKind};
use super::{ClaimQueue, Claims, Done, Firer, Seen, firing};
use crate::cron::CronSchedule;
use crate::firing::CronRun;
use crate::state::{FireClaim, LastFire, Outcome, StateStore, Stored};
use crate::timer::{OnFire, TimerHandle};

/// The most triggers started with one read and one write.
const BATCH: usize = 1024;

/// How many missed instants a start lists in the run history (the rest
/// are counted).
const MISSED_LISTED: usize = 100;

/// How long a replica that is up may take to claim an instant it fires:
/// instants this recent (plus the jitter) are left to the schedule, not
/// caught up, so a replica starting next to a running one does not take
/// them as missed.
const CLAIM_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The cron triggers of one scheduler waiting to start against its state
/// store. Cheap to clone.
#[derive(Clone)]
pub struct StartQueue {
    inner: Arc<Queue>,
}

struct Queue {
    store: Arc<dyn StateStore>,
    /// Where the started triggers claim their instants.
    claims: ClaimQueue,
    waiting: Mutex<Waiting>,
    /// Starts submitted and not yet done (queued, in a batch, or catching
    /// up): the host is settled once none is.
    starting: Arc<AtomicUsize>,
}

/// Counts a start as under way until it is dropped (done, or given up
/// because its trigger stopped).
pub(super) struct Starting(Arc<AtomicUsize>);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Waiting {
    starts: VecDeque<Start>,
    /// A task is starting the waiting triggers.
    draining: bool,
}

impl StartQueue {
    /// An empty queue for triggers claiming their instants in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        let waiting = Mutex::default();
        let claims = ClaimQueue::new(store.clone());
        Self {
            inner: Arc::new(Queue {
                store,
                claims,
                waiting,
                starting: Arc::default(),
            }),
        }
    }

    /// Counts a start in among those under way, until the guard (kept in
    /// its [`Start`]) is dropped.
    pub(super) fn starting_guard(&self) -> Starting {
        self.inner.starting.fetch_add(1, Ordering::Relaxed);
        Starting(self.inner.starting.clone())
    }

    /// Starts under way: cron triggers still reading their last fire,
    /// claiming their first instant or catching up.
    pub fn starting(&self) -> usize {
        self.inner.starting.load(Ordering::Relaxed)
    }

    /// Where the triggers started from this queue claim their instants.
    pub(super) fn claims(&self) -> &ClaimQueue {
        &self.inner.claims
    }

    /// Queues `start`; a task starts what is queued, a batch at a time.
    pub(super) fn submit(&self, start: Start) {
        let spawn = {
            let mut waiting = self.inner.lock();
            waiting.starts.push_back(start);
            !std::mem::replace(&mut waiting.draining, true)
        };
        if spawn {
            tokio::spawn(self.inner.clone().drain());
        }
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn drain(self: Arc<Self>) {
        loop {
            let batch: Vec<Start> = {
                let mut waiting = self.lock();
                if waiting.starts.is_empty() {
                    waiting.draining = false;
                    // 100 000 starts left ~10 MiB of capacity behind.
                    waiting.starts = VecDeque::new();
                    return;
                }
                let count = waiting.starts.len().min(BATCH);
                waiting.starts.drain(..count).collect()
            };
            self.start_batch(batch).await;
        }
    }

    async fn start_batch(&self, batch: Vec<Start>) {
        // A trigger stopped while it waited does not start (dropping its
        // start lets the stop return).
        let batch: Vec<Start> = batch
            .into_iter()
            .filter(|start| !start.firer.is_stopped())
            .collect();
        let ids: Vec<String> = batch.iter().map(|s| s.trigger().to_owned()).collect();
        let mut last = match self.store.last_fires(&ids).await {
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(
                    "reading the last fires of {} starting cron triggers failed ({error}); \
                     each tries alone",
                    batch.len()
                );
                for start in batch {
                    tokio::spawn(start.read_and_finish());
                }
                return;
            }
        };
        let (mut claims, mut claiming) = (Vec::new(), Vec::new());
        for start in batch {
            let step = start.first_step(last.remove(start.trigger()));
            match step {
                Step::Follow(from) => start.follow(from),
                Step::ClaimStart(now) => {
                    claims.push(FireClaim {
                        id: start.trigger().to_owned(),
                        next: start.claims().last_fire(now),
                        seen: start.claims().seen().map(|s| s.revision),
                    });
                    claiming.push((start, now));
                }
                Step::CatchUp { .. } => {
                    tokio::spawn(start.finish(step));
                }
            }
        }
        if claims.is_empty() {
            return;
        }
        let answers = match self.store.claim_fires(&claims).await {
            Ok(answers) => answers,
            Err(error) => {
                tracing::warn!(
                    "claiming the start of {} cron triggers failed ({error}); each tries alone",
                    claiming.len()
                );
                for (start, now) in claiming {
                    tokio::spawn(start.finish(Step::ClaimStart(now)));
                }
                return;
            }
        };
        for ((start, now), (claim, answer)) in
            claiming.into_iter().zip(claims.into_iter().zip(answers))
        {
            match answer {
                Some(revision) => {
                    let instant = claim.next.instant;
                    start.claims().set_seen(Some(Seen { instant, revision }));
                    start.follow(now);
                }
                // Another replica wrote first: claim again, knowing its write.
                None => {
                    tokio::spawn(start.finish(Step::ClaimStart(now)));
                }
            }
        }
    }
}

/// What a start does once its last fire is read.
enum Step {
    /// Nothing is owed: follow the schedule after this instant.
    Follow(DateTime<Utc>),
    /// A new (or changed) schedule: claim this instant, then follow.
    ClaimStart(DateTime<Utc>),
    /// Instants fell between the last fire and `cut`: catch them up.
    CatchUp {
        from: DateTime<Utc>,
        cut: DateTime<Utc>,
    },
}

/// A cron trigger starting with a store: counted among its trigger's tasks
/// (a stop waits for it) until it is on the timer.
pub(super) struct Start {
    pub(super) counted: Done,
    /// Counted among the starts under way while it lives.
    pub(super) _starting: Starting,
    /// The started trigger (its dispatcher, its stop).
    pub(super) firer: Arc<Firer>,
    pub(super) schedule: Arc<CronSchedule>,
    pub(super) timer: TimerHandle,
    pub(super) catch_up: CatchUp,
    pub(super) reason: StartReason,
    /// The trigger's jitter: a replica that is up may still be waiting to
    /// claim an instant this recent.
    pub(super) jitter: std::time::Duration,
    /// Where instants not run are counted.
    pub(super) health: Arc<ScheduleHealth>,
}

impl Start {
    fn claims(&self) -> &Claims {
        self.firer
            .claims
            .as_deref()
            .expect("a trigger starts with a store")
    }

    fn trigger(&self) -> &str {
        &self.firer.dispatcher.trigger_id
    }

    /// What is owed, given the trigger's last fire in the store.
    fn first_step(&self, last: Option<Stored<LastFire>>) -> Step {
        let now = self.firer.dispatcher.clock.now();
        let claims = self.claims();
        match last {
            Some(last) if last.value.schedule == claims.schedule_key() => {
                let from = last.value.instant;
                claims.set_seen(Some(Seen::from(&last)));
                let settled = TimeDelta::from_std(self.jitter + CLAIM_GRACE).unwrap_or_default();
                let cut = now - settled;
                match from >= cut {
                    true => Step::Follow(from),
                    false => Step::CatchUp { from, cut },
                }
            }
            other => {
                // New, or its schedule changed: nothing is owed before now.
                if other.is_some() {
                    tracing::info!(trigger = %self.trigger(), "schedule changed: instants of the old one are not caught up");
                }
                claims.set_seen(other.as_ref().map(Seen::from));
                Step::ClaimStart(now)
            }
        }
    }

    /// The whole start, alone: read, then finish.
    async fn read_and_finish(self) {
        match self.claims().store().last_fire(self.trigger()).await {
            Ok(last) => {
                let step = self.first_step(last);
                self.finish(step).await;
            }
            Err(error) => {
                tracing::warn!(trigger = %self.trigger(), "not catching up: {error}");
                let now = self.firer.dispatcher.clock.now();
                self.follow(now);
            }
        }
    }

    /// Does what `step` says (claims trying again while the store is
    /// unreachable), then follows the schedule.
    async fn finish(self, step: Step) {
        let from = match step {
            Step::Follow(from) => from,
            Step::ClaimStart(now) => {
                let _ = self
                    .claims()
                    .claim_or_fire_anyway(self.trigger(), now)
                    .await;
                now
            }
            Step::CatchUp { from, cut } => self.catch_up(from, cut).await,
        };
        self.follow(from);
    }

    /// Fires the instants after `from` that are already due (each claimed,
    /// and run where its claim lands), then hands the trigger to the
    /// timer, unless it stopped meanwhile.
    fn follow(self, from: DateTime<Utc>) {
        let firer = &self.firer;
        let now = firer.dispatcher.clock.now();
        for instant in self.schedule.fires_after(from).take_while(|t| *t <= now) {
            firer.clone().fire(instant);
        }
        // A trigger stopped while it started is not added to the timer: the
        // stop marks it stopped, then takes the key.
        let mut key = firer.lock_key();
        if !firer.is_stopped() {
            *key = Some(
                self.timer
                    .add_after(self.schedule.clone(), now, firer.clone()),
            );
        }
        drop(key);
        drop(self.counted);
    }

    /// Catches up the instants in `(from, cut]` by the trigger's policy;
    /// returns the instant after which the schedule (and its claims) takes
    /// over.
    async fn catch_up(&self, from: DateTime<Utc>, cut: DateTime<Utc>) -> DateTime<Utc> {
        let paused = self.reason == StartReason::Resume;
        let claims = self.claims();
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
            if !claims.claim_or_fire_anyway(self.trigger(), *instant).await {
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
