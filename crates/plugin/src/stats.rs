//! Per-plugin call counters ([`PluginStats`]), kept with atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::error::CallError;
use wasmsched_core::histogram::{Histogram, HistogramSnapshot};

/// A snapshot of a plugin's counters since it was loaded.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PluginStats {
    /// Calls made (each a fresh instance).
    pub calls: u64,
    /// Calls where the plugin returned `err(...)`.
    pub errors: u64,
    /// Calls that trapped (panic, `unreachable`, bad access, failed
    /// instantiation), timeouts and memory exhaustion excluded.
    pub traps: u64,
    /// Calls stopped at their time limit.
    pub timeouts: u64,
    /// Calls stopped at their memory limit.
    pub memory_exhausted: u64,
    /// Calls that returned data the host could not use (bad JSON or topic).
    pub bad_data: u64,
}

/// Upper bounds (seconds) of the call latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// Call latency (instantiate + call), in seconds.
pub type LatencyHistogram = HistogramSnapshot;

#[derive(Debug)]
pub(crate) struct StatsCounters {
    latency: Histogram,
    calls: AtomicU64,
    errors: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    memory_exhausted: AtomicU64,
    bad_data: AtomicU64,
}

impl Default for StatsCounters {
    fn default() -> Self {
        Self {
            latency: Histogram::new(&LATENCY_BUCKETS),
            calls: AtomicU64::default(),
            errors: AtomicU64::default(),
            traps: AtomicU64::default(),
            timeouts: AtomicU64::default(),
            memory_exhausted: AtomicU64::default(),
            bad_data: AtomicU64::default(),
        }
    }
}

impl StatsCounters {
    pub(crate) fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed call under its kind.
    pub(crate) fn failure(&self, error: &CallError) {
        let counter = match error {
            CallError::Failed { .. } => &self.errors,
            CallError::Trap { .. } => &self.traps,
            CallError::Timeout { .. } | CallError::WallTimeout { .. } => &self.timeouts,
            CallError::MemoryExhausted { .. } => &self.memory_exhausted,
            CallError::BadData { .. } => &self.bad_data,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one call took.
    pub(crate) fn observe(&self, elapsed: std::time::Duration) {
        self.latency.observe(elapsed);
    }

    pub(crate) fn latency(&self) -> LatencyHistogram {
        self.latency.snapshot()
    }

    pub(crate) fn snapshot(&self) -> PluginStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PluginStats {
            calls: get(&self.calls),
            errors: get(&self.errors),
            traps: get(&self.traps),
            timeouts: get(&self.timeouts),
            memory_exhausted: get(&self.memory_exhausted),
            bad_data: get(&self.bad_data),
        }
    }
}
