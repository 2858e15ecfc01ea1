//! Durations counted into fixed buckets, lock-free: plugin call latency,
//! cron lateness, sink delivery time, flow-control waits. `/metrics` shows
//! each as a Prometheus histogram; the dashboard draws plugin latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// A histogram of durations over fixed bucket bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound (not cumulative), plus one past the last bound.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or under it)`, cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their total, in seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    /// An empty histogram with buckets up to each of `bounds` (seconds,
    /// ascending) and one beyond.
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.is_sorted());
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.buckets.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let beyond = self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: cumulative + beyond,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl HistogramSnapshot {
    /// The sum of two snapshots over the same bounds (e.g. two triggers').
    pub fn plus(&self, other: &Self) -> Self {
        if self.buckets.is_empty() {
            return other.clone();
        }
        Self {
            buckets: self
                .buckets
                .iter()
                .zip(&other.buckets)
                .map(|((bound, a), (_, b))| (*bound, a + b))
                .collect(),
            count: self.count + other.count,
            sum_seconds: self.sum_seconds + other.sum_seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_count_includes_the_overflow() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let histogram = Histogram::new(&BOUNDS);
        for ms in [0, 5, 5, 50, 5_000] {
            histogram.observe(Duration::from_millis(ms));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.001, 1), (0.01, 3), (0.1, 4)]);
        assert_eq!(snapshot.count, 5);
        assert!((snapshot.sum_seconds - 5.06).abs() < 1e-9);
        let twice = snapshot.plus(&snapshot);
        assert_eq!(twice.buckets[1], (0.01, 6));
        assert_eq!(twice.count, 10);
    }
}
