//! Generators that reach the edges: zero, negatives, 1e-300, 1e300,
//! u64::MAX, 10^9 days, empty strings, 1 MiB strings, NaN-like strings,
//! unicode; and the property helpers the surfaces share.

use proptest::prelude::*;
use serde_json::{Value, json};

/// A 1 MiB string.
pub fn mib() -> String {
    "x".repeat(1 << 20)
}

/// Strings nobody means: empty, blank, NaN-like, unicode, control
/// characters, 1 MiB.
pub fn odd_text() -> BoxedStrategy<String> {
    prop_oneof![
        16 => prop::sample::select(vec![
            "", " ", "NaN", "nan", "inf", "-Infinity", "-0", "0", "1e309", "null", "\u{0}",
            "é", "日本語", "🦀", "\u{202e}rtl", "a\nb", "\"'`\\", "%FF", "../..", "\u{feff}x",
            "Ⅻ", "٣", "ǅ", "a b",
        ])
        .prop_map(str::to_owned),
        16 => "\\PC{0,12}",
        1 => Just(mib()),
    ]
    .boxed()
}

/// A number as text: edges, then any.
fn number_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "0", "1", "-1", "0.5", "1.5", "1e-300", "1e300", "1000000000", "36500", "36501",
            "18446744073709551615", "18446744073709551616", "99999999999999999999999", ".5",
            "5.", "1e3", "NaN", "inf", "", "٣", "1_000", "0.0001", "+1", "1..2",
        ])
        .prop_map(str::to_owned),
        2 => any::<u32>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => (0.0f64..1e7).prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// A duration as written: a number and a unit, whole edge strings, or
/// anything.
pub fn duration_text() -> BoxedStrategy<String> {
    let unit = prop::sample::select(vec![
        "", "ms", "s", "m", "min", "h", "d", "us", "µs", "ns", "w", "S", "H", " s", "sec", "y",
    ]);
    prop_oneof![
        6 => (number_text(), unit).prop_map(|(n, u)| format!("{n}{u}")),
        3 => prop::sample::select(HUGE.to_vec()).prop_map(str::to_owned),
        2 => prop::sample::select(vec![
            "36500d", "36501d", "1e-300s", "0.0001ms", "0.5ms", "", "NaN", "fast", "1 h",
            " 5m ", "5m5s", "-0s", "0.9ms", "1.0001s", "0", "0s",
        ])
        .prop_map(str::to_owned),
        1 => odd_text(),
    ]
    .boxed()
}

/// Durations past anything a clock or a timer holds: 10^9 days, 10^17 s,
/// past chrono's and std's ranges.
pub const HUGE: [&str; 10] = [
    "1000000000d",
    "1e17s",
    "100000000000000000s",
    "106751991167d",
    "213503982334601d",
    "18446744073709551615ms",
    "9223372036854775807ms",
    "1e300s",
    "292277024626y",
    "3000000d",
];

/// A duration in JSON: mostly text, else numbers (milliseconds) and other
/// types.
pub fn duration_json() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => duration_text().prop_map(Value::String),
        3 => number_json(),
        1 => prop::sample::select(vec![json!(null), json!(true), json!([]), json!({})]),
    ]
    .boxed()
}

/// A JSON number at the edges, or any.
pub fn number_json() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec![
            json!(0), json!(-1), json!(1), json!(u64::MAX), json!(i64::MIN), json!(1e300),
            json!(1e-300), json!(0.5), json!(-0.0), json!(5e-324), json!(f64::MAX),
            json!(u32::MAX), json!(u64::from(u32::MAX) + 1), json!(10_000), json!(10_001),
        ]),
        2 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<u64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|n| json!(n)),
    ]
    .boxed()
}

/// A rate as written (`"10/s"`), at the edges.
pub fn rate_text() -> BoxedStrategy<String> {
    let count = prop_oneof![
        3 => prop::sample::select(vec![
            "0", "1", "10", "4294967295", "4294967296", "-1", "", "1.5", " 2", "+3",
        ])
        .prop_map(str::to_owned),
        1 => any::<u32>().prop_map(|n| n.to_string()),
    ];
    let per = prop_oneof![
        3 => prop::sample::select(vec![
            "s", "min", "h", "d", "10s", "0s", "1e-300s", "", "ms", "0.5ms", "1us", "/s", "m",
            "36500d", "x", "1ns", "0.000001ms",
        ])
        .prop_map(str::to_owned),
        2 => prop::sample::select(HUGE.to_vec()).prop_map(str::to_owned),
        1 => duration_text(),
    ];
    prop_oneof![
        6 => (count, per).prop_map(|(c, p)| format!("{c}/{p}")),
        1 => odd_text(),
    ]
    .boxed()
}

