//! The HTTP API (axum): api triggers at their paths, admin, events (publish,
//! SSE stream), health, metrics and the OpenAPI document.

mod access;
pub(crate) mod admin;
mod api_triggers;
mod backfill;
mod cloudevents;
mod error;
mod events;
mod metrics;
mod ops;
mod rate_limit;
mod serve;
mod timers;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio_util::sync::CancellationToken;

pub use access::{Tokens, same_secret};
pub use error::ApiError;
pub use ops::openapi_document;
pub use serve::{ConnectionStats, open_file_limit, raise_open_file_limit, serve};

use crate::config::TokenKind;
use crate::host::Host;
use rate_limit::RateLimits;

/// Request bodies larger than this are refused with 413 (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Environment variable that sets the admin token (overrides the config).
pub const ADMIN_TOKEN_ENV: &str = "WASMSCHED_ADMIN_TOKEN";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The host the API serves.
    pub host: Arc<Host>,
    /// The tokens each route group asks for (see [`access`]).
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

    /// Reads a request body: at most [`Self::body_limit`] bytes (413) within
    /// [`Self::body_timeout`] (408).
    pub async fn read_body(&self, body: Body) -> Result<Bytes, ApiError> {
        match tokio::time::timeout(self.body_timeout, error::read_body(body, self.body_limit)).await
        {
            Ok(read) => read,
            Err(_) => Err(ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ([server] body_timeout)",
                    crate::units::format_duration(self.body_timeout)
                ),
            )),
        }
    }
}

/// The W3C trace context headers of a request (see [`crate::trace`]).
fn trace_context(headers: &axum::http::HeaderMap) -> std::collections::BTreeMap<String, String> {
    crate::trace::context_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
}

/// Middleware: the per-client rate limit, for requests that came through
/// the listener (which notes the client's address).
async fn limit_client(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        && let Err(limited) = app.rate_limits.check_client(peer.ip())
    {
        return limited.into_response();
    }
    next.run(request).await
}

/// Every route of the API, each group behind its token (see [`access`]).
pub fn router(state: AppState) -> Router {
    let gate = |group: TokenKind| from_fn_with_state((state.clone(), group), access::require);
    let admin = Router::new()
        .route(
            "/triggers",
            get(admin::list_triggers).post(admin::add_trigger),
        )
        .route(
            "/triggers/{id}",
            get(admin::get_trigger).delete(admin::remove_trigger),
        )
        .route("/triggers/{id}/pause", post(admin::pause))
        .route("/triggers/{id}/resume", post(admin::resume))
        .route("/triggers/{id}/run", post(admin::run_now))
        .route(
            "/triggers/{id}/backfill",
            post(backfill::start)
                .get(backfill::progress)
                .delete(backfill::cancel),
        )
        .route("/plugins", get(admin::list_plugins))
        .route("/sinks", get(admin::list_sinks))
        .route("/sinks/{id}/pause", post(admin::pause_sink))
        .route("/sinks/{id}/resume", post(admin::resume_sink))
        .route("/timers", get(timers::list).post(timers::add))
        .route("/timers/{id}", delete(timers::cancel))
        .route("/deadletters/{id}", delete(admin::discard_dead_letter))
        .route("/deadletters/{id}/replay", post(admin::replay_dead_letter))
        .route("/match", get(admin::match_topic))
        .route_layer(gate(TokenKind::Admin));
    // Run history and dead letters: the read token opens them too.
    let read_admin = Router::new()
        .route("/triggers/{id}/runs", get(admin::runs))
        .route("/deadletters", get(admin::dead_letters))
        .route_layer(gate(TokenKind::Read));
    let events = Router::new()
        .route(
            "/api/events",
            post(events::publish).route_layer(gate(TokenKind::Publish)),
        )
        .route(
            "/api/events/stream",
            get(events::stream).route_layer(gate(TokenKind::Read)),
        )
        .route(
            "/metrics",
            get(metrics::metrics).route_layer(gate(TokenKind::Metrics)),
        )
        .route("/openapi.json", get(ops::openapi));
    Router::new()
        .nest("/api/admin", admin.merge(read_admin))
        .merge(events)
        .merge(crate::dashboard::routes(state.clone()))
        .fallback(api_triggers::dispatch)
        .layer(from_fn_with_state(state.clone(), limit_client))
        .layer(from_fn_with_state(state.clone(), access::refuse_cross_site))
        // Outside the client limit: health checks always answer.
        .route("/healthz", get(ops::healthz))
        .with_state(state)
}
