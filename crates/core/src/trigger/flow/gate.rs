//! The flow control of one running event trigger: each key's
//! [`KeyWindow`] kept in the state store (so a restart forgets no window
//! and loses no held event or batch, and replicas on JetStream share them),
//! the deadlines of held events and batches, and the concurrency slots.
//!
//! A key's window changes under that key's lock, by compare-and-set on its
//! revision in the store: a replica that lost the race reads the window
//! again and decides again. An event is acknowledged only once its window
//! is written, so one held or collected is the store's from then on. A
//! drop is the exception: it changes only the key's count of dropped
//! events, kept here and written with the key's next change (so a storm of
//! drops costs no store write each; a crash loses only those counts). On a
//! shared store every replica also rereads the trigger's windows now and
//! then ([`FlowGate::rescan_every`]), so a held event whose replica died
//! still fires (by one replica: the take is a compare-and-set too).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::FlowSpec;
use super::window::{Dropped, KeyWindow, Release, Step};
use crate::clock::Clock;
use crate::event::Event;
use crate::state::{StateError, StateStore};
use crate::trigger::TriggerCounters;

/// Compare-and-set attempts before an event is given back to the broker.
const CAS_TRIES: usize = 20;

/// How often replicas sharing a store reread the windows of a trigger that
/// holds events (debounce, batch).
const RESCAN_SHARED: Duration = Duration::from_secs(5);

/// A window as this replica knows it.
#[derive(Clone)]
struct Known {
    window: KeyWindow,
    revision: Option<u64>,
    /// Drops decided here and not written yet (counted in `window`).
    unsaved_drops: u64,
}

/// Flow control bound to one running trigger.
pub(crate) struct FlowGate {
    spec: FlowSpec,
    trigger: String,
    store: Option<Arc<dyn StateStore>>,
    clock: Clock,
    counters: Arc<TriggerCounters>,
    /// The windows as last read or written (drops since included), with
    /// their revision in the store.
    windows: Mutex<HashMap<String, Known>>,
    /// One lock per key, held across its store writes.
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Firings in flight per key (`concurrency`).
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// When held events and batches fire, by key.
    deadlines: Mutex<BTreeSet<(DateTime<Utc>, String)>>,
    /// Wakes [`Self::next_due`] for a new deadline.
    wake: Notify,
}

impl FlowGate {
    pub(crate) fn new(
        spec: FlowSpec,
        trigger: &str,
        store: Option<Arc<dyn StateStore>>,
        clock: Clock,
        counters: Arc<TriggerCounters>,
    ) -> Self {
        Self {
            spec,
            trigger: trigger.to_owned(),
            store,
            clock,
            counters,
            windows: Mutex::default(),
            key_locks: Mutex::default(),
            slots: Mutex::default(),
            deadlines: Mutex::default(),
            wake: Notify::new(),
        }
    }

    /// Does it keep windows (not only concurrency)?
    fn keeps_windows(&self) -> bool {
        let spec = &self.spec;
        spec.dedupe.is_some() || spec.throttle.is_some() || spec.defers()
    }

    /// How often to call [`Self::load`] again: on a store shared with
    /// other replicas, for a trigger that holds events.
    pub(crate) fn rescan_every(&self) -> Option<Duration> {
        let shared = self.store.as_ref().is_some_and(|s| s.is_shared());
        (shared && self.spec.defers()).then_some(RESCAN_SHARED)
    }

