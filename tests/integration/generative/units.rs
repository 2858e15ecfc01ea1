//! Durations, sizes, rates, cron expressions, topics and patterns: parsing
//! never panics, and what parses formats back to text that parses to the
//! same value.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use wasmsched::cron::{CronSchedule, jitter_offset, parse_zone};
use wasmsched::units::{Rate, format_duration, parse_bytes, parse_duration};
use wasmsched::{Topic, TopicPattern};

use super::edges::{
    cron_text, duration_text, odd_text, rate_text, size_text, topic_text, zone_text,
};
use super::harness::{check, no_panic};

/// `text` parses without a panic, and what it parses to formats back.
pub fn duration_case(text: String) -> Result<(), TestCaseError> {
    {
        let parsed = no_panic("parse_duration", || parse_duration(&text))?;
        if let Ok(duration) = parsed {
            let formatted = no_panic("format_duration", || format_duration(duration))?;
            let again = parse_duration(&formatted);
            prop_assert_eq!(
                again.clone(),
                Ok(duration),
                "{:?} parses to {:?}, formats as {:?}, which parses to {:?}",
                text,
                duration,
                formatted,
                again
            );
        }
        Ok(())
    }
}

#[test]
fn durations_parse_and_format_back() {
    check("durations", 5000, duration_text(), duration_case);
}

/// `text` parses without a panic, to the number it says.
pub fn size_case(text: String) -> Result<(), TestCaseError> {
    {
        let parsed = no_panic("parse_bytes", || parse_bytes(&text))?;
        if let Ok(bytes) = parsed {
            prop_assert_eq!(parse_bytes(&bytes.to_string()), Ok(bytes));
            // A plain number of bytes is that number, not a rounding of it.
            if let Ok(exact) = text.trim().parse::<u64>() {
                prop_assert_eq!(bytes, exact, "{:?} read as {} bytes", text, bytes);
            }
        }
        Ok(())
    }
}

#[test]
fn sizes_parse_exactly() {
    check("sizes", 5000, size_text(), size_case);
}

/// `text` parses without a panic, and what it parses to formats back.
pub fn rate_case(text: String) -> Result<(), TestCaseError> {
    {
        let parsed = no_panic("Rate::from_str", || text.parse::<Rate>())?;
        if let Ok(rate) = parsed {
            let formatted = rate.to_string();
            prop_assert_eq!(
                formatted.parse::<Rate>(),
                Ok(rate),
                "{:?} formats as {:?}",
                text,
                formatted
            );
        }
        Ok(())
    }
}

#[test]
fn rates_parse_and_format_back() {
    check("rates", 5000, rate_text(), rate_case);
}

/// Instants at the ends of what chrono holds, and ordinary ones.
fn instant() -> BoxedStrategy<DateTime<Utc>> {
    prop_oneof![
        1 => prop::sample::select(vec![
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 8, 6, 59, 0).unwrap(),
        ]),
        3 => (0i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
    ]
    .boxed()
}

/// The expression parses in the zone without a panic; its next fire after
/// `after` is found without one; what it shows parses to the same.
pub fn cron_case(
    (expression, zone, after): (String, String, DateTime<Utc>),
) -> Result<(), TestCaseError> {
    {
        let parsed = no_panic("CronSchedule::with_zone_name", || {
            CronSchedule::with_zone_name(&expression, &zone)
        })?;
        let Ok(schedule) = parsed else {
            return Ok(());
        };
        let next = no_panic("next_after", || schedule.next_after(after))?;
        no_panic("describe", || schedule.describe())?;
        // What it shows parses again to the same schedule.
        let shown = schedule.expression().to_owned();
        let again = CronSchedule::new(&shown, schedule.zone());
        prop_assert!(
            again.is_ok(),
            "{:?} shows as {:?}: {:?}",
            expression,
            shown,
            again
        );
        let again = again.unwrap();
        prop_assert_eq!(again.next_after(after), next);
        prop_assert_eq!(again.to_string(), schedule.to_string());
        if let Some(next) = next {
            prop_assert!(next > after, "next fire {} is not after {}", next, after);
        }
        Ok(())
    }
}

#[test]
fn cron_expressions_parse_and_reparse() {
    check(
        "cron",
        4000,
        (cron_text(), zone_text(), instant()),
        cron_case,
    );
}

#[test]
fn zones_and_jitter_never_panic() {
    let jitter = prop_oneof![
        Just(Duration::MAX),
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        any::<u64>().prop_map(Duration::from_millis),
        any::<u64>().prop_map(Duration::from_nanos),
    ];
    check(
        "zones",
        500,
        (zone_text(), odd_text(), jitter),
        |(zone, id, jitter)| {
            let _ = no_panic("parse_zone", || parse_zone(&zone))?;
            let offset = no_panic("jitter_offset", || jitter_offset(&id, jitter))?;
            prop_assert!(
                offset < jitter || jitter.as_millis() == 0,
                "{offset:?} >= {jitter:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn topics_and_patterns_parse_and_reparse() {
    check("topics", 1500, (topic_text(), topic_text()), |(a, b)| {
        if let Ok(topic) = no_panic("Topic::new", || Topic::new(a.clone()))? {
            prop_assert_eq!(Topic::new(topic.to_string()), Ok(topic.clone()));
            let json = serde_json::to_string(&topic).unwrap();
            prop_assert_eq!(
                serde_json::from_str::<Topic>(&json).ok(),
                Some(topic.clone())
            );
            // A topic is a pattern that matches itself.
            let literal = TopicPattern::new(a.clone());
            prop_assert!(
                literal.as_ref().is_ok_and(|p| p.matches(&topic)),
                "{:?}: {:?}",
                a,
                literal
            );
        }
        if let Ok(pattern) = no_panic("TopicPattern::new", || TopicPattern::new(b.clone()))? {
            prop_assert_eq!(TopicPattern::new(pattern.to_string()), Ok(pattern.clone()));
            let json = serde_json::to_string(&pattern).unwrap();
            prop_assert_eq!(
                serde_json::from_str::<TopicPattern>(&json).ok(),
                Some(pattern.clone())
            );
            if let Ok(topic) = Topic::new(a) {
                no_panic("TopicPattern::matches", || pattern.matches(&topic))?;
            }
        }
        Ok(())
    });
}
