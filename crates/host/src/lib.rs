//! wasmsched's host: what the `wasmsched` binary runs. It reads
//! `wasmsched.toml` and the plugin manifests ([`config`]), assembles a
//! scheduler, its broker and state store, the plugins and the sinks from
//! them and keeps them in step with the files ([`host`]), delivers events
//! out ([`sink`]), and serves the HTTP API ([`http`]) and the web
//! dashboard ([`dashboard`]): two front ends over one application state
//! ([`app`]), mounted together by [`web`].
//!
//! ```text
//! web ─┬─> http ──────┬─> app ─> host ─> config, sink
//!      └─> dashboard ─┘
//! ```

#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod dashboard;
pub mod host;
pub mod http;
pub mod sink;
pub mod web;
