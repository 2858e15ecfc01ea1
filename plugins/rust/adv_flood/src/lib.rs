//! `adv_flood`: a misbehaving plugin for the host's output-bound and
//! time-limit tests. What it does depends on its `mode` config value:
//!
//! - `long-error`: `accept` and `make-events` fail with a 16 MiB message;
//! - `big-header`: `make-events` returns one event with an 8 MiB header;
//! - `many`: `make-events` returns 100 000 events;
//! - `spin`: `make-events` never returns (the host's time limit stops it);
//! - anything else: `accept` says yes, `make-events` returns one event.

wit_bindgen::generate!({
    world: "plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::factory::Guest as Factory;
use exports::wasmsched::plugin::filter::Guest as Filter;
use wasmsched::plugin::host::config;
use wasmsched::plugin::types::{Event, Firing, NewEvent};

struct Flood;

fn mode() -> String {
    config("mode").unwrap_or_default()
}

fn long_error() -> String {
    "e".repeat(16 << 20)
}

fn event(headers: Vec<(String, String)>) -> NewEvent {
    NewEvent {
        topic: None,
        data: "{}".to_string(),
        headers,
    }
}

impl Filter for Flood {
    fn accept(_event: Event) -> Result<bool, String> {
        match mode().as_str() {
            "long-error" => Err(long_error()),
            _ => Ok(true),
        }
    }
}

impl Factory for Flood {
    fn make_events(_firing: Firing) -> Result<Vec<NewEvent>, String> {
        match mode().as_str() {
            "long-error" => Err(long_error()),
            "big-header" => Ok(vec![event(vec![("big".into(), "h".repeat(8 << 20))])]),
            "many" => Ok((0..100_000).map(|_| event(Vec::new())).collect()),
            "spin" => loop {
                std::hint::black_box(());
            },
            _ => Ok(vec![event(Vec::new())]),
        }
    }
}

export!(Flood);
