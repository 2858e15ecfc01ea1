//! One `[[trigger]]` table ([`TriggerConfig`]), as written in
//! `wasmsched.toml`, a manifest, or the admin API's JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use wasmsched_core::topic::{Topic, TopicPattern};
use wasmsched_core::trigger::flow::{Batch, Debounce, Dedupe, FlowSpec, Throttle};
use wasmsched_core::trigger::{
    ApiAuth, ApiSpec, CatchUp, CatchUpPolicy, CronSpec, EventSpec, OverlapPolicy, TriggerKind,
    TriggerSpec,
};

/// One `[[trigger]]` table, checked for its kind: what every trigger has,
/// and the settings of its kind ([`TriggerSpec`]). Written flat, as in
/// TOML and the admin API's JSON: `kind = "cron"` with `schedule` and
/// `timezone`, `kind = "api"` with `path` and `auth`, `kind = "event"` with
/// `source`; a key of another kind is an error naming it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "TriggerTable")]
pub struct TriggerConfig {
    /// Unique across the host.
    pub id: String,
    /// Where its events are published.
    pub topic: Topic,
    /// The plugin (`plugins/NAME.wasm`) whose factory (and filter) it runs.
    pub plugin: Option<String>,
    /// Strings handed to the plugin (`host.config`).
    pub config: BTreeMap<String, String>,
    /// The kind and its settings.
    pub spec: TriggerSpec,
    /// Where it was declared: a file, or the admin API.
    pub declared_in: DeclaredIn,
}

/// Where a trigger was declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredIn {
    /// `wasmsched.toml` or a plugin manifest (shared by the triggers it
    /// declares).
    File(Arc<Path>),
    /// `POST /api/admin/triggers` (kept in the state store).
    AdminApi,
}

impl DeclaredIn {
    /// The file, when a file declared it.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::AdminApi => None,
        }
    }
}

impl std::fmt::Display for DeclaredIn {
    /// The file's path, or `admin API` (as the API and the dashboard show it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => path.display().fmt(f),
            Self::AdminApi => f.write_str("admin API"),
        }
    }
}

impl serde::Serialize for DeclaredIn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A `[[trigger]]` table as written, before its kind is checked (also the
/// body of `POST /api/admin/triggers`). Keys of another kind than `kind`
/// are refused.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerTable {
    /// The trigger's id, unique across the host.
    id: String,
    /// The trigger's kind.
    kind: TriggerKind,
    /// Where its events are published.
    topic: Topic,
    /// The plugin (`plugins/NAME.wasm`) whose factory (and filter) it runs.
    #[serde(default)]
    plugin: Option<String>,
    /// Cron: the crontab schedule, e.g. `0 9 * * MON-FRI`.
    #[serde(default)]
    schedule: Option<String>,
    /// Cron: an IANA time zone (default UTC).
    #[serde(default)]
    timezone: Option<String>,
    /// Api: where it is served (default `/api/triggers/<id>`).
    #[serde(default)]
    path: Option<String>,
    /// Event: the topics it fires for.
    #[serde(default)]
    source: Option<TopicPattern>,
    /// Strings handed to the plugin (`host.config`).
    #[serde(default)]
    config: BTreeMap<String, String>,
    /// Api: how callers authenticate.
    #[serde(default)]
    auth: Option<ApiAuth>,
    /// Api: at most this many requests per period, e.g. `10/s`, `300/min`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    rate_limit: Option<wasmsched_core::units::Rate>,
    /// Cron: what it runs of the instants it missed.
    #[serde(default)]
    catch_up: Option<CatchUpPolicy>,
    /// Cron: how far back missed instants are caught up, e.g. `1h`.
    #[serde(default, deserialize_with = "nullable_duration")]
    #[schema(value_type = Option<String>)]
    catch_up_window: Option<std::time::Duration>,
    /// Cron: the most missed instants run with `catch_up = "all"`.
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_whole"
    )]
    catch_up_max: Option<usize>,
    /// Cron: a fixed delay up to this long, drawn per trigger, e.g. `30s`.
    #[serde(default, deserialize_with = "nullable_duration")]
    #[schema(value_type = Option<String>)]
    jitter: Option<std::time::Duration>,
    /// Cron: what happens when a firing is due while others still run.
    #[serde(default)]
    overlap: Option<OverlapPolicy>,
    /// Event: a JSON Pointer into the event's data that flow control
    /// counts per value of.
    #[serde(default)]
    key: Option<String>,
    /// Event: one firing per key within a window.
    #[serde(default)]
    dedupe: Option<Dedupe>,
    /// Event: at most `limit` firings per key per period.
    #[serde(default)]
    throttle: Option<Throttle>,
    /// Event: fire once the key has been quiet.
    #[serde(default)]
    debounce: Option<Debounce>,
    /// Event: fire with several events at once.
    #[serde(default)]
    batch: Option<Batch>,
    /// Event: firings of one key in flight at once.
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_whole"
    )]
    concurrency: Option<usize>,
}

