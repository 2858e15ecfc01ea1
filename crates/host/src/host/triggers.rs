//! Registering and removing triggers: from the admin API or Rust code (an
//! error if the plugin is not there), and from files (a trigger whose
//! plugin is missing, or lacks an export it needs, waits pending for it).
//! Each registered trigger is bound to its plugin's slot, and the host
//! remembers which exports it calls, which a new version must keep.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::stored::invalid;
use super::{Bound, Host, HostError, Serial};
use crate::config::{DeclaredIn, TriggerConfig};
use wasmsched_core::firing::{Factory, Filter};
use wasmsched_core::scheduler::{Registration, SchedulerError};
use wasmsched_core::state::Run;
use wasmsched_core::trigger::{Trigger, TriggerKind, create_trigger};
use wasmsched_plugin::Worlds;

/// Native closures serving a trigger whose table names no plugin (see
/// [`Triggers::add_with`]).
#[derive(Default, Clone)]
pub struct NativeLogic {
    /// Turns each firing into events; none publishes the default event.
    pub factory: Option<Arc<dyn Factory>>,
    /// Event triggers only: decides per event whether the trigger fires.
    pub filter: Option<Arc<dyn Filter>>,
}

/// What removing a trigger does to its pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removal {
    /// The trigger is gone (admin API, or its table left its manifest).
    Forget,
    /// The trigger comes back (a changed table, its plugin file restored):
    /// a paused one stays paused.
    Replace,
}

/// How registering a declared trigger went, short of an error.
pub(super) enum Declared {
    Registered,
    /// Kept pending until its plugin loads, for this reason.
    Waiting(HostError),
}

impl Host {
    pub(super) async fn add_locked(
        &self,
        _: &Serial<'_>,
        config: TriggerConfig,
        native: NativeLogic,
    ) -> Result<(), HostError> {
        if self.state().pending.contains_key(&config.id) {
            return Err(SchedulerError::DuplicateId(config.id).into());
        }
        if let Some(path) = config.api_path()
            && let Some(other) = self.triggers().at_path(&path)
        {
            return Err(HostError::PathTaken {
                id: config.id,
                path,
                other: other.id,
            });
        }
        let (trigger, uses) = self.build_trigger(&config, native)?;
        self.scheduler
            .register(config.id.clone(), trigger, config.topic.clone())
            .await?;
        self.state_mut()
            .triggers
            .insert(config.id.clone(), Box::new(Bound { config, uses }));
        Ok(())
    }

    pub(super) async fn remove_locked(
        &self,
        _: &Serial<'_>,
        id: &str,
        removal: Removal,
    ) -> Result<TriggerConfig, HostError> {
        let pending = self.state_mut().pending.remove(id);
        let config = match pending {
            Some(config) => {
                if let Some(plugin) = &config.plugin {
                    self.note_waiting(plugin);
                }
                config
            }
            None => {
                // Stopped first: a firing under way cannot claim an
                // instant again once its last fire is forgotten.
                self.scheduler.withdraw(id).await?;
                let bound = self.state_mut().triggers.remove(id);
                bound
                    .map(|b| b.config)
                    .ok_or_else(|| SchedulerError::UnknownId(id.to_owned()))?
            }
        };
        if removal == Removal::Forget {
            self.scheduler.forget_pause(id).await;
        }
        Ok(config)
    }

    /// Registers a trigger declared in a file; one whose plugin is missing
    /// or lacks an export it needs waits (pending) for the plugin to load.
    pub(super) async fn register_declared(
        &self,
        serial: &Serial<'_>,
        config: TriggerConfig,
    ) -> Result<Declared, HostError> {
        match self
            .add_locked(serial, config.clone(), NativeLogic::default())
            .await
        {
            Ok(()) => Ok(Declared::Registered),
            Err(error) if error.waits_for_plugin() => {
                tracing::info!(trigger = %config.id, plugin = ?config.plugin, "trigger waits for its plugin: {error}");
                let plugin = config.plugin.clone().unwrap_or_default();
                self.state_mut().pending.insert(config.id.clone(), config);
                self.note_waiting(&plugin);
                Ok(Declared::Waiting(error))
            }
            Err(error) => Err(error),
        }
    }