/// A size as written (`"64MiB"`).
pub fn size_text() -> BoxedStrategy<String> {
    let unit = prop::sample::select(vec![
        "", "b", "B", "k", "KiB", "kib", "MiB", "m", "GiB", "g", "kb", "MB", "gb", "TiB", "bytes",
        " MiB",
    ]);
    prop_oneof![
        6 => (number_text(), unit).prop_map(|(n, u)| format!("{n}{u}")),
        1 => odd_text(),
    ]
    .boxed()
}

/// A topic or pattern: segments of edge strings joined by dots.
pub fn topic_text() -> BoxedStrategy<String> {
    let segment = prop::sample::select(vec![
        "a", "logs", "app", "error", "*", "**", "", "é", "日本", "a b", "a-b_c", "\u{0}", "A", "0",
        "_", "-", "a*", "🦀", "ǅ", "٣", "x\u{301}",
    ]);
    prop_oneof![
        160 => prop::collection::vec(segment, 1..5).prop_map(|s| s.join(".")),
        30 => odd_text(),
        1 => Just(format!("a.{}", "b".repeat(1 << 20))),
    ]
    .boxed()
}

/// A crontab expression: fields of edge values, macros, or anything.
pub fn cron_text() -> BoxedStrategy<String> {
    let field = prop_oneof![
        3 => prop::sample::select(vec![
            "*", "*/5", "*/0", "*/1", "*/60", "*/4294967296", "0", "59", "60", "-1", "1-5",
            "5-1", "1,2,3", "MON", "mon", "MON-FRI", "JAN", "jan-dec", "L", "LW", "15W", "5L",
            "1#1", "1#6", "?", "0-59/7", "7", "31", "32", "99999999999999999999", ",", "1-",
            "", "é", "*/-1", "SUN#5", "0#0",
        ])
        .prop_map(str::to_owned),
        1 => any::<u8>().prop_map(|n| n.to_string()),
    ];
    prop_oneof![
        8 => prop::collection::vec(field, 5).prop_map(|f| f.join(" ")),
        2 => prop::collection::vec("[*0-9,/#LW-]{0,4}", 0..8).prop_map(|f| f.join(" ")),
        2 => prop::sample::select(vec![
            "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
            "@reboot", "@", "@DAILY", "0 0 31 2 *", "0 0 30 2 *", "* * * * * *",
            "0 0 29 2 *", "0 9 * * MON-FRI", "30 2 * * *", "",
        ])
        .prop_map(str::to_owned),
        1 => odd_text(),
    ]
    .boxed()
}

/// An IANA zone name, nearly one, or anything.
pub fn zone_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "UTC", "Asia/Seoul", "utc", "Mars/Olympus", "", "Etc/GMT+14", "EST5EDT",
            "America/New_York", "Europe/Berlin", "Asia/Kathmandu", "Pacific/Chatham",
            "Australia/Lord_Howe", "Africa/Casablanca", "America/Santiago",
        ])
        .prop_map(str::to_owned),
        1 => odd_text(),
    ]
    .boxed()
}

/// An RFC 3339 instant, nearly one, or anything.
pub fn instant_text() -> BoxedStrategy<String> {
    let made = (
        0i32..=10_000,
        1u32..=13,
        0u32..=32,
        0u32..=24,
        0u32..=60,
        prop::sample::select(vec!["Z", "+09:00", "-23:59", "+23:59", "+24:00", ""]),
    )
        .prop_map(|(y, mo, d, h, mi, off)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00{off}"));
    prop_oneof![
        4 => prop::sample::select(vec![
            "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
            "2030-01-07T09:00:00+09:00", "2030-02-30T00:00:00Z", "2030-01-07T24:00:00Z",
            "2030-01-07T09:00:60Z", "2030-01-07 09:00:00Z", "2030-01-07T09:00:00", "", "now",
            "+275760-09-13T00:00:00Z", "2030-01-07T09:00:00.999999999999Z",
            "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2000-01-01T00:00:00Z",
        ])
        .prop_map(str::to_owned),
        3 => made,
        1 => odd_text(),
    ]
    .boxed()
}

/// A key of a JSON object: short, odd, or unicode.
pub fn key_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z_]{1,8}",
        1 => prop::sample::select(vec!["", "data", "topic", "é", "\u{0}", "🦀", "__proto__"])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Any JSON value, edges included, a few levels deep.
pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => number_json(),
        2 => prop_oneof![20 => "\\PC{0,12}".boxed(), 1 => odd_text()].prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key_text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A JSON object (what `data` usually is).
pub fn json_object() -> BoxedStrategy<Value> {
    prop::collection::btree_map(key_text(), json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// Does `message` name `word` as a word (not inside a longer name)?
pub fn names(message: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    message.match_indices(word).any(|(at, _)| {
        let before = message[..at].chars().next_back();
        let after = message[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// `text` cut to `max` characters, for failure messages.
pub fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}... ({} bytes)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}
