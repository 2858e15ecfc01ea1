//! Generative (proptest) tests of every input surface a user can send:
//! `wasmsched.toml` and plugin manifests (`config`); durations, sizes,
//! rates, cron expressions, time zones, topics and patterns (`units`);
//! and, on a host served on loopback, trigger tables (`triggers`), one-off
//! timers and backfills (`timers`), api trigger calls (`calls`) and
//! publishing, CloudEvents included (`publish`), both as raw HTTP/1.1, and
//! GET endpoints, admin actions and dashboard forms with random ids and
//! query strings (`reads`).
//!
//! The property everywhere: never a panic (a dropped connection is a
//! handler that panicked; a panic hook records where any thread of the
//! host panicked, background tasks included), never a 5xx for bad input,
//! every refusal a 4xx (or a config error) that names the field at fault,
//! and an accepted value round-trips: what GET returns, or what is
//! published, is what was sent, and a duration or rate formats back to
//! text that parses to the same value. Generators reach the edges: 0,
//! negatives, 1e-300, 1e300, u64::MAX, 10^9 days, empty and 1 MiB strings,
//! NaN-like strings, unicode, non-UTF-8 bytes, odd-case header names.
//!
//! Each property runs a bounded number of cases on one host of its own
//! (under a minute in all on 2 cores, debug build), with no failure file;
//! a failure prints the shrunk input and, for a panic, its file and line.
//! `GEN_SCALE=N` runs N times as many cases (to search longer). The
//! `found` module replays the minimised inputs of the defects these
//! properties found, so they fail until fixed whatever the random cases
//! drew, and stay as regression tests once fixed.

mod body;
mod calls;
mod config;
mod edges;
mod found;
mod harness;
mod host;
mod publish;
mod raw;
mod reads;
mod timers;
mod triggers;
mod units;
