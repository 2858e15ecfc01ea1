//! `wasmsched cron next` and `wasmsched cron explain`: check a schedule
//! without deploying it.

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use wasmsched::CronSchedule;

/// Prints the next `count` fire instants after `from`, one RFC 3339
/// timestamp per line, in the schedule's zone.
pub fn next(expression: &str, zone: &str, from: Option<&str>, count: usize) -> Result<()> {
    let schedule = CronSchedule::with_zone_name(expression, zone)?;
    let from = match from {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .with_context(|| {
                format!("--from `{text}` is not an RFC 3339 timestamp (e.g. 2026-03-08T00:00:00Z)")
            })?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let lines: Vec<String> = schedule
        .fires_after(from)
        .take(count)
        .map(|t| {
            t.with_timezone(&schedule.zone())
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .collect();
    println!("{}", lines.join("\n"));
    Ok(())
}

/// Describes the schedule in plain English and lists its next 5 fires in
/// local time and UTC.
pub fn explain(expression: &str, zone: &str) -> Result<()> {
    let schedule = CronSchedule::with_zone_name(expression, zone)?;
    println!("`{}` in {}", schedule.expression(), schedule.zone());
    println!("  {}", schedule.describe());
    if schedule.is_fixed_time() {
        println!(
            "  Fixed-time job: on a daylight-saving day it runs once; if its time is\n  \
             skipped by a forward jump it runs right after the jump."
        );
    } else {
        println!(
            "  Wildcard job (minute or hour starts with `*`): it follows real time; minutes\n  \
             skipped by a forward jump do not run, repeated minutes run on both passes."
        );
    }
    println!("Next 5 fires:");
    for fire in schedule.fires_after(Utc::now()).take(5) {
        let local = fire.with_timezone(&schedule.zone());
        println!(
            "  {}  ({})   {}",
            local.format("%a %Y-%m-%d %H:%M %Z"),
            local.format("%:z"),
            fire.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
    Ok(())
}
