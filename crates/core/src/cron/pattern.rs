//! A parsed expression in 128 bytes, and the next wall-clock time it
//! matches.
//!
//! `croner` parses an expression and decides what each field matches; a
//! `croner::Cron` also carries a 5 001-byte table of years (5.6 KiB in
//! all), which 100 000 triggers on distinct schedules would multiply to
//! 560 MiB. [`Pattern::compile`] asks the parsed expression once about
//! every minute, hour, month and day and keeps the answers as bitsets;
//! the `Cron` is then dropped. Days are the subtle field (`L`, `LW`,
//! `15W`, `5L`, `1#1`, and day-of-month *or* day-of-week): whether day `d`
//! of a month matches depends only on the month's length and the weekday
//! of its first day, so croner's own day rule is asked for each of the
//! 4 × 7 kinds of month. The tests check [`Pattern::next_match`] against
//! croner's search on thousands of random expressions and times.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike};

/// croner's bits for `L`, `W` and `#1`-`#5` (its `component` module is
/// private; the version is pinned, and the tests would catch a change).
const LAST_BIT: u8 = 1 << 6;
const CLOSEST_WEEKDAY_BIT: u8 = 1 << 7;
const NTH_BITS: u8 = 0b0011_1110;

/// croner searches no further than this year; neither does this.
pub(super) const LAST_YEAR: i32 = 5000;

/// What an expression matches, field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    /// Bit `m` for minute `m` (0-59).
    minutes: u64,
    /// Bit `h` for hour `h` (0-23).
    hours: u32,
    /// Bit `m` for month `m` (1-12).
    months: u16,
    /// `days[length - 28][weekday of the 1st, from Sunday]`: bit `d` for
    /// each day `d` (1-31) that matches in such a month.
    days: [[u32; 7]; 4],
}

impl Pattern {
    /// The answers of `cron` (a 5-field expression: seconds only 0, any
    /// year) as bitsets.
    pub(super) fn compile(cron: &croner::Cron) -> Self {
        let pattern = &cron.pattern;
        let bits = |range: std::ops::RangeInclusive<u32>, matches: &dyn Fn(u32) -> bool| {
            range
                .filter(|&v| matches(v))
                .fold(0u64, |set, v| set | 1 << v)
        };
        let minutes = bits(0..=59, &|m| pattern.minute_match(m).unwrap_or(false));
        let hours = bits(0..=23, &|h| pattern.hour_match(h).unwrap_or(false)) as u32;
        let months = bits(1..=12, &|m| pattern.month_match(m).unwrap_or(false)) as u16;
        // Without `L`, `W` or `#`, a day's answer does not depend on the
        // month's length: the 31-day months' answers, cut short, serve the
        // shorter ones (217 questions instead of 840, most of a compile).
        let days_with = |bit| (1..=31).any(|d| pattern.days.is_bit_set(d, bit).unwrap_or(false));
        let weekdays_with =
            |bit| (0..=6).any(|w| pattern.days_of_week.is_bit_set(w, bit).unwrap_or(false));
        let by_length = pattern.days.is_feature_enabled(LAST_BIT)
            || pattern.days.is_feature_enabled(CLOSEST_WEEKDAY_BIT)
            || days_with(CLOSEST_WEEKDAY_BIT)
            || weekdays_with(NTH_BITS)
            || weekdays_with(LAST_BIT);
        let longest: [u32; 7] = std::array::from_fn(|first| day_set(cron, 31, first as u32));
        let days = std::array::from_fn(|row| {
            let length = 28 + row as u32;
            std::array::from_fn(|first| match by_length && length < 31 {
                true => day_set(cron, length, first as u32),
                false => longest[first] & ((1u64 << (length + 1)) - 2) as u32,
            })
        });
        Self {
            minutes,
            hours,
            months,
            days,
        }
    }

