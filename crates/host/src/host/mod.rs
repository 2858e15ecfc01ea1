//! The host: a running scheduler assembled from a [`Config`], with the
//! plugins its triggers name, changeable at run time (admin API, and hot
//! reload of the plugins directory, followed by its helper `watch.rs`).
//!
//! What it keeps: each plugin in a [`PluginSlot`] its triggers call
//! through (so a new version is swapped in without touching them); each
//! registered trigger with its `[[trigger]]` table and the plugin exports
//! it uses; the *pending* triggers, declared but waiting for their plugin
//! (missing, deleted, or lacking an export they need), registered as soon
//! as it loads; and the last error of each plugin and manifest file.
//!
//! Every change (a trigger added or removed, a plugin loaded, swapped or
//! deleted, a manifest applied) runs under one async lock, so a check and
//! the change it guards cannot interleave with another change; reading
//! never waits for it.
//!
//! Callers reach each concern through its handle: [`Host::triggers`],
//! [`Host::plugins`], [`Host::sinks`], [`Host::timers`],
//! [`Host::backfills`], [`Host::dead_letters`]; `Host` itself starts,
//! stops and describes the whole (config, broker, store, health).
//! Triggers and plugins share one registry (a trigger is bound to its
//! plugin's slot, and a pending trigger waits for its plugin); timers and
//! backfills keep their own state.

mod backfill;
mod manifests;
mod plugins;
mod sinks;
mod stored;
mod timers;
mod triggers;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use self::backfill::{
    BackfillState, BackfillView, Backfills, MAX_RATE as MAX_BACKFILL_RATE,
    MIN_RATE as MIN_BACKFILL_RATE,
};
pub use self::manifests::ManifestChanges;
use self::plugins::Candidate;
pub use self::plugins::{PluginChange, PluginChangeKind, Plugins};
pub use self::sinks::{SinkView, Sinks};
pub use self::stored::DeadLetters;
pub use self::timers::{LATE_HEADER, TIMER_HEADER, Timers};
use self::triggers::{Declared, Removal};
pub use self::triggers::{NativeLogic, Triggers};
use crate::config::{BrokerConfig, Config, ConfigError, TriggerConfig};
use wasmsched_core::bounded::EventLimits;
use wasmsched_core::broker::{Broker, BrokerError, MemoryBroker};
use wasmsched_core::scheduler::{Scheduler, SchedulerError};
use wasmsched_core::state::sqlite::SqliteStore;
use wasmsched_core::state::{StateError, StateStore};
use wasmsched_core::trigger::{TriggerError, TriggerKind};
use wasmsched_nats::NatsBroker;
use wasmsched_nats::state::NatsStore;
use wasmsched_plugin::{PluginError, PluginRuntime, PluginSlot, Worlds};

/// Why the host could not set up a trigger, plugin or manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A plugin could not be loaded or bound.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A configuration file is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A trigger could not be built from its table.
    #[error("{declared_in}: trigger `{id}`: {source}")]
    Trigger {
        /// The trigger's id.
        id: String,
        /// Where the trigger was declared.
        declared_in: crate::config::DeclaredIn,
        /// The underlying error (boxed: it is large and rare).
        #[source]
        source: Box<TriggerError>,
    },
    /// The trigger's plugin is not loaded.
    #[error(
        "trigger `{id}`: plugin `{plugin}` is not loaded (is plugins/{plugin}.wasm there and valid?)"
    )]
    PluginNotLoaded {
        /// The trigger's id.
        id: String,
        /// The plugin's name.
        plugin: String,
    },
    /// A cron or api trigger names a plugin without a factory.
    #[error("trigger `{id}`: plugin `{plugin}` exports no factory, which a {kind} trigger needs")]
    NeedsFactory {
        /// The trigger's id.
        id: String,
        /// The plugin's name.
        plugin: String,
        /// The trigger's kind.
        kind: TriggerKind,
    },
    /// A batched trigger names a factory built for a contract without
    /// batches.
    #[error(
        "trigger `{id}`: plugin `{plugin}` targets wasmsched:plugin@0.1.0, whose factories \
         cannot take batches; rebuild it against wit/plugin.wit (0.2.0) or drop `batch`"
    )]
    BatchNeedsNewerContract {
        /// The trigger's id.
        id: String,
        /// The plugin's name.
        plugin: String,
    },
    /// Another api trigger serves the path.
    #[error("trigger `{id}`: path `{path}` is already served by trigger `{other}`")]
    PathTaken {
        /// The trigger's id.
        id: String,
        /// The HTTP path both would serve.
        path: String,
        /// The trigger already served there.
        other: String,
    },
    /// A plugin file the host will not (or did not) load; the version
    /// loaded before, if any, keeps serving.
    #[error("plugin `{plugin}`: {message}")]
    Refused {
        /// The plugin's name.
        plugin: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// The scheduler refused the change.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// The broker could not be reached or set up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The state store could not be opened, read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A `[[trigger]]` table given as JSON is not valid.
    #[error("invalid trigger: {0}")]
    InvalidTable(String),
    /// A backfill of this trigger is running.
    #[error("trigger `{0}`: a backfill is running (cancel it first)")]
    BackfillRunning(String),
    /// No dead letter has this id.
    #[error("no dead letter with id `{0}`")]
    UnknownDeadLetter(uuid::Uuid),
    /// A dead letter's trigger is no longer registered; the letter is kept.
    #[error("dead letter `{id}` not replayed: trigger `{trigger}` is not registered any more")]
    GoneTrigger {
        /// The dead letter.
        id: uuid::Uuid,
        /// Its trigger.
        trigger: String,
    },
    /// A dead letter's trigger failed on its event again, or cannot take
    /// it now; the letter is kept.
    #[error("dead letter `{id}` not replayed: trigger `{trigger}`: {source}")]
    Replay {
        /// The dead letter.
        id: uuid::Uuid,
        /// Its trigger.
        trigger: String,
        /// Why.
        #[source]
        source: TriggerError,
    },
}

