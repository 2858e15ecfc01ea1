//! The process-wide wasmtime [`Engine`]: component model, pooling
//! allocator, async calls, epoch interruption, and the thread that ticks
//! the epoch while calls are in flight.
//!
//! Guests run as futures on the caller's async runtime (`call_async`). At
//! every epoch tick a running guest's store calls back (see
//! `host::store`): once the call has run for its time limit the guest is
//! interrupted, otherwise it yields to the runtime and resumes when polled
//! again. So no call holds a runtime worker for more than one
//! [`EPOCH_TICK`], however long it runs, and only the time it runs counts
//! against its limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::{PluginError, one_line};

/// How often the epoch advances while calls are in flight: the longest a
/// guest runs before it yields to the async runtime, and the granularity
/// of call timeouts. 1 ms keeps an api trigger answering within a few ms
/// while plugins spin (BENCHMARKS.md); the thread sleeps when no call runs.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Idle (warm) instances kept across the runtime. The pool holds these
/// plus one instance per call in flight plus [`LOAD_CHECKS`], so a call
/// needing a fresh instance always finds room.
pub(crate) const MAX_WARM_INSTANCES: usize = 32;

/// Instances for load-time checks (plugins being loaded at once).
const LOAD_CHECKS: u32 = 8;

/// The most `[plugins] max_calls` may be (the pool reserves address space
/// per instance: ~2 GiB each, never committed until used).
pub const MAX_CALLS_LIMIT: usize = 1024;
/// The most linear memory one instance may have (caps [`super::Limits`]).
pub(crate) const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// Builds the engine for at most `max_calls` calls in flight. Virtual
/// memory reserved by the pool: 2 slots of `MAX_MEMORY_BYTES` + a 32 MiB
/// guard per instance (~150 GiB of address space with the defaults on 2
/// cores, none of it committed until used).
pub(crate) fn build_engine(max_calls: usize) -> Result<Engine, PluginError> {
    let calls = u32::try_from(max_calls.min(MAX_CALLS_LIMIT)).unwrap_or(u32::MAX);
    let instances = calls + MAX_WARM_INSTANCES as u32 + LOAD_CHECKS;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // Components from Python or JS toolchains hold a dozen core instances
        // and a few memories and tables each; Rust ones one of each.
        .total_core_instances(instances * 16)
        .total_memories(instances * 2)
        .total_tables(instances * 16)
        .max_memory_size(MAX_MEMORY_BYTES as usize)
        // A fresh instance per call: resetting a slot is most of a call's
        // cost. Measured on large_dataset (release, 2 cores): keeping 1 MiB
        // resident (memset instead of madvise) was slower, 35 vs 27 µs;
        // batching the madvise calls brought it to ~24 µs.
        .linear_memory_keep_resident(64 << 10)
        .decommit_batch_size(16);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_reservation(MAX_MEMORY_BYTES)
        .memory_guard_size(32 << 20)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| PluginError::Engine(one_line(&e)))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own
/// while at least one call is in flight ([`EpochTicker::busy`]), and sleeps
/// otherwise: an idle host pays nothing for it. Stops when dropped.
pub(crate) struct EpochTicker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct TickerShared {
    /// Calls in flight (and load-time checks): counted without the lock;
    /// the lock is taken only to wake the thread when this leaves 0.
    busy: AtomicUsize,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Keeps the epoch ticking until dropped (one per call in flight).
pub(crate) struct Ticking(Arc<TickerShared>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Release);
    }
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Result<Self, PluginError> {
        let shared = Arc::new(TickerShared::default());
        let ticker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wasmsched-epoch".into())
            .spawn(move || {
                loop {
                    {
                        let stop = ticker.stop.lock().unwrap_or_else(|p| p.into_inner());
                        let stop = ticker
                            .wake
                            .wait_while(stop, |stop| {
                                !*stop && ticker.busy.load(Ordering::Acquire) == 0
                            })
                            .unwrap_or_else(|p| p.into_inner());
                        if *stop {
                            return;
                        }
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine(format!("starting the epoch thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Ticks until the returned guard is dropped.
    pub(crate) fn busy(&self) -> Ticking {
        if self.shared.busy.fetch_add(1, Ordering::AcqRel) == 0 {
            // Under the lock, so the thread cannot miss it between its
            // check and its wait.
            let _stop = self.shared.stop.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_one();
        }
        Ticking(self.shared.clone())
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
