//! Plugin key-value data in the bucket `<stream>_kv`, shared by replicas.
//!
//! A value lives under `v.<scope>.<key in hex>` (hex keeps any key a valid
//! NATS key and sorts like the key's bytes); each scope's usage (keys,
//! bytes) under `u.<scope>`, changed by compare-and-set before a value is
//! written, so two replicas cannot both squeeze under the quota. A crash
//! between the two writes, or two replicas creating the same key at once,
//! leaves the usage counting too much, never too little: a write that
//! would be refused first recounts the scope exactly, and is refused only
//! if it is still over.

use async_nats::jetstream::kv::{self, Operation};
use async_trait::async_trait;
use bytes::Bytes;

use super::NatsStore;
use wasmsched_core::state::{KvError, KvQuota, KvUsage, PluginKv, StateError, id_key};

/// Compare-and-set attempts on a usage record before giving up.
const CAS_TRIES: usize = 20;

fn value_key(scope: &str, key: &str) -> String {
    format!("v.{}.{}", id_key(scope), hex::encode(key))
}

fn usage_key(scope: &str) -> String {
    format!("u.{}", id_key(scope))
}

#[async_trait]
impl PluginKv for NatsStore {
    async fn kv_get(&self, scope: &str, key: &str) -> Result<Option<String>, StateError> {
        let value = self
            .plugin_kv
            .get(value_key(scope, key))
            .await
            .map_err(|e| self.io("reading a plugin key", e))?;
        value
            .map(|v| String::from_utf8(v.to_vec()).map_err(|e| self.corrupt(key.to_owned(), e)))
            .transpose()
    }

    async fn kv_set(
        &self,
        scope: &str,
        key: &str,
        value: &str,
        quota: &KvQuota,
    ) -> Result<(), KvError> {
        let old = self.value_len(scope, key).await?;
        let mut recounted = false;
        for _ in 0..CAS_TRIES {
            let (usage, revision) = self.usage(scope).await?;
            let after = match usage.after_set(key, old, value.len(), quota) {
                Ok(after) => after,
                Err(refused) if recounted => return Err(refused),
                Err(_) => {
                    recounted = true;
                    self.recount(scope, revision).await?;
                    continue;
                }
            };
            if self.swap_usage(scope, after, revision).await? {
                self.plugin_kv
                    .put(
                        value_key(scope, key),
                        Bytes::copy_from_slice(value.as_bytes()),
                    )
                    .await
                    .map_err(|e| self.io("writing a plugin key", e))?;
                return Ok(());
            }
        }
        Err(self
            .io("writing a plugin key", "too many concurrent writers")
            .into())
    }

    async fn kv_delete(&self, scope: &str, key: &str) -> Result<bool, StateError> {
        let Some(old) = self.value_len(scope, key).await? else {
            return Ok(false);
        };
        self.plugin_kv
            .delete(value_key(scope, key))
            .await
            .map_err(|e| self.io("deleting a plugin key", e))?;
        for _ in 0..CAS_TRIES {
            let (usage, revision) = self.usage(scope).await?;
            if self
                .swap_usage(scope, usage.after_delete(key, old), revision)
                .await?
            {
                break;
            }
        }
        Ok(true)
    }

    async fn kv_keys(&self, scope: &str, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys: Vec<String> = self
            .scope_keys(scope)
            .await?
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

impl NatsStore {
    /// The keys of `scope` (decoded).
    async fn scope_keys(&self, scope: &str) -> Result<Vec<String>, StateError> {
        let start = format!("v.{}.", id_key(scope));
        self.hex_keys(&self.plugin_kv, &start, "listing plugin keys")
            .await
    }

    async fn value_len(&self, scope: &str, key: &str) -> Result<Option<usize>, StateError> {
        let value = self
            .plugin_kv
            .get(value_key(scope, key))
            .await
            .map_err(|e| self.io("reading a plugin key", e))?;
        Ok(value.map(|v| v.len()))
    }

    /// The scope's usage record and its revision (`None`: no record yet).
    async fn usage(&self, scope: &str) -> Result<(KvUsage, Option<u64>), StateError> {
        let entry = self
            .plugin_kv
            .entry(usage_key(scope))
            .await
            .map_err(|e| self.io("reading a plugin's key-value usage", e))?;
        match entry.filter(|e| e.operation == Operation::Put) {
            Some(entry) => {
                let usage = serde_json::from_slice(&entry.value)
                    .map_err(|e| self.corrupt(usage_key(scope), e))?;
                Ok((usage, Some(entry.revision)))
            }
            None => Ok((KvUsage::default(), None)),
        }
    }

    /// Writes the usage record if it is still at `revision`: `false` if
    /// another writer came first.
    async fn swap_usage(
        &self,
        scope: &str,
        usage: KvUsage,
        revision: Option<u64>,
    ) -> Result<bool, StateError> {
        let key = usage_key(scope);
        let value = Bytes::from(serde_json::to_vec(&usage).expect("usage serializes"));
        let what = "writing a plugin's key-value usage";
        match revision {
            Some(revision) => match self.plugin_kv.update(&key, value, revision).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(self.io(what, e)),
            },
            None => match self.plugin_kv.create(&key, value).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(self.io(what, e)),
            },
        }
    }

    /// Counts the scope's keys and bytes exactly and stores the figures
    /// (unless another writer changed the record meanwhile).
    async fn recount(&self, scope: &str, revision: Option<u64>) -> Result<(), StateError> {
        let mut usage = KvUsage::default();
        for key in self.scope_keys(scope).await? {
            if let Some(len) = self.value_len(scope, &key).await? {
                usage.keys += 1;
                usage.bytes += (key.len() + len) as u64;
            }
        }
        self.swap_usage(scope, usage, revision).await?;
        Ok(())
    }
}
