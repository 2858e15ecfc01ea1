//! `adv_alloc`: a misbehaving filter plugin for the host's sandboxing tests.
//! `accept` allocates and touches 1 GiB: the host's memory cap must stop it.

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use wasmsched::plugin::types::Event;

struct Adversary;

impl Guest for Adversary {
    fn accept(_event: Event) -> Result<bool, String> {
        let big = std::hint::black_box(vec![1u8; 1 << 30]);
        let last = std::hint::black_box(big[big.len() - 1]);
        Ok(last == 1)
    }
}

export!(Adversary);
