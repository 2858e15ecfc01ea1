//! What one key of a trigger has seen ([`KeyWindow`]) and what it does with
//! the next event ([`KeyWindow::admit`]) or when a deadline comes
//! ([`KeyWindow::take_due`]). Pure: the clock is an argument, so tests run
//! hours of traffic in microseconds. Kept in the state store as JSON.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::FlowSpec;
use crate::event::Event;

/// The header on the source event of a firing under flow control: how many
/// events it stands for (itself, plus those dropped, merged or batched
/// since the key last fired).
pub const COUNT_HEADER: &str = "wasmsched-flow-count";

/// The state flow control keeps for one key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyWindow {
    /// Dedupe: later events are dropped until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_until: Option<DateTime<Utc>>,
    /// Throttle: when the firings of the last period went on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passes: Vec<DateTime<Utc>>,
    /// Events dropped since one last went on (the next stands for them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// Debounce: the event held, to fire at `due`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// Batch: the events collected so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Collected>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A debounced key's last event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The last event of the burst.
    pub event: Event,
    /// When the burst began (it fires by `since + max_wait`).
    pub since: DateTime<Utc>,
    /// When it fires unless another event comes first.
    pub due: DateTime<Utc>,
    /// Events the firing will stand for.
    pub stands_for: u64,
}

/// A batch being filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collected {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// When the first came (it fires by `since + max_wait`).
    pub since: DateTime<Utc>,
    /// Events the firing will stand for (more than `events` if some were
    /// dropped before being collected).
    pub stands_for: u64,
}

/// Why an event was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its key fired within the dedupe window.
    Deduplicated,
    /// Its key reached the throttle's limit for the period.
    Throttled,
}

/// What to fire now: one event, or a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The events (one, unless batched), oldest first.
    pub events: Vec<Event>,
    /// How many events the firing stands for ([`COUNT_HEADER`]).
    pub stands_for: u64,
    /// A batch (the factory gets every event), not one event.
    pub batched: bool,
}

/// What [`KeyWindow::admit`] did with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Dropped (counted, not fired).
    Dropped(Dropped),
    /// Held by debounce; `replaced` is the event it held before, merged.
    Held {
        /// The event held until now, if any.
        replaced: Option<Box<Event>>,
    },
    /// Added to a batch that is not full.
    Collected,
    /// Fire now.
    Fire(Release),
}

impl KeyWindow {
    /// Takes `event`, arriving at `now`, through dedupe, throttle, and
    /// debounce or batch.
    pub fn admit(&mut self, spec: &FlowSpec, event: Event, now: DateTime<Utc>) -> Step {
        if let Some(throttle) = &spec.throttle {
            let start = before(now, throttle.period);
            self.passes.retain(|at| *at > start);
        }
        if spec.dedupe.is_some() && self.dedupe_until.is_some_and(|until| until > now) {
            self.dropped += 1;
            return Step::Dropped(Dropped::Deduplicated);
        }
        if let Some(throttle) = &spec.throttle
            && self.passes.len() >= throttle.limit as usize
        {
            self.dropped += 1;
            return Step::Dropped(Dropped::Throttled);
        }
        if let Some(dedupe) = &spec.dedupe {
            self.dedupe_until = Some(after(now, dedupe.window));
        }
        if spec.throttle.is_some() {
            self.passes.push(now);
        }
        let stands_for = std::mem::take(&mut self.dropped) + 1;
        if let Some(debounce) = &spec.debounce {
            let (since, before, replaced) = match self.held.take() {
                Some(held) => (held.since, held.stands_for, Some(Box::new(held.event))),
                None => (now, 0, None),
            };
            let due = after(now, debounce.period).min(after(since, debounce.max_wait));
            self.held = Some(Held {
                event,
                since,
                due,
                stands_for: before + stands_for,
            });
            return Step::Held { replaced };
        }
        if let Some(batch) = &spec.batch {
            let collected = self.batch.get_or_insert_with(|| Collected {
                events: Vec::new(),
                since: now,
                stands_for: 0,
            });
            collected.events.push(event);
            collected.stands_for += stands_for;
            if collected.events.len() < batch.max_events {
                return Step::Collected;
            }
            let full = self.batch.take().expect("just filled");
            return Step::Fire(Release {
                events: full.events,
                stands_for: full.stands_for,
                batched: true,
            });
        }
        Step::Fire(Release {
            events: vec![event],
            stands_for,
            batched: false,
        })
    }

