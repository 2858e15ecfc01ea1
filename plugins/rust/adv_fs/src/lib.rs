//! `adv_fs`: a misbehaving filter plugin for the host's sandboxing tests.
//! `accept` reads /etc/passwd through wasi:filesystem: the host must not grant it.

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use wasmsched::plugin::types::Event;

struct Adversary;

impl Guest for Adversary {
    fn accept(_event: Event) -> Result<bool, String> {
        match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => Ok(!text.is_empty()),
            Err(e) => Err(format!("adv_fs: cannot read /etc/passwd: {e}")),
        }
    }
}

export!(Adversary);