/// A duration ([`wasmsched_core::units::deserialize_duration`]), or `null` for none,
/// as every other optional key of the table takes it in JSON.
fn nullable_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Given(
        #[serde(deserialize_with = "wasmsched_core::units::deserialize_duration")]
        std::time::Duration,
    );
    Ok(Option::<Given>::deserialize(deserializer)?.map(|Given(duration)| duration))
}

impl TryFrom<TriggerTable> for TriggerConfig {
    type Error = String;

    fn try_from(table: TriggerTable) -> Result<Self, String> {
        check_id(&table.id)?;
        let kind = table.kind;
        let only_for = |key: &str, present: bool, of: TriggerKind| -> Result<(), String> {
            if present && kind != of {
                return Err(format!("`{key}` is only for {of} triggers, not {kind}"));
            }
            Ok(())
        };
        only_for("schedule", table.schedule.is_some(), TriggerKind::Cron)?;
        only_for("timezone", table.timezone.is_some(), TriggerKind::Cron)?;
        only_for("path", table.path.is_some(), TriggerKind::Api)?;
        only_for("source", table.source.is_some(), TriggerKind::Event)?;
        only_for("auth", table.auth.is_some(), TriggerKind::Api)?;
        only_for("rate_limit", table.rate_limit.is_some(), TriggerKind::Api)?;
        only_for("catch_up", table.catch_up.is_some(), TriggerKind::Cron)?;
        only_for(
            "catch_up_window",
            table.catch_up_window.is_some(),
            TriggerKind::Cron,
        )?;
        only_for(
            "catch_up_max",
            table.catch_up_max.is_some(),
            TriggerKind::Cron,
        )?;
        only_for("jitter", table.jitter.is_some(), TriggerKind::Cron)?;
        only_for("overlap", table.overlap.is_some(), TriggerKind::Cron)?;
        let flow = FlowSpec {
            key: table.key,
            dedupe: table.dedupe,
            throttle: table.throttle,
            debounce: table.debounce,
            batch: table.batch,
            concurrency: table.concurrency,
        };
        for (key, present) in [
            ("key", flow.key.is_some()),
            ("dedupe", flow.dedupe.is_some()),
            ("throttle", flow.throttle.is_some()),
            ("debounce", flow.debounce.is_some()),
            ("batch", flow.batch.is_some()),
            ("concurrency", flow.concurrency.is_some()),
        ] {
            only_for(key, present, TriggerKind::Event)?;
        }
        flow.validate()?;
        let defaults = CatchUp::default();
        let catch_up = CatchUp {
            policy: table.catch_up.unwrap_or(defaults.policy),
            window: table.catch_up_window.unwrap_or(defaults.window),
            max: table.catch_up_max.unwrap_or(defaults.max),
        };
        if catch_up.max == 0 && catch_up.policy == CatchUpPolicy::All {
            return Err("`catch_up_max` must be at least 1 with catch_up = \"all\"".into());
        }
        let spec = match kind {
            TriggerKind::Cron => TriggerSpec::Cron(CronSpec {
                schedule: table
                    .schedule
                    .ok_or("missing `schedule` (a cron trigger needs one)")?,
                timezone: table.timezone,
                catch_up,
                jitter: table.jitter.unwrap_or_default(),
                overlap: table.overlap.unwrap_or_default(),
            }),
            TriggerKind::Api => {
                if let Some(path) = &table.path {
                    check_api_path(path)?;
                }
                if let Some(auth) = &table.auth
                    && auth.bearer_token.is_some() == auth.hmac_secret.is_some()
                {
                    return Err(
                        "`auth` needs exactly one of `bearer_token` and `hmac_secret`".into(),
                    );
                }
                TriggerSpec::Api(ApiSpec {
                    path: table.path,
                    auth: table.auth,
                    rate_limit: table.rate_limit,
                })
            }
            TriggerKind::Event => TriggerSpec::Event(EventSpec {
                source: table
                    .source
                    .ok_or("missing `source` (an event trigger needs a topic pattern)")?,
                flow,
            }),
        };
        Ok(Self {
            id: table.id,
            topic: table.topic,
            plugin: table.plugin,
            config: table.config,
            spec,
            // A file's loader says which file; a table from JSON is the
            // admin API's.
            declared_in: DeclaredIn::AdminApi,
        })
    }
}

