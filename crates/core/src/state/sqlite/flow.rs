//! Flow-control windows in the table `flow_windows` (trigger, key,
//! revision, record), written by compare-and-set on the revision.

use async_trait::async_trait;
use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::state::{FlowWindows, StateError, Stored};

#[async_trait]
impl FlowWindows for SqliteStore {
    async fn flow_windows(
        &self,
        trigger: &str,
    ) -> Result<Vec<(String, Stored<serde_json::Value>)>, StateError> {
        let trigger = trigger.to_owned();
        let rows: Vec<(String, i64, String)> = self
            .with(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT key, revision, record FROM flow_windows WHERE trigger = ?1",
                )?;
                let rows = statement
                    .query_map([trigger], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(key, revision, json)| {
                let value = serde_json::from_str(&json)
                    .map_err(|e| self.corrupt(format!("flow window {key}"), e))?;
                Ok((
                    key,
                    Stored {
                        value,
                        revision: revision as u64,
                    },
                ))
            })
            .collect()
    }

    async fn flow_window(
        &self,
        trigger: &str,
        key: &str,
    ) -> Result<Option<Stored<serde_json::Value>>, StateError> {
        let (trigger, owned) = (trigger.to_owned(), key.to_owned());
        let row: Option<(i64, String)> = self
            .with(move |c| {
                c.query_row(
                    "SELECT revision, record FROM flow_windows WHERE trigger = ?1 AND key = ?2",
                    [trigger, owned],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
            })
            .await?;
        row.map(|(revision, json)| {
            let value = serde_json::from_str(&json)
                .map_err(|e| self.corrupt(format!("flow window {key}"), e))?;
            Ok(Stored {
                value,
                revision: revision as u64,
            })
        })
        .transpose()
    }

    async fn put_flow_window(
        &self,
        trigger: &str,
        key: &str,
        window: &serde_json::Value,
        revision: Option<u64>,
    ) -> Result<Option<u64>, StateError> {
        let (trigger, key, record) = (trigger.to_owned(), key.to_owned(), window.to_string());
        self.with(move |c| {
            let written = match revision {
                None => c.execute(
                    "INSERT INTO flow_windows (trigger, key, revision, record) VALUES (?1, ?2, 1, ?3) \
                     ON CONFLICT (trigger, key) DO NOTHING",
                    rusqlite::params![trigger, key, record],
                )?,
                Some(revision) => c.execute(
                    "UPDATE flow_windows SET revision = revision + 1, record = ?3 \
                     WHERE trigger = ?1 AND key = ?2 AND revision = ?4",
                    rusqlite::params![trigger, key, record, revision as i64],
                )?,
            };
            Ok((written == 1).then(|| revision.map_or(1, |r| r + 1)))
        })
        .await
    }

    async fn delete_flow_window(
        &self,
        trigger: &str,
        key: &str,
        revision: u64,
    ) -> Result<bool, StateError> {
        let (trigger, key) = (trigger.to_owned(), key.to_owned());
        let deleted = self
            .with(move |c| {
                c.execute(
                    "DELETE FROM flow_windows WHERE trigger = ?1 AND key = ?2 AND revision = ?3",
                    rusqlite::params![trigger, key, revision as i64],
                )
            })
            .await?;
        Ok(deleted == 1)
    }
}
