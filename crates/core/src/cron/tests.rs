use super::*;
use chrono::{Datelike, TimeZone, Timelike};
use proptest::prelude::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The first `n` fires after `from`, as RFC 3339 UTC strings.
fn fires(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    CronSchedule::with_zone_name(expr, zone)
        .unwrap()
        .fires_after(at(from))
        .take(n)
        .map(|t| t.to_rfc3339())
        .collect()
}

fn error(expr: &str) -> String {
    CronSchedule::utc(expr).unwrap_err().to_string()
}

#[test]
fn seed_examples() {
    assert_eq!(
        fires("* * * * *", "UTC", "2026-01-01T00:00:30Z", 2),
        ["2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"]
    );
    assert_eq!(
        fires("0 * * * *", "UTC", "2026-01-01T00:00:00Z", 2),
        ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]
    );
    assert_eq!(
        fires("0 0 * * *", "UTC", "2026-01-01T00:00:00Z", 1),
        ["2026-01-02T00:00:00+00:00"]
    );
    assert_eq!(
        fires("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", 3),
        [
            "2026-01-01T00:15:00+00:00",
            "2026-01-01T00:30:00+00:00",
            "2026-01-01T00:45:00+00:00"
        ]
    );
    // Friday 2026-01-02 10:00 in Seoul: next weekday 09:00 is Monday the 5th (00:00Z).
    assert_eq!(
        fires("0 9 * * MON-FRI", "Asia/Seoul", "2026-01-02T01:00:00Z", 2),
        ["2026-01-05T00:00:00+00:00", "2026-01-06T00:00:00+00:00"]
    );
}

#[test]
fn weekday_numbers_are_sunday_based_and_seven_is_sunday() {
    // 1-5 is Monday to Friday (the `cron` crate reads it as Sunday to Thursday).
    let days: Vec<_> = CronSchedule::utc("0 12 * * 1-5")
        .unwrap()
        .fires_after(at("2026-01-03T00:00:00Z")) // a Saturday
        .take(5)
        .map(|t| t.weekday().to_string())
        .collect();
    assert_eq!(days, ["Mon", "Tue", "Wed", "Thu", "Fri"]);
    for sunday in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN"] {
        assert_eq!(
            fires(sunday, "UTC", "2026-01-01T00:00:00Z", 1),
            ["2026-01-04T00:00:00+00:00"],
            "{sunday}"
        );
    }
}

#[test]
fn day_of_month_or_day_of_week_unless_one_starts_with_star() {
    // 13th OR Friday: Friday 2 Jan, Friday 9 Jan, Tuesday 13 Jan, Friday 16 Jan.
    assert_eq!(
        fires("0 0 13 * FRI", "UTC", "2026-01-01T00:00:00Z", 4),
        [
            "2026-01-02T00:00:00+00:00",
            "2026-01-09T00:00:00+00:00",
            "2026-01-13T00:00:00+00:00",
            "2026-01-16T00:00:00+00:00"
        ]
    );
    // `*/2` starts with `*`: odd days AND Mondays (5 Jan is the first odd Monday).
    assert_eq!(
        fires("0 0 */2 * MON", "UTC", "2026-01-01T00:00:00Z", 2),
        ["2026-01-05T00:00:00+00:00", "2026-01-19T00:00:00+00:00"]
    );
}

#[test]
fn last_day_last_weekday_and_nth_weekday() {
    assert_eq!(
        fires("0 0 L * *", "UTC", "2026-02-01T00:00:00Z", 2),
        ["2026-02-28T00:00:00+00:00", "2026-03-31T00:00:00+00:00"]
    );
    // Last Friday of January 2026 is the 30th.
    assert_eq!(
        fires("0 0 * * 5L", "UTC", "2026-01-01T00:00:00Z", 1),
        ["2026-01-30T00:00:00+00:00"]
    );
    // First Monday of February 2026 is the 2nd.
    assert_eq!(
        fires("0 0 * * 1#1", "UTC", "2026-01-06T00:00:00Z", 1),
        ["2026-02-02T00:00:00+00:00"]
    );
    assert_eq!(
        fires("0 0 1 JAN,JUL *", "UTC", "2026-01-01T00:00:00Z", 1),
        ["2026-07-01T00:00:00+00:00"]
    );
}

#[test]
fn macros() {
    let cases = [
        ("@yearly", "2027-01-01T00:00:00+00:00"),
        ("@annually", "2027-01-01T00:00:00+00:00"),
        ("@monthly", "2026-02-01T00:00:00+00:00"),
        ("@weekly", "2026-01-04T00:00:00+00:00"),
        ("@daily", "2026-01-02T00:00:00+00:00"),
        ("@midnight", "2026-01-02T00:00:00+00:00"),
        ("@hourly", "2026-01-01T01:00:00+00:00"),
    ];
    for (expr, first) in cases {
        assert_eq!(
            fires(expr, "UTC", "2026-01-01T00:00:00Z", 1),
            [first],
            "{expr}"
        );
    }
}

