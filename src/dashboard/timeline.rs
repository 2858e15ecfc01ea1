//! Charts drawn by the server as inline SVG, readable without script: a
//! trigger's last 24 hours (scheduled instants as ticks, runs as dots
//! coloured by outcome, so misses and failures stand out) and a plugin's
//! call-latency histogram.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use crate::cron::CronSchedule;
use crate::plugin::LatencyHistogram;
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
