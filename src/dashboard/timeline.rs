//! A trigger's last 24 hours as inline SVG drawn by the server: its
//! scheduled instants as ticks, its runs as dots coloured by outcome, so
//! misses and late or failed fires stand out without any script.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use crate::cron::CronSchedule;
use crate::state::{Outcome, Run};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 60.0;
/// At most this many scheduled ticks are drawn (a `* * * * *` day is 1 440).
const MAX_TICKS: usize = 2000;

/// The SVG (escaped by construction: only numbers and RFC 3339 instants).
pub fn svg(schedule: &CronSchedule, runs: &[Run], now: DateTime<Utc>) -> String {
    let start = now - TimeDelta::hours(24);
    let x = |at: DateTime<Utc>| {
        let seconds = (at - start).num_milliseconds() as f64 / 1000.0;
        (seconds / 86_400.0 * WIDTH).clamp(0.0, WIDTH)
    };
    let mut out = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" \
         aria-label=\"Scheduled instants and runs over the last 24 hours\" \
         xmlns=\"http://www.w3.org/2000/svg\">\
         <line x1=\"0\" y1=\"30\" x2=\"{WIDTH}\" y2=\"30\" stroke=\"#999\"/>"
    );
    for hour in 0..=24 {
        let at = f64::from(hour) * WIDTH / 24.0;
        let _ = write!(
            out,
            "<line x1=\"{at:.1}\" y1=\"52\" x2=\"{at:.1}\" y2=\"56\" stroke=\"#bbb\"/>"
        );
    }
    for at in schedule
        .fires_after(start)
        .take_while(|t| *t <= now)
        .take(MAX_TICKS)
    {
        let _ = write!(
            out,
            "<line class=\"scheduled\" x1=\"{0:.1}\" y1=\"18\" x2=\"{0:.1}\" y2=\"42\" stroke=\"#68a\"><title>scheduled {1}</title></line>",
            x(at),
            at.to_rfc3339()
        );
    }
    for run in runs.iter().filter(|r| r.instant >= start) {
        let colour = match run.outcome {
            Outcome::Ok => "#2a7",
            Outcome::Missed | Outcome::Skipped => "#999",
            Outcome::Error | Outcome::Timeout => "#c33",
            _ => "#a80",
        };
        let _ = write!(
            out,
            "<circle class=\"run\" cx=\"{:.1}\" cy=\"30\" r=\"4\" fill=\"{colour}\"><title>{} {}</title></circle>",
            x(run.instant),
            run.instant.to_rfc3339(),
            super::pages::outcome(run)
        );
    }
    out.push_str("</svg>");
    out
}