    /// When something held must fire (debounce or batch), if anything is.
    pub fn due(&self, spec: &FlowSpec) -> Option<DateTime<Utc>> {
        let held = self.held.as_ref().map(|h| h.due);
        let batch = match (&self.batch, &spec.batch) {
            (Some(collected), Some(batch)) => Some(after(collected.since, batch.max_wait)),
            _ => None,
        };
        held.into_iter().chain(batch).min()
    }

    /// What has come due by `now`, taken out of the window.
    pub fn take_due(&mut self, spec: &FlowSpec, now: DateTime<Utc>) -> Option<Release> {
        // A firing stands for the events dropped while it was held too
        // (dedupe or throttle in front of debounce or batch).
        if self.held.as_ref().is_some_and(|h| h.due <= now) {
            let held = self.held.take().expect("checked");
            return Some(Release {
                events: vec![held.event],
                stands_for: held.stands_for + std::mem::take(&mut self.dropped),
                batched: false,
            });
        }
        let batch = spec.batch.as_ref()?;
        if self
            .batch
            .as_ref()
            .is_some_and(|c| after(c.since, batch.max_wait) <= now)
        {
            let collected = self.batch.take().expect("checked");
            return Some(Release {
                events: collected.events,
                stands_for: collected.stands_for + std::mem::take(&mut self.dropped),
                batched: true,
            });
        }
        None
    }

    /// Holds nothing that still matters at `now`: the key's record can go.
    pub fn is_idle(&self, spec: &FlowSpec, now: DateTime<Utc>) -> bool {
        let window_open = self.dedupe_until.is_some_and(|until| until > now);
        let recent_passes = match &spec.throttle {
            Some(throttle) => self
                .passes
                .iter()
                .any(|at| *at > before(now, throttle.period)),
            None => false,
        };
        !window_open
            && !recent_passes
            && self.dropped == 0
            && self.held.is_none()
            && self.batch.is_none()
    }
}

