//! The events triggers published most recently, kept in memory so the
//! dashboard can show what a run published: at most [`MAX_EVENTS`] events
//! and [`MAX_BYTES`] of them (by [`crate::bounded::event_bytes`]), the
//! oldest firing's events dropped first. A trigger's events are copied
//! here for at most one firing every 10 ms (a busy event trigger would
//! turn the whole ring over in milliseconds and pay a copy per event).
//! Per host, not shared by replicas, and gone at a restart: the broker is
//! where events live.

use std::collections::VecDeque;
use std::sync::Mutex;

use uuid::Uuid;

use crate::event::Event;

/// The most events kept.
pub const MAX_EVENTS: usize = 1_000;
/// The most bytes of events kept (8 MiB).
pub const MAX_BYTES: u64 = 8 << 20;

/// A bounded ring of recently published events, grouped by firing.
#[derive(Default)]
pub struct RecentEvents {
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    /// Each firing's events and their size, oldest first.
    firings: VecDeque<(Vec<Event>, u64)>,
    events: usize,
    bytes: u64,
}

impl RecentEvents {
    /// Keeps one firing's `events` (`bytes` in all), dropping the oldest
    /// firings' until the bounds hold again. A firing larger than the
    /// bounds by itself is not kept.
    pub fn push(&self, events: Vec<Event>, bytes: u64) {
        if events.is_empty() || events.len() > MAX_EVENTS || bytes > MAX_BYTES {
            return;
        }
        let mut ring = self.ring.lock().expect("recent events lock");
        ring.events += events.len();
        ring.bytes += bytes;
        ring.firings.push_back((events, bytes));
        while ring.events > MAX_EVENTS || ring.bytes > MAX_BYTES {
            let Some((dropped, size)) = ring.firings.pop_front() else {
                break;
            };
            ring.events -= dropped.len();
            ring.bytes -= size;
        }
    }

    /// The event `id`, if it is still kept.
    pub fn get(&self, id: Uuid) -> Option<Event> {
        let ring = self.ring.lock().expect("recent events lock");
        ring.firings
            .iter()
            .rev()
            .flat_map(|(events, _)| events)
            .find(|event| event.id == id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        Event::new("t".parse().unwrap(), json!({}))
    }

    #[test]
    fn keeps_the_newest_within_both_bounds() {
        let recent = RecentEvents::default();
        let first = event();
        recent.push(vec![first.clone()], 10);
        assert_eq!(recent.get(first.id), Some(first.clone()));
        // Past the count, the oldest firing goes.
        for _ in 0..MAX_EVENTS {
            recent.push(vec![event()], 10);
        }
        assert_eq!(recent.get(first.id), None);
        // Past the bytes, too: two firings of more than half the bound.
        let (a, b) = (event(), event());
        recent.push(vec![a.clone()], MAX_BYTES / 2 + 1);
        recent.push(vec![b.clone()], MAX_BYTES / 2 + 1);
        assert_eq!(recent.get(a.id), None);
        assert_eq!(recent.get(b.id), Some(b.clone()));
        // A firing over the bound by itself is not kept (and drops nothing).
        let huge = event();
        recent.push(vec![huge.clone()], MAX_BYTES + 1);
        assert_eq!(recent.get(huge.id), None);
        assert!(recent.get(b.id).is_some());
    }
}
