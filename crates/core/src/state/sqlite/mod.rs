//! The embedded state store: one SQLite file (through rusqlite, SQLite
//! bundled), the default when the broker is the in-process one.
//!
//! SQLite calls block, so each runs on tokio's blocking pool, never on a
//! runtime worker. The file is opened in WAL mode with
//! `synchronous = NORMAL`: a commit survives a crash of the process (a
//! power cut may lose the last commits, never corrupt the file). One host
//! per file: two processes on one file would share claims (SQLite locks
//! each write) but not see each other's pauses or admin triggers; replicas
//! share JetStream instead. Run records are stored as JSON.

mod flow;
mod kv;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    DeadLetter, FireClaim, LastFire, OneOffTimer, PendingRetry, Retention, Run, StateError,
    StateStore, Stored, kept_runs,
};
use crate::state::FIRED_TIMERS_KEPT;

/// The schema this version writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 3;

/// Schema 1: triggers, pauses, fires, runs, dead letters, retries, timers.
const SCHEMA: &str = "
CREATE TABLE admin_triggers (id TEXT PRIMARY KEY, table_json TEXT NOT NULL);
CREATE TABLE paused (id TEXT PRIMARY KEY);
CREATE TABLE last_fires (
    id TEXT PRIMARY KEY,
    instant TEXT NOT NULL,
    schedule TEXT NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX runs_by_trigger ON runs (trigger, seq);
CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    trigger TEXT NOT NULL,
    at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX dead_letters_by_age ON dead_letters (at);
CREATE TABLE pending_retries (
    id TEXT PRIMARY KEY,
    trigger TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX pending_retries_by_trigger ON pending_retries (trigger);
CREATE TABLE timers (id TEXT PRIMARY KEY, due TEXT NOT NULL, record TEXT NOT NULL);
";

/// Schema 2 adds plugin key-value data and flow-control windows (a file
/// of schema 1 is upgraded in place when opened).
const SCHEMA_2: &str = "
CREATE TABLE kv (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE flow_windows (
    trigger TEXT NOT NULL,
    key TEXT NOT NULL,
    revision INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (trigger, key)
) WITHOUT ROWID;
";

/// Schema 3 remembers fired timers for a day (`FIRED_TIMERS_KEPT`), so a
/// retried request does not add one again.
const SCHEMA_3: &str = "
CREATE TABLE fired_timers (id TEXT PRIMARY KEY, fired INTEGER NOT NULL, record TEXT NOT NULL);
CREATE INDEX fired_timers_by_age ON fired_timers (fired);
";

/// State in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
    retention: Retention,
    /// When runs older than `retention.max_age` were last dropped (ms).
    aged_out_at: Arc<AtomicI64>,
}

/// How often runs past their age are dropped (a scan of the table).
const AGE_OUT_EVERY_MS: i64 = 60_000;

impl SqliteStore {
    /// Opens (or creates) the store at `path`, keeping `retention` of run
    /// history. Fails, naming the file, if it is not a wasmsched store
    /// (or not a database at all), is damaged, or was written by a newer
    /// wasmsched.
    pub async fn open(path: &Path, retention: Retention) -> Result<Self, StateError> {
        let path = path.to_owned();
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open(&path)).await
        }
        .map_err(|e| StateError::Open {
            store: describe(&path),
            message: e.to_string(),
        })?;
        let connection = opened.map_err(|message| StateError::Open {
            store: describe(&path),
            message,
        })?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
            retention,
            aged_out_at: Arc::default(),
        })
    }

    /// Runs `work` on the connection, on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StateError> {
        let connection = self.connection.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection)
        })
        .await;
        let io = |message: String| StateError::Io {
            store: self.describe(),
            message,
        };
        done.map_err(|e| io(e.to_string()))?
            .map_err(|e| io(e.to_string()))
    }

    fn corrupt(&self, key: String, error: impl ToString) -> StateError {
        StateError::Corrupt {
            store: self.describe(),
            key,
            message: error.to_string(),
        }
    }
}

