//! One-off timers: publish an event, or fire a trigger, once at a given
//! instant. Kept in the state store (so they survive restarts, and a
//! timer whose instant passed while the host was down fires at start,
//! marked late), and fired once across replicas: each replica keeps every
//! timer's id and instant in a min-heap (what a timer does stays in the
//! store, read when it is due: a million pending timers hold ~100 bytes
//! each here), and at its instant the one whose
//! [`StateStore::take_timer`] lands fires it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{Host, HostError};
use wasmsched_core::event::Event;
use wasmsched_core::state::{OneOffTimer, StateStore, TimerAction};

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
    /// Follow (or, same id, move) timer `id`, due at `due`.
    Add { id: Arc<str>, due: DateTime<Utc> },
    /// Stop following timer `id` (it fired elsewhere, or was cancelled).
    Remove(String),
}

impl TimerCommand {
    fn add(timer: &OneOffTimer) -> Self {
        TimerCommand::Add {
            id: timer.id.as_str().into(),
            due: timer.due,
        }
    }
}

/// The host's timer task, fed through [`TimerCommand`]s.
pub(super) struct TimerTask {
    commands: mpsc::UnboundedSender<TimerCommand>,
}

impl TimerTask {
    /// Starts following `timers` (ids and instants) for `host` (until it
    /// is dropped).
    pub(super) fn spawn(host: &Arc<Host>, timers: Vec<(String, DateTime<Utc>)>) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        for (id, due) in timers {
            let id = id.into();
            let _ = commands.send(TimerCommand::Add { id, due });
        }
        tokio::spawn(run(Arc::downgrade(host), receiver));
        Self { commands }
    }

    pub(super) fn send(&self, command: TimerCommand) {
        let _ = self.commands.send(command);
    }
}

async fn run(host: Weak<Host>, mut commands: mpsc::UnboundedReceiver<TimerCommand>) {
    let mut heap: BinaryHeap<Reverse<(DateTime<Utc>, Arc<str>)>> = BinaryHeap::new();
    let mut pending: HashMap<Arc<str>, DateTime<Utc>> = HashMap::new();
    loop {
        let clock = match host.upgrade() {
            Some(host) => host.scheduler.clock(),
            None => return,
        };
        let earliest = heap.peek().map(|Reverse((due, _))| *due);
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(TimerCommand::Add { id, due }) => {
                    heap.push(Reverse((due, id.clone())));
                    pending.insert(id, due);
                }
                Some(TimerCommand::Remove(id)) => {
                    pending.remove(id.as_str());
                }
            },
            () = sleep_until(clock, earliest) => {
                let now = clock.now();
                while let Some(Reverse((due, id))) = heap.peek().cloned() {
                    if due > now {
                        break;
                    }
                    heap.pop();
                    // A stale heap entry (removed, or moved to another instant).
                    if pending.get(&id) != Some(&due) {
                        continue;
                    }
                    pending.remove(&id);
                    let Some(host) = host.upgrade() else { return };
                    // A panic leaves the timer in the store: it fires at
                    // the next start.
                    let label = id.to_string();
                    let task = async move { host.fire_timer(&id, due, now).await };
                    wasmsched_core::supervise::spawn(wasmsched_core::supervise::Task::Timer, label, task);
                }
            }
        }
    }
}

async fn sleep_until(clock: wasmsched_core::clock::Clock, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Host {
    fn follow_timer(&self, timer: &OneOffTimer) {
        if let Some(timers) = self.timers.get() {
            timers.send(TimerCommand::add(timer));
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
            Some(timer) => self.follow_timer(&timer),
            None => self.unfollow_timer(id),
        }
        Ok(())
    }

    /// Fires timer `id`, due at `due`, as the store has it, if this replica
    /// takes it from the store first.
    async fn fire_timer(&self, id: &str, due: DateTime<Utc>, now: DateTime<Utc>) {
        let timer = match self.store.timer(id).await {
            Ok(Some(timer)) if timer.due == due => timer,
            // Moved meanwhile: followed at its new instant.
            Ok(Some(timer)) => return self.follow_timer(&timer),
            Ok(None) => return, // fired elsewhere, or cancelled
            Err(error) => {
                tracing::warn!(timer = %id, "not fired ({error}); trying again in {RETRY:?}");
                return self.follow_again(id, due);
            }
        };
        match self.store.take_timer_to_fire(&timer.id, now).await {
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
            TimerAction::Fire { trigger, data } => {
                match self.triggers().registration(trigger).await {
                    Some(registration) => registration
                        .trigger
                        .run_now(Some(data.clone()))
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    None => Err(format!("trigger `{trigger}` is not registered")),
                }
            }
        };
        match fired {
            Ok(()) => tracing::info!(timer = %timer.id, late, "timer fired"),
            Err(error) => {
                tracing::warn!(timer = %timer.id, "timer failed to fire ({error}); trying again in {RETRY:?}");
                self.retry_timer(timer);
            }
        }
    }

    /// Follows timer `id` again, shortly (the store could not be read).
    fn follow_again(&self, id: &str, due: DateTime<Utc>) {
        let again = due.max(self.scheduler.clock().now())
            + chrono::TimeDelta::from_std(RETRY).unwrap_or_default();
        if let Some(timers) = self.timers.get() {
            let commands = timers.commands.clone();
            let id: Arc<str> = id.into();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                let _ = commands.send(TimerCommand::Add { id, due: again });
            });
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
                match store.restore_timer(&timer).await {
                    Ok(()) => {
                        let _ = commands.send(TimerCommand::add(&timer));
                    }
                    Err(error) => tracing::error!(timer = %timer.id, "timer lost: {error}"),
                }
            });
        }
    }
}

/// The host's one-off timers: added, listed and cancelled (kept by the state store, fired by one replica).
#[derive(Clone, Copy)]
pub struct Timers<'a> {
    host: &'a Host,
}

impl Host {
    /// The host's one-off timers.
    pub fn timers(&self) -> Timers<'_> {
        Timers { host: self }
    }
}

impl Timers<'_> {
    /// Adds a one-off timer (or, its id taken, returns the timer kept under
    /// it, with `false`).
    pub async fn add(self, timer: OneOffTimer) -> Result<(OneOffTimer, bool), HostError> {
        if let TimerAction::Fire { trigger, .. } = &timer.action
            && self.host.triggers().registration(trigger).await.is_none()
        {
            return Err(HostError::InvalidTable(format!(
                "timer: no trigger with id `{trigger}`"
            )));
        }
        let kept = self.host.store.put_timer(&timer).await?;
        let new = kept == timer;
        if new {
            self.host.follow_timer(&kept);
            tracing::info!(timer = %kept.id, due = %kept.due, "added timer");
        }
        Ok((kept, new))
    }

    /// The pending timers, soonest first.
    pub async fn list(self) -> Result<Vec<OneOffTimer>, HostError> {
        Ok(self.host.store.timers().await?)
    }

    /// Cancels timer `id`; `false` if there was none (or it fired).
    pub async fn cancel(self, id: &str) -> Result<bool, HostError> {
        let taken = self.host.store.take_timer(id).await?;
        self.host.unfollow_timer(id);
        Ok(taken)
    }
}
