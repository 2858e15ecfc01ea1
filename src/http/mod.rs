//! The HTTP API (axum): api triggers at their paths, admin, events (publish,
//! SSE stream), health, metrics and the OpenAPI document.

mod access;
pub(crate) mod admin;
mod api_triggers;
mod backfill;
mod cloudevents;
mod dead_letters;
mod error;
mod events;
mod metrics;
mod openapi;
mod ops;
mod percent;
mod plugins;
mod prometheus_text;
mod rate_limit;
mod schemas;
mod serve;
mod sinks;
mod timers;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::{Tokens, same_secret};
pub use error::ApiError;
pub use openapi::{openapi_document, served_document};
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

/// Who may call a group of routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Those with a token that opens the group (see [`access`]).
    Token(TokenKind),
    /// Anyone, within the per-client rate limit.
    Open,
    /// Anyone, always: outside the rate limit (health checks).
    Always,
}

/// Every route of the API but the api triggers' (served by the fallback,
/// see [`api_triggers`]), by who may call it. [`router`] serves them and
/// [`openapi_document`] describes them: each handler is registered with its
/// `#[utoipa::path]` (`routes!`), so no route goes undocumented.
fn api_routes() -> Vec<(Access, OpenApiRouter<AppState>)> {
    let new = OpenApiRouter::<AppState>::default;
    let admin = new()
        .routes(routes!(admin::list_triggers, admin::add_trigger))
        .routes(routes!(admin::get_trigger, admin::remove_trigger))
        .routes(routes!(admin::pause))
        .routes(routes!(admin::resume))
        .routes(routes!(admin::run_now))
        .routes(routes!(
            backfill::start,
            backfill::progress,
            backfill::cancel
        ))
        .routes(routes!(admin::match_topic))
        .routes(routes!(plugins::list_plugins))
        .routes(routes!(sinks::list_sinks))
        .routes(routes!(sinks::pause_sink))
        .routes(routes!(sinks::resume_sink))
        .routes(routes!(timers::list, timers::add))
        .routes(routes!(timers::cancel))
        .routes(routes!(dead_letters::discard_dead_letter))
        .routes(routes!(dead_letters::replay_dead_letter));
    // Run history, dead letters and the event stream: the read token
    // opens them too.
    let read = new()
        .routes(routes!(admin::runs))
        .routes(routes!(dead_letters::dead_letters))
        .routes(routes!(events::stream));
    vec![
        (Access::Token(TokenKind::Admin), admin),
        (Access::Token(TokenKind::Read), read),
        (
            Access::Token(TokenKind::Publish),
            new().routes(routes!(events::publish)),
        ),
        (
            Access::Token(TokenKind::Metrics),
            new().routes(routes!(metrics::metrics)),
        ),
        (Access::Open, new().routes(routes!(ops::openapi))),
        (Access::Always, new().routes(routes!(ops::healthz))),
    ]
}

/// Every route of the API, each group behind its token (see [`access`]),
/// the dashboard's pages, and the api triggers (the fallback).
pub fn router(state: AppState) -> Router {
    let (mut api, mut always) = (Router::new(), Router::new());
    for (who, group) in api_routes() {
        let (group, _) = group.split_for_parts();
        match who {
            Access::Token(token) => {
                let gate = from_fn_with_state((state.clone(), token), access::require);
                api = api.merge(group.route_layer(gate));
            }
            Access::Open => api = api.merge(group),
            Access::Always => always = always.merge(group),
        }
    }
    api.merge(crate::dashboard::routes(state.clone()))
        .fallback(api_triggers::dispatch)
        .layer(from_fn_with_state(state.clone(), limit_client))
        .layer(from_fn_with_state(state.clone(), access::refuse_cross_site))
        // Outside the client limit: health checks always answer.
        .merge(always)
        .method_not_allowed_fallback(method_not_allowed)
        // A handler that panics answers 500 (counted, logged) instead of
        // dropping the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

/// A 405 that says so in JSON like every other error (axum's own is empty).
async fn method_not_allowed(request: Request) -> Response {
    let message = format!(
        "{} is not allowed on {}",
        request.method(),
        request.uri().path()
    );
    ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, message).into_response()
}

/// The answer to a request whose handler panicked.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = crate::firing::panic_message(&panic);
    let message = crate::supervise::caught(crate::supervise::Task::Http, "request", message);
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}
