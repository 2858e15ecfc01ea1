// The body shared by `accept_even` and `accept_odd`, which include it after
// defining `REMAINDER` (0 or 1): a filter that accepts an event whose JSON
// data has an integer `n` with `n % 2 == REMAINDER`. Data without one is an
// error. The host's hot-reload tests swap one for the other: two versions of
// one plugin whose decisions tell them apart.

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use serde_json::Value;
use wasmsched::plugin::types::Event;

struct Parity;

impl Guest for Parity {
    fn accept(event: Event) -> Result<bool, String> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| format!("event {}: data is not valid JSON: {e}", event.id))?;
        let n = data
            .get("n")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("event {}: no integer `n` in data", event.id))?;
        Ok(n % 2 == REMAINDER)
    }
}

export!(Parity);
