//! `{{name}}`: a wasmsched plugin that turns every firing of its triggers
//! into one event: `{"hello": <greeting>, "trigger": <trigger id>, "kind":
//! "cron"|"api"|"event", "at": <instant>}`, published on the trigger's topic.
//! `greeting` is the trigger's `greeting` config (`{{name}}.toml`), default
//! `"world"`.
//!
//! The contract is `wit/plugin.wit`; this plugin implements the
//! `factory-plugin` world. To filter events too, implement `filter::Guest`
//! and switch to the `plugin` world. Returning `Err(message)` logs the
//! message and publishes nothing; a panic traps the call. The plugin is
//! sandboxed (no files, network, clocks or randomness): log with `log`.

wit_bindgen::generate!({
    world: "factory-plugin",
    path: "wit",
});

use exports::wasmsched::plugin::factory::Guest;
use serde_json::json;
use wasmsched::plugin::host::{Level, config, log};
use wasmsched::plugin::types::{Firing, NewEvent, TriggerKind};

struct Plugin;

impl Guest for Plugin {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let greeting = config("greeting").unwrap_or_else(|| "world".to_owned());
        let kind = match firing.kind {
            TriggerKind::Cron => "cron",
            TriggerKind::Api => "api",
            TriggerKind::Event => "event",
        };
        log(
            Level::Info,
            &format!(
                "{{name}}: trigger {} fired ({kind}) at {}",
                firing.trigger_id, firing.instant
            ),
        );
        let data = json!({
            "hello": greeting,
            "trigger": firing.trigger_id,
            "kind": kind,
            "at": firing.instant,
        });
        Ok(vec![NewEvent {
            topic: None, // the trigger's own topic
            data: data.to_string(),
            headers: Vec::new(),
        }])
    }
}

export!(Plugin);
