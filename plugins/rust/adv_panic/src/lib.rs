//! `adv_panic`: a misbehaving filter plugin for the host's sandboxing tests.
//! `accept` panics (a trap for the host; the instance is poisoned).

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use wasmsched::plugin::types::Event;

struct Adversary;

impl Guest for Adversary {
    fn accept(_event: Event) -> Result<bool, String> {
        panic!("adv_panic: boom")
    }
}

export!(Adversary);
