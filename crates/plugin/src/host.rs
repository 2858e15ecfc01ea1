//! What a plugin instance can reach: the `wasmsched:plugin/host` interface
//! (logging, per-trigger config, granted secrets), the `kv` interface
//! (granted), outbound HTTP (granted, see `outbound.rs`), and a WASI
//! sandbox of stdio only. Also the per-call store state and the linker.
//!
//! The linker holds every interface any plugin may be granted; what one
//! plugin may import is checked at load against its grants
//! (`inspect.rs`), and each call checks its grants again.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::capture::Capture;
use super::grants::Grants;
use super::limits::{MemoryLimiter, RunClock};
use super::outbound::Outbound;
use super::wit::{v0_1, v0_2};
use wasmsched_core::state::{KvError, MAX_KEY_BYTES, StateStore};

use v0_2::wasmsched::plugin::{host, kv};

/// Interfaces every plugin may import, without their version. Everything
/// else (files, sockets, clocks, random, ...) is refused at load, unless
/// granted (see [`HTTP_GRANTED`]).
pub(crate) const GRANTED: &[&str] = &[
    "wasmsched:plugin/host",
    "wasmsched:plugin/types",
    "wasmsched:plugin/kv",
    "wasi:io/poll",
    "wasi:io/error",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// What a plugin granted outbound HTTP may import besides: the handler,
/// its types, and the monotonic clock (its request options use it).
pub(crate) const HTTP_GRANTED: &[&str] = &[
    "wasi:http/outgoing-handler",
    "wasi:http/types",
    "wasi:clocks/monotonic-clock",
];

/// Guest log lines kept per call, and bytes per line.
const MAX_LOG_LINES: u32 = 100;
const MAX_LOG_LINE: usize = wasmsched_core::bounded::MAX_MESSAGE_BYTES;

/// The data of one call's store.
pub(crate) struct CallState {
    pub(crate) plugin: Arc<str>,
    pub(crate) trigger: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    grants: Arc<Grants>,
    /// The state store holding key-value data, if the runtime has one.
    store: Option<Arc<dyn StateStore>>,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    log_lines: u32,
    /// The call's time limit: running time, instantiation included.
    budget: Duration,
    /// Running time of the call under way.
    clock: RunClock,
}

/// Who a store serves, and with what.
pub(crate) struct CallSetup {
    pub(crate) plugin: Arc<str>,
    pub(crate) trigger: Arc<str>,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) store: Option<Arc<dyn StateStore>>,
    pub(crate) memory_bytes: u64,
}

impl CallState {
    pub(crate) fn new(setup: CallSetup) -> Self {
        let stdout = Capture::default();
        let stderr = Capture::default();
        // No args, no env, no preopened directories, stdin closed; sockets
        // are not even linked.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        let outbound = Outbound {
            plugin: setup.plugin.clone(),
            trigger: setup.trigger.clone(),
            grant: setup.grants.http.clone().map(Arc::new),
        };
        Self {
            plugin: setup.plugin,
            trigger: setup.trigger,
            config: setup.config,
            grants: setup.grants,
            store: setup.store,
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            outbound,
            limiter: MemoryLimiter::new(setup.memory_bytes),
            stdout,
            stderr,
            log_lines: 0,
            budget: Duration::ZERO,
            clock: RunClock::default(),
        }
    }

    /// Starts a call that may run for `timeout` (instantiation included),
    /// measured on `clock`; resets what is counted per call, for an
    /// instance serving another.
    pub(crate) fn begin_call(&mut self, timeout: Duration, clock: RunClock) {
        self.log_lines = 0;
        self.budget = timeout;
        self.clock = clock;
    }

    /// Sends what the guest printed to the host log, tagged.
    pub(crate) fn forward_output(&self) {
        let (plugin, trigger) = (&*self.plugin, &*self.trigger);
        // One event per line, so every line carries the tags.
        if let Some(text) = self.stdout.take_text() {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(plugin, trigger, stream = "stdout", "{line}");
            }
        }
        if let Some(text) = self.stderr.take_text() {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                tracing::warn!(plugin, trigger, stream = "stderr", "{line}");
            }
        }
        if self.log_lines > MAX_LOG_LINES {
            let dropped = self.log_lines - MAX_LOG_LINES;
            tracing::warn!(
                plugin,
                trigger,
                "{dropped} more log lines from this call dropped"
            );
        }
    }

    fn log(&mut self, level: host::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let message = wasmsched_core::bounded::cut(&message, MAX_LOG_LINE);
        let (plugin, trigger) = (&*self.plugin, &*self.trigger);
        match level {
            host::Level::Trace => tracing::trace!(plugin, trigger, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, trigger, "{message}"),
            host::Level::Info => tracing::info!(plugin, trigger, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, trigger, "{message}"),
            host::Level::Error => tracing::error!(plugin, trigger, "{message}"),
        }
    }

    /// The store and quota for a key-value call, or why there are none.
    fn kv_access(&self, key: Option<&str>) -> Result<(Arc<dyn StateStore>, &Grants), kv::Error> {
        if self.grants.kv.is_none() {
            return Err(kv::Error::Denied);
        }
        if key.is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_BYTES) {
            return Err(kv::Error::InvalidKey);
        }
        let store = self.store.clone().ok_or_else(|| {
            kv::Error::Unavailable("this runtime has no state store (embedded use)".into())
        })?;
        Ok((store, &self.grants))
    }

    fn kv_failed(&self, error: impl std::fmt::Display) -> kv::Error {
        let (plugin, trigger) = (&*self.plugin, &*self.trigger);
        tracing::warn!(plugin, trigger, "key-value store: {error}");
        kv::Error::Unavailable(wasmsched_core::bounded::message(error.to_string()))
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl v0_2::wasmsched::plugin::types::Host for CallState {}
impl v0_1::wasmsched::plugin::types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: host::Level, message: String) {
        CallState::log(self, level, message);
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn secret(&mut self, name: String) -> Option<String> {
        let value = self.grants.secrets.get(&name)?;
        Some(value.expose().to_owned())
    }
}

