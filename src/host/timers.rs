//! One-off timers: publish an event, or fire a trigger, once at a given
//! instant. Kept in the state store (so they survive restarts, and a
//! timer whose instant passed while the host was down fires at start,
//! marked late), and fired once across replicas: each replica keeps every
//! timer in a min-heap, and at its instant the one whose
//! [`StateStore::take_timer`] lands fires it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{Host, HostError};
use crate::event::Event;
use crate::state::{OneOffTimer, StateStore, TimerAction};

/// Header on a timer's event: the timer's id.
pub const TIMER_HEADER: &str = "wasmsched-timer";
/// Header on a timer's event that fired later than its instant (the host
/// was down): `true`.
pub const LATE_HEADER: &str = "wasmsched-late";
/// A timer that fails to fire (the broker is down) is tried again this
/// much later.
const RETRY: Duration = Duration::from_secs(5);
/// How late a timer may fire and still not be called late.
const ON_TIME: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Changes to the timers the task follows.
pub(super) enum TimerCommand {
    /// Follow (or, same id, replace) this timer.
    Add(OneOffTimer),
    /// Stop following timer `id` (it fired elsewhere, or was cancelled).
    Remove(String),
}

/// The host's timer task, fed through [`TimerCommand`]s.
pub(super) struct Timers {
    commands: mpsc::UnboundedSender<TimerCommand>,
}

impl Timers {
    /// Starts following `timers` for `host` (until it is dropped).
    pub(super) fn spawn(host: &Arc<Host>, timers: Vec<OneOffTimer>) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        for timer in timers {
            let _ = commands.send(TimerCommand::Add(timer));
        }
        tokio::spawn(run(Arc::downgrade(host), receiver));
        Self { commands }
    }

    pub(super) fn send(&self, command: TimerCommand) {
        let _ = self.commands.send(command);
    }
}

async fn run(host: Weak<Host>, mut commands: mpsc::UnboundedReceiver<TimerCommand>) {
    let mut heap: BinaryHeap<Reverse<(DateTime<Utc>, String)>> = BinaryHeap::new();
    let mut pending: HashMap<String, OneOffTimer> = HashMap::new();
    loop {
        let clock = match host.upgrade() {
            Some(host) => host.scheduler.clock(),
            None => return,
        };
        let earliest = heap.peek().map(|Reverse((due, _))| *due);
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(TimerCommand::Add(timer)) => {
                    heap.push(Reverse((timer.due, timer.id.clone())));
                    pending.insert(timer.id.clone(), timer);
                }
                Some(TimerCommand::Remove(id)) => {
                    pending.remove(&id);
                }
            },
            () = sleep_until(clock, earliest) => {
                let now = clock.now();
                while let Some(Reverse((due, id))) = heap.peek().cloned() {
                    if due > now {
                        break;
                    }
                    heap.pop();
                    // A stale heap entry (removed, or replaced with another instant).
                    let Some(timer) = pending.remove(&id).filter(|t| t.due == due) else {
                        continue;
                    };
                    let Some(host) = host.upgrade() else { return };
                    tokio::spawn(async move { host.fire_timer(timer, now).await });
                }
            }
        }
    }
}

async fn sleep_until(clock: crate::clock::Clock, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Host {
    /// Adds a one-off timer (or, its id taken, returns the timer kept under
    /// it, with `false`).
    pub async fn add_timer(&self, timer: OneOffTimer) -> Result<(OneOffTimer, bool), HostError> {
        if let TimerAction::Fire { trigger, .. } = &timer.action
            && self.registration(trigger).await.is_none()
        {
            return Err(HostError::InvalidTable(format!(
                "timer: no trigger with id `{trigger}`"
            )));
        }
        let kept = self.store.put_timer(&timer).await?;
        let new = kept == timer;
        if new {
            self.follow_timer(kept.clone());
            tracing::info!(timer = %kept.id, due = %kept.due, "added timer");
        }
        Ok((kept, new))
    }

    /// The pending timers, soonest first.
    pub async fn timers(&self) -> Result<Vec<OneOffTimer>, HostError> {
        Ok(self.store.timers().await?)
    }

    /// Cancels timer `id`; `false` if there was none (or it fired).
    pub async fn cancel_timer(&self, id: &str) -> Result<bool, HostError> {
        let taken = self.store.take_timer(id).await?;
        self.unfollow_timer(id);
        Ok(taken)
    }

    fn follow_timer(&self, timer: OneOffTimer) {
        if let Some(timers) = self.timers.get() {
            timers.send(TimerCommand::Add(timer));
        }
    }

    fn unfollow_timer(&self, id: &str) {
        if let Some(timers) = self.timers.get() {
            timers.send(TimerCommand::Remove(id.to_owned()));
        }
    }

    /// Follows timer `id` as the store has it now (another replica added
    /// or removed it).
    pub(super) async fn refresh_timer(&self, id: &str) -> Result<(), String> {
        match self.store.timer(id).await.map_err(|e| e.to_string())? {
            Some(timer) => self.follow_timer(timer),
            None => self.unfollow_timer(id),
        }
        Ok(())
    }

    /// Fires `timer` if this replica takes it from the store first.
    async fn fire_timer(&self, timer: OneOffTimer, now: DateTime<Utc>) {
        match self.store.take_timer(&timer.id).await {
            Ok(true) => {}
            Ok(false) => return, // another replica fires it (or it was cancelled)
            Err(error) => {
                tracing::warn!(timer = %timer.id, "not fired ({error}); trying again");
                return self.retry_timer(timer);
            }
        }
        let late = now - timer.due > ON_TIME;
        let fired = match &timer.action {
            TimerAction::Publish { topic, data } => {
                let mut event =
                    Event::new(topic.clone(), data.clone()).with_header(TIMER_HEADER, &timer.id);
                if late {
                    event = event.with_header(LATE_HEADER, "true");
                }
                self.broker.publish(event).await.map_err(|e| e.to_string())
            }
            TimerAction::Fire { trigger, data } => match self.registration(trigger).await {
                Some(registration) => registration
                    .trigger
                    .run_now(Some(data.clone()))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => Err(format!("trigger `{trigger}` is not registered")),
            },
        };
        match fired {
            Ok(()) => tracing::info!(timer = %timer.id, late, "timer fired"),
            Err(error) => {
                tracing::warn!(timer = %timer.id, "timer failed to fire ({error}); trying again in {RETRY:?}");
                self.retry_timer(timer);
            }
        }
    }

    /// Puts `timer` back, due again shortly.
    fn retry_timer(&self, mut timer: OneOffTimer) {
        timer.due =
            self.scheduler.clock().now() + chrono::TimeDelta::from_std(RETRY).unwrap_or_default();
        let store: Arc<dyn StateStore> = self.store.clone();
        if let Some(timers) = self.timers.get() {
            let commands = timers.commands.clone();
            tokio::spawn(async move {
                match store.put_timer(&timer).await {
                    Ok(kept) => {
                        let _ = commands.send(TimerCommand::Add(kept));
                    }
                    Err(error) => tracing::error!(timer = %timer.id, "timer lost: {error}"),
                }
            });
        }
    }
}
