//! The integration tests of the `wasmsched` binary and the host, in one test
//! binary (one link of wasmtime, axum, NATS and SQLite instead of one per
//! file): each module is what one file under `tests/` used to be, and
//! `cargo test --test integration <module>::` runs one of them. Fixtures
//! shared with other crates' tests live in `wasmsched-test-support`. The
//! core's own scenarios are in `crates/core/tests`.

mod backfill;
mod browser;
mod cli;
mod dashboard;
mod dead_letters;
mod exposure;
mod flow_control;
mod generative;
mod http;
mod liveness;
mod nats;
mod nats_cluster;
mod openapi;
mod plugin_grants;
mod plugins;
mod polyglot;
mod reload;
mod scaffold;
mod schemathesis;
mod sinks;
mod slow_plugins;
mod soak;
mod standards;
mod state;
mod state_binary;
mod state_nats;
mod timers;
mod tracing;
