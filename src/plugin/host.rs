//! What a plugin instance can reach: the `wasmsched:plugin/host` interface
//! (logging, per-trigger config) and a WASI sandbox of stdio only. Also the
//! per-call store state and the linker that grants exactly this.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::MemoryLimiter;

/// Bindings generated from `wit/plugin.wit` (world `plugin`: both exports;
/// factory-only and filter-only components use the half they export).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "plugin",
        // Guests are called as futures (see `engine.rs`); what they import
        // from the host answers at once, so imports stay synchronous.
        exports: { default: async },
    });
}

use bindings::wasmsched::plugin::{host, types};

/// Interfaces a plugin may import, without their version. Everything else
/// (files, sockets, clocks, random, http, ...) is refused at load.
pub(crate) const GRANTED: &[&str] = &[
    "wasmsched:plugin/host",
    "wasmsched:plugin/types",
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

/// Guest log lines kept per call, and bytes per line.
const MAX_LOG_LINES: u32 = 100;
const MAX_LOG_LINE: usize = crate::bounded::MAX_MESSAGE_BYTES;
/// Bytes of stdout / stderr kept per call (the rest is counted, not kept).
pub(crate) const MAX_CAPTURE: usize = 4096;

/// The data of one call's store.
pub(crate) struct CallState {
    pub(crate) plugin: Arc<str>,
    pub(crate) trigger: Arc<str>,
    config: Arc<BTreeMap<String, String>>,
    table: ResourceTable,
    wasi: WasiCtx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
    log_lines: u32,
    /// The call's time limit: running time, instantiation included.
    budget: Duration,
    /// Running time used so far by the call under way.
    used: Duration,
    /// When the guest last resumed (set by [`Resume`] after each yield).
    resumed: Arc<Mutex<Instant>>,
}

impl CallState {
    pub(crate) fn new(
        plugin: Arc<str>,
        trigger: Arc<str>,
        config: Arc<BTreeMap<String, String>>,
        memory_bytes: u64,
    ) -> Self {
        let stdout = Capture::default();
        let stderr = Capture::default();
        // No args, no env, no preopened directories, stdin closed; the
        // network is not even linked.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            plugin,
            trigger,
            config,
            table: ResourceTable::new(),
            wasi,
            limiter: MemoryLimiter::new(memory_bytes),
            stdout,
            stderr,
            log_lines: 0,
            budget: Duration::ZERO,
            used: Duration::ZERO,
            resumed: Arc::new(Mutex::new(Instant::now())),
        }
    }

    /// Starts a call that may run for `timeout` (instantiation included);
    /// resets what is counted per call, for an instance serving another.
    pub(crate) fn begin_call(&mut self, timeout: Duration) {
        self.log_lines = 0;
        self.budget = timeout;
        self.used = Duration::ZERO;
        *self.resumed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// At an epoch tick: adds the running time since the guest last resumed
    /// and tells whether the budget is spent.
    fn budget_spent(&mut self) -> bool {
        let resumed = *self.resumed.lock().unwrap_or_else(|p| p.into_inner());
        self.used += resumed.elapsed();
        self.used >= self.budget
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
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::wasi_io::TableOf for CallState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: host::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let message = crate::bounded::cut(&message, MAX_LOG_LINE);
        let (plugin, trigger) = (&*self.plugin, &*self.trigger);
        match level {
            host::Level::Trace => tracing::trace!(plugin, trigger, "{message}"),
            host::Level::Debug => tracing::debug!(plugin, trigger, "{message}"),
            host::Level::Info => tracing::info!(plugin, trigger, "{message}"),
            host::Level::Warn => tracing::warn!(plugin, trigger, "{message}"),
            host::Level::Error => tracing::error!(plugin, trigger, "{message}"),
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}

/// The linker every plugin is instantiated with: the `host` and `types`
/// interfaces and the stdio part of WASI, nothing else.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::p2::bindings::cli;

    let mut linker = Linker::new(engine);
    bindings::Plugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)?;
    super::wasi_io::add_to_linker(&mut linker)?;
    let l = &mut linker;
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
    Ok(linker)
}

/// A store for calls of one trigger, with the memory limiter installed and
/// the time limit enforced at each epoch tick: once the call has run for
/// its budget the guest is interrupted (a timeout), otherwise it yields to
/// the async runtime for one tick, so other tasks run while it works. Time
/// spent suspended, waiting for a worker while other plugins run, is not
/// counted: a busy host does not make a plugin time out.
pub(crate) fn store(engine: &Engine, state: CallState) -> Store<CallState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|mut store| {
        let state = store.data_mut();
        Ok(if state.budget_spent() {
            UpdateDeadline::Interrupt
        } else {
            let resume = Resume {
                resumed: state.resumed.clone(),
                yielded: false,
            };
            UpdateDeadline::YieldCustom(1, Box::pin(resume))
        })
    });
    store.set_epoch_deadline(1);
    store
}

/// Yields once to the async runtime, then notes when the guest resumed.
struct Resume {
    resumed: Arc<Mutex<Instant>>,
    yielded: bool,
}

impl std::future::Future for Resume {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        *self.resumed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        Poll::Ready(())
    }
}

/// Captures a guest's stdout or stderr: keeps the first [`MAX_CAPTURE`]
/// bytes and counts the rest. Never fails and never blocks, so a chatty
/// guest is not broken by the capture.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&self, bytes: &[u8]) {
        let mut captured = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = MAX_CAPTURE.saturating_sub(captured.kept.len());
        let keep = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..keep]);
        captured.dropped += bytes.len() - keep;
    }

    /// What was written since the last call, as text; `None` if nothing.
    pub(crate) fn take_text(&self) -> Option<String> {
        let mut captured = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = std::mem::take(&mut captured.kept);
        let dropped = std::mem::take(&mut captured.dropped);
        let text = String::from_utf8_lossy(&kept);
        let text = text.trim_end();
        match (text.is_empty(), dropped) {
            (true, 0) => None,
            (_, 0) => Some(text.to_owned()),
            _ => Some(format!("{text}… ({dropped} more bytes dropped)")),
        }
    }

    /// The last lines written (for a trap's message), without consuming them.
    pub(crate) fn tail(&self, max: usize) -> String {
        let captured = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&captured.kept);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let joined = lines.join(" ");
        let start = joined.len().saturating_sub(max);
        let start = (start..=joined.len())
            .find(|&i| joined.is_char_boundary(i))
            .unwrap_or(joined.len());
        joined[start..].to_owned()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
