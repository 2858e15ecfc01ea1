//! The host's sinks: each `[[sink]]` of the config registered as an event
//! trigger delivering over HTTP ([`crate::sink`]), and what the admin API
//! shows of them.

use std::sync::Arc;

use serde::Serialize;

use super::{Host, HostError};
use crate::config::SinkConfig;
use crate::sink::{SinkCounters, SinkStats, create_sink_trigger, trigger_id};
use crate::topic::{Topic, safe_segment};

/// A registered sink.
pub(super) struct SinkEntry {
    config: SinkConfig,
    counters: Arc<SinkCounters>,
}

/// One sink as the admin API shows it (its secret never).
#[derive(Debug, Clone, Serialize)]
pub struct SinkView {
    /// Its id.
    pub id: String,
    /// The topics it delivers.
    pub pattern: String,
    /// Where.
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
        let topic = Topic::new(format!("sinks.{}", safe_segment(&config.id)))
            .expect("safe segments make topics");
        self.scheduler
            .register(trigger_id(&config.id), trigger, topic)
            .await?;
        tracing::info!(sink = %config.id, pattern = %config.pattern, url = %config.url, "registered sink");
        let entry = SinkEntry {
            config: config.clone(),
            counters,
        };
        self.state_mut().sinks.insert(config.id, entry);
        Ok(())
    }

    /// Every sink with its state and counters.
    pub async fn sinks(&self) -> Result<Vec<SinkView>, HostError> {
        let entries: Vec<(SinkConfig, SinkStats)> = self
            .state()
            .sinks
            .values()
            .map(|e| (e.config.clone(), e.counters.snapshot()))
            .collect();
        let mut views = Vec::with_capacity(entries.len());
        for (config, stats) in entries {
            let id = trigger_id(&config.id);
            let running = self
                .registration(&id)
                .await
                .is_some_and(|r| r.trigger.is_running());
            let dead = self.store.dead_letters(Some(&id), 1000).await?.len();
            views.push(SinkView {
                pattern: config.pattern.to_string(),
                url: config.url.clone(),
                signed: config.secret.is_some(),
                paused: self.is_paused(&id).await,
                running,
                stats,
                dead,
                id: config.id,
            });
        }
        Ok(views)
    }

    /// Is there a sink `id`?
    pub fn has_sink(&self, id: &str) -> bool {
        self.state().sinks.contains_key(id)
    }
}
