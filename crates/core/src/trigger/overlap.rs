//! What a cron trigger does when an instant comes due while its previous
//! firing still runs (a slow factory, a plugin waiting on the network):
//! `overlap = "allow" | "skip" | "buffer_one"`. Per replica: another
//! replica that is free may still claim the instant.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `overlap` setting of a cron trigger.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Run every instant, however many firings already run (the default).
    #[default]
    Allow,
    /// Skip an instant while a firing runs (recorded as `skipped`).
    Skip,
    /// Keep one instant that comes due while a firing runs, and run it
    /// when that firing ends; skip the others.
    BufferOne,
}

/// What to do with an instant that came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Run it now.
    Run,
    /// It waits for the firing under way.
    Buffered,
    /// Not run (recorded as skipped).
    Skip,
}

/// A cron trigger's firings under way, and the instant buffered.
#[derive(Debug, Default)]
pub struct Overlap {
    policy: OverlapPolicy,
    state: Mutex<(usize, Option<DateTime<Utc>>)>,
}

impl Overlap {
    /// Firings following `policy`.
    pub fn new(policy: OverlapPolicy) -> Self {
        Self {
            policy,
            state: Mutex::default(),
        }
    }

    /// Decides about `instant`, due now.
    pub fn admit(&self, instant: DateTime<Utc>) -> Admit {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (running, buffered) = &mut *state;
        let admit = match (self.policy, *running) {
            (OverlapPolicy::Allow, _) | (_, 0) => Admit::Run,
            (OverlapPolicy::Skip, _) => Admit::Skip,
            (OverlapPolicy::BufferOne, _) if buffered.is_none() => {
                *buffered = Some(instant);
                Admit::Buffered
            }
            (OverlapPolicy::BufferOne, _) => Admit::Skip,
        };
        if admit == Admit::Run {
            *running += 1;
        }
        admit
    }

    /// A firing ended: the buffered instant to run next (its firing takes
    /// this one's place), if any.
    pub fn done(&self) -> Option<DateTime<Utc>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (running, buffered) = &mut *state;
        let next = buffered.take();
        if next.is_none() {
            *running = running.saturating_sub(1);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        format!("2030-01-07T10:{minute:02}:00Z").parse().unwrap()
    }

    #[test]
    fn policies_decide_while_a_firing_runs() {
        let allow = Overlap::new(OverlapPolicy::Allow);
        assert_eq!(
            (allow.admit(at(0)), allow.admit(at(1))),
            (Admit::Run, Admit::Run)
        );
        let skip = Overlap::new(OverlapPolicy::Skip);
        assert_eq!(
            (skip.admit(at(0)), skip.admit(at(1))),
            (Admit::Run, Admit::Skip)
        );
        assert_eq!(skip.done(), None);
        assert_eq!(skip.admit(at(2)), Admit::Run);
        let buffer = Overlap::new(OverlapPolicy::BufferOne);
        assert_eq!(buffer.admit(at(0)), Admit::Run);
        assert_eq!(buffer.admit(at(1)), Admit::Buffered);
        assert_eq!(buffer.admit(at(2)), Admit::Skip);
        assert_eq!(buffer.done(), Some(at(1)), "the buffered instant runs next");
        assert_eq!(buffer.done(), None);
        assert_eq!(buffer.admit(at(3)), Admit::Run);
    }
}
