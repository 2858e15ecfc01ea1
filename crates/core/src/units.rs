//! Durations (`"250ms"`, `"30s"`, `"5m"`), sizes (`"64MiB"`) and rates
//! (`"10/s"`) as written in configuration files and manifests, and their
//! serde adapters.
//!
//! Every value is bounded here, when it is parsed: a duration is at most
//! [`MAX_DURATION`] (100 years) and a size at most [`MAX_BYTES`] (1 TiB),
//! so that no instant, deadline or buffer computed from what a user wrote
//! can overflow later. A value out of range is refused with the range.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The longest duration any setting accepts: 100 years (`"36500d"`).
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// The largest size any setting accepts: 1 TiB.
pub const MAX_BYTES: u64 = 1 << 40;

/// `duration` if it is at most [`MAX_DURATION`]; `text` is what the user
/// wrote, for the error.
fn bounded_duration(duration: Duration, text: &dyn fmt::Display) -> Result<Duration, String> {
    match duration <= MAX_DURATION {
        true => Ok(duration),
        false => Err(format!(
            "duration {text} is out of range: 0ms to 36500d (100 years)"
        )),
    }
}

/// Serde adapter: a duration string (see [`parse_duration`]) or a number
/// of milliseconds.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"250ms\" or \"2s\", or a number of milliseconds")
        }
        fn visit_u64<E: de::Error>(self, ms: u64) -> Result<Duration, E> {
            bounded_duration(Duration::from_millis(ms), &format_args!("{ms} (ms)"))
                .map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, ms: i64) -> Result<Duration, E> {
            match u64::try_from(ms) {
                Ok(ms) => self.visit_u64(ms),
                Err(_) => Err(E::custom("a duration must not be negative")),
            }
        }
        fn visit_f64<E: de::Error>(self, ms: f64) -> Result<Duration, E> {
            match whole(ms) {
                Some(ms) => self.visit_u64(ms),
                None => Err(E::invalid_type(de::Unexpected::Float(ms), &self)),
            }
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            parse_duration(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(V)
}

/// `n` if it is a whole number a `u64` holds: JSON may write one as a
/// float (`2.0`), and JSON Schema's `integer` includes it.
fn whole(n: f64) -> Option<u64> {
    // 2^64, the first float past `u64::MAX`.
    (n.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&n)).then_some(n as u64)
}

/// Serde adapter: a whole number within `T`, also when written as a whole
/// float (`2.0`, see [`whole`]).
pub fn deserialize_whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<T, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<u64, E> {
            whole(n).ok_or_else(|| E::invalid_type(de::Unexpected::Float(n), &self))
        }
    }
    let n = deserializer.deserialize_any(V)?;
    T::try_from(n).map_err(|_| {
        let most = std::any::type_name::<T>();
        de::Error::invalid_value(de::Unexpected::Unsigned(n), &&*format!("a {most}"))
    })
}

/// Serde adapter: [`deserialize_whole`] for an optional field (use with
/// `#[serde(default)]`; `null` is none).
pub fn deserialize_optional_whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    struct Whole(u64);
    impl<'de> serde::Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize_whole(deserializer).map(Whole)
        }
    }
    match <Option<Whole> as serde::Deserialize>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Whole(n)) => T::try_from(n).map(Some).map_err(|_| {
            let most = std::any::type_name::<T>();
            de::Error::invalid_value(de::Unexpected::Unsigned(n), &&*format!("a {most}"))
        }),
    }
}

/// Serde adapter: [`deserialize_duration`] for an optional field (use
/// with `#[serde(default)]`).
pub fn deserialize_optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(deserializer).map(Some)
}

/// Serde adapter: a size string (see [`parse_bytes`]) or a number of bytes.
pub fn deserialize_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"64MiB\", or a number of bytes")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            bounded_bytes(n, &n).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::custom("a size must not be negative")),
            }
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
            parse_bytes(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(V)
}

/// `"250ms"`, `"2s"`, `"1.5s"`, `"1m"`, `"1h"`, `"7d"`; a bare number is
/// milliseconds. At most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(text);
    let invalid = || format!("invalid duration {text:?}; use e.g. \"250ms\", \"2s\" or \"1h\"");
    let unit_nanos: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "" | "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit in duration {text:?}; use ms, s, m, h or d"
            ));
        }
    };
    // In whole nanoseconds, exactly (through f64, `9912668.500971097s`
    // came back a few nanoseconds off).
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(invalid());
    }
    let too_long = || format!("duration {text:?} is out of range: 0ms to 36500d (100 years)");
    let whole: u128 = match whole {
        "" => 0,
        whole => whole.parse().map_err(|_| too_long())?,
    };
    // Digits past the nanosecond do not count.
    let fraction = &fraction[..fraction.len().min(24)];
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = fraction.parse().unwrap_or(0);
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(fraction * unit_nanos / scale))
        .ok_or_else(too_long)?;
    let nanos = u64::try_from(nanos).map_err(|_| too_long())?;
    bounded_duration(Duration::from_nanos(nanos), &format_args!("{text:?}"))
}

