//! How well the cron schedule keeps time, across every trigger: how late
//! each fire ran after its scheduled instant (jitter excluded), and how
//! many instants were not run, by reason. Bounded whatever the number of
//! triggers; `/metrics` shows it as `wasmsched_cron_lateness_seconds` and
//! `wasmsched_cron_missed_total{reason}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::{Histogram, HistogramSnapshot};

/// Upper bounds of the lateness histogram's buckets, in seconds.
pub const LATENESS_BOUNDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0,
];

/// Why a cron instant was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// It fell before `catch_up_window`.
    OutsideWindow,
    /// `catch_up = "skip"`, or `latest` runs only the newest.
    Policy,
    /// `catch_up = "all"` ran `catch_up_max` of them.
    OverMax,
    /// It fell while the trigger was paused (recorded as skipped).
    Paused,
}

impl MissReason {
    const ALL: [MissReason; 4] = [
        MissReason::OutsideWindow,
        MissReason::Policy,
        MissReason::OverMax,
        MissReason::Paused,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            MissReason::OutsideWindow => "outside_window",
            MissReason::Policy => "policy",
            MissReason::OverMax => "over_max",
            MissReason::Paused => "paused",
        }
    }
}

/// The scheduler's time-keeping counters (shared by its cron triggers).
#[derive(Debug)]
pub struct ScheduleHealth {
    lateness: Histogram,
    missed: [AtomicU64; MissReason::ALL.len()],
}

impl Default for ScheduleHealth {
    fn default() -> Self {
        Self {
            lateness: Histogram::new(&LATENESS_BOUNDS),
            missed: Default::default(),
        }
    }
}

/// A snapshot of [`ScheduleHealth`].
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    /// How late fires ran (seconds).
    pub lateness: HistogramSnapshot,
    /// Instants not run, by reason.
    pub missed: Vec<(MissReason, u64)>,
}

impl ScheduleHealth {
    /// A fire that ran `late` after its instant (plus its jitter).
    pub fn record_lateness(&self, late: Duration) {
        self.lateness.observe(late);
    }

    /// `count` instants not run, for `reason`.
    pub fn record_missed(&self, reason: MissReason, count: u64) {
        let index = MissReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.missed[index].fetch_add(count, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> HealthSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HealthSnapshot {
            lateness: self.lateness.snapshot(),
            missed: MissReason::ALL
                .iter()
                .zip(&self.missed)
                .map(|(r, c)| (*r, get(c)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let health = ScheduleHealth::default();
        health.record_lateness(Duration::from_millis(3));
        health.record_lateness(Duration::from_millis(300));
        health.record_missed(MissReason::OutsideWindow, 4);
        let snapshot = health.snapshot();
        assert_eq!(snapshot.lateness.count, 2);
        assert_eq!(snapshot.lateness.buckets[0], (0.001, 0));
        assert_eq!(snapshot.lateness.buckets[1], (0.005, 1));
        assert_eq!(snapshot.lateness.buckets[7], (0.5, 2));
        assert!((snapshot.lateness.sum_seconds - 0.303).abs() < 1e-9);
        assert_eq!(snapshot.missed[0], (MissReason::OutsideWindow, 4));
    }
}
