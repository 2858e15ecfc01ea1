//! The plugin runtime: user factories and filters as sandboxed WebAssembly
//! components (the contract is `wit/plugin.wit`).
//!
//! One [`PluginRuntime`] per process owns the wasmtime engine. Loading
//! ([`PluginRuntime::load_file`]) compiles a component and checks it
//! against the contract: it must export `wasmsched:plugin/factory` and/or
//! `.../filter` at version 0.1.x, and import nothing beyond the `host`
//! interface and WASI stdio (no files, sockets, clocks, random or network).
//! Components may target `wasmsched:plugin@0.2.0` or 0.1.0 (see
//! `bindings.rs`); what a plugin may do beyond the sandbox (outbound HTTP,
//! key-value, secrets) is its [`Grants`], given at load
//! ([`PluginRuntime::load_granted`]); the key-value store is the runtime's
//! state store ([`PluginRuntime::use_state_store`]).
//! A loaded [`Plugin`] is bound to a trigger with [`Plugin::factory`] or
//! [`Plugin::filter`], which give the ports the scheduler calls; bound
//! through a [`PluginSlot`] instead, the trigger follows the versions
//! swapped into the slot (hot reload). A runtime made with
//! [`PluginRuntime::with_code_cache`] keeps compiled code on disk.
//!
//! A call is a future: it waits for a slot (at most
//! [`RuntimeOptions::max_calls`] in flight, [`RuntimeOptions::max_calls_per_trigger`]
//! per trigger), then runs on an instance kept warm for its trigger, or a
//! fresh one (~20 µs with the pooling allocator), under the plugin's
//! [`Limits`]: a running-time budget checked at every epoch tick, where the
//! guest also yields to the async runtime (so it never holds a worker
//! thread for more than [`EPOCH_TICK`]), a wall-clock limit for waits (the
//! network), and a memory budget enforced by a store limiter. A failed call is a [`CallError`] and discards its instance; the
//! plugin serves the next call normally. See `call.rs` and `engine.rs`.

mod adapter;
mod admission;
mod bindings;
mod cache;
mod call;
mod capture;
mod engine;
mod error;
mod grants;
mod host;
mod inspect;
mod limits;
mod local;
mod outbound;
mod slot;
mod stats;
mod wit;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

pub use self::admission::AdmissionStats;
pub use self::bindings::ContractVersion;
pub use self::cache::CacheStats;
pub use self::engine::EPOCH_TICK;
pub use self::error::{CallError, PluginError};
pub use self::grants::{Grants, GrantsView, HttpGrant, KvQuota, Origin, Secret};
pub use self::inspect::Worlds;
pub use self::limits::Limits;
pub use self::slot::PluginSlot;
pub use self::stats::{LATENCY_BUCKETS, LatencyHistogram, PluginStats};
pub use wasmsched_core::units::{parse_bytes, parse_duration};

use self::admission::Admission;
use self::bindings::Exports;
use self::cache::CodeCache;
pub use self::engine::MAX_CALLS_LIMIT;
use self::engine::{EpochTicker, MAX_MEMORY_BYTES, build_engine};
use self::error::one_line;
use self::host::CallState;
use self::stats::StatsCounters;
use wasmsched_core::state::StateStore;

/// Settings of a [`PluginRuntime`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// Limits of plugins loaded without limits of their own.
    pub default_limits: Limits,
    /// Plugin calls that may run at once across the runtime (`[plugins]
    /// max_calls`); more wait their turn. Default: 4 per CPU core.
    pub max_calls: usize,
    /// Plugin calls that may run at once for one trigger (`[plugins]
    /// max_calls_per_trigger`), filter and factory together. Default 2.
    pub max_calls_per_trigger: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            default_limits: Limits::default(),
            max_calls: 4 * cores,
            max_calls_per_trigger: 2,
        }
    }
}

impl RuntimeOptions {
    /// Options with `limits` as the default limits of plugins.
    pub fn with_default_limits(mut self, limits: Limits) -> Self {
        self.default_limits = limits;
        self
    }

    /// Options with these concurrency limits (both at least 1).
    pub fn with_max_calls(mut self, max_calls: usize, per_trigger: usize) -> Self {
        self.max_calls = max_calls;
        self.max_calls_per_trigger = per_trigger;
        self
    }
}

