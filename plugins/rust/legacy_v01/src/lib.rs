//! `legacy_v01`: a test factory built against `wasmsched:plugin@0.1.0`
//! (`wit/versions/0.1.0`), as components built before 0.2.0 were: the host
//! must keep loading and running it unchanged, next to 0.2.0 plugins.
//!
//! Emits one event `{"contract": "0.1.0", "trigger", "kind", "source_topic"}`.

wit_bindgen::generate!({
    world: "factory-plugin",
    path: "../../../wit/versions/0.1.0",
});

use exports::wasmsched::plugin::factory::Guest;
use serde_json::json;
use wasmsched::plugin::types::{Firing, NewEvent, TriggerKind};

struct Legacy;

impl Guest for Legacy {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let kind = match firing.kind {
            TriggerKind::Cron => "cron",
            TriggerKind::Api => "api",
            TriggerKind::Event => "event",
        };
        let data = json!({
            "contract": "0.1.0",
            "trigger": firing.trigger_id,
            "kind": kind,
            "source_topic": firing.source.map(|e| e.topic),
        });
        Ok(vec![NewEvent {
            topic: None,
            data: data.to_string(),
            headers: Vec::new(),
        }])
    }
}

export!(Legacy);
