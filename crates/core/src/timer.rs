//! One timer task for every cron trigger: a min-heap of next-fire instants.
//!
//! The task sleeps until the earliest instant (no polling, idle when nothing
//! is due), fires what is due, and pushes each schedule's following instant:
//! O(log n) per firing. Adding or removing a schedule wakes it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::cron::CronSchedule;

/// What a schedule added to the timer does when it fires. Must not block:
/// spawn the actual work. A closure `Fn(DateTime<Utc>)` is one; a type of
/// your own lets a caller keep all it needs in the one allocation the
/// timer holds.
pub trait OnFire: Send + Sync {
    /// Called with the scheduled instant.
    fn fire(self: Arc<Self>, instant: DateTime<Utc>);
}

impl<F: Fn(DateTime<Utc>) + Send + Sync> OnFire for F {
    fn fire(self: Arc<Self>, instant: DateTime<Utc>) {
        self(instant)
    }
}

/// Called with the scheduled instant when a schedule fires.
pub type FireCallback = Arc<dyn OnFire>;

/// Identifies one schedule added to the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerKey(u64);

enum Command {
    Add {
        key: TimerKey,
        schedule: Arc<CronSchedule>,
        callback: FireCallback,
        after: Option<DateTime<Utc>>,
    },
    Remove(TimerKey),
}

/// A handle to the timer task; the task ends when every handle is dropped.
#[derive(Clone)]
pub struct TimerHandle {
    commands: mpsc::UnboundedSender<Command>,
    next_key: Arc<AtomicU64>,
}

impl TimerHandle {
    /// Spawns the timer task on the current tokio runtime.
    pub fn spawn(clock: Clock) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(clock, receiver));
        Self {
            commands,
            next_key: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Fires `callback` at every fire instant of `schedule` from now on
    /// (a schedule shared by many triggers is held once: pass an `Arc`).
    pub fn add(&self, schedule: impl Into<Arc<CronSchedule>>, callback: FireCallback) -> TimerKey {
        self.send_add(schedule.into(), callback, None)
    }

    /// Fires `callback` at every fire instant of `schedule` after `after`;
    /// if some are already due, once, for the latest of them.
    pub fn add_after(
        &self,
        schedule: impl Into<Arc<CronSchedule>>,
        after: DateTime<Utc>,
        callback: FireCallback,
    ) -> TimerKey {
        self.send_add(schedule.into(), callback, Some(after))
    }

    fn send_add(
        &self,
        schedule: Arc<CronSchedule>,
        callback: FireCallback,
        after: Option<DateTime<Utc>>,
    ) -> TimerKey {
        let key = TimerKey(self.next_key.fetch_add(1, Ordering::Relaxed));
        // The task only stops once every handle (including this one) is gone.
        let _ = self.commands.send(Command::Add {
            key,
            schedule,
            callback,
            after,
        });
        key
    }

    /// Stops firing the schedule added as `key`.
    pub fn remove(&self, key: TimerKey) {
        let _ = self.commands.send(Command::Remove(key));
    }
}

struct Entry {
    schedule: Arc<CronSchedule>,
    callback: FireCallback,
    /// The instant this entry's heap item is for; stale heap items differ.
    next: DateTime<Utc>,
}

async fn run(clock: Clock, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut entries: HashMap<TimerKey, Entry> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(DateTime<Utc>, u64)>> = BinaryHeap::new();
    loop {
        let earliest = heap.peek().map(|Reverse((at, _))| *at);
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Add { key, schedule, callback, after }) => {
                    if let Some(next) = schedule.next_after(after.unwrap_or_else(|| clock.now())) {
                        heap.push(Reverse((next, key.0)));
                        entries.insert(key, Entry { schedule, callback, next });
                    }
                }
                Some(Command::Remove(key)) => {
                    entries.remove(&key);
                }
            },
            () = sleep_until(clock, earliest) => {
                fire_due(clock.now(), &mut heap, &mut entries);
            }
        }
    }
}

async fn sleep_until(clock: Clock, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Fires every entry due at `now`, then schedules each one's following
/// instant. An entry that fell behind (the process was suspended) fires
/// once, for its latest missed instant, and resumes from now.
///
/// Triggers due together usually share a schedule (`CronSchedule::shared`),
/// so each distinct (schedule, instant) is stepped once, and every callback
/// is called before any next instant is computed.
fn fire_due(
    now: DateTime<Utc>,
    heap: &mut BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    entries: &mut HashMap<TimerKey, Entry>,
) {
    let mut due: Vec<(TimerKey, DateTime<Utc>)> = Vec::new();
    while let Some(&Reverse((at, key))) = heap.peek() {
        if at > now {
            break;
        }
        heap.pop();
        let key = TimerKey(key);
        // A removed entry, or a stale heap item, is skipped.
        if entries.get(&key).is_some_and(|entry| entry.next == at) {
            due.push((key, at));
        }
    }
    let mut next = NextInstants::default();
    let mut calls = Vec::with_capacity(due.len());
    for (key, at) in &mut due {
        let entry = &entries[key];
        let mut missed = 0u64;
        while let Some(later) = next.after(&entry.schedule, *at).filter(|n| *n <= now) {
            *at = later;
            missed += 1;
        }
        if missed > 0 {
            tracing::warn!(schedule = %entry.schedule, missed, "timer fell behind; firing once for the latest missed instant");
        }
        calls.push((entry.callback.clone(), *at));
    }
    call_all(calls);
    for (key, at) in due {
        let Some(entry) = entries.get_mut(&key) else {
            continue;
        };
        match next.after(&entry.schedule, at) {
            Some(following) => {
                entry.next = following;
                heap.push(Reverse((following, key.0)));
            }
            None => {
                entries.remove(&key);
            }
        }
    }
}

/// Due callbacks are called by tasks of up to this many each, so every
/// worker thread of the runtime spawns firings at once.
const CALLS_PER_TASK: usize = 256;

/// Calls each callback with its instant: a few directly, many from tasks of
/// [`CALLS_PER_TASK`] each (spawning 10 000 firings from one task alone
/// took ~25 ms on 2 cores; BENCHMARKS.md, "Many cron triggers").
fn call_all(mut calls: Vec<(FireCallback, DateTime<Utc>)>) {
    while calls.len() > CALLS_PER_TASK {
        let chunk = calls.split_off(calls.len() - CALLS_PER_TASK);
        tokio::spawn(async move {
            for (callback, at) in chunk {
                callback.fire(at);
            }
        });
    }
    for (callback, at) in calls {
        callback.fire(at);
    }
}

/// `schedule.next_after(instant)`, computed once per distinct schedule and
/// instant within one round of firing.
#[derive(Default)]
struct NextInstants(HashMap<(usize, DateTime<Utc>), Option<DateTime<Utc>>>);

impl NextInstants {
    fn after(
        &mut self,
        schedule: &Arc<CronSchedule>,
        instant: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let id = Arc::as_ptr(schedule) as usize;
        *self
            .0
            .entry((id, instant))
            .or_insert_with(|| schedule.next_after(instant))
    }
}