/// Compiles and runs plugins. One per process; cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<CallState>,
    options: RuntimeOptions,
    cache: Option<CodeCache>,
    /// Idle instances kept by all plugins (bounded by
    /// `engine::MAX_WARM_INSTANCES`).
    warm_instances: std::sync::atomic::AtomicUsize,
    /// Who may call now (see `admission.rs`).
    admission: Arc<Admission>,
    /// Where plugins granted a key-value store keep it.
    state: std::sync::OnceLock<Arc<dyn StateStore>>,
    /// Stops when the runtime and every plugin it loaded are gone.
    ticker: EpochTicker,
}

impl PluginRuntime {
    /// Starts the engine and its epoch thread; every load compiles.
    pub fn new(options: RuntimeOptions) -> Result<Self, PluginError> {
        Self::build(options, None)
    }

    /// Like [`Self::new`], keeping compiled code in `cache_dir` (see
    /// `cache.rs` for the format and the trust it needs). A directory that
    /// cannot be used is logged and the runtime works without a cache.
    pub fn with_code_cache(options: RuntimeOptions, cache_dir: &Path) -> Result<Self, PluginError> {
        Self::build(options, Some(cache_dir))
    }

    fn build(options: RuntimeOptions, cache_dir: Option<&Path>) -> Result<Self, PluginError> {
        if !(1..=MAX_CALLS_LIMIT).contains(&options.max_calls) || options.max_calls_per_trigger == 0
        {
            return Err(PluginError::Engine(format!(
                "max_calls must be 1 to {MAX_CALLS_LIMIT} and max_calls_per_trigger at least 1 \
                 (got {} and {})",
                options.max_calls, options.max_calls_per_trigger
            )));
        }
        options
            .default_limits
            .validate(MAX_MEMORY_BYTES)
            .map_err(|message| PluginError::InvalidLimits {
                name: "(default)".into(),
                message,
            })?;
        let engine = build_engine(options.max_calls)?;
        let linker = host::linker(&engine).map_err(|e| PluginError::Engine(one_line(&e)))?;
        let ticker = EpochTicker::start(engine.clone())?;
        let cache = cache_dir.and_then(|dir| match CodeCache::open(dir, &engine) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), "compiled-code cache off: {error}");
                None
            }
        });
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                options,
                cache,
                warm_instances: Default::default(),
                admission: Arc::new(Admission::new(
                    options.max_calls,
                    options.max_calls_per_trigger,
                )),
                state: std::sync::OnceLock::new(),
                ticker,
            }),
        })
    }

    /// Keeps the key-value data of plugins granted it in `store` (set
    /// once; later calls are ignored). Without one, their `kv` calls fail
    /// with `unavailable`.
    pub fn use_state_store(&self, store: Arc<dyn StateStore>) {
        let _ = self.inner.state.set(store);
    }

    /// The settings it was made with.
    pub fn options(&self) -> RuntimeOptions {
        self.inner.options
    }

    /// The compiled-code cache's directory, if it is on.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.inner.cache.as_ref().map(|c| c.dir().to_owned())
    }

    /// Calls in flight and waiting, against the concurrency limits.
    pub fn admission(&self) -> AdmissionStats {
        self.inner.admission.stats()
    }

    /// What the compiled-code cache did, if it is on.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_ref().map(CodeCache::stats)
    }

    /// Loads `path`; the plugin is named after the file stem. Compiles, so
    /// call it off the async runtime (`spawn_blocking`).
    pub fn load_file(
        &self,
        path: &Path,
        limits: Option<Limits>,
    ) -> Result<Arc<Plugin>, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        self.load_bytes(&name, &bytes, limits)
    }

    /// Loads a plugin from the bytes of a component, granted nothing.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Option<Limits>,
    ) -> Result<Arc<Plugin>, PluginError> {
        self.load_granted(name, bytes, limits, Grants::default())
    }

    /// Loads a plugin from the bytes of a component, with `grants`. A
    /// component importing what is not granted is refused, naming the
    /// manifest key that would grant it.
    pub fn load_granted(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Option<Limits>,
        grants: Grants,
    ) -> Result<Arc<Plugin>, PluginError> {
        let limits = limits.unwrap_or(self.inner.options.default_limits);
        limits
            .validate(MAX_MEMORY_BYTES)
            .map_err(|message| PluginError::InvalidLimits {
                name: name.to_owned(),
                message,
            })?;
        check_header(name, bytes)?;
        let engine = &self.inner.engine;
        let hash = content_hash(bytes);
        let compile = || {
            Component::new(engine, bytes).map_err(|e| PluginError::Compile {
                name: name.to_owned(),
                message: one_line(&e),
            })
        };
        let component = match &self.inner.cache {
            Some(cache) => cache.get_or_compile(engine, name, &hash, compile)?,
            None => compile()?,
        };
        if let Some(http) = &grants.http
            && http.timeout > limits.wall_timeout
        {
            return Err(PluginError::InvalidLimits {
                name: name.to_owned(),
                message: format!(
                    "http_timeout ({:?}) must not be longer than wall_timeout ({:?})",
                    http.timeout, limits.wall_timeout
                ),
            });
        }
        let contract = inspect::exports(name, &component, engine)?;
        let imports = inspect::imports(name, &component, engine, &grants)?;
        let not_fit = |e: wasmtime::Error| PluginError::Contract {
            name: name.to_owned(),
            message: one_line(&e),
        };
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(not_fit)?;
        let worlds = contract.worlds;
        let exports =
            Exports::new(&pre, contract.version, worlds.factory, worlds.filter).map_err(not_fit)?;
        let plugin = Plugin {
            name: name.into(),
            hash,
            worlds,
            imports,
            limits,
            grants: Arc::new(grants),
            loaded_at: Utc::now(),
            pre,
            exports,
            stats: StatsCounters::default(),
            warm: Default::default(),
            runtime: self.inner.clone(),
        };
        plugin.probe()?;
        Ok(Arc::new(plugin))
    }
}

