//! `wasmsched.toml` and plugin manifests (`plugins/NAME.toml`).
//!
//! ```toml
//! [server]                   # see ServerConfig: tokens, connection limits, TLS
//! listen = "127.0.0.1:8080"
//!
//! [plugins]
//! dir = "plugins"            # relative to this file
//! watch = true               # follow changes to plugins/ while running
//! cache = true               # keep compiled code in plugins/.cache
//! max_calls = 8              # plugin calls at once, host-wide (default 4 per core)
//! max_calls_per_trigger = 2  # plugin calls at once, per trigger (default 2)
//! [plugins.limits]           # per call, for every plugin
//! timeout = "100ms"          # default 100 ms, instantiation included
//! memory_bytes = "64MiB"     # default 64 MiB
//!
//! [events]
//! max_bytes = "1MiB"         # data + headers of one event (default 1 MiB)
//! max_per_firing = 10000     # events one firing may publish (default 10 000)
//!
//! [broker]
//! kind = "memory"            # memory (default) | nats: see NatsOptions
//! # url = "nats://127.0.0.1:4222"
//!
//! [state]                    # what outlives the process (see wasmsched_core::state)
//! path = "wasmsched.db"      # SQLite file, relative to this file (memory broker only;
//!                            # with NATS, state lives in JetStream)
//! history_max_runs = 100     # run history kept per trigger (0: none)
//! history_max_age = "7d"     # and for how long
//!
//! [metrics]
//! # per_trigger = true       # series per trigger in /metrics (default: up to 1 000 triggers)
//!
//! [[trigger]]
//! id = "nightly"
//! kind = "cron"              # cron | api | event
//! topic = "pipeline.collection"
//! plugin = "pipeline_stage"  # plugins/pipeline_stage.wasm (optional)
//! schedule = "0 3 * * *"     # cron only
//! timezone = "Asia/Seoul"    # cron only, default UTC
//! # path = "/webhooks/x"     # api only, default /api/triggers/<id>
//! # source = "logs.**"       # event only
//! # catch_up = "latest"      # cron only: skip | latest (default) | all
//! # catch_up_window = "1h"   # cron only: how far back a missed instant still runs
//! # catch_up_max = 10        # cron only: the most `all` runs
//! # jitter = "90s"           # cron only: a fixed per-trigger delay in [0, 90s)
//! # overlap = "skip"         # cron only: allow (default) | skip | buffer_one
//! [trigger.config]           # strings handed to the plugin
//! stage = "collection"
//! ```
//!
//! `[[sink]]` tables (see [`SinkConfig`]) deliver events to webhooks.
//!
//! A manifest holds `[[trigger]]` and `[[sink]]` tables, and a `[plugin]`
//! table (see [`PluginManifest`]) with the limits and grants of the plugin
//! named like it. Unknown keys, duplicate ids
//! and missing fields are errors naming the file, the trigger and the key.

mod manifest;
mod plugin;
mod server;
mod sink;
mod trigger;
pub(crate) use trigger::{MAX_ID_BYTES, RESERVED_PATHS, TriggerTable};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use wasmsched_core::bounded::EventLimits;
use wasmsched_core::broker::RetryPolicy;
use wasmsched_core::state::Retention;
use wasmsched_nats::NatsOptions;
use wasmsched_plugin::{Limits, RuntimeOptions};

/// Deserializes `T`, an error naming the key at fault first
/// (`throttle.period: duration "1e9d" is out of range ...`): a table's own
/// checks, which see the whole table, name their keys themselves.
pub fn deserialize_named<'de, D, T>(deserializer: D) -> Result<T, String>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // "unknown field `x`" names it already.
        let last = path.rsplit('.').next().unwrap_or_default();
        match path.as_str() {
            "." => inner,
            _ if inner.contains(&format!("`{last}`")) => inner,
            _ => format!("`{path}`: {inner}"),
        }
    })
}

