//! The process-wide wasmtime [`Engine`]: component model, pooling
//! allocator, epoch interruption, and the thread that ticks the epoch.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::error::{PluginError, one_line};

/// How often the epoch advances: the granularity of call timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances alive at once (one per call in flight, plus load-time checks).
const MAX_INSTANCES: u32 = 64;

/// Idle (warm) instances kept across the runtime: half the pool, so calls
/// needing a fresh instance always find room.
pub(crate) const MAX_WARM_INSTANCES: usize = MAX_INSTANCES as usize / 2;
/// The most linear memory one instance may have (caps [`super::Limits`]).
pub(crate) const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// Builds the engine. Virtual memory reserved by the pool: about
/// `2 * MAX_INSTANCES` slots of `MAX_MEMORY_BYTES` + a 32 MiB guard (~130 GiB
/// of address space, none of it committed until used).
pub(crate) fn build_engine() -> Result<Engine, PluginError> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_INSTANCES)
        // Components from Python or JS toolchains hold a dozen core instances
        // and a few memories and tables each; Rust ones one of each.
        .total_core_instances(MAX_INSTANCES * 16)
        .total_memories(MAX_INSTANCES * 2)
        .total_tables(MAX_INSTANCES * 16)
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

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own,
/// until dropped.
pub(crate) struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Result<Self, PluginError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wasmsched-epoch".into())
            .spawn(move || {
                // Returns (and ends the thread) once the sender is dropped.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine(format!("starting the epoch thread: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Epoch ticks for a call of at most `timeout`: one more than the quotient,
/// since the first tick may come at once.
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    let ticks = timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
    u64::try_from(ticks).unwrap_or(u64::MAX / 2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_timeout() {
        assert_eq!(deadline_ticks(Duration::from_millis(100)), 11);
        assert_eq!(deadline_ticks(Duration::from_millis(1)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(15)), 3);
    }
}
