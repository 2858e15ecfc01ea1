//! The defects the properties found, as their minimised inputs, replayed
//! through the same checks: these fail, whatever the random cases drew,
//! until each is fixed. Every input is listed with what it did when
//! found; a fixed one passes and stays as a regression test.

use chrono::{DateTime, Utc};
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use super::config::{Files, Mutation, config_case};
use super::harness::install;
use super::host::Fixture;
use super::reads::{Read, read_case};
use super::timers::{backfill, backfill_case, timer, timer_case};
use super::triggers::{table, trigger_case};
use super::units::{cron_case, duration_case, rate_case, size_case};

/// Runs every `(what, case)`; fails listing each that fails and why.
fn replay(cases: Vec<(&str, Result<(), TestCaseError>)>) {
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(what, result)| Some(format!("- {what}\n    {}", result.err()?)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} found defect(s) remain:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn set(key: &'static str, value: Value) -> Vec<(&'static str, Option<Value>)> {
    vec![(key, Some(value))]
}

#[test]
fn found_in_trigger_tables() {
    let service = json!({"service": "db"});
    let (cron, api, event) = (0, 1, 2);
    let cases = [
        // The event trigger's task panicked in tokio's Semaphore::new
        // (src/trigger/flow/gate.rs:267): more than 2^61 - 1 permits.
        (
            "event concurrency = 2^61",
            event,
            set("concurrency", json!(1u64 << 61)),
        ),
        // POST and every later GET of the triggers panicked at
        // src/http/admin.rs:105: next fire + the jitter offset overflowed
        // (the offset depends on the id: this one's is 2.1 million years).
        (
            "cron jitter = \"1000000000d\" (id \"found-jitter\")",
            cron,
            vec![
                ("id", Some(json!("found-jitter"))),
                ("jitter", Some(json!("1000000000d"))),
            ],
        ),
        // Every call panicked in governor (from src/http/rate_limit.rs:103):
        // a period over 584 years.
        (
            "api rate_limit = \"2/100000000000000000s\"",
            api,
            set("rate_limit", json!("2/100000000000000000s")),
        ),
        // The event trigger's task panicked at src/trigger/flow/window.rs:107.
        (
            "event throttle = {limit 1, period \"100000000000000000s\"}",
            event,
            set(
                "throttle",
                json!({"limit": 1, "period": "100000000000000000s"}),
            ),
        ),
        // Accepted (201), then 404 at its own `{path}/trigger`.
        ("api path = \"/x?y\"", api, set("path", json!("/x?y"))),
        ("api path = \"/é\"", api, set("path", json!("/é"))),
        // 422 "invalid trigger: invalid value: integer ..., expected usize":
        // no key named (every type error of a JSON body is so).
        (
            "cron catch_up_max = i64::MIN",
            cron,
            set("catch_up_max", json!(i64::MIN)),
        ),
        (
            "cron catch_up_window = \"0w\"",
            cron,
            set("catch_up_window", json!("0w")),
        ),
        // 422 "unknown time zone `utc`" / "cron expression is empty":
        // neither names `timezone` or `schedule`.
        (
            "cron timezone = \"utc\"",
            cron,
            set("timezone", json!("utc")),
        ),
        ("cron schedule = \"\"", cron, set("schedule", json!(""))),
        // 422 "topic `x́`: ..." for the `source` pattern.
        (
            "event source = \"x\\u{301}\"",
            event,
            set("source", json!("x\u{301}")),
        ),
        // Accepted; GET shows "0ms" (sub-millisecond durations format as
        // whole milliseconds), which is refused if sent back.
        (
            "event debounce = {period \"0.5ms\", max_wait \"1s\"}",
            event,
            set("debounce", json!({"period": "0.5ms", "max_wait": "1s"})),
        ),
    ];
    // A host each: a task panicking late fails its own case only.
    let results = cases
        .into_iter()
        .enumerate()
        .map(|(n, (what, kind, mutations))| {
            let fx = Fixture::start(&format!("found-trigger-{n}"));
            let (body, data) = (table(kind, mutations), service.clone());
            (what, fx.case(what, |_| trigger_case(&fx, kind, body, data)))
        })
        .collect();
    replay(results);
}

#[test]
fn found_in_timers_and_backfills() {
    let fx = Fixture::start("found-timers");
    let timers = [
        // The handler panicked at src/http/timers.rs:59 (now + delay
        // overflowed): the connection dropped.
        (
            "timer delay = \"1000000000d\"",
            set("delay", json!("1000000000d")),
        ),
        // 422 "invalid timer: invalid type: boolean `false`, expected a
        // string": no key named.
        ("timer delay = false", set("delay", json!(false))),
        ("timer id = []", set("id", json!([]))),
    ];
    let mut results: Vec<_> = timers
        .into_iter()
        .map(|(what, mutations)| (what, fx.case(what, |_| timer_case(&fx, timer(mutations)))))
        .collect();
    let backfills = [
        // The handler panicked in Duration::from_secs_f64 (from
        // src/host/backfill.rs:144) after recording the backfill as
        // running: every later one was 409 for good.
        ("backfill rate = 1e-300", set("rate", json!(1e-300))),
        ("backfill rate = 5e-324", set("rate", json!(5e-324))),
        // 422 "invalid backfill: invalid type: sequence, expected f64".
        ("backfill rate = []", set("rate", json!([]))),
        ("backfill to = []", set("to", json!([]))),
    ];
    results.extend(backfills.into_iter().map(|(what, mutations)| {
        let body = backfill(mutations);
        (
            what,
            fx.case(what, |_| backfill_case(&fx, "0 3 * * *", body)),
        )
    }));
    replay(results);
}

#[test]
fn found_in_reads() {
    let fx = Fixture::start("found-reads");
    let put = Read::Admin {
        method: "PUT",
        path: "/api/admin/triggers/nightly".into(),
        body: None,
    };
    // 405 with an empty body, not `{"error": ...}` (axum's own answer).
    let result = fx.case(put, |read| read_case(&fx, read));
    replay(vec![("PUT /api/admin/triggers/nightly", result)]);
}

#[test]
fn found_in_config_files() {
    install();
    let files = Files::new();
    let case = |path: &[&'static str], key: &'static str, value: toml::Value| {
        let mutation = Mutation {
            manifest: false,
            path: path.to_vec(),
            key,
            value,
        };
        config_case(&files, mutation)
    };
    let text = |t: &str| toml::Value::String(t.into());
    replay(vec![
        // "sink `s`: invalid duration \"-1\"; ...": no key named (every
        // value error of a [[trigger]] or [[sink]] table is so).
        (
            "[[sink]] backoff = [\"-1\"]",
            case(
                &["sink", "0"],
                "backoff",
                toml::Value::Array(vec![text("-1")]),
            ),
        ),
        // "trigger `e`: topic `x́`: ...": says topic for the pattern.
        (
            "[[trigger]] source = \"x\\u{301}\"",
            case(&["trigger", "2"], "source", text("x\u{301}")),
        ),
        (
            "[[sink]] pattern = \"\"",
            case(&["sink", "0"], "pattern", text("")),
        ),
        // "TOML parse error at line 1 ... [broker] ... invalid value:
        // integer ..., expected u32": points at [broker], not the key.
        (
            "[broker] max_deliver = i64::MAX",
            case(&["broker"], "max_deliver", toml::Value::Integer(i64::MAX)),
        ),
        // Loaded as 15104078.572 s, written back as "15104078572ms", which
        // parsed (through f64) as 15104078.572000001 s.
        (
            "[[trigger]] jitter = 15104078572",
            case(
                &["trigger", "0"],
                "jitter",
                toml::Value::Integer(15_104_078_572),
            ),
        ),
    ]);
}

#[test]
fn found_in_units() {
    install();
    let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    replay(vec![
        // Formatted as "0ms", which parses to 0.
        ("duration \"0.5ms\"", duration_case("0.5ms".into())),
        // Once it formatted as whole ms; now as "9912668500971097ns", which
        // parses (through f64) to 9912668.500971096 s.
        (
            "duration \"9912668.500971097 s\"",
            duration_case("9912668.500971097 s".into()),
        ),
        // Formatted as "1/0ms", which is not a rate.
        ("rate \"1/0.5ms\"", rate_case("1/0.5ms".into())),
        // Formats as "1/10003850353717063ns", which parses 1 ns longer.
        (
            "rate \"1/166730.83922861773m\"",
            rate_case("1/166730.83922861773m".into()),
        ),
        // Read as 9007199254740992 (through f64).
        (
            "size \"9007199254740993\"",
            size_case("9007199254740993".into()),
        ),
        // next_after panicked at src/cron/next.rs:40 and
        // src/cron/pattern.rs:87 (`NaiveDateTime + TimeDelta` overflowed).
        (
            "cron \"@yearly\" after the last instant chrono holds",
            cron_case(("@yearly".into(), "UTC".into(), max)),
        ),
        (
            "cron \"0 0 29 2 *\" after the last instant chrono holds",
            cron_case(("0 0 29 2 *".into(), "UTC".into(), max)),
        ),
        (
            "cron \"@yearly\" in EST5EDT after the first instant chrono holds",
            cron_case(("@yearly".into(), "EST5EDT".into(), min)),
        ),
    ]);
}
