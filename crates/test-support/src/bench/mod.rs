//! What the benches share: `wrk` runs, process figures from `/proc`, event
//! relays through a broker, and the tracing-overhead comparison.

pub mod proc;
pub mod relay;
pub mod tracing_overhead;
pub mod wrk;
