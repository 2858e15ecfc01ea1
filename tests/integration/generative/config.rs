//! `wasmsched.toml` (and a plugin manifest) from random texts: a valid
//! file with one key set to a generated value. `Config::load` never
//! panics; a refusal names the key; an accepted duration or rate can be
//! written back (it formats to text that loads to the same value).

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use toml::Value;
use wasmsched::config::Config;
use wasmsched::trigger::TriggerSpec;
use wasmsched::units::{Rate, format_duration, parse_duration};

use super::edges::{
    cron_text, duration_text, names, odd_text, rate_text, short, size_text, topic_text, zone_text,
};
use super::harness::{check, no_panic};

/// The file every case starts from: it loads.
const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"
[plugins]
dir = "plugins"
watch = false
[state]
path = "state.db"
[broker]
kind = "memory"

[[trigger]]
id = "c"
kind = "cron"
topic = "jobs.c"
schedule = "0 3 * * *"
timezone = "Asia/Seoul"

[[trigger]]
id = "a"
kind = "api"
topic = "hooks.a"
rate_limit = "10/s"

[[trigger]]
id = "e"
kind = "event"
topic = "alerts.e"
source = "logs.**"
key = "/service"
throttle = { limit = 1, period = "5m" }

[[sink]]
id = "s"
pattern = "alerts.**"
url = "http://127.0.0.1:9/x"
"#;

/// A manifest that loads, for `plugins/p.toml`.
const MANIFEST: &str = "[plugin]\nallowed_outbound_hosts = [\"http://127.0.0.1:9\"]\n";

/// Where the generated value goes: the file (`wasmsched.toml` or the
/// manifest), the path of tables to it, the key.
#[derive(Debug, Clone)]
pub struct Mutation {
    pub manifest: bool,
    pub path: Vec<&'static str>,
    pub key: &'static str,
    pub value: Value,
}

fn s(text: String) -> Value {
    Value::String(text)
}

/// TOML values at the edges (TOML integers are i64; floats may be nan
/// and inf).
fn toml_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec![
            0i64, -1, 1, i64::MAX, i64::MIN, 10_000, 10_001, 4_294_967_295, 4_294_967_296, 1024,
        ])
        .prop_map(Value::Integer),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, -1.5, 1e300, 1e-300, 0.5])
            .prop_map(Value::Float),
        1 => any::<i64>().prop_map(Value::Integer),
        1 => Just(Value::String("10".into())),
    ]
    .boxed()
}

fn toml_duration() -> BoxedStrategy<Value> {
    prop_oneof![6 => duration_text().prop_map(s), 2 => toml_number()].boxed()
}

fn toml_text(strategy: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![8 => strategy.prop_map(s), 1 => toml_number()].boxed()
}

fn toml_bool() -> BoxedStrategy<Value> {
    prop_oneof![any::<bool>().prop_map(Value::Boolean), toml_number()].boxed()
}

