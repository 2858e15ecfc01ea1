//! What must outlive the process: the [`StateStore`] port and the records
//! it keeps. Triggers added through the admin API (as the JSON tables they
//! were added with), which triggers are paused, the last instant each cron
//! trigger fired (claimed with a compare-and-set, so one replica runs each
//! instant), and the run history ([`Run`]).
//!
//! Adapters: an embedded SQLite file (`sqlite`, feature `sqlite`) and
//! JetStream key-value buckets and a stream (`nats`, feature `nats`),
//! shared by every replica. Without a store (the core's default) a
//! scheduler remembers nothing across restarts.

mod flow;
mod kv;
pub mod recent;
mod runs;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::flow::FlowWindows;
pub use self::kv::{KvError, KvQuota, KvUsage, MAX_KEY_BYTES, PluginKv};
pub use self::recent::RecentEvents;
pub use self::runs::{RunLog, RunLogStats};
use crate::firing::TriggerKind;

/// Why the store could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The store could not be opened: unreadable, corrupt, or in use.
    #[error("state store {store}: {message}")]
    Open {
        /// The file or bucket.
        store: String,
        /// What went wrong, and what to do about it.
        message: String,
    },
    /// A read or write failed.
    #[error("state store {store}: {message}")]
    Io {
        /// The file or bucket.
        store: String,
        /// What went wrong.
        message: String,
    },
    /// A record in the store could not be decoded.
    #[error("state store {store}: record `{key}` is corrupt: {message}")]
    Corrupt {
        /// The file or bucket.
        store: String,
        /// The record.
        key: String,
        /// Why it could not be read.
        message: String,
    },
}

/// The last instant a cron trigger fired (or, for a new trigger, when it
/// was first started): every instant up to it is handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFire {
    /// The instant.
    pub instant: DateTime<Utc>,
    /// The schedule it belongs to (`<expression> @ <zone>`): instants of
    /// another schedule are not caught up.
    pub schedule: String,
}

/// One claim of [`StateStore::claim_fires`]: write `next` as trigger
/// `id`'s last fire if the record is still at revision `seen` (`None`:
/// only if there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireClaim {
    /// The cron trigger.
    pub id: String,
    /// Its new last fire.
    pub next: LastFire,
    /// The revision it was read at.
    pub seen: Option<u64>,
}

/// How many reads or claims the default [`StateStore::last_fires`] and
/// [`StateStore::claim_fires`] make at a time.
const CONCURRENT_CALLS: usize = 64;

/// A [`LastFire`] as read, with the revision a claim must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    /// The record.
    pub value: T,
    /// Its revision in the store (changes with every write).
    pub revision: u64,
}

/// How a firing ended, as the run history says.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// Events were made and published.
    Ok,
    /// The filter rejected the event (event triggers).
    Filtered,
    /// The factory, filter, limits or broker failed.
    Error,
    /// The plugin ran out of time.
    Timeout,
    /// A cron instant that fell while no replica ran the trigger, not
    /// caught up (the run's `error` says why).
    Missed,
    /// A cron instant that fell while the trigger was paused.
    Skipped,
    /// An event dropped by the trigger's `dedupe` (flow control).
    Deduplicated,
    /// An event dropped by the trigger's `throttle`.
    Throttled,
    /// An event replaced by a later one under `debounce`.
    Debounced,
    /// An event collected into a batch (the batch's firing is a run of
    /// its own).
    Batched,
}

impl Outcome {
    /// `ok`, `filtered`, `error`, `timeout`, `missed`, `skipped`,
    /// `deduplicated`, `throttled`, `debounced` or `batched`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Filtered => "filtered",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Missed => "missed",
            Outcome::Skipped => "skipped",
            Outcome::Deduplicated => "deduplicated",
            Outcome::Throttled => "throttled",
            Outcome::Debounced => "debounced",
            Outcome::Batched => "batched",
        }
    }
}

