//! The host's sinks: each `[[sink]]` of the config registered as an event
//! trigger delivering over HTTP ([`crate::sink`]), and what the admin API
//! shows of them.

use std::sync::Arc;

use serde::Serialize;

use super::{Host, HostError, ManifestChanges, Serial};
use crate::config::{SinkConfig, SinkId};
use crate::sink::{SinkCounters, SinkStats, create_sink_trigger};
use wasmsched_core::histogram::HistogramSnapshot;
use wasmsched_core::topic::{Topic, safe_segment};

/// A registered sink.
pub(super) struct SinkEntry {
    config: SinkConfig,
    counters: Arc<SinkCounters>,
}

impl SinkEntry {
    /// The file that declares it.
    pub(super) fn declared_in(&self) -> &std::path::Path {
        &self.config.declared_in
    }
}

/// One sink as the admin API shows it (its secret never).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct SinkView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: SinkId,
    /// The topics it delivers.
    pub pattern: String,
    /// Where: the scheme, host and port (the path and query, which often
    /// hold a token, are shown as `/…`).
    pub url: String,
    /// Are deliveries signed?
    pub signed: bool,
    /// Paused (by the admin API)?
    pub paused: bool,
    /// Delivering now?
    pub running: bool,
    /// Delivered, failed attempts, the last error.
    #[serde(flatten)]
    pub stats: SinkStats,
    /// Events it gave up on, kept as dead letters (at most 1000 counted).
    pub dead: usize,
}

impl Host {
    /// Registers sink `config` (the scheduler starts it if it runs).
    pub(super) async fn add_sink(&self, config: SinkConfig) -> Result<(), HostError> {
        let (trigger, counters) = create_sink_trigger(&config)
            .map_err(|e| HostError::InvalidTable(format!("sink `{}`: {e}", config.id)))?;
        let topic = Topic::new(format!("sinks.{}", safe_segment(config.id.as_str())))
            .expect("safe segments make topics");
        self.scheduler
            .register(config.id.trigger_id(), trigger, topic)
            .await?;
        let url = crate::sink::redacted(&config.url);
        tracing::info!(sink = %config.id, pattern = %config.pattern, %url, "registered sink");
        let entry = SinkEntry {
            config: config.clone(),
            counters,
        };
        self.state_mut().sinks.insert(config.id, entry);
        Ok(())
    }

    /// Brings the sinks declared in `file` in line with `declared`: adds
    /// the new ones, replaces the changed ones (a pause stays), removes the
    /// ones gone. What fails is added to `errors`.
    pub(super) async fn apply_sinks(
        &self,
        _: &Serial<'_>,
        file: &std::path::Path,
        declared: Vec<SinkConfig>,
        changes: &mut ManifestChanges,
        errors: &mut Vec<String>,
    ) {
        let before: std::collections::BTreeMap<SinkId, SinkConfig> = self
            .state()
            .sinks
            .values()
            .filter(|e| e.config.declared_in == file)
            .map(|e| (e.config.id.clone(), e.config.clone()))
            .collect();
        for id in before.keys() {
            if !declared.iter().any(|s| &s.id == id) {
                match self.remove_sink(id, true).await {
                    Ok(()) => changes.removed.push(id.trigger_id()),
                    Err(error) => errors.push(error.to_string()),
                }
            }
        }
        for sink in declared {
            let id = sink.id.clone();
            let list = match before.get(&id) {
                Some(old) if *old == sink => continue,
                Some(_) => match self.remove_sink(&id, false).await {
                    Ok(()) => &mut changes.changed,
                    Err(error) => {
                        errors.push(error.to_string());
                        continue;
                    }
                },
                None if self.sinks().has(&id) => {
                    errors.push(format!("sink `{id}` is already declared in another file"));
                    continue;
                }
                None => &mut changes.added,
            };
            match self.add_sink(sink).await {
                Ok(()) => list.push(id.trigger_id()),
                Err(error) => errors.push(error.to_string()),
            }
        }
    }

    /// Stops and removes sink `id`; `forget`: and its pause (it is gone,
    /// not replaced).
    async fn remove_sink(&self, id: &SinkId, forget: bool) -> Result<(), HostError> {
        let trigger = id.trigger_id();
        match forget {
            true => self.scheduler.unregister_trigger(&trigger).await?,
            false => self.scheduler.withdraw(&trigger).await?,
        };
        self.state_mut().sinks.remove(id);
        tracing::info!(sink = %id, "removed sink");
        Ok(())
    }
}

/// The host's sinks: what each delivered, and whether one is there.
#[derive(Clone, Copy)]
pub struct Sinks<'a> {
    host: &'a Host,
}

impl Host {
    /// The host's sinks.
    pub fn sinks(&self) -> Sinks<'_> {
        Sinks { host: self }
    }
}

impl Sinks<'_> {
    /// Every sink with its state and counters.
    pub async fn list(self) -> Result<Vec<SinkView>, HostError> {
        let entries: Vec<(SinkConfig, SinkStats)> = self
            .host
            .state()
            .sinks
            .values()
            .map(|e| (e.config.clone(), e.counters.snapshot()))
            .collect();
        let mut views = Vec::with_capacity(entries.len());
        for (config, stats) in entries {
            let id = config.id.trigger_id();
            let running = self
                .host
                .triggers()
                .registration(&id)
                .await
                .is_some_and(|r| r.trigger.is_running());
            let dead = self.host.store.dead_letters(Some(&id), 1000).await?.len();
            views.push(SinkView {
                pattern: config.pattern.to_string(),
                url: crate::sink::redacted(&config.url),
                signed: config.secret.is_some(),
                paused: self.host.triggers().is_paused(&id).await,
                running,
                stats,
                dead,
                id: config.id,
            });
        }
        Ok(views)
    }

    /// Is there a sink `id`?
    pub fn has(self, id: &SinkId) -> bool {
        self.host.state().sinks.contains_key(id)
    }

    /// Pauses sink `id` (`paused`) or resumes it: events wait (JetStream)
    /// or are not taken (memory) while it is paused. `false`: there is no
    /// such sink.
    pub async fn set_paused(self, id: &SinkId, paused: bool) -> Result<bool, HostError> {
        if !self.has(id) {
            return Ok(false);
        }
        let triggers = self.host.triggers();
        match paused {
            true => triggers.pause(&id.trigger_id()).await?,
            false => triggers.resume(&id.trigger_id()).await?,
        };
        Ok(true)
    }

    /// Every sink's counters and delivery time histogram, by id (what
    /// `/metrics` shows; cheap: no store access).
    pub fn stats(self) -> Vec<(String, SinkStats, HistogramSnapshot)> {
        self.host
            .state()
            .sinks
            .values()
            .map(|e| {
                let counters = &e.counters;
                (
                    e.config.id.to_string(),
                    counters.snapshot(),
                    counters.delivery_time(),
                )
            })
            .collect()
    }
}
