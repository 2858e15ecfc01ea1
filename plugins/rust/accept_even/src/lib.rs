//! `accept_even`: a test filter accepting events whose `data.n` is even.
//! See `parity.rs`, shared with its twin `accept_odd`.

const REMAINDER: u64 = 0;

include!("parity.rs");
