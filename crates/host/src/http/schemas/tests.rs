//! The schemas against the parsers they describe: values at the edges,
//! and property tests over text made of the pieces durations, rates and
//! topics are written with.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::patterns::*;

/// Whether `value` is valid against `schema`, which may refer to the
/// document's components.
fn valid(schema: &Value, value: &Value) -> bool {
    static COMPONENTS: LazyLock<Value> =
        LazyLock::new(|| super::super::openapi_document()["components"].clone());
    let mut root = schema.clone();
    root["components"] = COMPONENTS.clone();
    jsonschema::validator_for(&root).unwrap().is_valid(value)
}

fn named(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

#[test]
fn fractions_below_a_reciprocal() {
    for (denominator, prefix, period) in [
        (1_000, "001", "0"),
        (60_000_000_000, "00000000001", "6"),
        (3_600_000_000_000, "0000000000002", "7"),
        (86_400_000_000_000, "0000000000000115", "740"),
    ] {
        assert_eq!(
            reciprocal_digits(denominator),
            (prefix.into(), period.into())
        );
    }
    let below = |text: &str, denominator| {
        let pattern = format!("^{}$", under_a_nanosecond(denominator, false));
        valid(&json!({"type": "string", "pattern": pattern}), &json!(text))
    };
    for (text, unit, zero) in [
        ("0.0009", 1_000, true),
        ("0.001", 1_000, false),
        ("0.0010", 1_000, false),
        ("0.00", 1_000, true),
        (".", 1_000, true),
        (".00000000001", 60_000_000_000, true),
        (".0000000000166", 60_000_000_000, true),
        (".0000000000167", 60_000_000_000, false),
        (".00000000002", 60_000_000_000, false),
        (".0000", 60_000_000_000, true),
        (".00000000000001157407", 86_400_000_000_000, true),
        (".0000000000000115740", 86_400_000_000_000, true),
        (".0000000000000115749", 86_400_000_000_000, false),
        (".00000000000001157408", 86_400_000_000_000, false),
        ("0.999", 1, true),
        ("1", 1, false),
    ] {
        assert_eq!(below(text, unit), zero, "{text} of {unit} ns");
    }
}

proptest::proptest! {
    /// Text made of the pieces durations and rates are written with,
    /// read by the parsers and by the schemas alike.
    #[test]
    fn written_durations_and_rates_are_read_alike(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "0", "1", "5", "9", "00", "36500", "3153600000", ".", "/", " ", "\u{3000}",
            "\n", "ms", "s", "m", "min", "h", "d", "us", "µs", "ns", "x", "+", "-", "e",
        ]), 0..8),
    ) {
        let text = pieces.concat();
        let duration = wasmsched_core::units::parse_duration(&text);
        proptest::prop_assert_eq!(
            valid(&named("DurationText"), &json!(text)), duration.is_ok(), "{:?}", text);
        let positive = duration.is_ok_and(|d| !d.is_zero());
        proptest::prop_assert_eq!(
            valid(&named("PositiveDuration"), &json!(text)), positive, "{:?}", text);
        let rate = text.parse::<wasmsched_core::units::Rate>().is_ok();
        proptest::prop_assert_eq!(valid(&named("Rate"), &json!(text)), rate, "{:?}", text);
    }

    /// Topics and patterns of letters, digits and what is not.
    #[test]
    fn written_topics_are_read_alike(
        pieces in proptest::collection::vec(proptest::sample::select(vec![
            "a", "Z", "0", "_", "-", "é", "日", "①", "\u{345}", ".", "*", "**", " ", "/",
            "÷", "\u{1F600}",
        ]), 0..6),
    ) {
        let text = pieces.concat();
        let topic = wasmsched_core::topic::Topic::new(text.as_str()).is_ok();
        proptest::prop_assert_eq!(valid(&named("Topic"), &json!(text)), topic, "{:?}", text);
        let pattern = wasmsched_core::topic::TopicPattern::new(text.as_str()).is_ok();
        proptest::prop_assert_eq!(
            valid(&named("TopicPattern"), &json!(text)), pattern, "{:?}", text);
    }
}