/// `{ a = .., b = .. }` with each value generated.
fn table(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (keys, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    values
        .prop_map(move |values| {
            Value::Table(keys.iter().map(|k| k.to_string()).zip(values).collect())
        })
        .boxed()
}

fn mutation() -> BoxedStrategy<Mutation> {
    type Slot = (bool, &'static [&'static str], &'static str);
    let slot = |slot: Slot, value: BoxedStrategy<Value>| {
        let (manifest, path, key) = slot;
        value
            .prop_map(move |value| Mutation {
                manifest,
                path: path.to_vec(),
                key,
                value,
            })
            .boxed()
    };
    let cron = &["trigger", "0"];
    let api = &["trigger", "1"];
    let event = &["trigger", "2"];
    let sink = &["sink", "0"];
    let plugin = &["plugin"];
    let flow_table = || {
        prop_oneof![
            table(vec![("window", toml_duration())]),
            table(vec![("limit", toml_number()), ("period", toml_duration())]),
            table(vec![
                ("period", toml_duration()),
                ("max_wait", toml_duration())
            ]),
            table(vec![
                ("max_events", toml_number()),
                ("max_wait", toml_duration())
            ]),
        ]
        .boxed()
    };
    prop_oneof![
        slot((false, &["server"], "listen"), toml_text(odd_text())),
        slot((false, &["server"], "max_connections"), toml_number()),
        slot((false, &["server"], "header_timeout"), toml_duration()),
        slot((false, &["server"], "idle_timeout"), toml_duration()),
        slot((false, &["server"], "body_timeout"), toml_duration()),
        slot(
            (false, &["server"], "rate_limit_per_client"),
            toml_text(rate_text())
        ),
        slot((false, &["server"], "admin_token"), toml_text(odd_text())),
        slot((false, &["server"], "tls_cert"), toml_text(odd_text())),
        slot((false, &["plugins"], "max_calls"), toml_number()),
        slot(
            (false, &["plugins"], "max_calls_per_trigger"),
            toml_number()
        ),
        slot((false, &["plugins"], "watch"), toml_bool()),
        slot((false, &["plugins", "limits"], "timeout"), toml_duration()),
        slot(
            (false, &["plugins", "limits"], "wall_timeout"),
            toml_duration()
        ),
        slot(
            (false, &["plugins", "limits"], "memory_bytes"),
            toml_text(size_text())
        ),
        slot((false, &["events"], "max_bytes"), toml_text(size_text())),
        slot((false, &["events"], "max_per_firing"), toml_number()),
        slot((false, &["state"], "history_max_runs"), toml_number()),
        slot((false, &["state"], "history_max_age"), toml_duration()),
        slot((false, &["broker"], "max_deliver"), toml_number()),
        slot(
            (false, &["broker"], "retry_backoff_secs"),
            prop::collection::vec(toml_number(), 0..3)
                .prop_map(Value::Array)
                .boxed()
        ),
        slot((false, cron, "schedule"), toml_text(cron_text())),
        slot((false, cron, "timezone"), toml_text(zone_text())),
        slot((false, cron, "catch_up_window"), toml_duration()),
        slot((false, cron, "catch_up_max"), toml_number()),
        slot((false, cron, "jitter"), toml_duration()),
        slot((false, cron, "id"), toml_text(odd_text())),
        slot((false, cron, "topic"), toml_text(topic_text())),
        slot((false, api, "rate_limit"), toml_text(rate_text())),
        slot((false, api, "path"), toml_text(odd_text())),
        slot((false, event, "source"), toml_text(topic_text())),
        slot((false, event, "key"), toml_text(odd_text())),
        slot((false, event, "dedupe"), flow_table()),
        slot((false, event, "throttle"), flow_table()),
        slot((false, event, "debounce"), flow_table()),
        slot((false, event, "batch"), flow_table()),
        slot((false, event, "concurrency"), toml_number()),
        slot((false, sink, "pattern"), toml_text(topic_text())),
        slot((false, sink, "url"), toml_text(odd_text())),
        slot((false, sink, "timeout"), toml_duration()),
        slot((false, sink, "max_attempts"), toml_number()),
        slot((false, sink, "max_in_flight"), toml_number()),
        slot(
            (false, sink, "backoff"),
            prop::collection::vec(toml_duration(), 0..3)
                .prop_map(Value::Array)
                .boxed()
        ),
        slot((false, sink, "secret"), toml_text(odd_text())),
        slot((true, plugin, "timeout"), toml_duration()),
        slot(
            (true, plugin, "allowed_outbound_hosts"),
            prop::collection::vec(toml_text(odd_text()), 0..3)
                .prop_map(Value::Array)
                .boxed()
        ),
        slot(
            (true, plugin, "kv"),
            table(vec![
                ("max_keys", toml_number()),
                ("max_bytes", toml_text(size_text()))
            ])
        ),
        slot(
            (true, plugin, "secrets"),
            prop::collection::btree_map("[A-Z_]{1,6}", toml_text(odd_text()), 0..2)
                .prop_map(|m| Value::Table(m.into_iter().collect()))
                .boxed()
        ),
        slot((true, plugin, "wall_timeout"), toml_duration()),
        slot((true, plugin, "http_timeout"), toml_duration()),
        slot((true, plugin, "memory_bytes"), toml_text(size_text())),
        slot((true, plugin, "max_request_bytes"), toml_text(size_text())),
        slot((true, plugin, "max_response_bytes"), toml_text(size_text())),
    ]
    .boxed()
}

/// `mutation` applied to `text`.
fn apply(text: &str, mutation: &Mutation) -> String {
    let mut root: toml::Table = text.parse().expect("the base parses");
    let mut at = &mut root;
    let mut path = mutation.path.iter().peekable();
    while let Some(step) = path.next() {
        let value = at
            .entry(step.to_string())
            .or_insert_with(|| Value::Table(Default::default()));
        at = match value {
            Value::Array(items) => {
                let index: usize = path.next().expect("an index").parse().unwrap();
                items[index].as_table_mut().expect("a table")
            }
            Value::Table(table) => table,
            _ => unreachable!(),
        };
    }
    at.insert(mutation.key.to_owned(), mutation.value.clone());
    toml::to_string(&root).expect("TOML values serialize")
}

/// The value loaded for `key` in `config`, if it is a duration or a rate.
fn loaded(config: &Config, mutation: &Mutation) -> Option<Result<Duration, Rate>> {
    let trigger = |index: usize| &config.triggers[index].spec;
    let found = match (mutation.path.as_slice(), mutation.key) {
        (["server"], "header_timeout") => Ok(config.server.header_timeout),
        (["server"], "idle_timeout") => Ok(config.server.idle_timeout),
        (["server"], "body_timeout") => Ok(config.server.body_timeout),
        (["server"], "rate_limit_per_client") => Err(config.server.rate_limit_per_client?),
        (["plugins", "limits"], "timeout") => Ok(config.runtime.default_limits.timeout),
        (["plugins", "limits"], "wall_timeout") => Ok(config.runtime.default_limits.wall_timeout),
        (["state"], "history_max_age") => Ok(config.state.retention.max_age),
        (["trigger", "0"], key) => match trigger(0) {
            TriggerSpec::Cron(cron) if key == "jitter" => Ok(cron.jitter),
            TriggerSpec::Cron(cron) if key == "catch_up_window" => Ok(cron.catch_up.window),
            _ => return None,
        },
        (["trigger", "1"], "rate_limit") => match trigger(1) {
            TriggerSpec::Api(api) => Err(api.rate_limit?),
            _ => return None,
        },
        (["sink", "0"], "timeout") => Ok(config.sinks[0].timeout),
        _ => return None,
    };
    Some(found)
}

/// A directory holding `wasmsched.toml` and `plugins/p.toml`.
pub struct Files {
    _dir: tempfile::TempDir,
    main: std::path::PathBuf,
    manifest: std::path::PathBuf,
}

impl Files {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        let (main, manifest) = (
            dir.path().join("wasmsched.toml"),
            dir.path().join("plugins/p.toml"),
        );
        // The base loads: a refusal is the generated value's.
        std::fs::write(&main, BASE).unwrap();
        std::fs::write(&manifest, MANIFEST).unwrap();
        Config::load(&main).expect("the base config loads");
        Self {
            _dir: dir,
            main,
            manifest,
        }
    }
}