/// Paths the host serves itself (the API and the dashboard): an api
/// trigger's `path` may be neither one of them nor under one, or its
/// `{path}/trigger` and `{path}/status` could be answered by a host route
/// instead (`/triggers` + `/status` is the dashboard's page for a trigger
/// named `status`).
pub const RESERVED_PATHS: &[&str] = &[
    "/api/admin",
    "/api/events",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/triggers",
    "/plugins",
    "/events",
    "/queues",
    "/cron",
    "/docs",
    "/login",
    "/logout",
    "/assets",
];

/// An api trigger's `path`: starts with `/` and stays clear of
/// [`RESERVED_PATHS`].
/// The longest trigger or sink id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// An id names a trigger or sink in URLs (`/api/admin/triggers/{id}`):
/// not empty, at most [`MAX_ID_BYTES`], no `/` and no control character
/// (a URL cannot carry them as they are).
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err("`id` must not be empty".into());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "`id` is {} bytes long: at most {MAX_ID_BYTES}",
            id.len()
        ));
    }
    if let Some(bad) = id.chars().find(|c| c.is_control() || *c == '/') {
        return Err(format!(
            "`id` {id:?} has {bad:?}: no `/` or control characters"
        ));
    }
    Ok(())
}

fn check_api_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`path` must start with `/`: `{path}`"));
    }
    // What a request line carries as it is: no query, fragment, escape,
    // space or non-ASCII (the router would never match it), no `.` or
    // `..` segment, no empty one.
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    if let Some(bad) = path.chars().find(|c| !plain(*c)) {
        return Err(format!(
            "`path` `{path}` has `{bad}`: use letters, digits, `-`, `.`, `_`, `~` and `/`"
        ));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed
        .split('/')
        .skip(1)
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(format!("`path` `{path}` has an empty, `.` or `..` segment"));
    }
    if trimmed.is_empty() {
        return Err("`path` must name more than `/` (e.g. `/hooks/deploy`)".into());
    }
    match RESERVED_PATHS.iter().find(|reserved| {
        trimmed == **reserved
            || trimmed
                .strip_prefix(**reserved)
                .is_some_and(|rest| rest.starts_with('/'))
    }) {
        Some(reserved) => Err(format!(
            "`path` `{path}` is under `{reserved}`, which the host serves itself \
             (API or dashboard); choose another, e.g. `/hooks{trimmed}`"
        )),
        None => Ok(()),
    }
}

impl TriggerConfig {
    /// The kind of trigger.
    pub fn kind(&self) -> TriggerKind {
        self.spec.kind()
    }

    /// Where an api trigger is served: its `path`, or `/api/triggers/<id>`;
    /// `None` for other kinds.
    pub fn api_path(&self) -> Option<String> {
        match &self.spec {
            TriggerSpec::Api(api) => Some(
                api.path
                    .clone()
                    .unwrap_or_else(|| format!("/api/triggers/{}", self.id)),
            ),
            _ => None,
        }
    }

