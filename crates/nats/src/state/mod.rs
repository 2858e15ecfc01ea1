//! The replicated state store: JetStream, on the NATS server the broker
//! uses, shared by every replica.
//!
//! Key-value buckets, each a stream made by hand so that nats-server
//! 2.9 takes it (async-nats's `create_key_value` asks for fields 2.9 does
//! not know): `<stream>_triggers` (admin triggers, JSON tables),
//! `<stream>_paused` (a key per paused trigger), `<stream>_fires` (last
//! fires; a claim is an update naming the revision read, which fails with
//! JetStream error 10071 when another replica wrote first),
//! `<stream>_deadletters` (by dead-letter id), `<stream>_pending` (retries
//! waiting, used only with a broker that does not redeliver),
//! `<stream>_timers` (one-off timers; the replica whose revision-checked
//! delete lands fires one), `<stream>_kv` (plugin key-value data and a
//! usage record per plugin, see `plugin_kv.rs`), `<stream>_flow`
//! (flow-control windows, see `flow.rs`). Run history is
//! the stream `<stream>_RUNS`, one subject per trigger
//! (`<stream>_runs.<trigger>`), trimmed by the server per subject and by
//! age. Keys and subject tokens are [`super::id_key`]s.

mod flow;
mod plugin_kv;
mod setup;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::setup::{Bucket, ensure_bucket, ensure_runs_stream, follow};

use wasmsched_core::state::FIRED_TIMERS_KEPT;
use wasmsched_core::state::{
    DeadLetter, LastFire, OneOffTimer, PendingRetry, Retention, Run, StateChange, StateError,
    StateStore, Stored, id_key, kept_runs, key_id,
};

/// How long a claim on a replicated bucket waits before checking it was
/// not overwritten (see [`NatsStore::still_ours`]).
const CONFIRM_AFTER: Duration = Duration::from_millis(25);

/// What a timer's key holds between being taken and deleted.
const TAKEN: &[u8] = b"\"taken\"";

fn is_taken(value: &[u8]) -> bool {
    value == TAKEN
}

/// How long a read of the run history may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// State in JetStream buckets and a stream.
pub struct NatsStore {
    name: String,
    jetstream: Context,
    triggers: kv::Store,
    paused: kv::Store,
    fires: kv::Store,
    dead_letters: kv::Store,
    pending: kv::Store,
    timers: kv::Store,
    /// Timers fired within `FIRED_TIMERS_KEPT` (the bucket's keys expire).
    fired_timers: kv::Store,
    /// Plugin key-value data (see `plugin_kv.rs`).
    plugin_kv: kv::Store,
    /// Flow-control windows (see `flow.rs`).
    flow: kv::Store,
    runs: stream::Stream,
    runs_prefix: String,
    retention: Retention,
    /// Copies of each bucket (`[broker] replicas`).
    replicas: usize,
    changes: broadcast::Sender<StateChange>,
    /// Ends the tasks following the buckets when the store is dropped.
    _stop: DropGuard,
}

impl NatsStore {
    /// Creates (or checks) the buckets and the run stream named after the
    /// broker's `stream`, and starts following the changes other replicas
    /// make. Fails naming the bucket or stream.
    pub async fn open(
        jetstream: Context,
        stream: &str,
        retention: Retention,
    ) -> Result<Self, StateError> {
        Self::open_replicated(jetstream, stream, retention, 1).await
    }