pub use self::manifest::{Manifest, load_manifest, manifests_in, parse_manifest};
use self::manifest::{check_unique_ids, check_unique_sinks, parse_sinks, parse_triggers};
pub use self::plugin::{PluginManifest, SecretSource};
use self::server::ServerSection;
pub use self::server::{ServerConfig, TlsFiles, TokenKind, TokenSource};
pub use self::sink::{SigningSecret, SinkConfig, SinkFormat, SinkId};
pub use self::trigger::{DeclaredIn, TriggerConfig};
pub use wasmsched_core::trigger::ApiAuth;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid (TOML syntax, an unknown key, a bad value).
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file concerned.
        path: PathBuf,
        /// What went wrong, in one line.
        message: String,
    },
    /// A `[[trigger]]` table is not valid.
    #[error("{}: trigger `{id}`: {message}", path.display())]
    Trigger {
        /// The file concerned.
        path: PathBuf,
        /// The trigger's id.
        id: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// Two tables declare the same trigger id.
    #[error("trigger id `{id}` is declared twice: in {first} and in {second}")]
    DuplicateId {
        /// The trigger's id.
        id: String,
        /// Where it was declared first.
        first: DeclaredIn,
        /// Where it was declared again.
        second: DeclaredIn,
    },
}

/// The whole configuration: the main file plus every manifest.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file (`wasmsched.toml`).
    pub path: PathBuf,
    /// The HTTP API: where it listens, its tokens, connection limits, TLS
    /// (`[server]`).
    pub server: ServerConfig,
    /// The plugins directory, resolved against the config file's directory.
    pub plugins_dir: PathBuf,
    /// Follow changes to the plugins directory while running (hot reload;
    /// `[plugins] watch`, default true).
    pub watch: bool,
    /// Where compiled plugins are kept across restarts (`[plugins] cache`,
    /// default true: `<plugins dir>/.cache`); `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Concurrency limits of plugin calls (`[plugins] max_calls`,
    /// `max_calls_per_trigger`) and the time and memory of one call
    /// (`[plugins.limits]`).
    pub runtime: RuntimeOptions,
    /// The broker (`[broker]`, default the embedded memory broker).
    pub broker: BrokerConfig,
    /// What one event and one firing may carry (`[events]`).
    pub events: EventLimits,
    /// Where state that outlives the process is kept (`[state]`).
    pub state: StateConfig,
    /// Every `[[trigger]]` table, of the main file and the manifests.
    pub triggers: Vec<TriggerConfig>,
    /// Every `[[sink]]` table, of the main file and the manifests.
    pub sinks: Vec<SinkConfig>,
    /// The `[plugin]` tables of the manifests, by plugin name.
    pub plugins: BTreeMap<String, PluginManifest>,
    /// `/metrics` has series per trigger (`[metrics] per_trigger`); `None`
    /// (the default): while there are at most 1 000 triggers, so a host
    /// with 100 000 exposes a bounded page (totals per kind then).
    pub metrics_per_trigger: Option<bool>,
    /// Where traces are exported (`[telemetry]`).
    pub telemetry: TelemetryConfig,
}

/// OpenTelemetry trace export (`[telemetry]`): off unless an endpoint is
/// set here or in `OTEL_EXPORTER_OTLP_ENDPOINT` (see [`wasmsched_core::trace`]).
///
/// ```toml
/// [telemetry]
/// otlp_endpoint = "http://127.0.0.1:4318"   # OTLP/HTTP; /v1/traces is appended
/// service_name = "wasmsched"                # the default (OTEL_SERVICE_NAME also works)
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector's base URL (protobuf over HTTP, port 4318 by
    /// convention). Wins over `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; default `wasmsched`, or
    /// `OTEL_SERVICE_NAME`.
    #[serde(default)]
    pub service_name: Option<String>,
}

