//! The next fire instant of a schedule, with cronie's daylight-saving rules.
//!
//! Real time is cut into *segments* of constant UTC offset. Inside a segment,
//! local wall time moves in step with real time, so the next local match
//! found on naive wall-clock times ([`Pattern::next_match`]) is the next fire. At a
//! segment boundary (a transition):
//!
//! * forward jump (local times skipped): a wildcard job skips them; a fixed
//!   job with a match in the skipped range fires once, at the transition;
//! * backward jump (local times repeated): a wildcard job fires again on the
//!   second pass; a fixed job fires only on the first pass.
//!
//! Every result is strictly after the instant asked about, so successive
//! calls give strictly increasing fire times.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::pattern::Pattern;

/// Offsets are sampled this far apart when looking for a transition. Zones
/// never change offset twice within this span.
const PROBE_STEP: TimeDelta = TimeDelta::hours(6);

/// Upper bound on segments crossed in one search (two transitions a year
/// for the 3000 years croner searches is far below this).
const MAX_STEPS: usize = 20_000;

pub(super) fn next_after(
    pattern: &Pattern,
    zone: Tz,
    fixed_time: bool,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut cursor = after;
    // At a segment start the wall time at the cursor itself may fire.
    let mut inclusive = false;
    for _ in 0..MAX_STEPS {
        let offset = offset_at(zone, cursor);
        let local = cursor.naive_utc() + offset;
        let wall_match = pattern.next_match(local, inclusive)?;
        let candidate = (wall_match - offset).and_utc();
        let Some(transition) = first_offset_change(zone, cursor, candidate) else {
            if fixed_time && is_second_pass(zone, wall_match, candidate) {
                cursor = candidate;
                inclusive = false;
                continue;
            }
            return Some(candidate);
        };
        let new_offset = offset_at(zone, transition);
        if fixed_time && new_offset > offset {
            let skipped_from = transition.naive_utc() + offset;
            let skipped_until = transition.naive_utc() + new_offset;
            if pattern
                .next_match(skipped_from, true)
                .is_some_and(|m| m < skipped_until)
            {
                return Some(transition);
            }
        }
        cursor = transition;
        inclusive = true;
    }
    None
}

/// [`next_after`] for a zone that never changes its offset: the next wall
/// clock match, shifted by the one offset.
pub(super) fn next_at_fixed_offset(
    pattern: &Pattern,
    zone: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let offset = offset_at(zone, after);
    let wall_match = pattern.next_match(after.naive_utc() + offset, false)?;
    Some((wall_match - offset).and_utc())
}

/// The zone's UTC offset at `instant`.
fn offset_at(zone: Tz, instant: DateTime<Utc>) -> TimeDelta {
    let seconds = zone
        .offset_from_utc_datetime(&instant.naive_utc())
        .fix()
        .local_minus_utc();
    TimeDelta::seconds(i64::from(seconds))
}

/// The first instant in `(from, to]` whose offset differs from `from`'s.
fn first_offset_change(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let base = offset_at(zone, from);
    // Transitions fall on whole seconds; so do all probes from here on.
    let mut low = from.trunc_subsecs(0);
    while low < to {
        let high = (low + PROBE_STEP).min(to);
        if offset_at(zone, high) != base {
            return Some(bisect_change(zone, base, low, high));
        }
        low = high;
    }
    None
}

/// `low` has offset `base`, `high` does not: the first second that does not.
fn bisect_change(
    zone: Tz,
    base: TimeDelta,
    mut low: DateTime<Utc>,
    mut high: DateTime<Utc>,
) -> DateTime<Utc> {
    while high - low > TimeDelta::seconds(1) {
        let middle = low + TimeDelta::seconds((high - low).num_seconds() / 2);
        if offset_at(zone, middle) == base {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// Is `instant` the second occurrence of the repeated wall time `wall`?
fn is_second_pass(zone: Tz, wall: NaiveDateTime, instant: DateTime<Utc>) -> bool {
    matches!(
        zone.from_local_datetime(&wall),
        LocalResult::Ambiguous(first, _) if first.with_timezone(&Utc) != instant
    )
}
