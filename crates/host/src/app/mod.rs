//! What the two front ends, the HTTP API ([`crate::http`]) and the
//! dashboard ([`crate::dashboard`]), stand on: one application state, the
//! tokens and session that open them, rate limits, the JSON error, and the
//! typed views of triggers both show. Neither front end imports the other;
//! [`crate::web`] mounts both.

mod error;
pub mod rate_limit;
pub mod session;
pub mod tokens;
pub mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ErrorBody};
pub use rate_limit::RateLimits;
pub use tokens::{Tokens, same_secret};

use crate::host::Host;

/// Request bodies larger than this are refused with 413 (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The host the API serves.
    pub host: Arc<Host>,
    /// The tokens each route group asks for.
    pub tokens: Tokens,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Per api trigger and per client rate limits.
    pub rate_limits: Arc<RateLimits>,
    /// Open connections and what the cap did.
    pub connections: Arc<ConnectionStats>,
    /// Cancelled at shutdown: ends long-lived responses (SSE streams) so
    /// the server can finish.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// State for `host`: tokens from the environment or `[server]` (files
    /// are read off the async runtime). An error names the token's key
    /// and source, never its value.
    pub async fn new(host: Arc<Host>) -> Result<Self, String> {
        let server = host.config().server.clone();
        let tokens = tokio::task::spawn_blocking(move || server.read_tokens())
            .await
            .map_err(|e| e.to_string())??;
        let server = &host.config().server;
        Ok(Self {
            tokens: Tokens::new(tokens),
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: server.body_timeout,
            rate_limits: Arc::new(RateLimits::new(server.rate_limit_per_client)),
            connections: Arc::default(),
            shutdown: CancellationToken::new(),
            host,
        })
    }
}

/// Connections served now, and what the cap did (for `/metrics`).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Open now.
    pub open: AtomicUsize,
    /// The cap in force.
    pub max: AtomicUsize,
    /// Idle connections closed to admit new ones.
    pub shed: AtomicU64,
    /// New connections refused: every one open was busy.
    pub refused: AtomicU64,
    /// Closed for idling (`idle_timeout`, or no request within
    /// `header_timeout` of connecting).
    pub timed_out: AtomicU64,
}
