//! `large_dataset`: a filter that lets through only the events describing a
//! large data set.
//!
//! Accepts an event whose JSON data has a number `rows_count` greater than
//! the trigger's `threshold` config (default 1000). Events without a numeric
//! `rows_count` are skipped (logged at debug level). A `threshold` that is
//! not a number, or event data that is not JSON, is an error.

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use serde_json::Value;
use wasmsched::plugin::host::{Level, config, log};
use wasmsched::plugin::types::Event;

const DEFAULT_THRESHOLD: f64 = 1000.0;

struct LargeDataset;

impl Guest for LargeDataset {
    fn accept(event: Event) -> Result<bool, String> {
        let threshold = threshold()?;
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| format!("event {}: data is not valid JSON: {e}", event.id))?;
        let Some(rows) = data.get("rows_count").and_then(Value::as_f64) else {
            log(
                Level::Debug,
                &format!(
                    "event {}: skipped, no numeric `rows_count` in data",
                    event.id
                ),
            );
            return Ok(false);
        };
        Ok(rows > threshold)
    }
}

/// The `threshold` config value, or the default when it is absent.
fn threshold() -> Result<f64, String> {
    let Some(raw) = config("threshold") else {
        return Ok(DEFAULT_THRESHOLD);
    };
    match raw.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n),
        _ => Err(format!("config `threshold` must be a number, got {raw:?}")),
    }
}

export!(LargeDataset);
