//! Flow-control windows: the part of the [`super::StateStore`] port that
//! keeps each key's window of a trigger's flow control (records of
//! `trigger::flow::window`, opaque JSON here), changed by compare-and-set.

use async_trait::async_trait;

use super::{StateError, Stored};

/// Flow-control windows, by trigger and key.
#[async_trait]
pub trait FlowWindows: Send + Sync {
    /// The windows of trigger `trigger`, by key.
    async fn flow_windows(
        &self,
        trigger: &str,
    ) -> Result<Vec<(String, Stored<serde_json::Value>)>, StateError>;
    /// One window.
    async fn flow_window(
        &self,
        trigger: &str,
        key: &str,
    ) -> Result<Option<Stored<serde_json::Value>>, StateError>;
    /// Writes a window if it is still at `revision` (`None`: absent);
    /// returns its new revision, or `None` if another writer came first.
    async fn put_flow_window(
        &self,
        trigger: &str,
        key: &str,
        window: &serde_json::Value,
        revision: Option<u64>,
    ) -> Result<Option<u64>, StateError>;
    /// Removes a window if it is still at `revision`: `false` if another
    /// writer came first.
    async fn delete_flow_window(
        &self,
        trigger: &str,
        key: &str,
        revision: u64,
    ) -> Result<bool, StateError>;
}
