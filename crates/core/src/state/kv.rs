//! Plugin key-value data: the quota a store enforces on each plugin's keys
//! ([`KvQuota`]), and why a write is refused ([`KvError`]). Keys live in a
//! *scope* (the plugin's name), so plugins never see each other's.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StateError;

/// Plugin key-value data: the part of the [`super::StateStore`] port the
/// `wasmsched:plugin/kv` interface reads and writes.
#[async_trait]
pub trait PluginKv: Send + Sync {
    /// The value of `key` in plugin key-value scope `scope`.
    async fn kv_get(&self, scope: &str, key: &str) -> Result<Option<String>, StateError>;
    /// Sets `key` in `scope` to `value`, unless the scope would then be
    /// over `quota` (see [`KvUsage::after_set`]).
    async fn kv_set(
        &self,
        scope: &str,
        key: &str,
        value: &str,
        quota: &KvQuota,
    ) -> Result<(), KvError>;
    /// Removes `key` from `scope`: `true` if it was set.
    async fn kv_delete(&self, scope: &str, key: &str) -> Result<bool, StateError>;
    /// The keys of `scope` starting with `prefix`, sorted.
    async fn kv_keys(&self, scope: &str, prefix: &str) -> Result<Vec<String>, StateError>;
}

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// How much one plugin may keep.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvQuota {
    /// Most keys (default 1 000).
    pub max_keys: u64,
    /// Most bytes, keys and values together (default 1 MiB).
    pub max_bytes: u64,
}

impl Default for KvQuota {
    fn default() -> Self {
        Self {
            max_keys: 1_000,
            max_bytes: 1 << 20,
        }
    }
}

/// What a scope holds: keys and bytes (keys and values together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvUsage {
    /// Keys set.
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

impl KvUsage {
    /// The usage after setting `key` to a value of `new` bytes, where it
    /// held `old` bytes (`None`: unset); refused if over `quota`. Shrinking
    /// is always allowed, so a scope over a lowered quota can be cleaned up.
    pub fn after_set(
        self,
        key: &str,
        old: Option<usize>,
        new: usize,
        quota: &KvQuota,
    ) -> Result<KvUsage, KvError> {
        let key_len = key.len() as u64;
        let (keys, bytes) = match old {
            Some(old) => (
                self.keys,
                self.bytes - (old as u64).min(self.bytes) + new as u64,
            ),
            None => (self.keys + 1, self.bytes + key_len + new as u64),
        };
        if old.is_none() && keys > quota.max_keys {
            return Err(KvError::Quota(format!(
                "max_keys: {} keys already set, the quota is {}",
                self.keys, quota.max_keys
            )));
        }
        if bytes > quota.max_bytes && bytes > self.bytes {
            return Err(KvError::Quota(format!(
                "max_bytes: this write would bring the plugin to {bytes} bytes, the quota is {}",
                quota.max_bytes
            )));
        }
        Ok(KvUsage { keys, bytes })
    }

    /// The usage after removing `key`, which held `old` bytes.
    pub fn after_delete(self, key: &str, old: usize) -> KvUsage {
        KvUsage {
            keys: self.keys.saturating_sub(1),
            bytes: self.bytes.saturating_sub((key.len() + old) as u64),
        }
    }
}

/// Why a key-value write was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The write would exceed the plugin's quota (which one, and figures).
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_keys_and_bytes() {
        let quota = KvQuota {
            max_keys: 2,
            max_bytes: 20,
        };
        let usage = KvUsage::default();
        let usage = usage.after_set("a", None, 4, &quota).unwrap();
        assert_eq!(usage, KvUsage { keys: 1, bytes: 5 });
        let usage = usage.after_set("a", Some(4), 9, &quota).unwrap();
        assert_eq!(usage, KvUsage { keys: 1, bytes: 10 });
        let usage = usage.after_set("b", None, 1, &quota).unwrap();
        assert_eq!(usage, KvUsage { keys: 2, bytes: 12 });
        let error = usage.after_set("c", None, 1, &quota).unwrap_err();
        assert!(error.to_string().contains("max_keys"), "{error}");
        let error = usage.after_set("b", Some(1), 10, &quota).unwrap_err();
        assert!(error.to_string().contains("max_bytes"), "{error}");
        let usage = usage.after_delete("a", 9);
        assert_eq!(usage, KvUsage { keys: 1, bytes: 2 });
    }
}