impl HostError {
    /// Does the trigger wait for its plugin (to load, or to gain an
    /// export), rather than being wrong in itself?
    fn waits_for_plugin(&self) -> bool {
        matches!(
            self,
            HostError::PluginNotLoaded { .. }
                | HostError::NeedsFactory { .. }
                | HostError::Plugin(PluginError::NoFactory { .. } | PluginError::NoFilter { .. })
        )
    }
}

/// The async runtime `wasmsched run` serves on: one worker per core,
/// checking for I/O (new requests, answers from NATS) every
/// [`EVENT_INTERVAL`] task polls instead of tokio's 61. Plugin calls yield
/// every millisecond, so while plugins spin each poll may be a 1 ms slice:
/// 61 of them kept an api call waiting 12.6 ms at the median (p95 43 ms)
/// with four plugins spinning, 8 bring that to 2.2 ms (p95 5.4 ms;
/// BENCHMARKS.md, "Slow plugins"). Embedders get the same with it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL)
        .build()
}

/// Task polls between two checks for I/O events (see [`runtime`]).
pub const EVENT_INTERVAL: u32 = 8;

/// A running wasmsched: scheduler, broker, plugin runtime, loaded plugins.
pub struct Host {
    config: Config,
    scheduler: Arc<Scheduler>,
    broker: Arc<dyn Broker>,
    store: Arc<dyn StateStore>,
    runtime: PluginRuntime,
    state: RwLock<State>,
    /// Held by every change: see [`Serial`].
    changes: tokio::sync::Mutex<()>,
    problems: Mutex<Vec<String>>,
    reloads: AtomicU64,
    watcher: Mutex<Option<watch::Watcher>>,
    /// The one-off timers' task, once started.
    timers: std::sync::OnceLock<timers::TimerTask>,
    /// The last backfill of each trigger.
    backfills: Mutex<BTreeMap<String, Arc<backfill::Backfill>>>,
}

#[derive(Default)]
struct State {
    plugins: BTreeMap<String, Arc<PluginSlot>>,
    /// Boxed: a B-tree node holds 11 entries inline, and most of a
    /// node's room went unused around 300-byte tables (100 000 triggers:
    /// 47 MiB of nodes; BENCHMARKS.md).
    triggers: BTreeMap<String, Box<Bound>>,
    /// Declared triggers waiting for their plugin, by id.
    pending: BTreeMap<String, TriggerConfig>,
    /// The last failed load of each plugin, cleared by a successful one.
    failures: BTreeMap<String, Failure>,
    /// What went wrong applying each manifest, the last time.
    manifest_errors: BTreeMap<PathBuf, String>,
    /// The sinks, by id.
    sinks: BTreeMap<crate::config::SinkId, sinks::SinkEntry>,
    /// The `[plugin]` table of each plugin's manifest, by plugin name.
    plugin_manifests: BTreeMap<String, crate::config::PluginManifest>,
    /// The `[plugin]` table each loaded version was loaded with.
    loaded_with: BTreeMap<String, Option<crate::config::PluginManifest>>,
    /// The last loads, swaps and failures of each plugin, oldest first.
    plugin_history: BTreeMap<String, std::collections::VecDeque<PluginChange>>,
}

