//! `accept_odd`: a test filter accepting events whose `data.n` is odd.
//! See `../accept_even/src/parity.rs`, shared with its twin `accept_even`.

const REMAINDER: u64 = 1;

include!("../../accept_even/src/parity.rs");