impl fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// A loaded, checked plugin. Calls on it may run concurrently.
pub struct Plugin {
    name: Arc<str>,
    hash: String,
    worlds: Worlds,
    imports: Vec<String>,
    limits: Limits,
    grants: Arc<Grants>,
    loaded_at: DateTime<Utc>,
    pre: InstancePre<CallState>,
    exports: Exports,
    stats: StatsCounters,
    /// Idle instances by trigger (see `call.rs`).
    warm: std::sync::Mutex<std::collections::HashMap<call::WarmKey, Vec<call::Warm>>>,
    /// The engine and its epoch thread live as long as any plugin.
    runtime: Arc<RuntimeInner>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let pools = self.warm.get_mut().unwrap_or_else(|p| p.into_inner());
        let idle: usize = pools.values().map(Vec::len).sum();
        self.runtime
            .warm_instances
            .fetch_sub(idle, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Plugin {
    /// Its name: the file stem (`plugins/NAME.wasm`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the component's bytes, in hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Which of the contract's worlds it implements.
    pub fn worlds(&self) -> Worlds {
        self.worlds
    }

    /// What the component imports, e.g. `wasmsched:plugin/host@0.1.0`,
    /// `wasi:cli/stdout@0.2.6` (all granted, or it would not have loaded).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Its time and memory budget per call.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The version of the contract it targets.
    pub fn contract_version(&self) -> ContractVersion {
        self.exports.version()
    }

    /// Can its factory take batched firings (contract 0.2.0 or later)?
    pub fn takes_batches(&self) -> bool {
        self.contract_version() >= ContractVersion::V0_2
    }

    /// What it is granted beyond the sandbox.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Its call counters since it was loaded.
    pub fn stats(&self) -> PluginStats {
        self.stats.snapshot()
    }

    /// How long calls took (instantiation included).
    pub fn latency(&self) -> LatencyHistogram {
        self.stats.latency()
    }

    /// When this version was loaded.
    pub fn loaded_at(&self) -> DateTime<Utc> {
        self.loaded_at
    }

    /// This plugin's `make-events` as the factory of trigger `trigger_id`,
    /// which reads `config` through `host.config`. Bound to this version
    /// for good; see [`PluginSlot::factory`] for one that follows reloads.
    pub fn factory(
        self: &Arc<Self>,
        trigger_id: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<dyn wasmsched_core::firing::Factory>, PluginError> {
        PluginSlot::new(self.clone()).factory(trigger_id, config)
    }

    /// This plugin's `accept` as the filter of trigger `trigger_id`.
    pub fn filter(
        self: &Arc<Self>,
        trigger_id: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<dyn wasmsched_core::firing::Filter>, PluginError> {
        PluginSlot::new(self.clone()).filter(trigger_id, config)
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("worlds", &self.worlds)
            .field("limits", &self.limits)
            .field("version", &self.exports.version())
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// Tells a core module from a component before compiling, for a clearer
/// error than the parser's.
fn check_header(name: &str, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(PluginError::Compile {
            name: name.to_owned(),
            message: "not a WebAssembly binary (it does not start with `\\0asm`)".into(),
        });
    }
    // Version 1, layer 0: a core module. Components are layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::NotAComponent {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// SHA-256 of a component's bytes in hex: [`Plugin::hash`], and the key
/// of its compiled code.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