    /// The first whole minute at or after `from` (strictly after, unless
    /// `inclusive`; fractions of a second ignored, as croner does) that
    /// matches; `None` if none does up to year 5000.
    pub(super) fn next_match(&self, from: NaiveDateTime, inclusive: bool) -> Option<NaiveDateTime> {
        let mut at = from.with_nanosecond(0)?;
        if !inclusive {
            at += TimeDelta::seconds(1);
        }
        if at.second() != 0 {
            at = at.with_second(0)? + TimeDelta::minutes(1);
        }
        let (mut date, mut hour, mut minute) = (at.date(), at.hour(), at.minute());
        while date.year() <= LAST_YEAR {
            let Some(month) = first_bit(u64::from(self.months), date.month()) else {
                date = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?;
                (hour, minute) = (0, 0);
                continue;
            };
            if month != date.month() {
                date = NaiveDate::from_ymd_opt(date.year(), month, 1)?;
                (hour, minute) = (0, 0);
            }
            let Some(day) = first_bit(u64::from(self.day_set(date)), date.day()) else {
                date = first_of_next_month(date)?;
                (hour, minute) = (0, 0);
                continue;
            };
            if day != date.day() {
                date = date.with_day(day)?;
                (hour, minute) = (0, 0);
            }
            if let Some((h, m)) = self.time_from(hour, minute) {
                return date.and_hms_opt(h, m, 0);
            }
            date = date.succ_opt()?;
            (hour, minute) = (0, 0);
        }
        None
    }

    /// The days of `date`'s month that match.
    fn day_set(&self, date: NaiveDate) -> u32 {
        let first = date.with_day(1).expect("day 1 exists");
        let length = first_of_next_month(first).map_or(31, |next| {
            next.signed_duration_since(first).num_days() as usize
        });
        self.days[length - 28][first.weekday().num_days_from_sunday() as usize]
    }

    /// The first matching time of day at or after `hour:minute`.
    fn time_from(&self, hour: u32, minute: u32) -> Option<(u32, u32)> {
        if self.hours & 1 << hour != 0
            && let Some(m) = first_bit(self.minutes, minute)
        {
            return Some((hour, m));
        }
        let later = first_bit(u64::from(self.hours), hour + 1)?;
        Some((later, first_bit(self.minutes, 0)?))
    }
}

/// The days (bit `d`) that `pattern` matches in a month of `length` days
/// starting on weekday `first` (0 = Sunday).
fn day_set(cron: &croner::Cron, length: u32, first: u32) -> u32 {
    let (year, month) = month_like(length, first);
    (1..=length)
        .filter(|&d| {
            let weekday = croner::Weekday::from_days_from_sunday((first + d - 1) % 7);
            cron.pattern
                .day_match(year, month, d, weekday)
                .unwrap_or(false)
        })
        .fold(0, |set, d| set | 1 << d)
}

/// The lowest set bit of `set` at or above `from` (below 64).
fn first_bit(set: u64, from: u32) -> Option<u32> {
    let above = set.checked_shr(from)?.checked_shl(from)?;
    (above != 0).then(|| above.trailing_zeros())
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    match date.month() {
        12 => NaiveDate::from_ymd_opt(date.year() + 1, 1, 1),
        month => NaiveDate::from_ymd_opt(date.year(), month + 1, 1),
    }
}

