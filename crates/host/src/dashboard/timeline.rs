//! Charts drawn by the server as inline SVG, readable without script: a
//! trigger's last 24 hours (scheduled instants on the top row, runs on the
//! bottom row at the time they began, each joined to its instant, coloured
//! by outcome, so lateness, misses and failures stand out) and a plugin's
//! call-latency histogram.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use wasmsched_core::cron::CronSchedule;
use wasmsched_core::state::{Outcome, Run};
use wasmsched_plugin::LatencyHistogram;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 80.0;
/// At most this many scheduled ticks are drawn (a `* * * * *` day is 1 440).
const MAX_TICKS: usize = 2000;
/// The rows: scheduled ticks span `SCHEDULED`, runs sit on `RAN`.
const SCHEDULED: (f64, f64) = (6.0, 26.0);
const RAN: f64 = 50.0;

/// The SVG (escaped by construction: only numbers, RFC 3339 instants and
/// outcome names).
pub fn svg(schedule: &CronSchedule, runs: &[Run], now: DateTime<Utc>) -> String {
    let start = now - TimeDelta::hours(24);
    let x = |at: DateTime<Utc>| {
        let seconds = (at - start).num_milliseconds() as f64 / 1000.0;
        (seconds / 86_400.0 * WIDTH).clamp(0.0, WIDTH)
    };
    let (top, bottom) = SCHEDULED;
    let mut out = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" role=\"img\" \
         aria-label=\"Scheduled instants and runs over the last 24 hours\" \
         xmlns=\"http://www.w3.org/2000/svg\">\
         <line x1=\"0\" y1=\"{RAN}\" x2=\"{WIDTH}\" y2=\"{RAN}\" stroke=\"#ccc\"/>"
    );
    for hour in 0..=24 {
        let at = f64::from(hour) * WIDTH / 24.0;
        let _ = write!(
            out,
            "<line x1=\"{at:.1}\" y1=\"70\" x2=\"{at:.1}\" y2=\"76\" stroke=\"#bbb\"/>"
        );
    }
    for at in schedule
        .fires_after(start)
        .take_while(|t| *t <= now)
        .take(MAX_TICKS)
    {
        let _ = write!(
            out,
            "<line class=\"scheduled\" x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"#68a\"><title>scheduled {1}</title></line>",
            x(at),
            at.to_rfc3339()
        );
    }
    for run in runs
        .iter()
        .filter(|r| r.started.unwrap_or(r.instant) >= start)
    {
        let colour = match run.outcome {
            Outcome::Ok => "#2a7",
            Outcome::Missed | Outcome::Skipped => "#999",
            Outcome::Error | Outcome::Timeout => "#c33",
            _ => "#a80",
        };
        let (scheduled, began) = (x(run.instant), x(run.started.unwrap_or(run.instant)));
        let title = match run.started {
            Some(started) => format!(
                "{}: scheduled {}, began {} ({:+.2} s)",
                run.outcome.as_str(),
                run.instant.to_rfc3339(),
                started.to_rfc3339(),
                (started - run.instant).num_milliseconds() as f64 / 1000.0
            ),
            None => format!(
                "{}: scheduled {}",
                run.outcome.as_str(),
                run.instant.to_rfc3339()
            ),
        };
        let _ = write!(
            out,
            "<line x1=\"{scheduled:.1}\" y1=\"{bottom}\" x2=\"{began:.1}\" y2=\"{}\" stroke=\"{colour}\" stroke-opacity=\"0.5\"/>\
             <circle class=\"run {}\" cx=\"{began:.1}\" cy=\"{RAN}\" r=\"4\" fill=\"{colour}\"><title>{title}</title></circle>",
            RAN - 4.0,
            run.outcome.as_str(),
        );
    }
    out.push_str("</svg>");
    out
}

/// A plugin's call latency as bars, one per bucket (calls in it, not
/// cumulative), labelled with the bucket's upper bound.
pub fn latency_svg(latency: &LatencyHistogram) -> String {
    let mut counts = Vec::new();
    let mut below = 0;
    for (bound, cumulative) in &latency.buckets {
        counts.push((*bound, cumulative - below));
        below = *cumulative;
    }
    counts.push((f64::INFINITY, latency.count.saturating_sub(below)));
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let bar = WIDTH / counts.len() as f64;
    let mut out = format!(
        "<svg viewBox=\"0 0 {WIDTH} 120\" width=\"100%\" role=\"img\" \
         aria-label=\"Plugin call latency histogram, {} calls\" xmlns=\"http://www.w3.org/2000/svg\">",
        latency.count
    );
    for (i, (bound, n)) in counts.iter().enumerate() {
        let height = *n as f64 / most * 90.0;
        let x = i as f64 * bar;
        let label = match bound.is_finite() {
            true if *bound < 1.0 => format!("{}ms", bound * 1000.0),
            true => format!("{bound}s"),
            false => "more".to_owned(),
        };
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#24629c\"><title>{n} calls up to {label}</title></rect>\
             <text x=\"{:.1}\" y=\"114\" font-size=\"10\" text-anchor=\"middle\">{label}</text>",
            x + 2.0,
            95.0 - height,
            (bar - 4.0).max(1.0),
            x + bar / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(instant: DateTime<Utc>, started: Option<DateTime<Utc>>, outcome: Outcome) -> Run {
        Run {
            trigger: "t".into(),
            instant,
            started,
            kind: wasmsched_core::firing::TriggerKind::Cron,
            outcome,
            duration_ms: 1.0,
            events: Vec::new(),
            error: None,
            catch_up: false,
            backfill: false,
            source_event: None,
        }
    }

    #[test]
    fn runs_sit_where_they_began_joined_to_their_instant() {
        let schedule = CronSchedule::with_zone_name("0 * * * *", "UTC").unwrap();
        let now: DateTime<Utc> = "2026-11-30T12:30:00Z".parse().unwrap();
        let instant: DateTime<Utc> = "2026-11-30T06:00:00Z".parse().unwrap();
        // 17.5 hours into the window (30 px an hour): x = 525; an hour late: 555.
        let late = run(instant, Some(instant + TimeDelta::hours(1)), Outcome::Ok);
        let missed = run(instant + TimeDelta::hours(2), None, Outcome::Missed);
        let svg = svg(&schedule, &[late, missed], now);
        assert_eq!(svg.matches("class=\"scheduled\"").count(), 24);
        assert!(
            svg.contains("<line x1=\"525.0\" y1=\"26\" x2=\"555.0\""),
            "{svg}"
        );
        assert!(svg.contains("class=\"run ok\" cx=\"555.0\""), "{svg}");
        assert!(svg.contains("(+3600.00 s)"), "{svg}");
        // A missed instant sits at its instant, with no start.
        assert!(svg.contains("class=\"run missed\" cx=\"585.0\""), "{svg}");
        assert!(svg.contains("missed: scheduled 2026-11-30T08:00:00+00:00</title>"));
    }
}