/// One firing in the run history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The trigger.
    pub trigger: String,
    /// The scheduled instant (cron) or when the firing was received.
    pub instant: DateTime<Utc>,
    /// When the firing actually began on the host: after `instant` by the
    /// trigger's jitter and the scheduler's lateness, or by the downtime
    /// of a catch-up. Absent for runs that did not fire (`missed`,
    /// `skipped`, `filtered`, ...) and for runs kept by older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<DateTime<Utc>>,
    /// What fired: `cron`, `api` or `event`.
    pub kind: TriggerKind,
    /// How it ended.
    pub outcome: Outcome,
    /// How long the filter, factory and publishing took, in milliseconds.
    pub duration_ms: f64,
    /// The ids of the events it published.
    pub events: Vec<Uuid>,
    /// What went wrong (or, for `missed` and `skipped`, why).
    pub error: Option<String>,
    /// A cron instant run late, after downtime.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catch_up: bool,
    /// A cron instant run again by a backfill.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
    /// The event that fired an event trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_event: Option<Uuid>,
}

/// An event an event trigger gave up on after `max_deliver` attempts,
/// kept until it is replayed or discarded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Made from the trigger and the event's id: the same event given up
    /// on twice by one trigger is one dead letter.
    pub id: Uuid,
    /// The trigger that gave up.
    pub trigger: String,
    /// The event, as delivered.
    pub event: crate::event::Event,
    /// The last attempt's error.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When the trigger gave up.
    pub at: DateTime<Utc>,
}

impl DeadLetter {
    /// The id of trigger `trigger`'s dead letter for event `event`.
    pub fn id_for(trigger: &str, event: Uuid) -> Uuid {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{trigger}:{event}").as_bytes());
        let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

/// An event a trigger failed on, waiting for its retry, on a broker that
/// does not deliver again by itself (the memory broker): kept before the
/// retry is scheduled, so a restart (even `kill -9`) does not lose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRetry {
    /// [`DeadLetter::id_for`] the trigger and the event.
    pub id: Uuid,
    /// The trigger (or `sink:<id>`).
    pub trigger: String,
    /// The event.
    pub event: crate::event::Event,
    /// The last attempt's error.
    pub error: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub due: DateTime<Utc>,
}

/// A one-off timer: at `due`, publish an event or fire a trigger, once
/// across replicas.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneOffTimer {
    /// Chosen by the client (so a retried request makes one timer) or a
    /// UUIDv7.
    pub id: String,
    /// When it fires.
    pub due: DateTime<Utc>,
    /// What it does.
    #[serde(flatten)]
    pub action: TimerAction,
    /// When it fired, for a timer fired within [`FIRED_TIMERS_KEPT`]
    /// (what [`StateStore::put_timer`] answers to the same id again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<DateTime<Utc>>,
}

/// How long a fired timer's id is remembered: a request to add a timer
/// with that id meanwhile (a client's retry) gets the fired timer back
/// and makes no second one.
pub const FIRED_TIMERS_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a one-off timer does when it is due.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimerAction {
    /// Publishes `data` on `topic`.
    Publish {
        /// Where.
        topic: crate::topic::Topic,
        /// The event's data.
        data: serde_json::Value,
    },
    /// Fires trigger `trigger` with `data` (an api trigger's payload, an
    /// event trigger's source data).
    Fire {
        /// The trigger's id.
        trigger: String,
        /// The payload.
        data: serde_json::Value,
    },
}

/// How much run history a store keeps per trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The newest runs kept per trigger (0: no history).
    pub max_runs: usize,
    /// Older runs are dropped.
    pub max_age: std::time::Duration,
}

