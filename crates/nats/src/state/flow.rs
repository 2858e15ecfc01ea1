//! Flow-control windows in the bucket `<stream>_flow`, shared by replicas:
//! one record per trigger and key, under `<trigger>.k<key in hex>`, written
//! by compare-and-set on its revision (so two replicas taking one event of
//! a key each cannot both pass a throttle of one).

use async_nats::jetstream::kv::{self, Operation};
use async_trait::async_trait;
use bytes::Bytes;

use super::NatsStore;
use wasmsched_core::state::{FlowWindows, StateError, Stored, id_key};

fn window_key(trigger: &str, key: &str) -> String {
    format!("{}.k{}", id_key(trigger), hex::encode(key))
}

#[async_trait]
impl FlowWindows for NatsStore {
    async fn flow_windows(
        &self,
        trigger: &str,
    ) -> Result<Vec<(String, Stored<serde_json::Value>)>, StateError> {
        let start = format!("{}.k", id_key(trigger));
        let found = self
            .hex_keys(&self.flow, &start, "listing flow-control windows")
            .await?;
        let mut windows = Vec::with_capacity(found.len());
        for key in found {
            if let Some(window) = self.flow_window(trigger, &key).await? {
                windows.push((key, window));
            }
        }
        Ok(windows)
    }

    async fn flow_window(
        &self,
        trigger: &str,
        key: &str,
    ) -> Result<Option<Stored<serde_json::Value>>, StateError> {
        let stored = window_key(trigger, key);
        let entry = self
            .flow
            .entry(&stored)
            .await
            .map_err(|e| self.io("reading a flow-control window", e))?;
        let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
            return Ok(None);
        };
        let value = serde_json::from_slice(&entry.value).map_err(|e| self.corrupt(stored, e))?;
        Ok(Some(Stored {
            value,
            revision: entry.revision,
        }))
    }

    async fn put_flow_window(
        &self,
        trigger: &str,
        key: &str,
        window: &serde_json::Value,
        revision: Option<u64>,
    ) -> Result<Option<u64>, StateError> {
        let stored = window_key(trigger, key);
        let value = Bytes::from(serde_json::to_vec(window).expect("JSON serializes"));
        let what = "writing a flow-control window";
        let written = match revision {
            Some(revision) => match self.flow.update(&stored, value, revision).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => return Ok(None),
                Err(e) => return Err(self.io(what, e)),
            },
            None => match self.flow.create(&stored, value).await {
                Ok(revision) => revision,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(None),
                Err(e) => return Err(self.io(what, e)),
            },
        };
        if self.replicas > 1 && !self.still_ours(&self.flow, &stored, written).await? {
            return Ok(None);
        }
        Ok(Some(written))
    }

    async fn delete_flow_window(
        &self,
        trigger: &str,
        key: &str,
        revision: u64,
    ) -> Result<bool, StateError> {
        let stored = window_key(trigger, key);
        match self
            .flow
            .delete_expect_revision(&stored, Some(revision))
            .await
        {
            Ok(()) => Ok(true),
            // Another writer came first: the window is theirs.
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(self.io("deleting a flow-control window", e)),
        }
    }
}