    /// [`Self::open`], keeping `replicas` copies of every bucket and stream
    /// (`[broker] replicas`).
    pub async fn open_replicated(
        jetstream: Context,
        stream: &str,
        retention: Retention,
        replicas: usize,
    ) -> Result<Self, StateError> {
        let bucket = |suffix: &str| format!("{stream}_{suffix}");
        let ensure_bucket = |name: String| {
            let jetstream = jetstream.clone();
            async move { ensure_bucket(&jetstream, &name, replicas).await }
        };
        let triggers = ensure_bucket(bucket("triggers")).await?;
        let paused = ensure_bucket(bucket("paused")).await?;
        let fires = ensure_bucket(bucket("fires")).await?;
        let dead_letters = ensure_bucket(bucket("deadletters")).await?;
        let pending = ensure_bucket(bucket("pending")).await?;
        let timers = ensure_bucket(bucket("timers")).await?;
        let fired_timers = setup::ensure_expiring_bucket(
            &jetstream,
            &bucket("timersfired"),
            replicas,
            FIRED_TIMERS_KEPT,
        )
        .await?;
        let plugin_kv = ensure_bucket(bucket("kv")).await?;
        let flow = ensure_bucket(bucket("flow")).await?;
        let runs_prefix = format!("{stream}_runs");
        let runs_name = format!("{stream}_RUNS");
        let runs =
            ensure_runs_stream(&jetstream, &runs_name, &runs_prefix, retention, replicas).await?;
        let (changes, _) = broadcast::channel(1024);
        let stop = CancellationToken::new();
        let follow_bucket = |bucket: &kv::Store, kind| {
            tokio::spawn(follow(bucket.clone(), changes.clone(), kind, stop.clone()))
        };
        follow_bucket(&triggers, Bucket::Triggers);
        follow_bucket(&paused, Bucket::Paused);
        follow_bucket(&timers, Bucket::Timers);
        Ok(Self {
            name: format!(
                "JetStream buckets {stream}_{{triggers,paused,fires,deadletters,pending,timers,timersfired,kv,flow}} and stream {runs_name}"
            ),
            jetstream,
            triggers,
            paused,
            fires,
            dead_letters,
            pending,
            timers,
            fired_timers,
            plugin_kv,
            flow,
            runs,
            runs_prefix,
            retention,
            replicas,
            changes,
            _stop: stop.drop_guard(),
        })
    }

    /// Is `revision` still the last write of `key` in `bucket`,
    /// read from the stream's leader a moment later? On a nats-server 2.9
    /// cluster two updates naming the same revision can both be accepted
    /// when they arrive together (the leader checks each against what it
    /// has applied, not what it has accepted); the later one wins, and the
    /// replica whose write was overwritten takes its claim back.
    async fn still_ours(
        &self,
        bucket: &kv::Store,
        key: &str,
        revision: u64,
    ) -> Result<bool, StateError> {
        tokio::time::sleep(CONFIRM_AFTER).await;
        let subject = format!("$KV.{}.{key}", bucket.name);
        let last = bucket
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .map_err(|e| self.io("confirming a claim", e))?;
        Ok(last.sequence == revision)
    }

    fn io(&self, what: &str, error: impl std::fmt::Display) -> StateError {
        StateError::Io {
            store: self.name.clone(),
            message: format!("{what}: {error}"),
        }
    }

    fn corrupt(&self, key: String, error: impl std::fmt::Display) -> StateError {
        StateError::Corrupt {
            store: self.name.clone(),
            key,
            message: error.to_string(),
        }
    }

    /// Every live key of `bucket` with its value.
    /// The keys of `bucket` that start with `start`, followed by a key in
    /// hex (plugin keys, flow-control windows): those keys, decoded.
    async fn hex_keys(
        &self,
        bucket: &kv::Store,
        start: &str,
        what: &str,
    ) -> Result<Vec<String>, StateError> {
        let mut all = bucket.keys().await.map_err(|e| self.io(what, e))?;
        let mut keys = Vec::new();
        while let Some(stored) = all.next().await {
            let stored = stored.map_err(|e| self.io(what, e))?;
            let Some(encoded) = stored.strip_prefix(start) else {
                continue;
            };
            let key = hex::decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| self.corrupt(stored.clone(), "not a hex-encoded key"))?;
            keys.push(key);
        }
        Ok(keys)
    }

    async fn entries(
        &self,
        bucket: &kv::Store,
        what: &str,
    ) -> Result<Vec<(String, Bytes)>, StateError> {
        let mut keys = bucket.keys().await.map_err(|e| self.io(what, e))?;
        let mut entries = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| self.io(what, e))?;
            if let Some(value) = bucket.get(&key).await.map_err(|e| self.io(what, e))? {
                entries.push((key, value));
            }
        }
        Ok(entries)
    }
}