fn describe(path: &Path) -> String {
    format!("SQLite file {}", path.display())
}

/// Opens the file, checks what it holds, and creates the schema in a new one.
fn open(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    let explain = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            "not a wasmsched state file (not an SQLite database, or corrupt); move it away \
             to start with an empty store, or point `[state] path` elsewhere"
                .to_owned()
        }
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            "in use by another process (another wasmsched on the same file?)".to_owned()
        }
        _ => e.to_string(),
    };
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(explain)?;
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(explain)?;
    match version {
        0 => {
            let tables: i64 = connection
                .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
                .map_err(explain)?;
            if tables > 0 {
                return Err(
                    "an SQLite database, but not a wasmsched state file; point `[state] path` \
                     at another file"
                        .to_owned(),
                );
            }
            connection
                .execute_batch(&format!(
                    "BEGIN; {SCHEMA} {SCHEMA_2} {SCHEMA_3} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(explain)?;
        }
        1..=SCHEMA_VERSION => {
            // A damaged page shows up here rather than in the middle of a firing.
            let check: String = connection
                .query_row("PRAGMA quick_check", [], |row| row.get(0))
                .map_err(explain)?;
            if check != "ok" {
                return Err(format!("the file is corrupt ({check})"));
            }
            let upgrade = match version {
                1 => format!("{SCHEMA_2} {SCHEMA_3}"),
                2 => SCHEMA_3.to_owned(),
                _ => String::new(),
            };
            if !upgrade.is_empty() {
                connection
                    .execute_batch(&format!(
                        "BEGIN; {upgrade} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    ))
                    .map_err(explain)?;
            }
        }
        newer => {
            return Err(format!(
                "written by a newer wasmsched (schema {newer}; this one knows {SCHEMA_VERSION})"
            ));
        }
    }
    Ok(connection)
}

#[async_trait]
impl StateStore for SqliteStore {
    fn describe(&self) -> String {
        describe(&self.path)
    }

    /// Its claims are written in one transaction.
    fn claims_all_or_none(&self) -> bool {
        true
    }

    fn keeps_runs(&self) -> bool {
        self.retention.max_runs > 0
    }

    async fn admin_triggers(&self) -> Result<BTreeMap<String, serde_json::Value>, StateError> {
        let rows = self
            .with(|c| {
                let mut statement = c.prepare("SELECT id, table_json FROM admin_triggers")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<(String, String)>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(id, json)| match serde_json::from_str(&json) {
                Ok(table) => Ok((id, table)),
                Err(e) => Err(self.corrupt(format!("admin trigger {id}"), e)),
            })
            .collect()
    }

    async fn put_admin_trigger(
        &self,
        id: &str,
        table: &serde_json::Value,
    ) -> Result<(), StateError> {
        let (id, json) = (id.to_owned(), table.to_string());
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO admin_triggers (id, table_json) VALUES (?1, ?2)",
                params![id, json],
            )
        })
        .await
        .map(drop)
    }

    async fn delete_admin_trigger(&self, id: &str) -> Result<(), StateError> {
        let id = id.to_owned();
        self.with(move |c| c.execute("DELETE FROM admin_triggers WHERE id = ?1", [id]))
            .await
            .map(drop)
    }

    async fn paused(&self) -> Result<BTreeSet<String>, StateError> {
        self.with(|c| {
            let mut statement = c.prepare("SELECT id FROM paused")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn set_paused(&self, id: &str, paused: bool) -> Result<(), StateError> {
        let id = id.to_owned();
        self.with(move |c| match paused {
            true => c.execute("INSERT OR IGNORE INTO paused (id) VALUES (?1)", [id]),
            false => c.execute("DELETE FROM paused WHERE id = ?1", [id]),
        })
        .await
        .map(drop)
    }

    async fn last_fire(&self, id: &str) -> Result<Option<Stored<LastFire>>, StateError> {
        Ok(self.last_fires(&[id.to_owned()]).await?.remove(id))
    }

    /// One blocking call reads them all (one prepared statement).
    async fn last_fires(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Stored<LastFire>>, StateError> {
        let ids = ids.to_vec();
        let rows = self
            .with(move |c| {
                let mut select = c.prepare_cached(
                    "SELECT instant, schedule, revision FROM last_fires WHERE id = ?1",
                )?;
                let mut rows = Vec::new();
                for id in ids {
                    let row = select
                        .query_row([&id], |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, i64>(2)?,
                            ))
                        })
                        .optional()?;
                    if let Some(row) = row {
                        rows.push((id, row));
                    }
                }
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(id, (instant, schedule, revision))| {
                let instant = instant
                    .parse()
                    .map_err(|e| self.corrupt(format!("last fire of {id}"), e))?;
                let stored = Stored {
                    value: LastFire { instant, schedule },
                    revision: revision as u64,
                };
                Ok((id, stored))
            })
            .collect()
    }

    async fn claim_fire(
        &self,
        id: &str,
        next: &LastFire,
        seen: Option<u64>,
    ) -> Result<Option<u64>, StateError> {
        let claim = FireClaim {
            id: id.to_owned(),
            next: next.clone(),
            seen,
        };
        Ok(self.claim_fires(&[claim]).await?.remove(0))
    }

    /// One transaction writes them all.
    async fn claim_fires(&self, claims: &[FireClaim]) -> Result<Vec<Option<u64>>, StateError> {
        let claims = claims.to_vec();
        self.with(move |c| {
            let transaction = c.transaction()?;
            let mut answers = Vec::with_capacity(claims.len());
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT OR IGNORE INTO last_fires (id, instant, schedule, revision) \
                     VALUES (?1, ?2, ?3, 1)",
                )?;
                let mut update = transaction.prepare_cached(
                    "UPDATE last_fires SET instant = ?2, schedule = ?3, revision = revision + 1 \
                     WHERE id = ?1 AND revision = ?4",
                )?;
                for FireClaim { id, next, seen } in &claims {
                    let instant = next.instant.to_rfc3339();
                    let changed = match seen {
                        None => insert.execute(params![id, instant, next.schedule])?,
                        Some(revision) => {
                            update.execute(params![id, instant, next.schedule, *revision as i64])?
                        }
                    };
                    answers.push((changed == 1).then(|| seen.map_or(1, |revision| revision + 1)));
                }
            }
            transaction.commit()?;
            Ok(answers)
        })
        .await
    }

    async fn forget_fire(&self, id: &str) -> Result<(), StateError> {
        let id = id.to_owned();
        self.with(move |c| c.execute("DELETE FROM last_fires WHERE id = ?1", [id]))
            .await
            .map(drop)
    }

    async fn append_runs(&self, runs: &[Run]) -> Result<(), StateError> {
        let Retention { max_runs, max_age } = self.retention;
        if max_runs == 0 {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let oldest = now - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let age_out = now - self.aged_out_at.load(Ordering::Relaxed) >= AGE_OUT_EVERY_MS;
        if age_out {
            self.aged_out_at.store(now, Ordering::Relaxed);
        }
        let rows: Vec<(String, String)> = kept_runs(runs, max_runs)
            .into_iter()
            .map(|run| {
                let json = serde_json::to_string(run).expect("runs serialize");
                (run.trigger.clone(), json)
            })
            .collect();
        self.with(move |c| {
            let transaction = c.transaction()?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO runs (trigger, recorded_at, record) VALUES (?1, ?2, ?3)",
                )?;
                let mut trim = transaction.prepare_cached(
                    "DELETE FROM runs WHERE trigger = ?1 AND seq <= (SELECT seq FROM runs \
                     WHERE trigger = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                )?;
                let mut triggers = BTreeSet::new();
                for (trigger, json) in &rows {
                    insert.execute(params![trigger, now, json])?;
                    triggers.insert(trigger);
                }
                for trigger in triggers {
                    trim.execute(params![trigger, max_runs as i64])?;
                }
                if age_out {
                    transaction.execute("DELETE FROM runs WHERE recorded_at < ?1", [oldest])?;
                }
            }
            transaction.commit()
        })
        .await
    }

    async fn runs(&self, id: &str, limit: usize) -> Result<Vec<Run>, StateError> {
        let key = id.to_owned();
        let rows: Vec<String> = self
            .with(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT record FROM runs WHERE trigger = ?1 ORDER BY seq DESC LIMIT ?2",
                )?;
                let rows = statement.query_map(params![key, limit as i64], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json).map_err(|e| self.corrupt(format!("run of {id}"), e))
            })
            .collect()
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), StateError> {
        let json = serde_json::to_string(letter).expect("dead letters serialize");
        let (id, trigger, at) = (
            letter.id.to_string(),
            letter.trigger.clone(),
            letter.at.timestamp_millis(),
        );
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO dead_letters (id, trigger, at, record) VALUES (?1, ?2, ?3, ?4)",
                params![id, trigger, at, json],
            )
        })
        .await
        .map(drop)
    }

    async fn dead_letters(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let trigger = trigger.map(str::to_owned);
        let rows: Vec<String> = self
            .with(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT record FROM dead_letters WHERE ?1 IS NULL OR trigger = ?1 \
                     ORDER BY at DESC, id DESC LIMIT ?2",
                )?;
                let rows = statement.query_map(params![trigger, limit as i64], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json).map_err(|e| self.corrupt("dead letter".into(), e))
            })
            .collect()
    }

    async fn dead_letter(&self, id: uuid::Uuid) -> Result<Option<DeadLetter>, StateError> {
        let key = id.to_string();
        let row: Option<String> = self
            .with(move |c| {
                c.query_row(
                    "SELECT record FROM dead_letters WHERE id = ?1",
                    [key],
                    |row| row.get(0),
                )
                .optional()
            })
            .await?;
        row.map(|json| {
            serde_json::from_str(&json).map_err(|e| self.corrupt(format!("dead letter {id}"), e))
        })
        .transpose()
    }

    async fn delete_dead_letter(&self, id: uuid::Uuid) -> Result<bool, StateError> {
        let key = id.to_string();
        let deleted = self
            .with(move |c| c.execute("DELETE FROM dead_letters WHERE id = ?1", [key]))
            .await?;
        Ok(deleted == 1)
    }

    async fn put_pending(&self, pending: &PendingRetry) -> Result<(), StateError> {
        let json = serde_json::to_string(pending).expect("pending retries serialize");
        let (id, trigger) = (pending.id.to_string(), pending.trigger.clone());
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO pending_retries (id, trigger, record) VALUES (?1, ?2, ?3)",
                params![id, trigger, json],
            )
        })
        .await
        .map(drop)
    }

    async fn pending(&self, trigger: &str) -> Result<Vec<PendingRetry>, StateError> {
        let key = trigger.to_owned();
        let rows: Vec<String> = self
            .with(move |c| {
                let mut statement =
                    c.prepare_cached("SELECT record FROM pending_retries WHERE trigger = ?1")?;
                let rows = statement.query_map([key], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| self.corrupt(format!("pending retry of {trigger}"), e))
            })
            .collect()
    }

    async fn delete_pending(&self, id: uuid::Uuid) -> Result<(), StateError> {
        let key = id.to_string();
        self.with(move |c| c.execute("DELETE FROM pending_retries WHERE id = ?1", [key]))
            .await
            .map(drop)
    }

    async fn put_timer(&self, timer: &OneOffTimer) -> Result<OneOffTimer, StateError> {
        let json = serde_json::to_string(timer).expect("timers serialize");
        let (id, due) = (timer.id.clone(), timer.due.to_rfc3339());
        let remembered_since = Utc::now().timestamp_millis() - FIRED_TIMERS_KEPT.as_millis() as i64;
        let kept: String = self
            .with(move |c| {
                let tx = c.transaction()?;
                let fired: Option<String> = tx
                    .query_row(
                        "SELECT record FROM fired_timers WHERE id = ?1 AND fired >= ?2",
                        params![id, remembered_since],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(fired) = fired {
                    return Ok(fired);
                }
                tx.execute(
                    "INSERT OR IGNORE INTO timers (id, due, record) VALUES (?1, ?2, ?3)",
                    params![id, due, json],
                )?;
                let kept =
                    tx.query_row("SELECT record FROM timers WHERE id = ?1", [id], |row| {
                        row.get(0)
                    })?;
                tx.commit()?;
                Ok(kept)
            })
            .await?;
        serde_json::from_str(&kept).map_err(|e| self.corrupt(format!("timer {}", timer.id), e))
    }

    async fn timers(&self) -> Result<Vec<OneOffTimer>, StateError> {
        let rows: Vec<String> = self
            .with(|c| {
                let mut statement = c.prepare_cached("SELECT record FROM timers ORDER BY due")?;
                let rows = statement.query_map([], |row| row.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter()
            .map(|json| serde_json::from_str(json).map_err(|e| self.corrupt("timer".into(), e)))
            .collect()
    }

    async fn timer_dues(&self) -> Result<Vec<(String, DateTime<Utc>)>, StateError> {
        let rows: Vec<(String, String)> = self
            .with(|c| {
                let mut statement = c.prepare_cached("SELECT id, due FROM timers")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(id, due)| {
                let due = DateTime::parse_from_rfc3339(&due)
                    .map_err(|e| self.corrupt(format!("timer {id}"), e))?;
                Ok((id, due.with_timezone(&Utc)))
            })
            .collect()
    }

    async fn timer(&self, id: &str) -> Result<Option<OneOffTimer>, StateError> {
        let key = id.to_owned();
        let row: Option<String> = self
            .with(move |c| {
                c.query_row("SELECT record FROM timers WHERE id = ?1", [key], |row| {
                    row.get(0)
                })
                .optional()
            })
            .await?;
        row.map(|json| {
            serde_json::from_str(&json).map_err(|e| self.corrupt(format!("timer {id}"), e))
        })
        .transpose()
    }

    async fn take_timer(&self, id: &str) -> Result<bool, StateError> {
        let key = id.to_owned();
        let taken = self
            .with(move |c| c.execute("DELETE FROM timers WHERE id = ?1", [key]))
            .await?;
        Ok(taken == 1)
    }

    async fn restore_timer(&self, timer: &OneOffTimer) -> Result<(), StateError> {
        let mut timer = timer.clone();
        timer.fired = None;
        let json = serde_json::to_string(&timer).expect("timers serialize");
        let (id, due) = (timer.id, timer.due.to_rfc3339());
        self.with(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM fired_timers WHERE id = ?1", [&id])?;
            tx.execute(
                "INSERT OR REPLACE INTO timers (id, due, record) VALUES (?1, ?2, ?3)",
                params![id, due, json],
            )?;
            tx.commit()
        })
        .await
    }

    async fn take_timer_to_fire(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StateError> {
        let key = id.to_owned();
        let forget_before = at.timestamp_millis() - FIRED_TIMERS_KEPT.as_millis() as i64;
        // Taken and remembered in one transaction: a request adding the
        // same id sees the timer pending or fired, never neither.
        self.with(move |c| {
            let tx = c.transaction()?;
            let record: Option<String> = tx
                .query_row("SELECT record FROM timers WHERE id = ?1", [&key], |row| {
                    row.get(0)
                })
                .optional()?;
            let Some(record) = record else {
                return Ok(false);
            };
            let mut fired: serde_json::Value = serde_json::from_str(&record)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            if let Some(fields) = fired.as_object_mut() {
                fields.insert("fired".into(), serde_json::json!(at));
            }
            tx.execute("DELETE FROM timers WHERE id = ?1", [&key])?;
            tx.execute("DELETE FROM fired_timers WHERE fired < ?1", [forget_before])?;
            tx.execute(
                "INSERT OR REPLACE INTO fired_timers (id, fired, record) VALUES (?1, ?2, ?3)",
                params![key, at.timestamp_millis(), fired.to_string()],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}