    /// The tables of the triggers (registered or pending) declared in `file`.
    pub(super) fn declared_in(&self, file: &Path) -> BTreeMap<String, TriggerConfig> {
        let state = self.state();
        let registered = state.triggers.values().map(|b| &b.config);
        registered
            .chain(state.pending.values())
            .filter(|t| t.declared_in.file() == Some(file))
            .map(|t| (t.id.clone(), t.clone()))
            .collect()
    }

    /// Builds the trigger a `[[trigger]]` table describes, and tells which
    /// plugin exports it calls; its plugin, if it names one, replaces
    /// `native`'s factory and filter.
    pub(super) fn build_trigger(
        &self,
        config: &TriggerConfig,
        native: NativeLogic,
    ) -> Result<(Arc<dyn Trigger>, Worlds), HostError> {
        let mut logic = native;
        let kind = config.kind();
        let mut uses = Worlds::default();
        if let Some(name) = &config.plugin {
            let slot = self.state().plugins.get(name).cloned().ok_or_else(|| {
                HostError::PluginNotLoaded {
                    id: config.id.clone(),
                    plugin: name.clone(),
                }
            })?;
            let worlds = slot.current().worlds();
            uses = Worlds {
                factory: worlds.factory,
                filter: worlds.filter && kind == TriggerKind::Event,
            };
            if !uses.factory && kind != TriggerKind::Event {
                return Err(HostError::NeedsFactory {
                    id: config.id.clone(),
                    plugin: name.clone(),
                    kind,
                });
            }
            if uses.factory && batches(config) && !slot.current().takes_batches() {
                return Err(HostError::BatchNeedsNewerContract {
                    id: config.id.clone(),
                    plugin: name.clone(),
                });
            }
            logic.factory = match uses.factory {
                true => Some(slot.factory(&config.id, config.config.clone())?),
                false => None,
            };
            logic.filter = match uses.filter {
                true => Some(slot.filter(&config.id, config.config.clone())?),
                false => None,
            };
        }
        let trigger =
            create_trigger(&config.spec, logic.factory, logic.filter).map_err(|source| {
                HostError::Trigger {
                    id: config.id.clone(),
                    declared_in: config.declared_in.clone(),
                    source: Box::new(source),
                }
            })?;
        Ok((trigger, uses))
    }
}

/// Does the trigger fire with batches (an event trigger with `batch`)?
pub(super) fn batches(config: &TriggerConfig) -> bool {
    matches!(&config.spec, wasmsched_core::trigger::TriggerSpec::Event(event) if event.flow.batch.is_some())
}

/// The host's triggers: the registered ones, those pending for their plugin, added, removed, paused and resumed at run time, and their run history.
#[derive(Clone, Copy)]
pub struct Triggers<'a> {
    host: &'a Host,
}

impl Host {
    /// The host's triggers.
    pub fn triggers(&self) -> Triggers<'_> {
        Triggers { host: self }
    }
}