#[test]
fn integers_below_a_limit() {
    let below = integers_below(36500).join("|");
    assert_eq!(
        below,
        "0|[1-9][0-9]{0,3}|[1-2][0-9]{4}|3[0-5][0-9]{3}|36[0-4][0-9]{2}"
    );
    assert_eq!(integers_below(10).join("|"), "0|[1-9][0-9]{0,0}");
}

#[test]
fn durations_are_what_units_parses() {
    let mut texts: Vec<String> = [
        "0",
        "0ms",
        "250ms",
        "2s",
        "1.5 s",
        " 7d ",
        "36500d",
        "36500.0d",
        "36500.5d",
        "36501d",
        "876000h",
        "876001h",
        "3153600000s",
        "3153600001s",
        ".5s",
        "5.",
        ".",
        "",
        "s",
        "1x",
        "1e3s",
        "-1s",
        "1 min",
        "52560000m",
        "52560001min",
        "2h ",
        "3153600000000000000ns",
        "3153600000000010000ns",
        "1µs",
        "1us",
        "0001s",
        "1\ns",
        "1s\n",
        "fast",
    ]
    .map(str::to_owned)
    .to_vec();
    texts.push("1\u{3000}s".into());
    let schema = named("DurationText");
    for text in &texts {
        let parsed = wasmsched_core::units::parse_duration(text).is_ok();
        assert_eq!(valid(&schema, &json!(text)), parsed, "{text:?}");
    }
    let positive = named("PositiveDuration");
    for (value, ok) in [
        (json!("0s"), false),
        (json!("0.000"), false),
        (json!(0), false),
        (json!(1), true),
        (json!("1ns"), true),
        (json!(".563ns"), false),
        (json!("0.0009us"), false),
        (json!("0.001us"), true),
        (json!("0.000000001s"), true),
        (json!("0.0000000009s"), false),
        (json!("0.00000000001m"), false),
        (json!(MAX_DURATION_MS), true),
        (json!(MAX_DURATION_MS + 1), false),
        (json!(1.5), false),
    ] {
        assert_eq!(valid(&positive, &value), ok, "{value}");
    }
}

#[test]
fn topics_and_patterns_are_what_topic_parses() {
    let texts = [
        "a",
        "a.b",
        "a_b-c.d",
        "é.日本",
        "①",
        "a..b",
        ".a",
        "a.",
        "",
        "a b",
        "a*",
        "*",
        "**",
        "a.*.b",
        "a.**",
        "a.***",
        "x\u{345}",
        "a\n",
        "a/b",
    ];
    for text in texts {
        let topic = wasmsched_core::topic::Topic::new(text).is_ok();
        assert_eq!(valid(&named("Topic"), &json!(text)), topic, "{text:?}");
        let pattern = wasmsched_core::topic::TopicPattern::new(text).is_ok();
        assert_eq!(
            valid(&named("TopicPattern"), &json!(text)),
            pattern,
            "{text:?}"
        );
    }
}

#[test]
fn rates_are_what_units_parses() {
    let texts = [
        "10/s",
        "300/min",
        "5/10s",
        "+5/s",
        "0/s",
        "10/",
        "10/.5",
        "10/0s",
        "10/0",
        "4294967295/h",
        "4294967296/h",
        "1/36500d",
        "1/36501d",
        "10",
        "x/s",
        " 3 / 2 h ",
        "1/s/s",
        "1/parsec",
    ];
    for text in texts {
        let parsed = text.parse::<wasmsched_core::units::Rate>().is_ok();
        assert_eq!(valid(&named("Rate"), &json!(text)), parsed, "{text:?}");
    }
}

#[test]
fn schedules_the_schema_allows_fire() {
    let schema = named("CronSchedule");
    for text in [
        "0 3 * * *",
        "*/15 * * * *",
        "0 9 * * MON",
        "0 0 31 * *",
        "0,30 1,2 28 FEB 1,5",
        "59 23 */31 */12 */7",
        "@daily",
        "0 0 29 2 *",
    ] {
        let parsed = wasmsched_core::cron::CronSchedule::utc(text);
        assert_eq!(valid(&schema, &json!(text)), parsed.is_ok(), "{text:?}");
    }
    for refused in ["0 0 30 2 *", "60 * * * *", "* * * *", "@never"] {
        assert!(!valid(&schema, &json!(refused)), "{refused}");
    }
}