#[async_trait]
impl StateStore for NatsStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn admin_triggers(&self) -> Result<BTreeMap<String, serde_json::Value>, StateError> {
        let mut tables = BTreeMap::new();
        for (key, value) in self
            .entries(&self.triggers, "reading admin triggers")
            .await?
        {
            let id = key_id(&key).ok_or_else(|| self.corrupt(key.clone(), "not a trigger id"))?;
            let table = serde_json::from_slice(&value)
                .map_err(|e| self.corrupt(format!("admin trigger {id}"), e))?;
            tables.insert(id, table);
        }
        Ok(tables)
    }

    async fn admin_trigger(&self, id: &str) -> Result<Option<serde_json::Value>, StateError> {
        let value = self
            .triggers
            .get(id_key(id))
            .await
            .map_err(|e| self.io("reading an admin trigger", e))?;
        value
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| self.corrupt(format!("admin trigger {id}"), e))
            })
            .transpose()
    }

    async fn put_admin_trigger(
        &self,
        id: &str,
        table: &serde_json::Value,
    ) -> Result<(), StateError> {
        let value = Bytes::from(table.to_string());
        self.triggers
            .put(id_key(id), value)
            .await
            .map(drop)
            .map_err(|e| self.io("keeping an admin trigger", e))
    }

    async fn delete_admin_trigger(&self, id: &str) -> Result<(), StateError> {
        self.triggers
            .delete(id_key(id))
            .await
            .map_err(|e| self.io("forgetting an admin trigger", e))
    }

    async fn paused(&self) -> Result<BTreeSet<String>, StateError> {
        let entries = self.entries(&self.paused, "reading pauses").await?;
        Ok(entries.iter().filter_map(|(key, _)| key_id(key)).collect())
    }

    async fn is_paused(&self, id: &str) -> Result<bool, StateError> {
        let value = self
            .paused
            .get(id_key(id))
            .await
            .map_err(|e| self.io("reading a pause", e))?;
        Ok(value.is_some())
    }

    async fn set_paused(&self, id: &str, paused: bool) -> Result<(), StateError> {
        let key = id_key(id);
        let done = match paused {
            true => self
                .paused
                .put(key, Bytes::from_static(b"1"))
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            false => self.paused.delete(key).await.map_err(|e| e.to_string()),
        };
        done.map_err(|e| self.io("keeping a pause", e))
    }

    async fn last_fire(&self, id: &str) -> Result<Option<Stored<LastFire>>, StateError> {
        let entry = self
            .fires
            .entry(id_key(id))
            .await
            .map_err(|e| self.io("reading a last fire", e))?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&entry.value)
            .map_err(|e| self.corrupt(format!("last fire of {id}"), e))?;
        Ok(Some(Stored {
            value,
            revision: entry.revision,
        }))
    }

    async fn claim_fire(
        &self,
        id: &str,
        next: &LastFire,
        seen: Option<u64>,
    ) -> Result<Option<u64>, StateError> {
        let value = Bytes::from(serde_json::to_vec(next).expect("last fires serialize"));
        let key = id_key(id);
        let written = match seen {
            None => match self.fires.create(&key, value).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(None),
                Err(e) => return Err(self.io("claiming a cron instant", e)),
            },
            Some(revision) => match self.fires.update(&key, value, revision).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => return Ok(None),
                Err(e) => return Err(self.io("claiming a cron instant", e)),
            },
        };
        if self.replicas > 1 && !self.still_ours(&self.fires, &key, written).await? {
            return Ok(None);
        }
        Ok(Some(written))
    }

    async fn forget_fire(&self, id: &str) -> Result<(), StateError> {
        self.fires
            .delete(id_key(id))
            .await
            .map_err(|e| self.io("forgetting a last fire", e))
    }

    fn keeps_runs(&self) -> bool {
        self.retention.max_runs > 0
    }

    async fn append_runs(&self, runs: &[Run]) -> Result<(), StateError> {
        let runs = kept_runs(runs, self.retention.max_runs);
        let mut acks = Vec::with_capacity(runs.len());
        for run in runs {
            let subject = format!("{}.{}", self.runs_prefix, id_key(&run.trigger));
            let payload = Bytes::from(serde_json::to_vec(run).expect("runs serialize"));
            let ack = self
                .jetstream
                .publish(subject, payload)
                .await
                .map_err(|e| self.io("keeping run history", e))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| self.io("keeping run history", e))?;
        }
        Ok(())
    }

    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<Run>, StateError> {
        let subject = format!("{}.{}", self.runs_prefix, id_key(id));
        let last = match self.runs.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(self.io("reading run history", e)),
        };
        let consumer = self
            .runs
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| self.io("reading run history", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| self.io("reading run history", e))?;
        let mut runs = std::collections::VecDeque::with_capacity(limit);
        let read = async {
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| self.io("reading run history", e))?;
                let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(last);
                let run: Run = serde_json::from_slice(&message.payload)
                    .map_err(|e| self.corrupt(format!("run of {id} #{sequence}"), e))?;
                if runs.len() == limit {
                    runs.pop_front();
                }
                runs.push_back(run);
                if sequence >= last {
                    break;
                }
            }
            Ok::<(), StateError>(())
        };
        tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .map_err(|_| self.io("reading run history", "timed out"))??;
        Ok(runs.into_iter().rev().collect())
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StateError> {
        let value = Bytes::from(serde_json::to_vec(letter).expect("dead letters serialize"));
        self.dead_letters
            .put(letter.id.to_string(), value)
            .await
            .map(drop)
            .map_err(|e| self.io("keeping a dead letter", e))
    }

    async fn dead_letters(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let mut letters = Vec::new();
        for (key, value) in self
            .entries(&self.dead_letters, "reading dead letters")
            .await?
        {
            let letter: DeadLetter = serde_json::from_slice(&value)
                .map_err(|e| self.corrupt(format!("dead letter {key}"), e))?;
            if trigger.is_none_or(|t| t == letter.trigger) {
                letters.push(letter);
            }
        }
        letters.sort_by_key(|l| std::cmp::Reverse((l.at, l.id)));
        letters.truncate(limit);
        Ok(letters)
    }

    async fn dead_letter(&self, id: uuid::Uuid) -> Result<Option<DeadLetter>, StateError> {
        let value = self
            .dead_letters
            .get(id.to_string())
            .await
            .map_err(|e| self.io("reading a dead letter", e))?;
        value
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| self.corrupt(format!("dead letter {id}"), e))
            })
            .transpose()
    }

    async fn delete_dead_letter(&self, id: uuid::Uuid) -> Result<bool, StateError> {
        if self.dead_letter(id).await?.is_none() {
            return Ok(false);
        }
        self.dead_letters
            .delete(id.to_string())
            .await
            .map_err(|e| self.io("discarding a dead letter", e))?;
        Ok(true)
    }

    async fn put_pending(&self, pending: &PendingRetry) -> Result<(), StateError> {
        let value = Bytes::from(serde_json::to_vec(pending).expect("pending retries serialize"));
        self.pending
            .put(pending.id.to_string(), value)
            .await
            .map(drop)
            .map_err(|e| self.io("keeping a pending retry", e))
    }

    async fn pending(&self, trigger: &str) -> Result<Vec<PendingRetry>, StateError> {
        let mut waiting = Vec::new();
        for (key, value) in self
            .entries(&self.pending, "reading pending retries")
            .await?
        {
            let pending: PendingRetry = serde_json::from_slice(&value)
                .map_err(|e| self.corrupt(format!("pending retry {key}"), e))?;
            if pending.trigger == trigger {
                waiting.push(pending);
            }
        }
        Ok(waiting)
    }

    async fn delete_pending(&self, id: uuid::Uuid) -> Result<(), StateError> {
        self.pending
            .delete(id.to_string())
            .await
            .map_err(|e| self.io("forgetting a pending retry", e))
    }

    async fn put_timer(&self, timer: &OneOffTimer) -> Result<OneOffTimer, StateError> {
        let key = id_key(&timer.id);
        let fired = self
            .fired_timers
            .get(&key)
            .await
            .map_err(|e| self.io("reading fired timers", e))?;
        if let Some(fired) = fired {
            return serde_json::from_slice(&fired)
                .map_err(|e| self.corrupt(format!("fired timer {}", timer.id), e));
        }
        let value = Bytes::from(serde_json::to_vec(timer).expect("timers serialize"));
        match self.timers.create(&key, value).await {
            Ok(_) => Ok(timer.clone()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self
                .timer(&timer.id)
                .await?
                .ok_or_else(|| self.io("keeping a timer", "it vanished while being added")),
            Err(e) => Err(self.io("keeping a timer", e)),
        }
    }

    async fn timers(&self) -> Result<Vec<OneOffTimer>, StateError> {
        let mut timers = Vec::new();
        for (key, value) in self.entries(&self.timers, "reading timers").await? {
            if is_taken(&value) {
                continue;
            }
            let timer: OneOffTimer = serde_json::from_slice(&value)
                .map_err(|e| self.corrupt(format!("timer {key}"), e))?;
            timers.push(timer);
        }
        timers.sort_by_key(|t| t.due);
        Ok(timers)
    }

    async fn timer(&self, id: &str) -> Result<Option<OneOffTimer>, StateError> {
        let value = self
            .timers
            .get(id_key(id))
            .await
            .map_err(|e| self.io("reading a timer", e))?;
        value
            .filter(|v| !is_taken(v))
            .map(|v| serde_json::from_slice(&v).map_err(|e| self.corrupt(format!("timer {id}"), e)))
            .transpose()
    }

    async fn take_timer(&self, id: &str) -> Result<bool, StateError> {
        let key = id_key(id);
        let entry = self
            .timers
            .entry(&key)
            .await
            .map_err(|e| self.io("taking a timer", e))?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put && !is_taken(&e.value))
        else {
            return Ok(false);
        };
        // Marked taken with a revision-checked write (confirmed on a
        // cluster, as claims are), then deleted.
        let taken = match self
            .timers
            .update(&key, Bytes::from_static(TAKEN), entry.revision)
            .await
        {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => return Ok(false),
            Err(e) => return Err(self.io("taking a timer", e)),
        };
        if self.replicas > 1 && !self.still_ours(&self.timers, &key, taken).await? {
            return Ok(false);
        }
        self.timers
            .delete(&key)
            .await
            .map_err(|e| self.io("taking a timer", e))?;
        Ok(true)
    }

    async fn restore_timer(&self, timer: &OneOffTimer) -> Result<(), StateError> {
        let key = id_key(&timer.id);
        let mut timer = timer.clone();
        timer.fired = None;
        let value = Bytes::from(serde_json::to_vec(&timer).expect("timers serialize"));
        self.timers
            .put(&key, value)
            .await
            .map_err(|e| self.io("putting a timer back", e))?;
        self.fired_timers
            .delete(&key)
            .await
            .map_err(|e| self.io("putting a timer back", e))
    }

    /// Remembered as fired before it is taken: a request adding the same
    /// id meanwhile sees it fired. (Cancelled in that instant, it is still
    /// remembered as fired.)
    async fn take_timer_to_fire(
        &self,
        id: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StateError> {
        let Some(mut timer) = self.timer(id).await? else {
            return Ok(false);
        };
        timer.fired = Some(at);
        let value = Bytes::from(serde_json::to_vec(&timer).expect("timers serialize"));
        self.fired_timers
            .put(id_key(id), value)
            .await
            .map_err(|e| self.io("remembering a fired timer", e))?;
        self.take_timer(id).await
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn changes(&self) -> Option<broadcast::Receiver<StateChange>> {
        Some(self.changes.subscribe())
    }
}