/// A registered trigger: its table, and the plugin exports it calls.
struct Bound {
    config: TriggerConfig,
    uses: Worlds,
}

/// Why a plugin is not loaded, or not in the version its file holds.
struct Failure {
    error: String,
    /// The bytes that failed, not compiled again until they change.
    hash: Option<String>,
    /// Not a load error: only which triggers wait for the missing file.
    waiting_note: bool,
}

/// Proof that the caller holds the host's change lock, handed to the
/// methods that change the host.
struct Serial<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
}

impl Host {
    /// Loads the plugins the triggers name, registers every trigger it
    /// can, starts them, and (if `config.watch`) follows the plugins
    /// directory: the watcher's first rescan, in the background, loads the
    /// other `*.wasm` files there. A broken plugin or trigger is logged,
    /// listed in [`Host::problems`] and skipped; the rest runs.
    pub async fn start(config: Config) -> Result<Arc<Self>, HostError> {
        let (broker, store): (Arc<dyn Broker>, Arc<dyn StateStore>) = match &config.broker {
            BrokerConfig::Memory(retry) => {
                let state = &config.state;
                let store = SqliteStore::open(&state.path, state.retention).await?;
                let broker = MemoryBroker::with_retry_policy(retry.clone());
                (Arc::new(broker), Arc::new(store))
            }
            BrokerConfig::Nats(options) => {
                let broker = NatsBroker::connect(options.clone()).await?;
                let jetstream = broker.jetstream();
                let retention = config.state.retention;
                let store = NatsStore::open_replicated(
                    jetstream,
                    &options.stream,
                    retention,
                    options.replicas,
                );
                (Arc::new(broker), Arc::new(store.await?))
            }
        };
        let runtime = match &config.cache_dir {
            Some(dir) => PluginRuntime::with_code_cache(config.runtime, dir)?,
            None => PluginRuntime::new(config.runtime)?,
        };
        runtime.use_state_store(store.clone());
        // Before anything is read: changes made meanwhile are not missed.
        let changes = store.changes();
        let scheduler = Scheduler::new(broker.clone())
            .with_event_limits(config.events)
            .with_state(store.clone());
        scheduler.restore().await?;
        tracing::info!("state kept in {}", store.describe());
        let configured = config.events.max_bytes;
        let carried = scheduler.event_limits().max_bytes;
        if carried < configured && configured != EventLimits::default().max_bytes {
            tracing::warn!(
                "[events] max_bytes = {configured} is more than the broker carries; using \
                 {carried} bytes (raise the NATS server's max_payload to allow more)"
            );
        }
        // The declared triggers and sinks live on in the host's maps (as
        // `Host::triggers`), not twice.
        let mut config = config;
        let triggers = std::mem::take(&mut config.triggers);
        let sinks = std::mem::take(&mut config.sinks);
        let host = Arc::new(Self {
            scheduler: Arc::new(scheduler),
            broker,
            store: store.clone(),
            runtime,
            state: RwLock::default(),
            changes: tokio::sync::Mutex::new(()),
            problems: Mutex::new(Vec::new()),
            reloads: AtomicU64::new(0),
            watcher: Mutex::new(None),
            timers: std::sync::OnceLock::new(),
            backfills: Mutex::default(),
            config,
        });
        host.state_mut().plugin_manifests = host.config.plugins.clone();
        let names: BTreeSet<String> = triggers.iter().filter_map(|t| t.plugin.clone()).collect();
        for name in names {
            if let Err(error) = host.plugins().load(&name).await {
                host.report(error.to_string());
            }
        }
        {
            let serial = host.serial().await;
            let mut registered = BTreeMap::<TriggerKind, usize>::new();
            for trigger in triggers {
                let kind = trigger.spec.kind();
                match host.register_declared(&serial, trigger).await {
                    Ok(Declared::Registered) => *registered.entry(kind).or_default() += 1,
                    Ok(Declared::Waiting(error)) | Err(error) => host.report(error.to_string()),
                }
            }
            let total: usize = registered.values().sum();
            let kinds: Vec<String> = (registered.iter())
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            let triggers = match total {
                1 => "trigger",
                _ => "triggers",
            };
            tracing::info!(file = %host.config.path.display(), "registered {total} {triggers} ({})", kinds.join(", "));
        }
        for sink in sinks {
            if let Err(error) = host.add_sink(sink).await {
                host.report(error.to_string());
            }
        }
        host.restore_admin_triggers(&store).await;
        host.follow_store(changes);
        host.scheduler.start().await?;
        match host.store.timer_dues().await {
            Ok(pending) => {
                let _ = host.timers.set(timers::TimerTask::spawn(&host, pending));
            }
            Err(error) => host.report(format!("one-off timers not started: {error}")),
        }
        if host.config.watch {
            let watcher = watch::Watcher::start(&host);
            *host.watcher.lock().unwrap_or_else(|p| p.into_inner()) = watcher;
        }
        Ok(host)
    }