impl Triggers<'_> {
    /// Registers (and, the scheduler running, starts) the trigger a
    /// `[[trigger]]` table describes.
    pub async fn add(self, config: TriggerConfig) -> Result<(), HostError> {
        self.add_with(config, NativeLogic::default()).await
    }

    /// Like [`Triggers::add`], with native closures as factory and
    /// filter (used when the table names no plugin): how Rust code serves
    /// its own logic behind the HTTP API.
    pub async fn add_with(
        self,
        config: TriggerConfig,
        native: NativeLogic,
    ) -> Result<(), HostError> {
        let serial = self.host.serial().await;
        let (id, kind) = (config.id.clone(), config.spec.kind());
        self.host.add_locked(&serial, config, native).await?;
        tracing::info!(trigger = %id, %kind, "added trigger");
        Ok(())
    }

    /// Adds a trigger from a `[[trigger]]` table in JSON, as the admin API
    /// does: it is kept in the state store, so it comes back after a
    /// restart and (on JetStream) runs on every replica.
    pub async fn add_admin(self, table: Value) -> Result<TriggerConfig, HostError> {
        let mut config = TriggerConfig::from_json(table.clone()).map_err(invalid)?;
        config.declared_in = DeclaredIn::AdminApi;
        let serial = self.host.serial().await;
        self.host
            .add_locked(&serial, config.clone(), Default::default())
            .await?;
        if let Err(error) = self.host.store.put_admin_trigger(&config.id, &table).await {
            // Not kept: not added either.
            let _ = self
                .host
                .remove_locked(&serial, &config.id, Removal::Forget)
                .await;
            return Err(error.into());
        }
        tracing::info!(trigger = %config.id, kind = %config.spec.kind(), "added trigger (admin API)");
        Ok(config)
    }

    /// Stops and removes a trigger (or forgets a pending one), and
    /// whether it was paused. An admin trigger is also forgotten by the
    /// state store, on every replica (a file's trigger comes back with its
    /// file, and on other replicas it keeps its shared pause).
    pub async fn remove(self, id: &str) -> Result<TriggerConfig, HostError> {
        let serial = self.host.serial().await;
        let admin = self.is_admin(id);
        if admin {
            // Gone from the store first: other replicas follow it.
            self.host.store.delete_admin_trigger(id).await?;
        }
        let config = self
            .host
            .remove_locked(&serial, id, Removal::Forget)
            .await?;
        if admin {
            self.host.scheduler.forget_everywhere(id).await?;
        }
        Ok(config)
    }

    /// Stops a trigger until [`Triggers::resume`]; the pause holds
    /// across restarts of the scheduler, a changed manifest table and a
    /// plugin file deleted and put back.
    pub async fn pause(self, id: &str) -> Result<(), HostError> {
        let _serial = self.host.serial().await;
        Ok(self.host.scheduler.pause(id).await?)
    }

    /// Starts a paused trigger again (or one whose start failed).
    pub async fn resume(self, id: &str) -> Result<(), HostError> {
        let _serial = self.host.serial().await;
        Ok(self.host.scheduler.resume(id).await?)
    }

    /// The table behind a registered trigger.
    pub fn config(self, id: &str) -> Option<TriggerConfig> {
        self.host.state().triggers.get(id).map(|b| b.config.clone())
    }

    /// A registered trigger with its table.
    pub async fn get(self, id: &str) -> Option<(Registration, TriggerConfig)> {
        let registration = self.host.scheduler.trigger(id).await?;
        Some((registration, self.config(id)?))
    }

    /// The api trigger served at `path` (its `path` or `/api/triggers/<id>`).
    pub fn at_path(self, path: &str) -> Option<TriggerConfig> {
        self.host
            .state()
            .triggers
            .values()
            .map(|b| &b.config)
            .find(|t| t.api_path().as_deref() == Some(path))
            .cloned()
    }

    /// Every registered trigger by id, with its topic. Never waits for a
    /// change under way.
    pub async fn list(self) -> BTreeMap<String, Registration> {
        self.host.scheduler.registered_triggers().await
    }

    /// How many triggers are registered (pending ones not counted).
    pub fn count(self) -> usize {
        self.host.scheduler.trigger_count()
    }

    /// Cron triggers still starting (see [`Scheduler::starting`]): the
    /// host is settled once none is.
    ///
    /// [`Scheduler::starting`]: wasmsched_core::scheduler::Scheduler::starting
    pub fn starting(self) -> usize {
        self.host.scheduler.starting()
    }

    /// One registered trigger.
    pub async fn registration(self, id: &str) -> Option<Registration> {
        self.host.scheduler.trigger(id).await
    }

    /// Is the trigger paused (or, waiting for its plugin, held paused)?
    pub async fn is_paused(self, id: &str) -> bool {
        self.host.scheduler.is_paused(id).await
    }

    /// Is trigger `id` one the admin API added (kept in the store)?
    pub fn is_admin(self, id: &str) -> bool {
        let state = self.host.state();
        let declared = state.triggers.get(id).map(|b| &b.config);
        declared
            .or_else(|| state.pending.get(id))
            .is_some_and(|t| t.declared_in == DeclaredIn::AdminApi)
    }

    /// Declared triggers waiting for their plugin, by id.
    pub fn pending(self) -> BTreeMap<String, TriggerConfig> {
        self.host.state().pending.clone()
    }

    /// The newest `limit` runs of trigger `id`, newest first.
    pub async fn runs(self, id: &str, limit: usize) -> Result<Vec<Run>, HostError> {
        if let Some(log) = self.host.scheduler.run_log() {
            // The newest runs, if the store keeps up; what it has otherwise.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), log.flush()).await;
        }
        Ok(self.host.store.runs(id, limit).await?)
    }
}