/// Where state that outlives the process is kept (`[state]`).
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// The SQLite file used with the memory broker (`path`, default
    /// `wasmsched.db` next to the config file). With NATS, state lives in
    /// JetStream and this is not used.
    pub path: PathBuf,
    /// How much run history is kept (`history_max_runs`, default 100 per
    /// trigger; `history_max_age`, default 7 days).
    pub retention: Retention,
}

/// Which broker carries the events (`[broker] kind`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum BrokerConfig {
    /// In this process only: no service needed. Takes `max_deliver` and
    /// `retry_backoff_secs`, as NATS does.
    Memory(RetryPolicy),
    /// A NATS JetStream stream, shared by several replicas.
    Nats(NatsOptions),
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::Memory(RetryPolicy::default())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MainFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    plugins: PluginsSection,
    /// Read as a table, then by its `kind` (so errors name the key:
    /// serde's tagged enums forget where a value was).
    #[serde(default)]
    broker: Option<toml::Table>,
    #[serde(default)]
    events: EventLimits,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    trigger: Vec<toml::Value>,
    #[serde(default)]
    sink: Vec<toml::Value>,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    telemetry: TelemetryConfig,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    per_trigger: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StateSection {
    path: Option<PathBuf>,
    history_max_runs: Option<usize>,
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_duration"
    )]
    history_max_age: Option<std::time::Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PluginsSection {
    dir: Option<PathBuf>,
    watch: Option<bool>,
    cache: Option<bool>,
    max_calls: Option<usize>,
    max_calls_per_trigger: Option<usize>,
    limits: Option<Limits>,
}

impl Config {
    /// Loads `path` and every `*.toml` manifest in its plugins directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let main: MainFile = parse_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let server = main
            .server
            .resolve(base)
            .map_err(|message| ConfigError::Syntax {
                path: path.to_owned(),
                message,
            })?;
        let plugins_dir = base.join(main.plugins.dir.unwrap_or_else(|| "plugins".into()));
        let cache_dir = main
            .plugins
            .cache
            .unwrap_or(true)
            .then(|| plugins_dir.join(".cache"));
        let broker = broker_config(main.broker).map_err(|message| ConfigError::Syntax {
            path: path.to_owned(),
            message,
        })?;
        let valid = match &broker {
            BrokerConfig::Memory(retry) => retry.validate(),
            BrokerConfig::Nats(options) => options.validate(),
        };
        valid.map_err(|message| ConfigError::Syntax {
            path: path.to_owned(),
            message,
        })?;
        let defaults = RuntimeOptions::default();
        let runtime = defaults
            .with_default_limits(main.plugins.limits.unwrap_or_default())
            .with_max_calls(
                main.plugins.max_calls.unwrap_or(defaults.max_calls),
                main.plugins
                    .max_calls_per_trigger
                    .unwrap_or(defaults.max_calls_per_trigger),
            );
        if !(1..=wasmsched_plugin::MAX_CALLS_LIMIT).contains(&runtime.max_calls)
            || runtime.max_calls_per_trigger == 0
        {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                message: format!(
                    "[plugins] max_calls must be 1 to {} and max_calls_per_trigger at least 1",
                    wasmsched_plugin::MAX_CALLS_LIMIT
                ),
            });
        }
        if main.events.max_bytes == 0 || main.events.max_per_firing == 0 {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                message: "[events] max_bytes and max_per_firing must be at least 1".into(),
            });
        }
        let retention = Retention {
            max_runs: main
                .state
                .history_max_runs
                .unwrap_or(Retention::default().max_runs),
            max_age: main
                .state
                .history_max_age
                .unwrap_or(Retention::default().max_age),
        };
        if retention.max_age.is_zero() {
            return Err(ConfigError::Syntax {
                path: path.to_owned(),
                message: "[state] history_max_age must be more than 0s (history_max_runs = 0 \
                          turns history off)"
                    .into(),
            });
        }
        let state = StateConfig {
            path: base.join(main.state.path.unwrap_or_else(|| "wasmsched.db".into())),
            retention,
        };
        let mut triggers = parse_triggers(path, main.trigger)?;
        let mut sinks = parse_sinks(path, main.sink)?;
        let mut plugins = BTreeMap::new();
        for manifest in manifests_in(&plugins_dir)? {
            let manifest = load_manifest(&manifest)?;
            triggers.extend(manifest.triggers);
            sinks.extend(manifest.sinks);
            if let Some(plugin) = manifest.plugin {
                plugins.insert(plugin.plugin.clone(), plugin);
            }
        }
        check_unique_ids(&triggers)?;
        check_unique_sinks(&sinks)?;
        if let BrokerConfig::Nats(options) = &broker
            && let Some(sink) = sinks.iter().find(|s| s.timeout >= options.ack_wait())
        {
            return Err(ConfigError::Syntax {
                path: sink.declared_in.clone(),
                message: format!(
                    "sink `{}`: timeout ({}) must be shorter than [broker] ack_wait_secs ({}s), \
                     or JetStream hands the event to another replica mid-delivery",
                    sink.id,
                    wasmsched_core::units::format_duration(sink.timeout),
                    options.ack_wait_secs
                ),
            });
        }
        Ok(Self {
            path: path.to_owned(),
            server,
            plugins_dir,
            watch: main.plugins.watch.unwrap_or(true),
            cache_dir,
            runtime,
            broker,
            events: main.events,
            state,
            triggers,
            sinks,
            plugins,
            metrics_per_trigger: main.metrics.per_trigger,
            telemetry: main.telemetry,
        })
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    parse_text(path, &read_file(path)?)
}