/// A (year, month) whose month has `length` days and starts on weekday
/// `first` (0 = Sunday): January, April or February of a year near 2000.
fn month_like(length: u32, first: u32) -> (i32, u32) {
    let month = match length {
        31 => 1,
        30 => 4,
        _ => 2,
    };
    (2000..2400)
        .find(|&year| {
            let Some(date) = NaiveDate::from_ymd_opt(year, month, 1) else {
                return false;
            };
            let days = first_of_next_month(date).expect("in range") - date;
            days.num_days() == i64::from(length) && date.weekday().num_days_from_sunday() == first
        })
        .map(|year| (year, month))
        .expect("every kind of month occurs within 400 years")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn parse(expression: &str) -> croner::Cron {
        super::super::parse_croner(expression).unwrap()
    }

    /// A small deterministic generator (xorshift), so failures repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// A random field: `*`, a value, a range, a step, a list, or one of
    /// the field's modifiers.
    fn field(rng: &mut Rng, min: u64, max: u64, modifiers: &[&str]) -> String {
        let value = |rng: &mut Rng| min + rng.below(max - min + 1);
        match rng.below(8) {
            0 | 1 => "*".into(),
            2 => value(rng).to_string(),
            3 => {
                let (a, b) = (value(rng), value(rng));
                format!("{}-{}", a.min(b), a.max(b))
            }
            4 => format!("*/{}", 1 + rng.below(max.min(20))),
            5 => format!("{},{}", value(rng), value(rng)),
            6 if !modifiers.is_empty() => rng.pick(modifiers).to_owned(),
            _ => format!("{}/{}", value(rng), 1 + rng.below(10)),
        }
    }

    #[test]
    fn matches_croner_on_random_expressions_and_times() {
        let mut rng = Rng(0x5eed_cafe_f00d_1234);
        let (mut checked, mut firing) = (0, 0);
        while checked < 3_000 {
            let expression = format!(
                "{} {} {} {} {}",
                field(&mut rng, 0, 59, &[]),
                field(&mut rng, 0, 23, &[]),
                field(&mut rng, 1, 31, &["L", "LW", "15W", "1W", "31W", "L,15"]),
                field(&mut rng, 1, 12, &["JAN-MAR", "FEB"]),
                field(&mut rng, 0, 7, &["5L", "1#1", "MON-FRI", "0#5", "SUN,SAT"]),
            );
            let vixie_and = {
                let fields: Vec<&str> = expression.split(' ').collect();
                fields[2].starts_with('*') || fields[4].starts_with('*')
            };
            let Ok(cron) = super::super::croner_parser(vixie_and).parse(&expression) else {
                continue;
            };
            let pattern = Pattern::compile(&cron);
            for _ in 0..4 {
                let seconds = 946_684_800 + rng.below(60 * 365 * 86_400) as i64;
                let from = chrono::DateTime::from_timestamp(seconds, 0)
                    .unwrap()
                    .naive_utc()
                    + TimeDelta::milliseconds(rng.below(2) as i64 * 500);
                let inclusive = rng.below(2) == 0;
                let expected = cron.find_next_occurrence(&from, inclusive).ok();
                let got = pattern.next_match(from, inclusive);
                assert_eq!(
                    got, expected,
                    "`{expression}` from {from} inclusive {inclusive}"
                );
                firing += usize::from(got.is_some());
            }
            checked += 1;
        }
        assert!(firing > 10_000, "only {firing} searches found a match");
    }

    #[test]
    fn finds_the_next_minute_hour_day_and_month() {
        let at = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let next = |expression: &str, from: &str, inclusive: bool| {
            Pattern::compile(&parse(expression)).next_match(at(from), inclusive)
        };
        assert_eq!(
            next("0 9 * * MON-FRI", "2026-11-27 09:00:00", false),
            Some(at("2026-11-30 09:00:00"))
        );
        assert_eq!(
            next("0 9 * * MON-FRI", "2026-11-27 09:00:00", true),
            Some(at("2026-11-27 09:00:00"))
        );
        assert_eq!(
            next("0 0 L 2 *", "2027-03-01 00:00:00", false),
            Some(at("2028-02-29 00:00:00"))
        );
        assert_eq!(
            next("30 23 * * 5L", "2026-11-01 00:00:00", false),
            Some(at("2026-11-27 23:30:00"))
        );
        assert_eq!(next("0 0 31 2 *", "2026-01-01 00:00:00", false), None);
        let date = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        assert_eq!(
            Pattern::compile(&parse("0 0 * * *")).day_set(date),
            0x1fff_fffe
        );
    }

    #[test]
    fn a_pattern_is_small() {
        assert!(std::mem::size_of::<Pattern>() <= 128);
    }
}