    /// The configuration it started from (`wasmsched.toml` and manifests
    /// as they were at start), without its triggers and sinks: those are
    /// [`Host::triggers`] and [`Host::sinks`], which follow later changes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The broker: publish events to it and watch them (triggers change
    /// only through the host's methods).
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// The state store: the SQLite file (`[state] path`) with the memory
    /// broker, JetStream with NATS.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The event `id`, if a run of this host published it recently (the
    /// last 1 000 events, 8 MiB: see [`wasmsched_core::state::RecentEvents`]).
    pub fn recent_event(&self, id: uuid::Uuid) -> Option<wasmsched_core::event::Event> {
        self.scheduler.run_log()?.recent_event(id)
    }

    /// How well the cron schedule keeps time: fire lateness, instants not
    /// run by reason.
    pub fn schedule_health(&self) -> wasmsched_core::trigger::health::HealthSnapshot {
        self.scheduler.schedule_health().snapshot()
    }

    /// The plugin runtime (its limits and counters).
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// What one event and one firing may carry: `[events]`, lowered to
    /// what the broker can carry.
    pub fn event_limits(&self) -> EventLimits {
        self.scheduler.event_limits()
    }

    fn report(&self, problem: String) {
        tracing::error!("{problem}");
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(problem);
    }

    /// Problems met while starting (each also logged). Later ones (hot
    /// reload) are in [`Plugins::errors`].
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops following the plugins directory (once the change under way,
    /// if any, is done), then stops every trigger, letting firings under
    /// way finish, and flushes the broker.
    pub async fn stop(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(watcher);
        let _serial = self.serial().await;
        self.scheduler.stop().await;
        self.broker.flush().await;
    }

    /// [`Self::stop`], given at most `grace`: the ids of the triggers still
    /// stopping when it ran out (a firing stuck past it), as the error.
    pub async fn stop_within(&self, grace: std::time::Duration) -> Result<(), Vec<String>> {
        match tokio::time::timeout(grace, self.stop()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.scheduler.running_ids()),
        }
    }

    /// Is the plugins directory being followed?
    pub fn is_watching(&self) -> bool {
        self.watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn serial(&self) -> Serial<'_> {
        Serial {
            _guard: self.changes.lock().await,
        }
    }

    /// Brings the host in line with the plugins directory now: every
    /// `*.wasm` and `*.toml` in it, and every plugin or manifest the host
    /// knows whose file is gone. The watcher does this when it starts (and
    /// after losing events); call it when not watching.
    pub async fn rescan(&self) {
        watch::rescan(self).await;
    }

    /// The plugins the host knows (loaded, failed, or waited for), and the
    /// manifests in the plugins directory it applied.
    pub(crate) fn known_files(&self) -> (BTreeSet<String>, BTreeSet<PathBuf>) {
        let state = self.state();
        let mut plugins: BTreeSet<String> = state.plugins.keys().cloned().collect();
        plugins.extend(state.failures.keys().cloned());
        plugins.extend(state.pending.values().filter_map(|t| t.plugin.clone()));
        let declared = state.triggers.values().map(|b| &b.config);
        let sinks = state.sinks.values().map(|s| s.declared_in());
        let mut manifests: BTreeSet<PathBuf> = declared
            .chain(state.pending.values())
            .filter_map(|t| t.declared_in.file())
            .chain(sinks)
            .filter(|file| file.parent() == Some(self.config.plugins_dir.as_path()))
            .map(PathBuf::from)
            .collect();
        manifests.extend(state.manifest_errors.keys().cloned());
        (plugins, manifests)
    }

    /// What went wrong applying each manifest, the last time.
    pub fn manifest_errors(&self) -> BTreeMap<PathBuf, String> {
        self.state().manifest_errors.clone()
    }

    /// Plugin loads and reloads that succeeded since the start.
    pub fn reload_count(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }
}
