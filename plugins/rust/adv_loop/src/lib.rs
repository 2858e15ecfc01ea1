//! `adv_loop`: a misbehaving filter plugin for the host's sandboxing tests.
//! `accept` never returns: the host must stop it (epoch deadline).

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use wasmsched::plugin::types::Event;

struct Adversary;

impl Guest for Adversary {
    fn accept(_event: Event) -> Result<bool, String> {
        loop {
            std::hint::black_box(());
        }
    }
}

export!(Adversary);
