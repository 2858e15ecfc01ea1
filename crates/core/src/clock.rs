//! Wall-clock time for the scheduler, real or simulated.
//!
//! Cron fire times are wall-clock instants, but sleeping uses tokio's
//! monotonic timer. A simulated clock maps tokio's clock onto a chosen wall
//! time, so a test on a paused tokio runtime runs days of cron in
//! milliseconds, with the same code path as production.

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

/// The scheduler's source of "now".
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// `None`: the system clock. `Some`: wall time `.0` at tokio instant `.1`.
    simulated_origin: Option<(DateTime<Utc>, Instant)>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self {
            simulated_origin: None,
        }
    }

    /// A clock that reads `start` now and then advances with tokio's clock,
    /// so `tokio::time::pause` / `advance` (or a `start_paused` test) drive it.
    pub fn simulated(start: DateTime<Utc>) -> Self {
        Self {
            simulated_origin: Some((start, Instant::now())),
        }
    }

    /// The current instant by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        match self.simulated_origin {
            None => Utc::now(),
            Some((wall, instant)) => {
                let elapsed = TimeDelta::from_std(instant.elapsed()).unwrap_or(TimeDelta::MAX);
                wall + elapsed
            }
        }
    }

    /// Sleeps until the wall clock reads `deadline` or later.
    pub async fn sleep_until(&self, deadline: DateTime<Utc>) {
        // The system wall clock may be stepped while we sleep on the
        // monotonic timer: wake, re-read it, and sleep again if early.
        loop {
            let Ok(remaining) = (deadline - self.now()).to_std() else {
                return;
            };
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(remaining).await;
        }
    }
}
