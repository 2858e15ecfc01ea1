//! Plugin key-value data in the table `kv` (scope, key, value): a write
//! checks the scope's quota in the same transaction.

use async_trait::async_trait;
use rusqlite::OptionalExtension;

use super::SqliteStore;
use crate::state::{KvError, KvQuota, KvUsage, PluginKv, StateError};

#[async_trait]
impl PluginKv for SqliteStore {
    async fn kv_get(&self, scope: &str, key: &str) -> Result<Option<String>, StateError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.with(move |c| {
            c.query_row(
                "SELECT value FROM kv WHERE scope = ?1 AND key = ?2",
                [scope, key],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn kv_set(
        &self,
        scope: &str,
        key: &str,
        value: &str,
        quota: &KvQuota,
    ) -> Result<(), KvError> {
        let (scope, key, value, quota) =
            (scope.to_owned(), key.to_owned(), value.to_owned(), *quota);
        // The check and the write in one transaction: two writers cannot
        // both squeeze under the quota.
        self.with(move |c| {
            let tx = c.transaction()?;
            let usage = tx.query_row(
                "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) \
                 FROM kv WHERE scope = ?1",
                [&scope],
                |row| {
                    Ok(KvUsage {
                        keys: row.get::<_, i64>(0)? as u64,
                        bytes: row.get::<_, i64>(1)? as u64,
                    })
                },
            )?;
            let old: Option<i64> = tx
                .query_row(
                    "SELECT length(CAST(value AS BLOB)) FROM kv WHERE scope = ?1 AND key = ?2",
                    [&scope, &key],
                    |row| row.get(0),
                )
                .optional()?;
            if let Err(refused) = usage.after_set(&key, old.map(|n| n as usize), value.len(), &quota) {
                return Ok(Err(refused));
            }
            tx.execute(
                "INSERT INTO kv (scope, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
                [&scope, &key, &value],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn kv_delete(&self, scope: &str, key: &str) -> Result<bool, StateError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        let deleted = self
            .with(move |c| c.execute("DELETE FROM kv WHERE scope = ?1 AND key = ?2", [scope, key]))
            .await?;
        Ok(deleted == 1)
    }

    async fn kv_keys(&self, scope: &str, prefix: &str) -> Result<Vec<String>, StateError> {
        let (scope, prefix) = (scope.to_owned(), prefix.to_owned());
        self.with(move |c| {
            // `substr` rather than LIKE: a prefix may hold `%` or `_`.
            let mut statement = c.prepare_cached(
                "SELECT key FROM kv WHERE scope = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
            )?;
            let rows = statement.query_map([scope, prefix], |row| row.get(0))?;
            rows.collect()
        })
        .await
    }
}
