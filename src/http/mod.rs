//! The HTTP API (axum): api triggers at their paths, admin, events (publish,
//! SSE stream), health, metrics and the OpenAPI document.

mod admin;
mod api_triggers;
mod backfill;
mod error;
mod events;
mod ops;
mod timers;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::host::Host;

/// Request bodies larger than this are refused with 413 (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Environment variable that sets the admin token (overrides the config).
pub const ADMIN_TOKEN_ENV: &str = "WASMSCHED_ADMIN_TOKEN";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The host the API serves.
    pub host: Arc<Host>,
    /// The bearer token `/api/admin` asks for (none: open).
    pub admin_token: Option<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Cancelled at shutdown: ends long-lived responses (SSE streams) so
    /// the server can finish.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// State for `host`, with the admin token from the environment or config.
    pub fn new(host: Arc<Host>) -> Self {
        let admin_token = std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| host.config().admin_token.clone());
        Self {
            host,
            admin_token,
            body_limit: DEFAULT_BODY_LIMIT,
            shutdown: CancellationToken::new(),
        }
    }
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
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
        .route("/triggers/{id}/runs", get(admin::runs))
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
        .route("/deadletters", get(admin::dead_letters))
        .route("/deadletters/{id}", delete(admin::discard_dead_letter))
        .route("/deadletters/{id}/replay", post(admin::replay_dead_letter))
        .route("/match", get(admin::match_topic))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin::require_token,
        ));
    Router::new()
        .nest("/api/admin", admin)
        .route("/api/events", post(events::publish))
        .route("/api/events/stream", get(events::stream))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(api_triggers::dispatch)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes: then stops
/// accepting, ends event streams, and lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await
}
