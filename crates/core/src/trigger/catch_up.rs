//! Catch-up: what a cron trigger does, when it starts, about the instants
//! that fell since it last fired (the host was down, or the trigger was
//! paused). [`CatchUp`] is the policy a trigger's table sets; [`plan`]
//! sorts the instants into those to fire late and those to record as
//! missed (or skipped), with the reason.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::cron::CronSchedule;

/// What a cron trigger runs of the instants it missed
/// (`catch_up = "skip" | "latest" | "all"`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUpPolicy {
    /// None: each is recorded as missed.
    Skip,
    /// The newest one within the window (the default): a report that
    /// should have run at 09:00 runs once at start, not once per missed day.
    #[default]
    Latest,
    /// Every one within the window, oldest first, at most `catch_up_max`
    /// (the newest ones).
    All,
}

/// A cron trigger's catch-up settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Which missed instants run.
    pub policy: CatchUpPolicy,
    /// How far back a missed instant still runs (`catch_up_window`,
    /// default 1 hour); older ones are missed.
    pub window: Duration,
    /// The most instants `all` runs (`catch_up_max`, default 10).
    pub max: usize,
}

impl Default for CatchUp {
    /// `latest` within 1 hour (`all`: at most 10).
    fn default() -> Self {
        Self {
            policy: CatchUpPolicy::Latest,
            window: Duration::from_secs(3600),
            max: 10,
        }
    }
}

/// The most missed instants a start counts (a minutely trigger down for
/// two years); beyond it the count says "at least".
pub const MAX_SCAN: usize = 1_000_000;

/// What to do about the instants after `last` up to `now`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Instants to fire late, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Instants not run, oldest first, each with the reason: the newest
    /// `keep` of them.
    pub missed: Vec<(DateTime<Utc>, String)>,
    /// How many were not run (at most [`MAX_SCAN`] counted).
    pub missed_count: usize,
    /// How many of those fell before the window.
    pub outside_window: usize,
    /// The newest instant up to `now` (nothing after `last`: `None`).
    pub newest: Option<DateTime<Utc>>,
    /// The oldest instant not run.
    pub first_missed: Option<DateTime<Utc>>,
}

