//! Claims of cron instants: a compare-and-set of each trigger's last fire
//! in the state store, so that one replica runs each instant.
//!
//! Firings due together (10 000 triggers on `* * * * *`) claim together
//! on a store that writes a batch all or none (SQLite): each hands its
//! claim to the scheduler's [`ClaimQueue`] and waits; one task writes what
//! has gathered in one [`StateStore::claim_fires`] call (one transaction),
//! then the next gathering. A lone claim is written at once; under load a
//! batch is whatever queued while the last one was written, so no claim
//! waits for a timer. On other stores (JetStream) each claim is its own
//! compare-and-set: a failed batch would leave unknown which landed, and a
//! claim that landed but was reported failed would be retried, lost, and
//! its instant skipped.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::cron::CronSchedule;
use crate::state::{FireClaim, LastFire, StateError, StateStore, Stored};

/// The most claims written in one call.
const BATCH: usize = 1024;

/// How long a claim is tried again while the store cannot be reached.
const CLAIM_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Claims give up after this many lost races in a row.
const CLAIM_ATTEMPTS: usize = 8;

type Answer = Result<Option<u64>, StateError>;

/// The claims of one scheduler's cron triggers waiting to be written.
/// Cheap to clone.
#[derive(Clone)]
pub struct ClaimQueue {
    inner: Arc<Queue>,
}

struct Queue {
    store: Arc<dyn StateStore>,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    claims: Vec<(FireClaim, oneshot::Sender<Answer>)>,
    /// A task is writing the waiting claims.
    draining: bool,
}

impl ClaimQueue {
    /// An empty queue writing to `store`.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        let waiting = Mutex::default();
        Self {
            inner: Arc::new(Queue { store, waiting }),
        }
    }

    /// The store the claims go to.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.inner.store
    }

    /// [`StateStore::claim_fire`], written along with the claims queued
    /// meanwhile if the store writes a batch all or none
    /// ([`StateStore::claims_all_or_none`]); alone otherwise.
    pub async fn claim(&self, claim: FireClaim) -> Answer {
        let store = &self.inner.store;
        if !store.claims_all_or_none() {
            return store.claim_fire(&claim.id, &claim.next, claim.seen).await;
        }
        let (answer, answered) = oneshot::channel();
        let spawn = {
            let mut waiting = self.inner.lock();
            waiting.claims.push((claim, answer));
            !std::mem::replace(&mut waiting.draining, true)
        };
        if spawn {
            tokio::spawn(self.inner.clone().drain());
        }
        answered.await.unwrap_or_else(|_| {
            Err(StateError::Io {
                store: self.inner.store.describe(),
                message: "the claim's writer ended before answering".into(),
            })
        })
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes batches until none waits.
    async fn drain(self: Arc<Self>) {
        // Should a write panic, the claims still waiting are answered
        // with an error (their senders dropped) and the next claim starts
        // a new writer.
        let _reset = Reset(&self);
        loop {
            let batch: Vec<_> = {
                let mut waiting = self.lock();
                if waiting.claims.is_empty() {
                    waiting.draining = false;
                    // A burst of 10 000 claims leaves no capacity behind.
                    waiting.claims = Vec::new();
                    return;
                }
                let n = waiting.claims.len().min(BATCH);
                waiting.claims.drain(..n).collect()
            };
            let (claims, answers): (Vec<FireClaim>, Vec<_>) = batch.into_iter().unzip();
            match self.store.claim_fires(&claims).await {
                Ok(revisions) => {
                    for (answer, revision) in answers.into_iter().zip(revisions) {
                        let _ = answer.send(Ok(revision));
                    }
                }
                Err(error) => {
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }
}

/// Lets the next claim start a writer if [`Queue::drain`] ends by a panic.
struct Reset<'a>(&'a Queue);

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut waiting = self.0.lock();
            waiting.claims.clear();
            waiting.draining = false;
        }
    }
}