impl v0_1::wasmsched::plugin::host::Host for CallState {
    fn log(&mut self, level: v0_1::wasmsched::plugin::host::Level, message: String) {
        use v0_1::wasmsched::plugin::host::Level as Old;
        let level = match level {
            Old::Trace => host::Level::Trace,
            Old::Debug => host::Level::Debug,
            Old::Info => host::Level::Info,
            Old::Warn => host::Level::Warn,
            Old::Error => host::Level::Error,
        };
        CallState::log(self, level, message);
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

impl kv::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<String>, kv::Error> {
        let (store, _) = self.kv_access(Some(&key))?;
        let scope = self.plugin.clone();
        store
            .kv_get(&scope, &key)
            .await
            .map_err(|e| self.kv_failed(e))
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), kv::Error> {
        let (store, grants) = self.kv_access(Some(&key))?;
        let quota = grants.kv.unwrap_or_default();
        let scope = self.plugin.clone();
        match store.kv_set(&scope, &key, &value, &quota).await {
            Ok(()) => Ok(()),
            Err(KvError::Quota(message)) => Err(kv::Error::QuotaExceeded(message)),
            Err(error) => Err(self.kv_failed(error)),
        }
    }

    async fn delete(&mut self, key: String) -> Result<bool, kv::Error> {
        let (store, _) = self.kv_access(Some(&key))?;
        let scope = self.plugin.clone();
        store
            .kv_delete(&scope, &key)
            .await
            .map_err(|e| self.kv_failed(e))
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, kv::Error> {
        let (store, _) = self.kv_access(None)?;
        let scope = self.plugin.clone();
        store
            .kv_keys(&scope, &prefix)
            .await
            .map_err(|e| self.kv_failed(e))
    }
}

/// The linker every plugin is instantiated with: both versions of the
/// contract, `wasi:io` and stdio, and `wasi:http` with the monotonic
/// clock (for the plugins granted outbound HTTP).
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::p2::bindings::{cli, clocks, io};

    let mut linker = Linker::new(engine);
    v0_2::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    v0_1::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    let l = &mut linker;
    // Asynchronous: a guest waiting on a stream or pollable (an HTTP
    // response) suspends, holding no thread.
    fn table(s: &mut CallState) -> &mut ResourceTable {
        &mut s.table
    }
    io::error::add_to_linker::<CallState, HasSelf<ResourceTable>>(l, table)?;
    io::poll::add_to_linker::<CallState, HasSelf<ResourceTable>>(l, table)?;
    io::streams::add_to_linker::<CallState, HasSelf<ResourceTable>>(l, table)?;
    fn cli_view(s: &mut CallState) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
        use wasmtime_wasi::cli::WasiCliView;
        s.cli()
    }
    cli::environment::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::exit::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::stdin::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::stdout::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::stderr::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(l, cli_view)?;
    fn clocks_view(s: &mut CallState) -> wasmtime_wasi::clocks::WasiClocksCtxView<'_> {
        use wasmtime_wasi::clocks::WasiClocksView;
        s.clocks()
    }
    clocks::monotonic_clock::add_to_linker::<CallState, WasiClocks>(l, clocks_view)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?;
    Ok(linker)
}

/// A store for calls of one trigger, with the memory limiter installed and
/// the time limit enforced at each epoch tick: once the call has run for
/// its budget the guest is interrupted (a timeout), otherwise it yields to
/// the async runtime for one tick, so other tasks run while it works. Time
/// spent suspended (waiting for a worker while other plugins run, or on
/// the network) is not counted: see [`RunClock`].
pub(crate) fn store(engine: &Engine, state: CallState) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|store| {
        let state = store.data();
        Ok(if state.clock.running() >= state.budget {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, Box::pin(YieldOnce(false)))
        })
    });
    store.set_epoch_deadline(1);
    store
}

/// Yields once to the async runtime.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
