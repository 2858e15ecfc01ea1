//! The host: a running scheduler assembled from a [`Config`], with the
//! plugins its triggers name, changeable at run time (admin API, reloads).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::broker::{Broker, MemoryBroker};
use crate::config::{Config, TriggerConfig};
use crate::plugin::{Plugin, PluginError, PluginRuntime, RuntimeOptions};
use crate::scheduler::{Registration, Scheduler, SchedulerError};
use crate::trigger::{Trigger, TriggerError, TriggerKind, TriggerOptions, create_trigger};

/// Why the host could not set up a trigger or plugin.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("{}: trigger `{id}`: {source}", declared_in.display())]
    Trigger {
        id: String,
        declared_in: PathBuf,
        #[source]
        source: TriggerError,
    },
    #[error(
        "trigger `{id}`: plugin `{plugin}` is not loaded (is plugins/{plugin}.wasm there and valid?)"
    )]
    PluginNotLoaded { id: String, plugin: String },
    #[error("trigger `{id}`: plugin `{plugin}` exports no factory, which a {kind} trigger needs")]
    NeedsFactory {
        id: String,
        plugin: String,
        kind: TriggerKind,
    },
    #[error("trigger `{id}`: path `{path}` is already served by trigger `{other}`")]
    PathTaken {
        id: String,
        path: String,
        other: String,
    },
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// A running wasmsched: scheduler, broker, plugin runtime, loaded plugins.
pub struct Host {
    pub config: Config,
    pub scheduler: Arc<Scheduler>,
    pub broker: Arc<dyn Broker>,
    pub runtime: PluginRuntime,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    /// The `[[trigger]]` table behind each registered trigger.
    triggers: RwLock<BTreeMap<String, TriggerConfig>>,
    problems: Mutex<Vec<String>>,
    /// The last load error of each plugin, cleared by a successful load.
    plugin_errors: RwLock<BTreeMap<String, String>>,
    reloads: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Host {
    /// Loads plugins, registers every trigger it can, and starts them. A
    /// broken plugin or trigger is logged, listed in [`Host::problems`] and
    /// skipped; the rest runs.
    pub async fn start(config: Config) -> Result<Arc<Self>, HostError> {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
        let host = Arc::new(Self {
            scheduler: Arc::new(Scheduler::new(broker.clone())),
            broker,
            runtime: PluginRuntime::new(RuntimeOptions::default())?,
            plugins: RwLock::new(BTreeMap::new()),
            triggers: RwLock::new(BTreeMap::new()),
            problems: Mutex::new(Vec::new()),
            plugin_errors: RwLock::new(BTreeMap::new()),
            reloads: AtomicU64::new(0),
            config,
        });
        let names: BTreeSet<String> = host
            .config
            .triggers
            .iter()
            .filter_map(|t| t.plugin.clone())
            .collect();
        for name in names {
            if let Err(error) = host.load_plugin(&name).await {
                host.report(error.to_string());
            }
        }
        for trigger in host.config.triggers.clone() {
            if let Err(error) = host.add_trigger(trigger).await {
                host.report(error.to_string());
            }
        }
        host.scheduler.start().await?;
        Ok(host)
    }

    fn report(&self, problem: String) {
        tracing::error!("{problem}");
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(problem);
    }

    /// Problems met while starting (each also logged).
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads (or reloads) `plugins/NAME.wasm`, compiling off the async runtime.
    pub async fn load_plugin(&self, name: &str) -> Result<Arc<Plugin>, HostError> {
        let path = self.config.plugins_dir.join(format!("{name}.wasm"));
        let runtime = self.runtime.clone();
        let loaded = tokio::task::spawn_blocking(move || runtime.load_file(&path, None))
            .await
            .expect("plugin loading panicked");
        let plugin = match loaded {
            Ok(plugin) => plugin,
            Err(error) => {
                write(&self.plugin_errors).insert(name.to_owned(), error.to_string());
                return Err(error.into());
            }
        };
        write(&self.plugin_errors).remove(name);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(plugin = %name, hash = %&plugin.hash()[..12], worlds = ?plugin.worlds().names(), "loaded plugin");
        write(&self.plugins).insert(name.to_owned(), plugin.clone());
        Ok(plugin)
    }

    /// The last load error of each plugin that failed to load.
    pub fn plugin_errors(&self) -> BTreeMap<String, String> {
        read(&self.plugin_errors).clone()
    }

    /// How many plugin loads succeeded.
    pub fn reload_count(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// The loaded plugins by name.
    pub fn plugins(&self) -> BTreeMap<String, Arc<Plugin>> {
        read(&self.plugins).clone()
    }

    /// Registers (and, the scheduler running, starts) the trigger a
    /// `[[trigger]]` table describes.
    pub async fn add_trigger(&self, config: TriggerConfig) -> Result<(), HostError> {
        self.add_trigger_with(config, TriggerOptions::default())
            .await
    }

    /// Like [`Self::add_trigger`], with native closures as factory and
    /// filter (used when the table names no plugin): how Rust code serves
    /// its own logic behind the HTTP API.
    pub async fn add_trigger_with(
        &self,
        config: TriggerConfig,
        native: TriggerOptions,
    ) -> Result<(), HostError> {
        if config.kind == TriggerKind::Api {
            let path = config.api_path();
            if let Some(other) = self.api_trigger_at(&path) {
                return Err(HostError::PathTaken {
                    id: config.id,
                    path,
                    other: other.id,
                });
            }
        }
        let trigger = self.build_trigger(&config, native)?;
        self.scheduler
            .register(config.id.clone(), trigger, config.topic.clone())
            .await?;
        write(&self.triggers).insert(config.id.clone(), config);
        Ok(())
    }

    /// Stops and removes a trigger.
    pub async fn remove_trigger(&self, id: &str) -> Result<TriggerConfig, HostError> {
        self.scheduler.unregister_trigger(id).await?;
        Ok(write(&self.triggers)
            .remove(id)
            .expect("registered triggers have a config"))
    }

    /// The table behind a registered trigger.
    pub fn trigger_config(&self, id: &str) -> Option<TriggerConfig> {
        read(&self.triggers).get(id).cloned()
    }

    /// A registered trigger with its table.
    pub async fn trigger(&self, id: &str) -> Option<(Registration, TriggerConfig)> {
        let registration = self.scheduler.trigger(id).await?;
        Some((registration, self.trigger_config(id)?))
    }

    /// The api trigger served at `path` (its `path` or `/api/triggers/<id>`).
    pub fn api_trigger_at(&self, path: &str) -> Option<TriggerConfig> {
        read(&self.triggers)
            .values()
            .find(|t| t.kind == TriggerKind::Api && t.api_path() == path)
            .cloned()
    }

    /// Builds the trigger a `[[trigger]]` table describes; its plugin, if
    /// it names one, replaces `native`'s factory and filter.
    fn build_trigger(
        &self,
        config: &TriggerConfig,
        native: TriggerOptions,
    ) -> Result<Arc<dyn Trigger>, HostError> {
        let mut options = TriggerOptions {
            schedule: config.schedule.clone(),
            timezone: config.timezone.clone(),
            source: config.source.as_ref().map(|s| s.to_string()),
            ..native
        };
        if let Some(name) = &config.plugin {
            let plugin = read(&self.plugins).get(name).cloned().ok_or_else(|| {
                HostError::PluginNotLoaded {
                    id: config.id.clone(),
                    plugin: name.clone(),
                }
            })?;
            let worlds = plugin.worlds();
            options.factory = match worlds.factory {
                true => Some(plugin.factory(&config.id, config.config.clone())?),
                false => None,
            };
            options.filter = match worlds.filter && config.kind == TriggerKind::Event {
                true => Some(plugin.filter(&config.id, config.config.clone())?),
                false => None,
            };
            if options.factory.is_none() && config.kind != TriggerKind::Event {
                return Err(HostError::NeedsFactory {
                    id: config.id.clone(),
                    plugin: name.clone(),
                    kind: config.kind,
                });
            }
        }
        create_trigger(config.kind, options).map_err(|source| HostError::Trigger {
            id: config.id.clone(),
            declared_in: config.declared_in.clone(),
            source,
        })
    }
}