/// A trigger's last fire in the store, and what this replica saw of it
/// last (so a claim usually costs one write). 100 000 triggers on a store
/// hold 100 000 of these: no strings of their own (the trigger id is the
/// dispatcher's, the schedule is shared).
pub(super) struct Claims {
    queue: ClaimQueue,
    /// The trigger's schedule: a last fire of another one is not caught up.
    schedule: Arc<CronSchedule>,
    seen: Mutex<Option<Seen>>,
}

/// A last fire as this replica last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) instant: DateTime<Utc>,
    pub(super) revision: u64,
}

impl From<&Stored<LastFire>> for Seen {
    fn from(stored: &Stored<LastFire>) -> Self {
        Self {
            instant: stored.value.instant,
            revision: stored.revision,
        }
    }
}

impl Claims {
    /// The claims of a trigger on `schedule`, written through `queue`.
    pub(super) fn new(queue: ClaimQueue, schedule: Arc<CronSchedule>) -> Self {
        Self {
            queue,
            schedule,
            seen: Mutex::new(None),
        }
    }

    /// The store the claims go to.
    pub(super) fn store(&self) -> &Arc<dyn StateStore> {
        self.queue.store()
    }

    /// The schedule as a last fire names it: `<expression> @ <zone>`.
    pub(super) fn schedule_key(&self) -> String {
        format!("{} @ {}", self.schedule.expression(), self.schedule.zone())
    }

    /// The last fire this replica saw.
    pub(super) fn seen(&self) -> Option<Seen> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set_seen(&self, seen: Option<Seen>) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = seen;
    }

    /// `instant` as a last fire of this schedule.
    pub(super) fn last_fire(&self, instant: DateTime<Utc>) -> LastFire {
        LastFire {
            instant,
            schedule: self.schedule_key(),
        }
    }

    /// Claims `instant` for `trigger`: `true` if this replica runs it,
    /// `false` if another replica did (or will).
    async fn claim(&self, trigger: &str, instant: DateTime<Utc>) -> Result<bool, StateError> {
        let mut seen = self.seen();
        for _ in 0..CLAIM_ATTEMPTS {
            if seen.is_some_and(|s| s.instant >= instant) {
                return Ok(false);
            }
            let revision = seen.map(|s| s.revision);
            let claim = FireClaim {
                id: trigger.to_owned(),
                next: self.last_fire(instant),
                seen: revision,
            };
            match self.queue.claim(claim).await? {
                Some(new) => {
                    tracing::debug!(%trigger, %instant, ?revision, new, "claimed");
                    self.set_seen(Some(Seen {
                        instant,
                        revision: new,
                    }));
                    return Ok(true);
                }
                None => {
                    seen = (self.store().last_fire(trigger).await?)
                        .as_ref()
                        .map(Seen::from);
                    tracing::debug!(%trigger, %instant, ?revision, ?seen, "claim lost");
                }
            }
        }
        tracing::warn!(%trigger, %instant, "gave up claiming a cron instant after {CLAIM_ATTEMPTS} lost races");
        Ok(false)
    }

    /// Claims `instant`, trying again while the store cannot be reached
    /// (a NATS cluster electing a new leader takes seconds); past
    /// [`CLAIM_PATIENCE`] it fires without a claim (the broker's dedupe
    /// still publishes once) rather than not at all.
    pub(super) async fn claim_or_fire_anyway(&self, trigger: &str, instant: DateTime<Utc>) -> bool {
        let deadline = tokio::time::Instant::now() + CLAIM_PATIENCE;
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            match self.claim(trigger, instant).await {
                Ok(claimed) => return claimed,
                Err(error) if tokio::time::Instant::now() + wait > deadline => {
                    tracing::warn!(%trigger, %instant, "firing without a claim: {error}");
                    return true;
                }
                Err(error) => {
                    tracing::debug!(%trigger, %instant, "claim failed ({error}); trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(4));
                }
            }
        }
    }
}