#[test]
fn trigger_tables_are_what_the_config_reads() {
    use crate::config::TriggerConfig;
    let schema = named("TriggerTable");
    let mut tables = Vec::new();
    for path in [
        "/hooks/x",
        "/x/",
        "/x//",
        "//x",
        "/",
        "/a/./b",
        "/a/../b",
        "/a/.../b",
        "/.well",
        "/é",
        "/a b",
        "/a?b",
        "/metrics",
        "/metrics/x",
        "/metricsx",
        "/openapi.json",
        "/openapi.json/",
        "/openapiXjson",
        "/api/admin",
        "/api/adminx",
        "x",
    ] {
        tables.push(json!({"id": "t", "kind": "api", "topic": "a", "path": path}));
    }
    for id in [
        "t",
        " ",
        "\u{3000}",
        "a/b",
        "a\u{7}",
        "a\u{85}",
        "é",
        &"x".repeat(256),
        &"x".repeat(257),
    ] {
        tables.push(json!({"id": id, "kind": "api", "topic": "a"}));
    }
    let cron = json!({"id": "c", "kind": "cron", "topic": "a", "schedule": "0 3 * * *"});
    let event = json!({"id": "e", "kind": "event", "topic": "a", "source": "a.*"});
    let with = |table: &Value, key: &str, value: Value| {
        let mut table = table.clone();
        table[key] = value;
        table
    };
    for (key, value) in [
        ("catch_up", json!("all")),
        ("catch_up_max", json!(0)),
        ("jitter", json!(null)),
        ("jitter", json!("30s")),
        ("catch_up_window", json!(3_600_000)),
        ("path", json!(null)),
        ("path", json!("/x")),
        ("source", json!("a")),
        ("timezone", json!("Asia/Seoul")),
    ] {
        tables.push(with(&cron, key, value));
    }
    let all_none = with(
        &with(&cron, "catch_up", json!("all")),
        "catch_up_max",
        json!(0),
    );
    tables.push(all_none);
    for (key, value) in [
        ("key", json!("/id")),
        ("concurrency", json!(0)),
        ("concurrency", json!(10_000)),
        ("concurrency", json!(10_001)),
        ("throttle", json!({"limit": 0, "period": "1s"})),
        ("throttle", json!({"limit": 1, "period": ".5ns"})),
        ("throttle", json!({"limit": 1, "period": "1ns"})),
        ("dedupe", json!({"window": "0.0001us"})),
        ("dedupe", json!({"window": "0.001us"})),
        ("dedupe", json!({"window": 0})),
        ("batch", json!({"max_events": 10_001, "max_wait": "1s"})),
        ("schedule", json!(null)),
        ("schedule", json!("* * * * *")),
        ("auth", json!({"bearer_token": "x"})),
    ] {
        tables.push(with(&event, key, value));
    }
    let keyed = with(&event, "key", json!("id"));
    tables.push(with(&keyed, "concurrency", json!(1)));
    let both = with(
        &event,
        "debounce",
        json!({"period": "1s", "max_wait": "1s"}),
    );
    tables.push(both.clone());
    tables.push(with(
        &both,
        "batch",
        json!({"max_events": 1, "max_wait": "1s"}),
    ));
    let api = json!({"id": "a", "kind": "api", "topic": "a"});
    for auth in [
        json!({"bearer_token": "x"}),
        json!({"hmac_secret": "x", "signature_header": "X-Sig"}),
        json!({"bearer_token": "x", "hmac_secret": "y"}),
        json!({"bearer_token": null, "hmac_secret": "y"}),
        json!({}),
    ] {
        tables.push(with(&api, "auth", auth));
    }
    tables.push(with(&api, "rate_limit", json!("10/s")));
    tables.push(with(&api, "rate_limit", json!("10/0s")));
    for table in tables {
        let read = TriggerConfig::from_json(table.clone());
        assert_eq!(valid(&schema, &table), read.is_ok(), "{table}: {read:?}");
    }
}

#[test]
fn time_zones_are_what_the_host_knows() {
    for zone in ["UTC", "Asia/Seoul", "utc", "Mars/Base"] {
        let known = wasmsched_core::cron::parse_zone(zone).is_ok();
        assert_eq!(valid(&named("TimeZone"), &json!(zone)), known, "{zone}");
    }
}
