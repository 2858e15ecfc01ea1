//! The subcommands of the `wasmsched` binary.

pub mod check;
pub mod client;
pub mod cron;
pub mod new;
pub mod run;
pub mod telemetry;
