//! What a trigger is, by kind: [`TriggerSpec`], shared by `[[trigger]]`
//! tables, the admin API and [`super::create_trigger`]. Each kind carries
//! its own settings, so a cron trigger without a schedule, or an event
//! trigger with a path, cannot be written down.

use serde::{Deserialize, Serialize};

use super::CatchUp;
use super::flow::FlowSpec;
use crate::firing::TriggerKind;
use crate::topic::TopicPattern;

/// A trigger's kind and the settings of that kind (one per [`TriggerKind`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerSpec {
    /// Fires on a schedule.
    Cron(CronSpec),
    /// Fires when called.
    Api(ApiSpec),
    /// Fires for matching events.
    Event(EventSpec),
}

/// A cron trigger: a 5-field crontab expression in an IANA time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    /// E.g. `0 9 * * MON-FRI`, or a macro such as `@daily`.
    pub schedule: String,
    /// E.g. `Asia/Seoul`; `None` is UTC.
    pub timezone: Option<String>,
    /// What it runs, on starting, of the instants it missed.
    pub catch_up: CatchUp,
    /// Each fire waits [`crate::cron::jitter_offset`] of this after its
    /// instant (zero: none).
    pub jitter: std::time::Duration,
    /// What happens to an instant due while a firing still runs.
    pub overlap: super::OverlapPolicy,
}

/// An api trigger: an HTTP path, and who may call it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiSpec {
    /// Where it is served (`POST {path}/trigger`); `None` is
    /// `/api/triggers/<id>`.
    pub path: Option<String>,
    /// Who may call it; `None`: anyone who can reach the port.
    pub auth: Option<ApiAuth>,
    /// Calls admitted per period (`rate_limit = "10/s"`); past it, 429
    /// with `Retry-After`. Per replica.
    pub rate_limit: Option<crate::units::Rate>,
}

/// An event trigger: the topic pattern it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// `*` matches one segment, `**` any number.
    pub source: TopicPattern,
    /// Flow control per key: dedupe, throttle, debounce, batch, concurrency.
    pub flow: FlowSpec,
}

/// How an api trigger authenticates callers (`[trigger.auth]`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiAuth {
    /// Callers send `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Callers sign the raw body: `<header>: sha256=<hex HMAC-SHA256>`.
    #[serde(default)]
    pub hmac_secret: Option<String>,
    /// The signature header (default `X-Hub-Signature-256`, GitHub's).
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
}

fn default_signature_header() -> String {
    "X-Hub-Signature-256".to_owned()
}

impl TriggerSpec {
    /// The kind this spec is of.
    pub fn kind(&self) -> TriggerKind {
        match self {
            TriggerSpec::Cron(_) => TriggerKind::Cron,
            TriggerSpec::Api(_) => TriggerKind::Api,
            TriggerSpec::Event(_) => TriggerKind::Event,
        }
    }

    /// A cron spec in UTC.
    pub fn cron(schedule: impl Into<String>) -> Self {
        TriggerSpec::Cron(CronSpec {
            schedule: schedule.into(),
            timezone: None,
            catch_up: CatchUp::default(),
            jitter: std::time::Duration::ZERO,
            overlap: super::OverlapPolicy::Allow,
        })
    }

    /// An api spec at the default path, without authentication.
    pub fn api() -> Self {
        TriggerSpec::Api(ApiSpec::default())
    }

    /// An event spec watching `source`.
    pub fn event(source: TopicPattern) -> Self {
        TriggerSpec::Event(EventSpec {
            source,
            flow: FlowSpec::default(),
        })
    }
}
