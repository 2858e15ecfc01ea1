//! What the host keeps in the state store beyond the scheduler's own
//! records: the triggers added through the admin API (as the JSON tables
//! they came in), restored at start; the dead letters, replayed or
//! discarded; and, for a store shared by replicas, the changes other
//! replicas make (admin triggers, pauses), applied here.

use std::path::Path;
use std::sync::{Arc, Weak};

use serde_json::Value;

use super::{Host, HostError, Removal};
use crate::config::{DeclaredIn, TriggerConfig};
use wasmsched_core::state::{DeadLetter, StateChange, StateStore};
use wasmsched_core::trigger::TriggerError;

/// Why an admin trigger could not be added.
pub(super) fn invalid(error: String) -> HostError {
    HostError::InvalidTable(error)
}

impl Host {
    /// Registers the admin triggers the store keeps (at start). One whose
    /// id a file now declares is reported and left in the store.
    pub(super) async fn restore_admin_triggers(&self, store: &Arc<dyn StateStore>) {
        let tables = match store.admin_triggers().await {
            Ok(tables) => tables,
            Err(error) => return self.report(format!("admin triggers not restored: {error}")),
        };
        let serial = self.serial().await;
        for (id, table) in tables {
            let mut config = match TriggerConfig::from_json(table) {
                Ok(config) => config,
                Err(error) => {
                    self.report(format!(
                        "admin trigger `{id}` kept in {} is not valid: {error}",
                        store.describe()
                    ));
                    continue;
                }
            };
            config.declared_in = DeclaredIn::AdminApi;
            if let Some(file) = self.declared_by_file(&id) {
                self.report(format!(
                    "admin trigger `{id}` is not started: {} declares a trigger with that id",
                    file.display()
                ));
                continue;
            }
            if let Err(error) = self.register_declared(&serial, config).await {
                self.report(error.to_string());
            }
        }
    }

    /// The file declaring trigger `id`, if a file does.
    fn declared_by_file(&self, id: &str) -> Option<std::path::PathBuf> {
        let state = self.state();
        let declared = state.triggers.get(id).map(|b| &b.config);
        declared
            .or_else(|| state.pending.get(id))
            .and_then(|t| t.declared_in.file())
            .map(Path::to_path_buf)
    }