#[test]
fn errors_name_the_field_and_value() {
    assert!(error("").contains("empty"));
    let six = error("0 0 9 * * MON");
    assert!(six.contains("6 fields") && six.contains("seconds"), "{six}");
    let minute = error("61 * * * *");
    assert!(
        minute.contains("minute field `61`") && minute.contains("0-59"),
        "{minute}"
    );
    let hour = error("0 24 * * *");
    assert!(hour.contains("hour field `24`"), "{hour}");
    let step = error("*/0 * * * *");
    assert!(
        step.contains("minute field `*/0`") && step.contains("step of 0"),
        "{step}"
    );
    let reversed = error("0 0 * * FRI-MON");
    assert!(
        reversed.contains("day-of-week") && reversed.contains("reversed"),
        "{reversed}"
    );
    let month = error("0 0 1 FOO *");
    assert!(month.contains("month field `FOO`"), "{month}");
    let dom = error("0 0 32 * *");
    assert!(dom.contains("day-of-month field `32`"), "{dom}");
    let never = error("0 0 31 2 *");
    assert!(never.contains("never fires"), "{never}");
    assert!(error("@reboot").contains("unknown macro"));
    let zone = CronSchedule::with_zone_name("* * * * *", "Mars/Olympus")
        .unwrap_err()
        .to_string();
    assert!(zone.contains("Mars/Olympus"), "{zone}");
}

// ----- Daylight saving time -------------------------------------------------
// America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z);
//                   2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).
// Europe/Berlin:    2026-03-29 02:00 CET -> 03:00 CEST (01:00Z);
//                   2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).

#[test]
fn new_york_fixed_job_in_the_skipped_hour_fires_right_after_the_jump() {
    assert_eq!(
        fires("30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00+00:00", // 02:30 EST
            "2026-03-08T07:00:00+00:00", // 02:30 does not exist: 03:00 EDT
            "2026-03-09T06:30:00+00:00", // 02:30 EDT
        ]
    );
}

#[test]
fn new_york_wildcard_job_skips_the_missing_hour() {
    assert_eq!(
        fires(
            "*/30 * * * *",
            "America/New_York",
            "2026-03-08T06:00:00Z",
            3
        ),
        [
            "2026-03-08T06:30:00+00:00", // 01:30 EST
            "2026-03-08T07:00:00+00:00", // 03:00 EDT; 02:00 and 02:30 never happen
            "2026-03-08T07:30:00+00:00",
        ]
    );
}

#[test]
fn new_york_fixed_job_in_the_repeated_hour_fires_once() {
    assert_eq!(
        fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
        [
            "2026-11-01T05:30:00+00:00", // 01:30 EDT, first pass only
            "2026-11-02T06:30:00+00:00", // 01:30 EST
        ]
    );
}

#[test]
fn new_york_wildcard_job_fires_on_both_passes() {
    assert_eq!(
        fires(
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T04:45:00Z",
            5
        ),
        [
            "2026-11-01T05:00:00+00:00", // 01:00 EDT
            "2026-11-01T05:30:00+00:00", // 01:30 EDT
            "2026-11-01T06:00:00+00:00", // 01:00 EST
            "2026-11-01T06:30:00+00:00", // 01:30 EST
            "2026-11-01T07:00:00+00:00", // 02:00 EST
        ]
    );
}