/// `duration` as [`parse_duration`] reads it back, in the largest unit
/// that divides it: `"1h"`, `"90s"`, `"250ms"`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let nanos = duration.subsec_nanos();
    if !nanos.is_multiple_of(1_000_000) {
        return match nanos.is_multiple_of(1000) {
            true => format!("{}us", duration.as_micros()),
            false => format!("{}ns", duration.as_nanos()),
        };
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `n` if it is at most [`MAX_BYTES`]; `text` is what the user wrote.
fn bounded_bytes(n: u64, text: &dyn fmt::Display) -> Result<u64, String> {
    match n <= MAX_BYTES {
        true => Ok(n),
        false => Err(format!("size {text} is out of range: 0 to 1TiB")),
    }
}

/// `"64MiB"`, `"512 KiB"`, `"1GiB"`, `"100MB"`; a bare number is bytes. At
/// most [`MAX_BYTES`].
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}; use e.g. \"64MiB\""))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => {
            return Err(format!(
                "unknown unit in size {text:?}; use KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 {
        return Err(format!("invalid size {text:?}"));
    }
    if bytes > MAX_BYTES as f64 {
        return Err(format!("size {text:?} is out of range: 0 to 1TiB"));
    }
    Ok(bytes as u64)
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (text[..at].trim(), text[at..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_as_they_parse() {
        for text in [
            "7d", "1h", "90m", "90s", "250ms", "0ms", "1500us", "7ns", "36500d",
        ] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_duration("1.5 s").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("fast").is_err());
        let too_long = parse_duration("1000000000d").unwrap_err();
        assert!(too_long.contains("0ms to 36500d"), "{too_long}");
        assert!(parse_duration("36501d").is_err());
        assert!(parse_bytes("2TiB").unwrap_err().contains("0 to 1TiB"));
        assert_eq!(parse_bytes("1TiB").unwrap(), MAX_BYTES);
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("lots").is_err());
    }
}

/// A rate limit: at most `count` requests per `per`, in bursts of up to
/// `count` (`"10/s"`, `"300/min"`, `"1000/h"`, `"5/10s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (at least 1).
    pub count: std::num::NonZeroU32,
    /// The period (more than zero).
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("invalid rate {text:?}; use e.g. \"10/s\", \"300/min\" or \"5/10s\"");
        let (count, per) = text.split_once('/').ok_or_else(invalid)?;
        let count = count.trim().parse().map_err(|_| invalid())?;
        let per = per.trim();
        // "10/s" means one second, "5/10s" ten.
        let per = match per.chars().next() {
            Some(c) if c.is_ascii_digit() => parse_duration(per)?,
            _ => parse_duration(&format!("1{per}"))?,
        };
        if per.is_zero() {
            return Err(invalid());
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, format_duration(self.per))
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_read_as_written() {
        let rate: Rate = "300/min".parse().unwrap();
        assert_eq!((rate.count.get(), rate.per), (300, Duration::from_secs(60)));
        let rate: Rate = "5/10s".parse().unwrap();
        assert_eq!((rate.count.get(), rate.per), (5, Duration::from_secs(10)));
        assert_eq!("10/s".parse::<Rate>().unwrap().to_string(), "10/1s");
        // An enormous period was once a panic at every call of the trigger.
        for bad in [
            "10",
            "0/s",
            "x/s",
            "10/parsec",
            "10/0s",
            "1/1000000000d",
            "1/36501d",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Numbers at the edges, in every unit, and text that is not a number.
    fn written() -> impl Strategy<Value = String> {
        let number = prop_oneof![
            Just("0".to_owned()),
            Just("1e-300".to_owned()),
            Just("1e300".to_owned()),
            Just(u64::MAX.to_string()),
            Just("1000000000".to_owned()),
            Just("-1".to_owned()),
            Just(".".to_owned()),
            Just("".to_owned()),
            (0u64..u64::MAX).prop_map(|n| n.to_string()),
            (0.0f64..1e12).prop_map(|n| n.to_string()),
        ];
        let unit = prop_oneof![
            Just(""),
            Just("ns"),
            Just("us"),
            Just("ms"),
            Just("s"),
            Just("m"),
            Just("h"),
            Just("d"),
            Just("KiB"),
            Just("TiB"),
            Just("tb"),
            Just("/s"),
            Just("x"),
        ];
        prop_oneof![
            (number, unit).prop_map(|(n, u)| format!("{n}{u}")),
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn durations_never_panic_stay_bounded_and_round_trip(text in written()) {
            if let Ok(duration) = parse_duration(&text) {
                prop_assert!(duration <= MAX_DURATION);
                prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
            }
        }

        #[test]
        fn sizes_never_panic_and_stay_bounded(text in written()) {
            if let Ok(bytes) = parse_bytes(&text) {
                prop_assert!(bytes <= MAX_BYTES);
            }
        }

        #[test]
        fn rates_never_panic_and_round_trip(count in written(), per in written()) {
            let text = format!("{count}/{per}");
            if let Ok(rate) = text.parse::<Rate>() {
                prop_assert!(rate.per <= MAX_DURATION && !rate.per.is_zero());
                prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
            }
        }
    }
}
