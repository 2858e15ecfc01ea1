//! `wasmsched cron next` and `wasmsched cron explain`: check a schedule
//! without deploying it.

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use wasmsched::CronSchedule;

/// A trigger's jitter, for `--jitter` and `--id`: each fire happens this
/// long after its instant.
pub struct Jitter {
    /// `--jitter`, e.g. `90s`.
    pub jitter: Option<String>,
    /// `--id`: the trigger id the offset is derived from.
    pub id: Option<String>,
}

impl Jitter {
    /// The offset of each fire (zero without `--jitter`).
    fn offset(&self) -> Result<chrono::TimeDelta> {
        let Some(text) = &self.jitter else {
            return Ok(chrono::TimeDelta::zero());
        };
        let jitter =
            wasmsched::units::parse_duration(text).map_err(|e| anyhow::anyhow!("--jitter: {e}"))?;
        let id = self
            .id
            .as_deref()
            .context("--jitter needs --id: the offset is derived from the trigger id")?;
        let offset = wasmsched::cron::jitter_offset(id, jitter);
        Ok(chrono::TimeDelta::from_std(offset).unwrap_or_default())
    }
}

/// Prints the next `count` fire instants after `from`, one RFC 3339
/// timestamp per line, in the schedule's zone (plus the jitter offset).
pub fn next(
    expression: &str,
    zone: &str,
    from: Option<&str>,
    count: usize,
    jitter: &Jitter,
) -> Result<()> {
    let schedule = CronSchedule::with_zone_name(expression, zone)?;
    let offset = jitter.offset()?;
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
            (t + offset)
                .with_timezone(&schedule.zone())
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .collect();
    println!("{}", lines.join("\n"));
    Ok(())
}

/// Describes the schedule in plain English and lists its next 5 fires in
/// local time and UTC (plus the jitter offset).
pub fn explain(expression: &str, zone: &str, jitter: &Jitter) -> Result<()> {
    let schedule = CronSchedule::with_zone_name(expression, zone)?;
    let offset = jitter.offset()?;
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
    if let (Some(id), false) = (&jitter.id, offset.is_zero()) {
        println!(
            "  Jitter: trigger `{id}` fires {} after each instant.",
            wasmsched::units::format_duration(offset.to_std().unwrap_or_default())
        );
    }
    println!("Next 5 fires:");
    for fire in schedule.fires_after(Utc::now()).take(5) {
        let fire = fire + offset;
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
