//! `pipeline_stage`: announces that a pipeline stage should start, typically
//! from a cron trigger.
//!
//! Emits one event `{"stage", "trigger", "scheduled"}` on the trigger's
//! topic, where `stage` is the `stage` config value (default `collection`)
//! and `scheduled` the firing's instant.

wit_bindgen::generate!({
    world: "factory-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::factory::Guest;
use serde_json::json;
use wasmsched::plugin::host::{Level, config, log};
use wasmsched::plugin::types::{Firing, NewEvent};

const DEFAULT_STAGE: &str = "collection";

struct PipelineStage;

impl Guest for PipelineStage {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let stage = config("stage").unwrap_or_else(|| DEFAULT_STAGE.to_string());
        log(
            Level::Info,
            &format!("pipeline stage {stage} fired at {}", firing.instant),
        );
        let data = json!({
            "stage": stage,
            "trigger": firing.trigger_id,
            "scheduled": firing.instant,
        });
        Ok(vec![NewEvent {
            topic: None,
            data: data.to_string(),
            headers: Vec::new(),
        }])
    }
}

export!(PipelineStage);
