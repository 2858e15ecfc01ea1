//! The patterns of the strings the host parses itself: durations and
//! rates as [`wasmsched_core::units`] reads them, topics as [`wasmsched_core::topic`] does,
//! cron schedules, and the character classes they are made of.

use std::sync::LazyLock;

use serde_json::{Value, json};

use wasmsched_core::units::MAX_DURATION;

/// The longest duration as milliseconds (a duration may be written as a
/// number of them).
pub(super) const MAX_DURATION_MS: u64 = MAX_DURATION.as_secs() * 1000;

/// A class of the characters `pick` takes, as `[...]` ranges of literal
/// characters (`escaped`: as `\uXXXX`, for characters of the BMP only).
pub(super) fn class_of(pick: impl Fn(char) -> bool, extra: &str, escaped: bool) -> String {
    let spell = |c: char| match escaped {
        true => format!("\\u{:04X}", c as u32),
        false => c.to_string(),
    };
    let mut class = String::from("[");
    let mut chars = (0..=char::MAX as u32).filter_map(char::from_u32).peekable();
    while let Some(first) = chars.next() {
        if !pick(first) {
            continue;
        }
        let mut last = first;
        while let Some(&next) = chars.peek() {
            if !pick(next) || next as u32 != last as u32 + 1 {
                break;
            }
            last = next;
            chars.next();
        }
        class.push_str(&spell(first));
        if last != first {
            class.push('-');
            class.push_str(&spell(last));
        }
    }
    class.push_str(extra);
    class.push(']');
    class
}

/// The characters of a topic segment: letters, digits, `-`, `_`.
pub(super) static SEGMENT: LazyLock<String> =
    LazyLock::new(|| class_of(char::is_alphanumeric, "_\\-", false));

/// Whitespace as `str::trim` reads it (Unicode `White_Space`).
pub(super) static SPACE: LazyLock<String> =
    LazyLock::new(|| class_of(char::is_whitespace, "", true));

/// A string with something other than whitespace in it (a search, not
/// anchored).
pub(super) fn not_blank() -> String {
    format!("[^{}", &SPACE[1..])
}

/// Integers in `0..limit` written without leading zeros.
pub(super) fn integers_below(limit: u64) -> Vec<String> {
    let digits: Vec<u32> = limit
        .to_string()
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    let mut alternatives = vec!["0".to_owned()];
    let length = digits.len();
    if length >= 2 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", length - 2));
    }
    for (at, &digit) in digits.iter().enumerate() {
        let low = if at == 0 { 1 } else { 0 };
        if digit <= low {
            continue;
        }
        let prefix: String = digits[..at].iter().map(|d| d.to_string()).collect();
        let rest = length - at - 1;
        let high = digit - 1;
        let range = match low == high {
            true => low.to_string(),
            false => format!("[{low}-{high}]"),
        };
        let tail = match rest {
            0 => String::new(),
            n => format!("[0-9]{{{n}}}"),
        };
        alternatives.push(format!("{prefix}{range}{tail}"));
    }
    alternatives.retain(|a| a != "0" || limit > 0);
    alternatives
}

/// A decimal number (digits with an optional fraction, as `f64` reads
/// what [`wasmsched_core::units`] splits off) of at most `limit`.
pub(super) fn decimal_at_most(limit: u64) -> String {
    let below = integers_below(limit).join("|");
    format!("(?:0*(?:{below})(?:\\.[0-9]*)?|0*{limit}(?:\\.0*)?|\\.[0-9]+)")
}

/// The units of a duration.
pub(super) const UNITS: &str = "(?:ms|s|m|min|h|d|us|\\u00B5s|ns)";

