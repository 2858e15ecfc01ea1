//! `error_alert`: picks log events of a given level and turns each one into
//! a critical alert.
//!
//! * filter: accepts an event whose JSON data has `level` equal to the
//!   trigger's `level` config (default `ERROR`), ignoring case.
//! * factory: makes one alert event (published on the trigger's topic)
//!   from the source event: `{"severity": "critical", "service", "message",
//!   "count", "source_topic", "source_id"}`. `count` is how many errors the
//!   alert stands for: 1, or more when the trigger throttles alerts (the
//!   host's `wasmsched-flow-count` header: this error and those dropped
//!   since the service's last alert).

wit_bindgen::generate!({
    world: "plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::{factory, filter};
use serde_json::{Value, json};
use wasmsched::plugin::host::{Level, config, log};
use wasmsched::plugin::types::{Event, Firing, NewEvent};

const DEFAULT_LEVEL: &str = "ERROR";

struct ErrorAlert;

impl filter::Guest for ErrorAlert {
    fn accept(event: Event) -> Result<bool, String> {
        let wanted = config("level").unwrap_or_else(|| DEFAULT_LEVEL.to_string());
        let data = parse_data(&event)?;
        let Some(level) = data.get("level").and_then(Value::as_str) else {
            log(
                Level::Debug,
                &format!("event {}: skipped, no string `level` in data", event.id),
            );
            return Ok(false);
        };
        Ok(level.eq_ignore_ascii_case(wanted.trim()))
    }
}

impl factory::Guest for ErrorAlert {
    fn make_events(firing: Firing) -> Result<Vec<NewEvent>, String> {
        let source = firing
            .source
            .ok_or_else(|| "error_alert expects an event trigger".to_string())?;
        let data = parse_data(&source)?;
        let text = |key: &str| data.get(key).and_then(Value::as_str);

        let level = text("level").unwrap_or(DEFAULT_LEVEL).to_uppercase();
        let service = text("service").unwrap_or("unknown");
        let message = text("message").unwrap_or("");
        let count: u64 = source
            .headers
            .iter()
            .find(|(name, _)| name == "wasmsched-flow-count")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(1);
        let alert = json!({
            "severity": "critical",
            "service": service,
            "message": format!("{level} in {service}: {message}"),
            "count": count,
            "source_topic": source.topic,
            "source_id": source.id,
        });
        Ok(vec![NewEvent {
            topic: None,
            data: alert.to_string(),
            headers: Vec::new(),
        }])
    }
}

fn parse_data(event: &Event) -> Result<Value, String> {
    serde_json::from_str(&event.data)
        .map_err(|e| format!("event {}: data is not valid JSON: {e}", event.id))
}

export!(ErrorAlert);