    /// Parses one `[[trigger]]` table given as JSON (the admin API's input).
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        super::deserialize_named(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_become_typed_specs() {
        let table = |json: serde_json::Value| TriggerConfig::from_json(json).unwrap().spec;
        assert_eq!(
            table(
                json!({"id": "c", "kind": "cron", "topic": "t", "schedule": "0 9 * * *",
                         "timezone": "Asia/Seoul"})
            ),
            TriggerSpec::Cron(CronSpec {
                schedule: "0 9 * * *".into(),
                timezone: Some("Asia/Seoul".into()),
                catch_up: CatchUp::default(),
                jitter: std::time::Duration::ZERO,
                overlap: OverlapPolicy::Allow,
            })
        );
        assert_eq!(
            table(json!({"id": "a", "kind": "api", "topic": "t"})),
            TriggerSpec::api()
        );
        assert_eq!(
            table(json!({"id": "e", "kind": "event", "topic": "t", "source": "logs.**"})),
            TriggerSpec::event("logs.**".parse().unwrap())
        );
        let error = TriggerConfig::from_json(
            json!({"id": "e", "kind": "event", "topic": "t", "source": "a", "path": "/x"}),
        )
        .unwrap_err();
        assert_eq!(error, "`path` is only for api triggers, not event");
    }

    #[test]
    fn api_paths_stay_clear_of_the_hosts_own_routes() {
        let path = |path: &str| {
            TriggerConfig::from_json(json!({"id": "a", "kind": "api", "topic": "t", "path": path}))
                .map(|_| ())
        };
        assert_eq!(path("/webhooks/github"), Ok(()));
        assert_eq!(path("/eventsource"), Ok(()));
        for bad in ["/x?y", "/é", "/a b", "/a#b", "/a/../b", "/a//b", "/%41"] {
            assert!(path(bad).is_err_and(|e| e.contains("`path`")), "{bad}");
        }
        assert_eq!(path("/api/triggers/x"), Ok(()));
        let error = path("/triggers").unwrap_err();
        assert!(error.contains("under `/triggers`"), "{error}");
        assert!(error.contains("e.g. `/hooks/triggers`"), "{error}");
        assert!(path("/api/admin/x/").unwrap_err().contains("`/api/admin`"));
        assert!(path("/events/github").unwrap_err().contains("`/events`"));
        assert!(path("/").unwrap_err().contains("more than `/`"));
        assert!(path("hooks").unwrap_err().contains("must start with `/`"));
    }

    #[test]
    fn flow_control_is_set_in_the_table() {
        let spec = TriggerConfig::from_json(json!({"id": "e", "kind": "event", "topic": "t",
            "source": "logs.**", "key": "/service", "throttle": {"limit": 1, "period": "5m"},
            "concurrency": 2}))
        .unwrap()
        .spec;
        let TriggerSpec::Event(event) = spec else {
            panic!("{spec:?}")
        };
        assert_eq!(event.flow.key.as_deref(), Some("/service"));
        assert_eq!(event.flow.throttle.unwrap().limit, 1);
        assert_eq!(event.flow.concurrency, Some(2));
        let error = TriggerConfig::from_json(json!({"id": "a", "kind": "api", "topic": "t",
            "dedupe": {"window": "1m"}}))
        .unwrap_err();
        assert_eq!(error, "`dedupe` is only for event triggers, not api");
    }

    #[test]
    fn catch_up_settings_belong_to_cron_triggers() {
        let spec = TriggerConfig::from_json(json!({"id": "c", "kind": "cron", "topic": "t",
            "schedule": "@daily", "catch_up": "all", "catch_up_window": "1d", "catch_up_max": 3}))
        .unwrap()
        .spec;
        let TriggerSpec::Cron(cron) = spec else {
            panic!("{spec:?}")
        };
        assert_eq!(cron.catch_up.policy, CatchUpPolicy::All);
        assert_eq!(cron.catch_up.window, std::time::Duration::from_secs(86_400));
        assert_eq!(cron.catch_up.max, 3);
        let error = TriggerConfig::from_json(
            json!({"id": "a", "kind": "api", "topic": "t", "catch_up": "skip"}),
        )
        .unwrap_err();
        assert_eq!(error, "`catch_up` is only for cron triggers, not api");
        for key in [r#""jitter": "1s""#, r#""overlap": "skip""#] {
            let table = format!(r#"{{"id": "a", "kind": "api", "topic": "t", {key}}}"#);
            let error =
                TriggerConfig::from_json(serde_json::from_str(&table).unwrap()).unwrap_err();
            assert!(error.contains("only for cron triggers"), "{error}");
        }
        let error = TriggerConfig::from_json(
            json!({"id": "c", "kind": "cron", "topic": "t", "schedule": "@daily", "catch_up": "some"}),
        )
        .unwrap_err();
        assert!(error.contains("unknown variant `some`"), "{error}");
    }
}