/// Sorts the instants of `schedule` after `last` and up to `now` by
/// `catch_up`; `paused`: none runs (they fell during a pause). Keeps the
/// reasons of the newest `keep` instants not run. One pass, keeping only
/// the newest instants it may need.
pub fn plan(
    schedule: &CronSchedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: &CatchUp,
    paused: bool,
    keep: usize,
) -> Plan {
    let window = TimeDelta::from_std(catch_up.window).unwrap_or(TimeDelta::MAX);
    let oldest_in_window = now
        .checked_sub_signed(window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let may_run = match (paused, catch_up.policy) {
        (true, _) | (false, CatchUpPolicy::Skip) => 0,
        (false, CatchUpPolicy::Latest) => 1,
        (false, CatchUpPolicy::All) => catch_up.max,
    };
    let (total, first, tail) = scan(schedule, last, now, (keep + may_run).max(1));
    let window_start = (oldest_in_window - TimeDelta::nanoseconds(1)).max(last);
    let in_window_total = schedule
        .fires_after(window_start)
        .take_while(|t| *t <= now)
        .take(MAX_SCAN)
        .count();
    let in_window = tail.iter().filter(|t| **t >= oldest_in_window).count();
    let runs = may_run.min(in_window);
    let split = tail.len() - runs;
    let reason = |t: &DateTime<Utc>| -> String {
        if paused {
            "the trigger was paused".to_owned()
        } else if *t < oldest_in_window {
            format!(
                "older than catch_up_window ({})",
                crate::units::format_duration(catch_up.window)
            )
        } else {
            match catch_up.policy {
                CatchUpPolicy::Skip => "catch_up = \"skip\"".to_owned(),
                CatchUpPolicy::Latest => "catch_up = \"latest\" runs only the newest".to_owned(),
                CatchUpPolicy::All => format!("over catch_up_max ({})", catch_up.max),
            }
        }
    };
    let not_run = &tail[..split];
    let missed_count = total - runs;
    Plan {
        fire: tail[split..].to_vec(),
        missed: not_run[not_run.len().saturating_sub(keep)..]
            .iter()
            .map(|t| (*t, reason(t)))
            .collect(),
        missed_count,
        outside_window: total.saturating_sub(in_window_total),
        newest: tail.last().copied(),
        first_missed: first.filter(|_| missed_count > 0),
    }
}

/// The instants after `last` up to `now`: how many (at most [`MAX_SCAN`]),
/// the first, and the newest `tail` of them, oldest first. Past
/// [`MAX_SCAN`] the newest are found by scanning back from `now` in
/// growing steps, so that the window is never lost to the count.
fn scan(
    schedule: &CronSchedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    tail: usize,
) -> (usize, Option<DateTime<Utc>>, Vec<DateTime<Utc>>) {
    let mut newest = std::collections::VecDeque::with_capacity(tail + 1);
    let (mut total, mut first) = (0, None);
    for t in schedule
        .fires_after(last)
        .take_while(|t| *t <= now)
        .take(MAX_SCAN)
    {
        total += 1;
        first.get_or_insert(t);
        if newest.len() == tail {
            newest.pop_front();
        }
        newest.push_back(t);
    }
    if total < MAX_SCAN {
        return (total, first, newest.into());
    }
    // Too many to walk: find the newest `tail` from a start close to now.
    let mut span = TimeDelta::hours(1);
    loop {
        let from = (now - span).max(last);
        let recent: Vec<DateTime<Utc>> = schedule
            .fires_after(from)
            .take_while(|t| *t <= now)
            .collect();
        if recent.len() >= tail || from == last || span > TimeDelta::days(3650) {
            let skip = recent.len().saturating_sub(tail);
            return (total, first, recent[skip..].to_vec());
        }
        span = span * 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn hourly() -> CronSchedule {
        CronSchedule::utc("0 * * * *").unwrap()
    }

    fn policy(policy: CatchUpPolicy, window_h: u64, max: usize) -> CatchUp {
        CatchUp {
            policy,
            window: Duration::from_secs(window_h * 3600),
            max,
        }
    }

    #[test]
    fn latest_runs_the_newest_instant_in_the_window() {
        // Down from 09:30 to 14:10: 10:00 .. 14:00 missed.
        let (last, now) = (at("2030-01-07T09:00:00Z"), at("2030-01-07T14:10:00Z"));
        let plan = plan(&hourly(), last, now, &CatchUp::default(), false, 100);
        assert_eq!(plan.fire, vec![at("2030-01-07T14:00:00Z")]);
        assert_eq!(plan.missed_count, 4);
        assert_eq!(plan.missed[0].0, at("2030-01-07T10:00:00Z"));
        assert!(
            plan.missed[0].1.contains("catch_up_window (1h)"),
            "{:?}",
            plan.missed
        );
        assert_eq!(plan.newest, Some(at("2030-01-07T14:00:00Z")));
    }

    #[test]
    fn all_runs_up_to_max_oldest_first_and_skip_runs_none() {
        let (last, now) = (at("2030-01-07T09:00:00Z"), at("2030-01-07T14:10:00Z"));
        let all = plan(
            &hourly(),
            last,
            now,
            &policy(CatchUpPolicy::All, 24, 3),
            false,
            100,
        );
        let fired: Vec<String> = all
            .fire
            .iter()
            .map(|t| t.format("%H").to_string())
            .collect();
        assert_eq!(fired, ["12", "13", "14"]);
        assert_eq!(all.missed_count, 2);
        assert!(all.missed[1].1.contains("catch_up_max (3)"));
        let skip = plan(
            &hourly(),
            last,
            now,
            &policy(CatchUpPolicy::Skip, 24, 3),
            false,
            2,
        );
        assert!(skip.fire.is_empty());
        assert_eq!(skip.missed_count, 5);
        assert_eq!(skip.missed.len(), 2, "only the newest `keep` are listed");
        assert_eq!(skip.missed[1].0, at("2030-01-07T14:00:00Z"));
        assert_eq!(skip.first_missed, Some(at("2030-01-07T10:00:00Z")));
    }

    #[test]
    fn a_pause_runs_nothing_and_nothing_due_is_an_empty_plan() {
        let (last, now) = (at("2030-01-07T09:00:00Z"), at("2030-01-07T11:10:00Z"));
        let paused = plan(&hourly(), last, now, &CatchUp::default(), true, 100);
        assert!(paused.fire.is_empty());
        assert!(paused.missed.iter().all(|(_, why)| why.contains("paused")));
        let quiet = plan(&hourly(), now, now, &CatchUp::default(), false, 100);
        assert_eq!(quiet, Plan::default());
    }

    #[test]
    fn a_downtime_longer_than_the_scan_still_runs_the_newest_instant() {
        // A minutely trigger down for three years: more instants than are counted.
        let minutely = CronSchedule::utc("* * * * *").unwrap();
        let (last, now) = (at("2027-01-07T09:00:30Z"), at("2030-01-07T09:00:30Z"));
        let plan = plan(&minutely, last, now, &CatchUp::default(), false, 3);
        assert_eq!(plan.fire, vec![at("2030-01-07T09:00:00Z")]);
        assert_eq!(plan.missed_count, MAX_SCAN - 1);
        assert_eq!(plan.missed.len(), 3);
        assert_eq!(plan.missed[2].0, at("2030-01-07T08:59:00Z"));
        assert_eq!(plan.first_missed, Some(at("2027-01-07T09:01:00Z")));
    }
}
