//! `adv_net`: a misbehaving filter plugin for the host's sandboxing tests.
//! `accept` opens a TCP connection through wasi:sockets: the host must not grant it.

wit_bindgen::generate!({
    world: "filter-plugin",
    path: "../../../wit",
});

use exports::wasmsched::plugin::filter::Guest;
use wasmsched::plugin::types::Event;

struct Adversary;

impl Guest for Adversary {
    fn accept(_event: Event) -> Result<bool, String> {
        match std::net::TcpStream::connect("127.0.0.1:1") {
            Ok(_) => Ok(true),
            Err(e) => Err(format!("adv_net: cannot connect to 127.0.0.1:1: {e}")),
        }
    }
}

export!(Adversary);