/// `Config::load` of the base with `mutation`: no panic; an error names
/// the key; an accepted duration or rate writes back as it loads.
pub fn config_case(files: &Files, mutation: Mutation) -> Result<(), TestCaseError> {
    let (main, manifest) = (&files.main, &files.manifest);
    let (text, other) = match mutation.manifest {
        true => (apply(MANIFEST, &mutation), BASE.to_owned()),
        false => (apply(BASE, &mutation), MANIFEST.to_owned()),
    };
    let (target, other_path) = match mutation.manifest {
        true => (manifest, main),
        false => (main, manifest),
    };
    std::fs::write(target, &text).unwrap();
    std::fs::write(other_path, other).unwrap();
    match no_panic("Config::load", || Config::load(main))? {
        Err(error) => {
            let message = error.to_string();
            // The key, or a key of the table it holds.
            let mut wanted = vec![mutation.key.to_owned()];
            if let Value::Table(table) = &mutation.value {
                wanted.extend(table.keys().cloned());
            }
            prop_assert!(
                wanted.iter().any(|w| names(&message, w)),
                "the error does not name `{}`: {}",
                mutation.key,
                short(&message, 400)
            );
        }
        Ok(config) => match loaded(&config, &mutation) {
            Some(Ok(duration)) => {
                let written = format_duration(duration);
                prop_assert_eq!(
                    parse_duration(&written),
                    Ok(duration),
                    "`{}` = {} loads as {:?}, which writes back as {:?}",
                    mutation.key,
                    short(&mutation.value.to_string(), 80),
                    duration,
                    written
                );
            }
            Some(Err(rate)) => {
                let written = rate.to_string();
                prop_assert_eq!(
                    written.parse::<Rate>(),
                    Ok(rate),
                    "`{}` = {} loads as {:?}, which writes back as {:?}",
                    mutation.key,
                    short(&mutation.value.to_string(), 80),
                    rate,
                    written
                );
            }
            None => {}
        },
    }
    Ok(())
}

#[test]
fn config_files_load_or_name_the_key() {
    let files = Files::new();
    check("config", 3000, mutation(), |mutation| {
        config_case(&files, mutation)
    });
}

/// Whole files of anything (TOML or not, UTF-8 or not): never a panic;
/// an error names the file.
#[test]
fn any_file_loads_or_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("wasmsched.toml");
    let text = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "(\\[\\[?[a-z]{1,8}\\]\\]?\n)?([a-z_]{1,12} = (\"[^\"]{0,8}\"|[0-9.e+-]{1,6}|\\[\\]|\\{\\})\n){0,4}"
            .prop_map(String::into_bytes),
        Just(vec![0xff, 0xfe, b'a']),
    ];
    check("any file", 1000, text, |bytes| {
        std::fs::write(&main, &bytes).unwrap();
        if let Err(error) = no_panic("Config::load", || Config::load(Path::new(&main)))? {
            let message = error.to_string();
            prop_assert!(
                message.contains("wasmsched.toml"),
                "{}",
                short(&message, 300)
            );
        }
        Ok(())
    });
}