impl Default for Retention {
    /// 100 runs per trigger, 7 days.
    fn default() -> Self {
        Self {
            max_runs: 100,
            max_age: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// A change another replica (or this one) made, seen by a replicated
/// store. It names what changed; the current value is read from the store,
/// so changes that arrive late or twice do no harm. Exhaustive: every
/// replica must apply every kind of change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// Admin trigger `id` was added, replaced or removed.
    Trigger(String),
    /// Trigger `id` was paused or resumed.
    Pause(String),
    /// One-off timer `id` was added or removed.
    Timer(String),
    /// Changes may have been missed (the watch was broken): read it all.
    Resync,
}

/// Where state that must outlive the process lives.
#[async_trait]
pub trait StateStore: PluginKv + FlowWindows + Send + Sync + 'static {
    /// The file or buckets, for messages (`SQLite file ./wasmsched.db`).
    fn describe(&self) -> String;

    /// Triggers added through the admin API: id -> the JSON table.
    async fn admin_triggers(&self) -> Result<BTreeMap<String, serde_json::Value>, StateError>;
    /// One admin trigger's table.
    async fn admin_trigger(&self, id: &str) -> Result<Option<serde_json::Value>, StateError> {
        Ok(self.admin_triggers().await?.remove(id))
    }
    /// Keeps (or replaces) an admin trigger's table.
    async fn put_admin_trigger(
        &self,
        id: &str,
        table: &serde_json::Value,
    ) -> Result<(), StateError>;
    /// Forgets an admin trigger (no error if unknown).
    async fn delete_admin_trigger(&self, id: &str) -> Result<(), StateError>;

    /// The ids of the paused triggers.
    async fn paused(&self) -> Result<BTreeSet<String>, StateError>;
    /// Is trigger `id` paused?
    async fn is_paused(&self, id: &str) -> Result<bool, StateError> {
        Ok(self.paused().await?.contains(id))
    }
    /// Marks a trigger paused or not.
    async fn set_paused(&self, id: &str, paused: bool) -> Result<(), StateError>;

    /// The last instant cron trigger `id` fired, with its revision.
    async fn last_fire(&self, id: &str) -> Result<Option<Stored<LastFire>>, StateError>;
    /// Writes `next` only if the record is still at revision `seen`
    /// (`None`: only if there is none), and returns the new revision;
    /// `Ok(None)` if someone else wrote it first.
    async fn claim_fire(
        &self,
        id: &str,
        next: &LastFire,
        seen: Option<u64>,
    ) -> Result<Option<u64>, StateError>;
    /// The last fires of the cron triggers `ids`, by id (a trigger without
    /// one is absent): [`StateStore::last_fire`] for many triggers
    /// starting at once. The default makes 64 reads at a time; a store
    /// that can read them together should.
    async fn last_fires(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Stored<LastFire>>, StateError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(CONCURRENT_CALLS) {
            let reads: Vec<_> = chunk.iter().map(|id| self.last_fire(id)).collect();
            let read = futures_util::future::join_all(reads).await;
            for (id, read) in chunk.iter().zip(read) {
                if let Some(stored) = read? {
                    found.insert(id.clone(), stored);
                }
            }
        }
        Ok(found)
    }
    /// Does [`StateStore::claim_fires`] write its claims all or none (one
    /// transaction)? Then firings due together claim together; otherwise
    /// each claims alone, since a failed call would leave unknown which
    /// of its claims landed.
    fn claims_all_or_none(&self) -> bool {
        false
    }
    /// [`StateStore::claim_fire`] for many triggers at once: the new
    /// revision of each claim that landed, `None` for each that lost, in
    /// the order of `claims`. The default makes 64 claims at a time; a
    /// store that can write them in one transaction should.
    async fn claim_fires(&self, claims: &[FireClaim]) -> Result<Vec<Option<u64>>, StateError> {
        let mut answers = Vec::with_capacity(claims.len());
        for chunk in claims.chunks(CONCURRENT_CALLS) {
            let writes: Vec<_> = chunk
                .iter()
                .map(|c| self.claim_fire(&c.id, &c.next, c.seen))
                .collect();
            for answer in futures_util::future::join_all(writes).await {
                answers.push(answer?);
            }
        }
        Ok(answers)
    }
    /// Forgets trigger `id`'s last fire (it was removed).
    async fn forget_fire(&self, id: &str) -> Result<(), StateError>;

    /// Does it keep run history at all ([`Retention::max_runs`] > 0)?
    fn keeps_runs(&self) -> bool {
        true
    }

    /// Appends runs to the history, dropping what [`Retention`] no longer
    /// keeps.
    async fn append_runs(&self, runs: &[Run]) -> Result<(), StateError>;
    /// The newest `limit` runs of trigger `id`, newest first.
    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<Run>, StateError>;

    /// Keeps a dead letter (replacing one with the same id).
    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StateError>;
    /// The newest `limit` dead letters, of trigger `trigger` or of all.
    async fn dead_letters(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError>;
    /// One dead letter.
    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StateError>;
    /// Discards a dead letter; `false` if there was none.
    async fn delete_dead_letter(&self, id: Uuid) -> Result<bool, StateError>;

    /// Keeps an event waiting for its retry (replacing one with the same id).
    async fn put_pending(&self, pending: &PendingRetry) -> Result<(), StateError>;
    /// The events trigger `trigger` waits to retry.
    async fn pending(&self, trigger: &str) -> Result<Vec<PendingRetry>, StateError>;
    /// Forgets a waiting retry (done, or given up on); no error if unknown.
    async fn delete_pending(&self, id: Uuid) -> Result<(), StateError>;

    /// Is it shared by several replicas (whose own files may declare
    /// triggers this one does not)?
    fn is_shared(&self) -> bool {
        false
    }

    /// Keeps a timer unless one with its id exists or fired within
    /// [`FIRED_TIMERS_KEPT`]; returns the one kept under that id (this one,
    /// or the earlier one, with `fired` set if it fired).
    async fn put_timer(&self, timer: &OneOffTimer) -> Result<OneOffTimer, StateError>;
    /// Every pending timer.
    async fn timers(&self) -> Result<Vec<OneOffTimer>, StateError>;
    /// Every pending timer's id and instant (what a host keeps in memory;
    /// the rest is read when a timer is due).
    async fn timer_dues(&self) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        let timers = self.timers().await?;
        Ok(timers.into_iter().map(|t| (t.id, t.due)).collect())
    }
    /// One timer.
    async fn timer(&self, id: &str) -> Result<Option<OneOffTimer>, StateError>;
    /// Removes timer `id`: `true` if this call removed it (so, when it is
    /// due, the replica whose call returns `true` fires it).
    async fn take_timer(&self, id: &str) -> Result<bool, StateError>;
    /// [`Self::take_timer`] to fire it at `at`: the timer is remembered as
    /// fired for [`FIRED_TIMERS_KEPT`] (see [`Self::put_timer`]).
    async fn take_timer_to_fire(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StateError>;
    /// Puts back a timer taken to fire that could not (the broker is
    /// down): pending again, due at its `due`, no longer remembered as
    /// fired.
    async fn restore_timer(&self, timer: &OneOffTimer) -> Result<(), StateError>;

    /// Changes made by other replicas, for a store shared by several
    /// (`None` for one that is not).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<StateChange>> {
        None
    }
}

/// The runs of `runs` that [`Retention::max_runs`] keeps: the newest
/// `max_runs` of each trigger (runs arrive oldest first). Under load a
/// batch holds many runs of one trigger, most of which the store would
/// drop at once; they are not written at all.
pub fn kept_runs(runs: &[Run], max_runs: usize) -> Vec<&Run> {
    let mut per_trigger: std::collections::HashMap<&str, usize> = Default::default();
    let mut kept: Vec<&Run> = runs
        .iter()
        .rev()
        .filter(|run| {
            let count = per_trigger.entry(run.trigger.as_str()).or_default();
            *count += 1;
            *count <= max_runs
        })
        .collect();
    kept.reverse();
    kept
}

/// A trigger id as a key any store accepts (a NATS subject token, a
/// key-value key): kept as it is when made of `A-Z a-z 0-9 - _`, else
/// `=` and the id's bytes in hex (`=` never starts a plain id).
pub fn id_key(id: &str) -> String {
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return id.to_owned();
    }
    let mut key = String::with_capacity(1 + 2 * id.len());
    key.push('=');
    for b in id.bytes() {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The id [`id_key`] made `key` from.
pub fn key_id(key: &str) -> Option<String> {
    let Some(hex) = key.strip_prefix('=') else {
        return Some(key.to_owned());
    };
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_the_newest_runs_of_each_trigger() {
        let run = |trigger: &str, n: i64| Run {
            trigger: trigger.into(),
            instant: DateTime::<Utc>::from_timestamp(n, 0).unwrap(),
            kind: TriggerKind::Api,
            outcome: Outcome::Ok,
            duration_ms: 0.0,
            events: Vec::new(),
            error: None,
            catch_up: false,
            backfill: false,
            source_event: None,
            started: None,
        };
        let runs = [
            run("a", 1),
            run("b", 2),
            run("a", 3),
            run("a", 4),
            run("b", 5),
        ];
        let kept: Vec<(String, i64)> = kept_runs(&runs, 2)
            .iter()
            .map(|r| (r.trigger.clone(), r.instant.timestamp()))
            .collect();
        let expected = [("b", 2), ("a", 3), ("a", 4), ("b", 5)];
        assert_eq!(kept, expected.map(|(t, n)| (t.to_owned(), n)));
    }

    #[test]
    fn ids_become_keys_and_back() {
        for id in ["daily-report", "a.b", "x y*>", "=41", "é", "_"] {
            let key = id_key(id);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{key}"
            );
            assert_eq!(key_id(&key).as_deref(), Some(id));
        }
        assert_eq!(id_key("daily-report"), "daily-report");
        assert_eq!(id_key("a.b"), "=612e62");
    }
}