#[test]
fn berlin_spring_and_autumn() {
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
    );
    assert_eq!(
        fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    );
    // Hourly is a wildcard job (hour starts with `*`): 02:00 happens twice.
    assert_eq!(
        fires("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 4),
        [
            "2026-10-25T00:00:00+00:00", // 02:00 CEST
            "2026-10-25T01:00:00+00:00", // 02:00 CET
            "2026-10-25T02:00:00+00:00", // 03:00 CET
            "2026-10-25T03:00:00+00:00",
        ]
    );
    // A list of skipped times still fires once at the jump.
    assert_eq!(
        fires("0,30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 2),
        ["2026-03-29T01:00:00+00:00", "2026-03-30T00:00:00+00:00"]
    );
}

#[test]
fn seoul_has_no_dst_and_fixed_offset() {
    assert_eq!(
        fires("0 3 * * *", "Asia/Seoul", "2026-06-01T00:00:00Z", 1),
        ["2026-06-01T18:00:00+00:00"]
    );
}

fn expression() -> impl Strategy<Value = String> {
    let minute = prop_oneof!["\\*", "\\*/7", "0", "30", "0,15,45", "10-20/5"];
    let hour = prop_oneof!["\\*", "\\*/5", "1", "2", "3", "1-3", "0,12"];
    let dom = prop_oneof!["\\*", "1", "L", "15", "1-7"];
    let month = prop_oneof!["\\*", "3", "10,11", "\\*/2"];
    let dow = prop_oneof!["\\*", "0", "1-5", "SUN", "5L"];
    (minute, hour, dom, month, dow).prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("UTC"),
        Just("America/New_York"),
        Just("Europe/Berlin"),
        Just("Australia/Lord_Howe"),
        Just("Asia/Seoul")
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Fires strictly increase; each fire either matches the expression in
    /// local time or (fixed jobs only) sits right at a forward DST jump.
    #[test]
    fn fires_increase_and_match(expr in expression(), zone in zone(), day in 0i64..365) {
        let schedule = CronSchedule::with_zone_name(&expr, zone).unwrap();
        // croner's own reading, to check the compiled pattern against.
        let cron = super::parse_croner(&expr).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::days(day);
        let mut previous = start;
        for fire in schedule.fires_after(start).take(30) {
            prop_assert!(fire > previous, "{fire} after {previous}");
            let local = fire.with_timezone(&schedule.zone());
            let matches = cron.is_time_matching(&local.naive_local()).unwrap();
            let at_jump = schedule.is_fixed_time()
                && local.offset().fix() != (fire - TimeDelta::seconds(1)).with_timezone(&schedule.zone()).offset().fix();
            prop_assert!(matches || at_jump, "{expr} in {zone}: {local} does not match");
            prop_assert_eq!(local.second(), 0);
            previous = fire;
        }
    }

    /// A zone with one offset forever takes the short path; it answers as
    /// the search across transitions does.
    #[test]
    fn fixed_offset_zones_answer_as_the_full_search(
        expr in expression(),
        zone in prop_oneof![Just("UTC"), Just("Etc/GMT+5"), Just("Etc/GMT-14"), Just("Zulu")],
        minutes in 0i64..(4 * 366 * 1440),
    ) {
        let schedule = CronSchedule::with_zone_name(&expr, zone).unwrap();
        prop_assert!(schedule.fixed_offset, "{zone}");
        let after = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::minutes(minutes);
        let short = next::next_at_fixed_offset(&schedule.pattern, schedule.zone, after);
        let full = next::next_after(&schedule.pattern, schedule.zone, schedule.fixed_time, after);
        prop_assert_eq!(short, full);
    }

    /// The remembered last answer changes no answer, whatever order the
    /// instants are asked in.
    #[test]
    fn the_remembered_answer_changes_nothing(
        expr in expression(),
        zone in zone(),
        seconds in proptest::collection::vec(0i64..(60 * 86_400), 1..20),
    ) {
        let shared = CronSchedule::with_zone_name(&expr, zone).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        for s in seconds {
            let after = start + TimeDelta::seconds(s);
            let fresh = CronSchedule::with_zone_name(&expr, zone).unwrap();
            *fresh.last() = None;
            prop_assert_eq!(shared.next_after(after), fresh.next_after(after), "{} in {}: after {}", expr, zone, after);
        }
    }
}

use chrono::{Offset, TimeDelta};

#[test]
fn jitter_offsets_are_in_range_stable_and_spread() {
    use std::time::Duration;
    let jitter = Duration::from_secs(90);
    let offsets: Vec<Duration> = (0..200)
        .map(|n| super::jitter_offset(&format!("job-{n}"), jitter))
        .collect();
    assert!(offsets.iter().all(|o| *o < jitter));
    assert_eq!(super::jitter_offset("job-7", jitter), offsets[7], "stable");
    let distinct: std::collections::BTreeSet<_> = offsets.iter().collect();
    assert!(
        distinct.len() > 150,
        "spread: {} distinct of 200",
        distinct.len()
    );
    let early = offsets.iter().filter(|o| o.as_secs() < 45).count();
    assert!(
        (60..140).contains(&early),
        "about half in the first half: {early}"
    );
    assert_eq!(super::jitter_offset("any", Duration::ZERO), Duration::ZERO);
}

#[test]
fn triggers_on_one_schedule_share_it() {
    let a = super::CronSchedule::shared("0 * * * *", "UTC").unwrap();
    let b = super::CronSchedule::shared("0 * * * *", "UTC").unwrap();
    let c = super::CronSchedule::shared("0 * * * *", "Asia/Seoul").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert!(!std::sync::Arc::ptr_eq(&a, &c));
    assert!(super::CronSchedule::shared("61 * * * *", "UTC").is_err());
}