/// `duration` after `at`, or the end of time. Settings are bounded when
/// parsed (`crate::units::MAX_DURATION`), but a window read back from the
/// store or built by an embedder is not, and must not panic.
fn after(at: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `duration` before `at`, or the beginning of time.
fn before(at: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_sub_signed(delta))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::super::{Batch, Debounce, Dedupe, Throttle};
    use super::*;
    use crate::topic::Topic;
    use serde_json::json;
    use std::time::Duration;

    fn event(n: u64) -> Event {
        Event::new(Topic::new("logs.app").unwrap(), json!({ "n": n }))
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(seconds)
    }

    fn fired(step: &Step) -> Option<(Vec<u64>, u64)> {
        match step {
            Step::Fire(release) => Some((
                release
                    .events
                    .iter()
                    .map(|e| e.data["n"].as_u64().unwrap())
                    .collect(),
                release.stands_for,
            )),
            _ => None,
        }
    }

    #[test]
    fn throttle_passes_limit_per_sliding_period_and_counts_the_rest() {
        let spec = FlowSpec {
            throttle: Some(Throttle {
                limit: 2,
                period: Duration::from_secs(60),
            }),
            ..FlowSpec::default()
        };
        let mut window = KeyWindow::default();
        let steps: Vec<Step> = (0..5)
            .map(|n| window.admit(&spec, event(n), at(n as i64)))
            .collect();
        assert_eq!(fired(&steps[0]), Some((vec![0], 1)));
        assert_eq!(fired(&steps[1]), Some((vec![1], 1)));
        assert!(
            steps[2..]
                .iter()
                .all(|s| *s == Step::Dropped(Dropped::Throttled))
        );
        // 60 s after the first pass, one slot is free; it stands for 4.
        assert_eq!(
            fired(&window.admit(&spec, event(9), at(60))),
            Some((vec![9], 4))
        );
        // The passes at 1 s and 60 s fill the period (1 s, 61 s].
        assert_eq!(
            window.admit(&spec, event(10), at(60)),
            Step::Dropped(Dropped::Throttled)
        );
        assert!(!window.is_idle(&spec, at(200)), "a dropped event is owed");
        assert_eq!(
            fired(&window.admit(&spec, event(11), at(61))),
            Some((vec![11], 2))
        );
        assert!(window.is_idle(&spec, at(200)));
    }

    #[test]
    fn dedupe_drops_within_the_window_then_passes() {
        let spec = FlowSpec {
            dedupe: Some(Dedupe {
                window: Duration::from_secs(600),
            }),
            ..FlowSpec::default()
        };
        let mut window = KeyWindow::default();
        assert!(fired(&window.admit(&spec, event(1), at(0))).is_some());
        assert_eq!(
            window.admit(&spec, event(2), at(599)),
            Step::Dropped(Dropped::Deduplicated)
        );
        assert_eq!(
            fired(&window.admit(&spec, event(3), at(600))),
            Some((vec![3], 2))
        );
        assert!(window.is_idle(&spec, at(1200)));
    }

    #[test]
    fn debounce_fires_the_last_event_when_quiet_or_at_max_wait() {
        let spec = FlowSpec {
            debounce: Some(Debounce {
                period: Duration::from_secs(30),
                max_wait: Duration::from_secs(300),
            }),
            ..FlowSpec::default()
        };
        let mut window = KeyWindow::default();
        assert_eq!(
            window.admit(&spec, event(1), at(0)),
            Step::Held { replaced: None }
        );
        let Step::Held {
            replaced: Some(replaced),
        } = window.admit(&spec, event(2), at(20))
        else {
            panic!("the second event replaces the first")
        };
        assert_eq!(replaced.data["n"], 1);
        assert_eq!(window.due(&spec), Some(at(50)));
        assert_eq!(window.take_due(&spec, at(49)), None);
        let release = window.take_due(&spec, at(50)).unwrap();
        assert_eq!(
            (release.events[0].data["n"].as_u64(), release.stands_for),
            (Some(2), 2)
        );
        assert!(window.is_idle(&spec, at(50)));

        // Never quiet: an event every 20 s fires at max_wait.
        let mut window = KeyWindow::default();
        for n in 0..15 {
            window.admit(&spec, event(n), at(n as i64 * 20));
        }
        assert_eq!(window.due(&spec), Some(at(300)));
        let release = window.take_due(&spec, at(300)).unwrap();
        assert_eq!(
            (release.events[0].data["n"].as_u64(), release.stands_for),
            (Some(14), 15)
        );
    }

    #[test]
    fn batches_fill_to_max_events_or_fire_at_max_wait() {
        let spec = FlowSpec {
            batch: Some(Batch {
                max_events: 100,
                max_wait: Duration::from_secs(10),
            }),
            ..FlowSpec::default()
        };
        let mut window = KeyWindow::default();
        let mut releases = Vec::new();
        for n in 0..250 {
            if let Step::Fire(release) = window.admit(&spec, event(n), at(0)) {
                releases.push(release);
            }
        }
        assert_eq!(releases.len(), 2);
        assert!(releases.iter().all(|r| r.batched && r.events.len() == 100));
        assert_eq!(releases[1].events[0].data["n"], 100);
        assert_eq!(window.due(&spec), Some(at(10)));
        let rest = window.take_due(&spec, at(10)).unwrap();
        assert_eq!((rest.events.len(), rest.stands_for), (50, 50));
    }

    #[test]
    fn a_window_round_trips_through_json() {
        let spec = FlowSpec {
            debounce: Some(Debounce {
                period: Duration::from_secs(1),
                max_wait: Duration::from_secs(2),
            }),
            ..FlowSpec::default()
        };
        let mut window = KeyWindow::default();
        window.admit(&spec, event(1), at(0));
        let json = serde_json::to_value(&window).unwrap();
        assert_eq!(serde_json::from_value::<KeyWindow>(json).unwrap(), window);
        assert_eq!(
            serde_json::to_value(KeyWindow::default()).unwrap(),
            json!({})
        );
    }
}