    /// Follows the changes other replicas make to a shared store (from
    /// `changes`, subscribed before the host read the store, so that none
    /// falls in between), until the host is dropped.
    pub(super) fn follow_store(
        self: &Arc<Self>,
        changes: Option<tokio::sync::broadcast::Receiver<StateChange>>,
    ) {
        let Some(mut changes) = changes else {
            return;
        };
        let host: Weak<Host> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = match changes.recv().await {
                    Ok(change) => change,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            "{n} changes from other replicas came too fast; reading the state store again"
                        );
                        StateChange::Resync
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(host) = host.upgrade() else { return };
                host.apply_change(change).await;
            }
        });
    }

    /// Brings this replica in line with what `change` names, as the store
    /// has it now.
    async fn apply_change(&self, change: StateChange) {
        let applied = match change {
            StateChange::Pause(id) => match self.store.is_paused(&id).await {
                Ok(paused) => self.apply_pause(&id, paused).await,
                Err(error) => Err(error.to_string()),
            },
            StateChange::Trigger(id) => match self.store.admin_trigger(&id).await {
                Ok(table) => {
                    self.apply_admin_trigger(&id, table).await;
                    Ok(())
                }
                Err(error) => Err(error.to_string()),
            },
            StateChange::Timer(id) => self.refresh_timer(&id).await,
            StateChange::Resync => self.resync().await,
        };
        if let Err(error) = applied {
            tracing::warn!("applying a change from another replica: {error}");
        }
    }

    async fn apply_pause(&self, id: &str, paused: bool) -> Result<(), String> {
        if self.triggers().is_paused(id).await == paused {
            return Ok(());
        }
        let applied = self.scheduler.apply_pause(id, paused).await;
        applied.map_err(|e| format!("trigger `{id}`: {e}"))
    }

    /// Reads every pause and admin trigger from the store and applies them.
    async fn resync(&self) -> Result<(), String> {
        let paused = self.store.paused().await.map_err(|e| e.to_string())?;
        let held = self.scheduler.paused_ids().await;
        for id in paused.union(&held) {
            self.apply_pause(id, paused.contains(id)).await?;
        }
        let tables = self
            .store
            .admin_triggers()
            .await
            .map_err(|e| e.to_string())?;
        let mut ids: std::collections::BTreeSet<String> = tables.keys().cloned().collect();
        let local = self.state().triggers.keys().cloned().collect::<Vec<_>>();
        ids.extend(local.into_iter().filter(|id| self.triggers().is_admin(id)));
        for id in ids {
            self.apply_admin_trigger(&id, tables.get(&id).cloned())
                .await;
        }
        Ok(())
    }

    /// Adds, replaces or removes admin trigger `id` as another replica did.
    async fn apply_admin_trigger(&self, id: &str, table: Option<Value>) {
        let serial = self.serial().await;
        let config = match table.map(TriggerConfig::from_json) {
            None => None,
            Some(Ok(mut config)) => {
                config.declared_in = DeclaredIn::AdminApi;
                Some(config)
            }
            Some(Err(error)) => {
                return tracing::warn!(trigger = %id, "admin trigger from another replica is not valid: {error}");
            }
        };
        let current = self
            .triggers()
            .config(id)
            .or_else(|| self.state().pending.get(id).cloned());
        if current == config {
            return;
        }
        if let Some(current) = &current {
            if current.declared_in != DeclaredIn::AdminApi {
                return tracing::warn!(trigger = %id, "another replica added an admin trigger with this id; {} declares it here", current.declared_in);
            }
            let removal = match config {
                Some(_) => Removal::Replace,
                None => Removal::Forget,
            };
            if let Err(error) = self.remove_locked(&serial, id, removal).await {
                return tracing::warn!(trigger = %id, "removing as another replica did: {error}");
            }
        }
        if let Some(config) = config
            && let Err(error) = self.register_declared(&serial, config).await
        {
            tracing::warn!(trigger = %id, "adding as another replica did: {error}");
        }
    }
}

/// The dead letters the state store keeps: listed, replayed and discarded.
#[derive(Clone, Copy)]
pub struct DeadLetters<'a> {
    host: &'a Host,
}

impl Host {
    /// The dead letters the state store keeps.
    pub fn dead_letters(&self) -> DeadLetters<'_> {
        DeadLetters { host: self }
    }
}

impl DeadLetters<'_> {
    /// The newest `limit` dead letters, of trigger `trigger` or of all.
    pub async fn list(
        self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, HostError> {
        Ok(self.host.store.dead_letters(trigger, limit).await?)
    }

    /// Hands dead letter `id`'s event to its trigger again (its filter,
    /// then its factory: e.g. once a fixed plugin is loaded); discards the
    /// letter if that succeeds, keeps it if not.
    pub async fn replay(self, id: uuid::Uuid) -> Result<DeadLetter, HostError> {
        let store = &self.host.store;
        let letter = store
            .dead_letter(id)
            .await?
            .ok_or(HostError::UnknownDeadLetter(id))?;
        let replay = |source: TriggerError| HostError::Replay {
            id,
            trigger: letter.trigger.clone(),
            source,
        };
        let registration = self
            .host
            .triggers()
            .registration(&letter.trigger)
            .await
            .ok_or_else(|| HostError::GoneTrigger {
                id,
                trigger: letter.trigger.clone(),
            })?;
        registration
            .trigger
            .replay(letter.event.clone())
            .await
            .map_err(replay)?;
        tracing::info!(trigger = %letter.trigger, dead_letter = %id, "replayed a dead letter");
        if let Err(error) = store.delete_dead_letter(id).await {
            // Replayed all the same: a retry by the client would replay it twice.
            tracing::warn!(dead_letter = %id, "replayed, but still listed: {error}");
        }
        Ok(letter)
    }

    /// Discards dead letter `id`.
    pub async fn discard(self, id: uuid::Uuid) -> Result<(), HostError> {
        match self.host.store.delete_dead_letter(id).await? {
            true => Ok(()),
            false => Err(HostError::UnknownDeadLetter(id)),
        }
    }
}