/// `[broker]` by its `kind` (`memory`, the default, or `nats`); errors
/// name the key (`[broker] max_deliver: ...`).
fn broker_config(table: Option<toml::Table>) -> Result<BrokerConfig, String> {
    let Some(mut table) = table else {
        return Ok(BrokerConfig::default());
    };
    let kind = match table.remove("kind") {
        None => "memory".to_owned(),
        Some(toml::Value::String(kind)) => kind,
        Some(other) => {
            return Err(format!(
                "[broker] kind = {other}: use \"memory\" or \"nats\""
            ));
        }
    };
    let named = |error: String| match error.starts_with('`') {
        true => format!("[broker] {}", error.replacen('`', "", 2)),
        false => format!("[broker] {error}"),
    };
    match kind.as_str() {
        "memory" => deserialize_named(toml::Value::Table(table))
            .map(BrokerConfig::Memory)
            .map_err(named),
        "nats" => deserialize_named(toml::Value::Table(table))
            .map(BrokerConfig::Nats)
            .map_err(named),
        other => Err(format!(
            "[broker] kind: unknown variant `{other}`, expected `memory` or `nats`"
        )),
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_text<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let syntax = |message: String| ConfigError::Syntax {
        path: path.to_owned(),
        message: one_line(&message),
    };
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| syntax(e.to_string()))?;
    deserialize_named(deserializer).map_err(syntax)
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wasmsched-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        dir
    }

    #[test]
    fn loads_main_file_and_manifests() {
        let dir = temp_dir("ok");
        let main = write(
            &dir,
            "wasmsched.toml",
            r#"
            [server]
            listen = "127.0.0.1:9999"
            [[trigger]]
            id = "hook"
            kind = "API"
            topic = "webhooks.x"
            "#,
        );
        write(
            &dir.join("plugins"),
            "alerts.toml",
            r#"
            [[trigger]]
            id = "alerts"
            kind = "event"
            source = "logs.**"
            topic = "alerts.critical"
            plugin = "error_alert"
            [trigger.config]
            level = "ERROR"
            "#,
        );
        let config = Config::load(&main).unwrap();
        assert_eq!(config.server.listen.port(), 9999);
        assert_eq!(config.triggers.len(), 2);
        assert_eq!(config.triggers[0].api_path().unwrap(), "/api/triggers/hook");
        assert_eq!(config.triggers[1].config["level"], "ERROR");
        assert!(
            config.triggers[1]
                .declared_in
                .file()
                .is_some_and(|file| file.ends_with("plugins/alerts.toml"))
        );
    }

    #[test]
    fn errors_name_file_trigger_and_key() {
        let dir = temp_dir("bad");
        let cases = [
            (
                "[[trigger]]\nid = \"a\"\nkind = \"cron\"\ntopic = \"t\"\nshedule = \"* * * * *\"\n",
                "trigger `a`: unknown field `shedule`",
            ),
            (
                "[[trigger]]\nid = \"b\"\nkind = \"cron\"\ntopic = \"t\"\n",
                "trigger `b`: missing `schedule`",
            ),
            (
                "[[trigger]]\nid = \"c\"\nkind = \"event\"\n",
                "trigger `c`: missing field `topic`",
            ),
            (
                "[[trigger]]\nid = \"d\"\nkind = \"timer\"\ntopic = \"t\"\n",
                "trigger `d`: unknown trigger kind `timer`",
            ),
            (
                "[[trigger]]\nid = \"e\"\nkind = \"api\"\ntopic = \"t\"\nsource = \"x\"\n",
                "trigger `e`: `source` is only for event triggers, not api",
            ),
            ("[serverr]\n", "unknown field `serverr`"),
            ("[broker]\nkind = \"kafka\"\n", "unknown variant `kafka`"),
            (
                "[broker]\nkind = \"nats\"\nurll = \"x\"\n",
                "unknown field `urll`",
            ),
            (
                "[broker]\nkind = \"nats\"\nack_wait_secs = -1\n",
                "[broker] ack_wait_secs = -1",
            ),
        ];
        for (text, expected) in cases {
            let path = write(&dir, "wasmsched.toml", text);
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains("wasmsched.toml"), "{err}");
            assert!(err.contains(expected), "expected `{expected}` in: {err}");
        }
    }

    #[test]
    fn broker_defaults_to_memory_and_nats_fills_in_defaults() {
        let dir = temp_dir("broker");
        let memory = write(&dir, "wasmsched.toml", "");
        assert_eq!(
            Config::load(&memory).unwrap().broker,
            BrokerConfig::default()
        );
        let nats = write(
            &dir,
            "wasmsched.toml",
            "[broker]\nkind = \"nats\"\nurl = \"nats://10.0.0.5:4222\"\nack_wait_secs = 2.5\nmax_deliver = 3\n",
        );
        let BrokerConfig::Nats(options) = Config::load(&nats).unwrap().broker else {
            panic!("expected the nats broker");
        };
        assert_eq!(options.url, "nats://10.0.0.5:4222");
        assert_eq!(options.ack_wait_secs, 2.5);
        assert_eq!(options.max_deliver, 3);
        assert_eq!(options.stream, "WASMSCHED");
        assert_eq!(options.subject_prefix, "ev");
    }

    /// The shipped config files parse: the README's commands use them.
    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let single = Config::load(&root.join("wasmsched.toml")).unwrap();
        assert_eq!(single.broker, BrokerConfig::default());
        let replicas = Config::load(&root.join("wasmsched-replicas.toml")).unwrap();
        assert!(matches!(replicas.broker, BrokerConfig::Nats(_)));
        assert_eq!(replicas.triggers.len(), single.triggers.len());
    }

    #[test]
    fn duplicate_ids_across_files_name_both_files() {
        let dir = temp_dir("dup");
        let trigger = "[[trigger]]\nid = \"same\"\nkind = \"api\"\ntopic = \"t\"\n";
        let main = write(&dir, "wasmsched.toml", trigger);
        write(&dir.join("plugins"), "other.toml", trigger);
        let err = Config::load(&main).unwrap_err().to_string();
        assert!(
            err.contains("`same`") && err.contains("wasmsched.toml") && err.contains("other.toml"),
            "{err}"
        );
    }
}
