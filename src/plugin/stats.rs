//! Per-plugin call counters ([`PluginStats`]), kept with atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::error::CallError;

/// A snapshot of a plugin's counters since it was loaded.
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

/// Call latency (instantiate + call) as a cumulative histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyHistogram {
    /// `(upper bound in seconds, calls at or under it)`, cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Calls observed.
    pub count: u64,
    /// Their total time, in seconds.
    pub sum_seconds: f64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    /// Per bucket (not cumulative), plus one for +Inf.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_nanos: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    memory_exhausted: AtomicU64,
    bad_data: AtomicU64,
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
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn latency(&self) -> LatencyHistogram {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let count =
            cumulative + self.latency_buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        LatencyHistogram {
            buckets,
            count,
            sum_seconds: self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
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