/// The units of a duration: how they are written, and their length in
/// nanoseconds.
pub(super) const DURATION_UNITS: [(&str, u64); 7] = [
    ("(?:ms)?", 1_000_000),
    ("s", 1_000_000_000),
    ("(?:m|min)", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("(?:us|\\u00B5s)", 1_000),
    ("ns", 1),
];

/// A duration as [`wasmsched_core::units::parse_duration`] reads it, at most
/// [`MAX_DURATION`]: a number and a unit, whitespace around either.
pub(super) fn duration_text() -> String {
    let nanos = MAX_DURATION.as_nanos() as u64;
    let space = &*SPACE;
    let alternatives: Vec<String> = DURATION_UNITS
        .iter()
        .map(|(unit, size)| format!("{}{space}*{unit}", decimal_at_most(nanos / size)))
        .collect();
    format!("^{space}*(?:{}){space}*$", alternatives.join("|"))
}

/// The decimal digits of `1 / denominator` after the point: those before
/// the repeating part, and the repeating part (`0` if it ends).
pub(super) fn reciprocal_digits(denominator: u64) -> (String, String) {
    let (mut digits, mut seen) = (String::new(), Vec::new());
    let mut remainder = 1u128 % u128::from(denominator);
    while !seen.contains(&remainder) {
        seen.push(remainder);
        remainder *= 10;
        digits.push(char::from(
            b'0' + (remainder / u128::from(denominator)) as u8,
        ));
        remainder %= u128::from(denominator);
    }
    let start = seen.iter().position(|r| *r == remainder).unwrap();
    (digits[..start].to_owned(), digits[start..].to_owned())
}

/// Digit strings whose value as a fraction (`0.<digits>`) is less than
/// `0.<prefix><period><period>...` (`period` `0`: it ends there).
pub(super) fn fraction_below(prefix: &str, period: &str) -> String {
    let mut alternatives = Vec::new();
    let repeated = format!("{prefix}(?:{period})*");
    let positions = prefix
        .char_indices()
        .map(|(at, digit)| (prefix[..at].to_owned(), digit))
        .chain(
            period
                .char_indices()
                .map(|(at, digit)| (format!("{repeated}{}", &period[..at]), digit)),
        );
    // A smaller digit where the value has a larger one, then anything.
    for (head, digit) in positions {
        if digit > '0' {
            let most = char::from(digit as u8 - 1);
            alternatives.push(format!("{head}[0-{most}][0-9]*"));
        }
    }
    // What stops short of the value is less than it (unless only zeros
    // would follow, where it is the value).
    alternatives.extend((0..prefix.len()).map(|end| prefix[..end].to_owned()));
    if period != "0" {
        let starts: Vec<&str> = (0..period.len()).map(|end| &period[..end]).collect();
        alternatives.push(format!("{repeated}(?:{})", starts.join("|")));
    }
    format!("(?:{})", alternatives.join("|"))
}

/// A number of `unit_nanos`-long units that is less than a nanosecond
/// (zero, as it is read: digits past the nanosecond do not count);
/// `digit_first`: written with a digit first.
pub(super) fn under_a_nanosecond(unit_nanos: u64, digit_first: bool) -> String {
    let whole = if digit_first { "0+" } else { "0*" };
    if unit_nanos == 1 {
        return format!("{whole}(?:\\.[0-9]*)?");
    }
    let (prefix, period) = reciprocal_digits(unit_nanos);
    format!("{whole}(?:\\.{})?", fraction_below(&prefix, &period))
}

/// A duration of less than a nanosecond (zero, as it is read), whatever
/// its unit; `digit_first`: its number starts with a digit.
pub(super) fn zero_duration(digit_first: bool) -> String {
    let space = &*SPACE;
    let alternatives: Vec<String> = DURATION_UNITS
        .iter()
        .map(|(unit, size)| format!("{}{space}*{unit}", under_a_nanosecond(*size, digit_first)))
        .collect();
    format!("(?:{})", alternatives.join("|"))
}

/// A duration: text (and, where `numbers`, a number of milliseconds);
/// `positive`: at least a nanosecond.
pub(super) fn duration(positive: bool, numbers: bool) -> Value {
    let mut text = json!({"type": "string", "pattern": duration_text()});
    if positive {
        let space = &*SPACE;
        let zero = format!("^{space}*{}{space}*$", zero_duration(false));
        text["not"] = json!({"pattern": zero});
    }
    if !numbers {
        return text;
    }
    let milliseconds = json!({"type": "integer", "minimum": u64::from(positive),
        "maximum": MAX_DURATION_MS});
    json!({"oneOf": [text, milliseconds]})
}

/// `count/period` ([`wasmsched_core::units::Rate`]): a count of 1 to `u32::MAX`
/// (a `+` allowed), a period of at least a nanosecond (a unit alone, or
/// what starts with `.`, is read after a `1`).
pub(super) fn rate() -> Value {
    let space = &*SPACE;
    let mut count = integers_below(u64::from(u32::MAX));
    count.retain(|a| a != "0");
    count.push(u32::MAX.to_string());
    let count = format!("\\+?0*(?:{})", count.join("|"));
    let period = duration_text();
    let period = &period[1..period.len() - 1];
    let one = format!("(?:\\.[0-9]*)?{space}*{UNITS}?");
    json!({
        "type": "string",
        "pattern": format!("^{space}*{count}{space}*/{space}*(?:{period}|{one}){space}*$"),
        "not": {"pattern": format!("/{space}*{}{space}*$", zero_duration(true))},
        "examples": ["10/s", "300/min", "5/10s"],
    })
}

/// Crontab schedules that always fire, in the common spelling: numbers
/// and names, lists, `*` and `*/step`, one space between fields, or a
/// macro. The host reads more (ranges, `L`, `W`, `#`; see
/// docs/schedules.md) than this says, and refuses a schedule that never
/// fires (`0 0 30 2 *`): this is the part whose every value fires.
pub(super) fn cron_schedule() -> Value {
    let field = |value: &str, step: &str| format!("(?:\\*(?:/{step})?|{value}(?:,{value})*)");
    let minute = field("(?:[0-9]|[1-5][0-9])", "(?:[1-9]|[1-5][0-9])");
    let hour = field("(?:[0-9]|1[0-9]|2[0-3])", "(?:[1-9]|1[0-9]|2[0-3])");
    let day_31 = "(?:[1-9]|[12][0-9]|3[01])";
    // 29 February is in every fourth year, and on each weekday in 400.
    let day_29 = "(?:[1-9]|[12][0-9])";
    let any_day = format!("\\*(?:/{day_31})?");
    let month = "(?:[1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)";
    // `*` and `*/step` start at January, which has every day.
    let any_month = "\\*(?:/(?:[1-9]|1[0-2]))?";
    let months = format!("{month}(?:,{month})*");
    let weekday = field("(?:[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)", "[1-7]");
    let days = format!(
        "(?:{any_day} (?:{any_month}|{months})|{day_31}(?:,{day_31})* {any_month}|{day_29}(?:,{day_29})* {months})"
    );
    let macros = "@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)";
    json!({
        "type": "string",
        "pattern": format!("^(?:{macros}|{minute} {hour} {days} {weekday})$"),
        "example": "0 9 * * MON",
    })
}