    /// Reads the trigger's windows from the store: schedules what they
    /// hold, and removes those that hold nothing any more.
    pub(crate) async fn load(&self) -> Result<(), StateError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if !self.keeps_windows() {
            return Ok(());
        }
        let now = self.clock.now();
        for (key, stored) in store.flow_windows(&self.trigger).await? {
            let Ok(window) = serde_json::from_value::<KeyWindow>(stored.value) else {
                tracing::warn!(trigger = %self.trigger, key, "dropping an unreadable flow-control window");
                store
                    .delete_flow_window(&self.trigger, &key, stored.revision)
                    .await?;
                continue;
            };
            if window.is_idle(&self.spec, now) {
                store
                    .delete_flow_window(&self.trigger, &key, stored.revision)
                    .await?;
                continue;
            }
            if let Some(due) = window.due(&self.spec) {
                self.schedule(due, &key);
            }
            let mut windows = self.windows_mut();
            let unsaved_drops = windows.get(&key).map_or(0, |k| k.unsaved_drops);
            let mut window = window;
            window.dropped += unsaved_drops;
            let known = Known {
                window,
                revision: Some(stored.revision),
                unsaved_drops,
            };
            windows.insert(key, known);
        }
        Ok(())
    }

    /// The key of `event`.
    pub(crate) fn key_of(&self, event: &Event) -> String {
        self.spec.key_of(&event.data)
    }

    /// Takes `event` through dedupe, throttle, debounce or batch, with its
    /// key's window written before this returns. An error (the store) means
    /// the event was not taken: hand it back to the broker.
    pub(crate) async fn admit(&self, key: &str, event: &Event) -> Result<Step, String> {
        if !self.keeps_windows() {
            return Ok(Step::Fire(Release {
                events: vec![event.clone()],
                stands_for: 1,
                batched: false,
            }));
        }
        let lock = self.key_lock(key);
        let _serial = lock.lock().await;
        for attempt in 0..CAS_TRIES {
            let (mut window, revision) = self.current(key, attempt > 0).await?;
            let step = window.admit(&self.spec, event.clone(), self.clock.now());
            if let Step::Dropped(_) = step {
                self.note_drop(key, window, revision);
                self.count(&step);
                return Ok(step);
            }
            if self.save(key, window, revision).await? {
                self.count(&step);
                return Ok(step);
            }
        }
        Err(self.contended(key))
    }

    /// Keeps a drop here, to be written with the key's next change.
    fn note_drop(&self, key: &str, window: KeyWindow, revision: Option<u64>) {
        let mut windows = self.windows_mut();
        let unsaved_drops = windows.get(key).map_or(0, |k| k.unsaved_drops) + 1;
        let known = Known {
            window,
            revision,
            unsaved_drops,
        };
        windows.insert(key.to_owned(), known);
    }

    /// The keys whose held event or batch has come due by now, taken off
    /// the deadlines: [`Self::take`] each. Synchronous, so that the
    /// consumer's loop never waits here on a key's lock that one of its own
    /// (unpolled) firings holds.
    pub(crate) fn due_keys(&self) -> Vec<String> {
        let now = self.clock.now();
        let mut deadlines = self.deadlines_mut();
        let mut keys = Vec::new();
        while let Some(entry) = deadlines.first()
            && entry.0 <= now
        {
            let (_, key) = deadlines.pop_first().expect("checked");
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// Takes the held event or batch of `key` out of its window if it is
    /// due (once across replicas); on a store error, tries again in 1 s.
    pub(crate) async fn take(&self, key: &str) -> Option<Release> {
        let now = self.clock.now();
        match self.take_key(key, now).await {
            Ok(release) => release,
            Err(error) => {
                tracing::warn!(trigger = %self.trigger, key, "taking a held event or batch failed, trying again in 1 s: {error}");
                self.schedule(now + chrono::TimeDelta::seconds(1), key);
                None
            }
        }
    }

    async fn take_key(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Release>, String> {
        let lock = self.key_lock(key);
        let _serial = lock.lock().await;
        let shared = self.store.as_ref().is_some_and(|s| s.is_shared());
        for attempt in 0..CAS_TRIES {
            // Another replica may have taken it: read the store's.
            let (mut window, revision) = self.current(key, shared || attempt > 0).await?;
            let Some(release) = window.take_due(&self.spec, now) else {
                if let Some(due) = window.due(&self.spec) {
                    self.schedule(due, key);
                }
                return Ok(None);
            };
            if self.save(key, window, revision).await? {
                return Ok(Some(release));
            }
        }
        Err(self.contended(key))
    }

    /// Waits until the next deadline (or a new one, or forever).
    pub(crate) async fn next_due(&self) {
        loop {
            let next = self.deadlines_mut().first().map(|(at, _)| *at);
            let notified = self.wake.notified();
            match next {
                Some(at) => tokio::select! {
                    () = self.clock.sleep_until(at) => return,
                    () = notified => {}
                },
                None => notified.await,
            }
        }
    }

    /// A slot for a firing of `key` under `concurrency` (waits, counted,
    /// while the key has as many in flight); `None` without the setting.
    pub(crate) async fn slot(&self, key: &str) -> Option<OwnedSemaphorePermit> {
        let limit = self.spec.concurrency?;
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < limit);
            slots
                .entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone()
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.counters
            .concurrency_waits
            .fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let permit = semaphore.acquire_owned().await.ok();
        self.counters.record_concurrency_wait(started.elapsed());
        permit
    }

    /// The window of `key` and its revision: the one known here, or
    /// (`fresh`, or none known) the store's, with the drops not written yet.
    async fn current(&self, key: &str, fresh: bool) -> Result<(KeyWindow, Option<u64>), String> {
        let known = self.windows_mut().get(key).cloned();
        if let Some(known) = &known
            && (!fresh || self.store.is_none())
        {
            return Ok((known.window.clone(), known.revision));
        }
        let Some(store) = &self.store else {
            return Ok((KeyWindow::default(), None));
        };
        let unsaved_drops = known.map_or(0, |k| k.unsaved_drops);
        let stored = store
            .flow_window(&self.trigger, key)
            .await
            .map_err(|e| e.to_string())?;
        let (mut window, revision) = match stored {
            Some(stored) => {
                let window = serde_json::from_value(stored.value).unwrap_or_else(|error| {
                    tracing::warn!(trigger = %self.trigger, key, "an unreadable flow-control window is started afresh: {error}");
                    KeyWindow::default()
                });
                (window, Some(stored.revision))
            }
            None => (KeyWindow::default(), None),
        };
        window.dropped += unsaved_drops;
        Ok((window, revision))
    }

    /// Writes `window` if the store still has `revision`: `false` if
    /// another writer came first. An idle window is deleted instead.
    async fn save(
        &self,
        key: &str,
        window: KeyWindow,
        revision: Option<u64>,
    ) -> Result<bool, String> {
        let due = window.due(&self.spec);
        let idle = window.is_idle(&self.spec, self.clock.now());
        let written = match (&self.store, idle, revision) {
            (None, _, _) => Some(None),
            (Some(_), true, None) => Some(None),
            (Some(store), true, Some(revision)) => {
                let deleted = store
                    .delete_flow_window(&self.trigger, key, revision)
                    .await
                    .map_err(|e| e.to_string())?;
                deleted.then_some(None)
            }
            (Some(store), false, _) => {
                let json = serde_json::to_value(&window).expect("windows serialize");
                store
                    .put_flow_window(&self.trigger, key, &json, revision)
                    .await
                    .map_err(|e| e.to_string())?
                    .map(Some)
            }
        };
        let Some(revision) = written else {
            return Ok(false);
        };
        {
            let mut windows = self.windows_mut();
            match idle {
                true => windows.remove(key),
                false => windows.insert(
                    key.to_owned(),
                    Known {
                        window,
                        revision,
                        unsaved_drops: 0,
                    },
                ),
            };
        }
        if let Some(due) = due {
            self.schedule(due, key);
        }
        Ok(true)
    }

    fn count(&self, step: &Step) {
        let counter = match step {
            Step::Dropped(Dropped::Deduplicated) => &self.counters.deduplicated,
            Step::Dropped(Dropped::Throttled) => &self.counters.throttled,
            Step::Held { replaced: Some(_) } => &self.counters.debounced,
            Step::Collected | Step::Fire(Release { batched: true, .. }) => &self.counters.batched,
            Step::Held { replaced: None } | Step::Fire(_) => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn schedule(&self, at: DateTime<Utc>, key: &str) {
        let first = {
            let mut deadlines = self.deadlines_mut();
            deadlines.insert((at, key.to_owned()));
            deadlines.first().is_some_and(|(first, _)| *first == at)
        };
        if first {
            self.wake.notify_one();
        }
    }

    fn contended(&self, key: &str) -> String {
        format!(
            "flow control of trigger `{}`: key `{key}` changed {CAS_TRIES} times while this event was being decided",
            self.trigger
        )
    }

    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.key_locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(key.to_owned()).or_default().clone()
    }

    fn windows_mut(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deadlines_mut(&self) -> std::sync::MutexGuard<'_, BTreeSet<(DateTime<Utc>, String)>> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }
}
