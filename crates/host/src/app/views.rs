//! Typed views of what a host runs, shown alike by the HTTP API (as JSON)
//! and the dashboard (as pages): kinds as enums, schedules parsed.

use std::sync::Arc;

use serde::Serialize;

use super::AppState;
use crate::config::{DeclaredIn, TriggerConfig};
use wasmsched_core::cron::CronSchedule;
use wasmsched_core::firing::TriggerKind;
use wasmsched_core::scheduler::Registration;
use wasmsched_core::topic::{Topic, TopicPattern};
use wasmsched_core::trigger::flow::FlowSpec;
use wasmsched_core::trigger::{TriggerSpec, TriggerStats};

/// One trigger as the admin API and the dashboard show it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TriggerView {
    /// Its id.
    pub id: String,
    /// `cron`, `api` or `event`.
    pub kind: TriggerKind,
    /// Where its events are published.
    pub topic: Topic,
    /// The plugin whose factory (and filter) it runs.
    pub plugin: Option<String>,
    /// Whether it fires now (not paused, not stopped).
    pub running: bool,
    /// Paused by the admin API or the dashboard?
    pub paused: bool,
    /// Firings since the start (`stats.fires`).
    pub fire_count: u64,
    /// Failed firings since the start (`stats.errors`).
    pub error_count: u64,
    /// Its counters since the start.
    pub stats: TriggerStats,
    /// Cron: its schedule (the expression as written).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expression")]
    #[schema(value_type = Option<String>)]
    pub schedule: Option<Arc<CronSchedule>>,
    /// Cron: its time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Cron: the next three scheduled instants (RFC 3339), jitter excluded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub next_fires: Vec<String>,
    /// When the next fire actually happens: the next instant plus the
    /// trigger's jitter offset (cron only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_fire: Option<String>,
    /// Cron: the trigger's jitter, e.g. `30s` (none: no jitter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Api: where it is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Event: the topic pattern it fires for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<TopicPattern>,
    /// Flow control (event triggers that have some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowSpec>,
    /// The file that declares it (`admin API` for triggers added over HTTP).
    #[schema(value_type = String)]
    pub declared_in: DeclaredIn,
}

fn expression<S: serde::Serializer>(
    schedule: &Option<Arc<CronSchedule>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match schedule {
        Some(schedule) => serializer.serialize_str(schedule.expression()),
        None => serializer.serialize_none(),
    }
}

/// The view of trigger `id`, registered as `registration` from `config`.
pub async fn view(
    app: &AppState,
    id: &str,
    registration: &Registration,
    config: &TriggerConfig,
) -> TriggerView {
    let trigger = &registration.trigger;
    let stats = trigger.stats();
    let next_fires = trigger
        .next_fires(3)
        .iter()
        .map(|t| t.to_rfc3339())
        .collect();
    let (mut next_fire, mut jitter, mut flow) = (None, None, None);
    let (schedule, timezone, path, source) = match &config.spec {
        TriggerSpec::Cron(cron) => {
            let zone = cron.timezone.clone().unwrap_or_else(|| "UTC".into());
            let offset = wasmsched_core::cron::jitter_offset(id, cron.jitter);
            let offset = chrono::TimeDelta::from_std(offset).unwrap_or_default();
            next_fire = trigger
                .next_fires(1)
                .first()
                .map(|t| (*t + offset).to_rfc3339());
            jitter = (!cron.jitter.is_zero())
                .then(|| wasmsched_core::units::format_duration(cron.jitter));
            let schedule = CronSchedule::shared(&cron.schedule, &zone).ok();
            (schedule, Some(zone), None, None)
        }
        TriggerSpec::Api(_) => (None, None, config.api_path(), None),
        TriggerSpec::Event(event) => {
            flow = event.flow.is_active().then(|| event.flow.clone());
            (None, None, None, Some(event.source.clone()))
        }
    };
    TriggerView {
        id: id.to_owned(),
        kind: trigger.kind(),
        topic: registration.topic.clone(),
        plugin: config.plugin.clone(),
        running: trigger.is_running(),
        paused: app.host.triggers().is_paused(id).await,
        fire_count: stats.fires,
        error_count: stats.errors,
        stats,
        schedule,
        timezone,
        next_fires,
        next_fire,
        jitter,
        path,
        source,
        flow,
        declared_in: config.declared_in.clone(),
    }
}
