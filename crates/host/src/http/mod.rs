//! The HTTP API (axum): api triggers at their paths, admin, events (publish,
//! SSE stream), health, metrics and the OpenAPI document.

mod access;
mod admin;
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
mod schemas;
mod sinks;
mod timers;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::middleware::from_fn_with_state;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::refuse_cross_site;
pub use api_triggers::dispatch as api_triggers;
pub use error::ApiError;
pub use openapi::{openapi_document, served_document};

use crate::app::AppState;
use crate::config::TokenKind;

/// Environment variable that sets the admin token (overrides the config).
pub const ADMIN_TOKEN_ENV: &str = "WASMSCHED_ADMIN_TOKEN";

/// Reads a request body: at most [`AppState::body_limit`] bytes (413) within
/// [`AppState::body_timeout`] (408).
pub async fn read_body(app: &AppState, body: Body) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(app.body_timeout, error::read_limited(body, app.body_limit)).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ([server] body_timeout)",
                wasmsched_core::units::format_duration(app.body_timeout)
            ),
        )),
    }
}

/// The W3C trace context headers of a request (see [`wasmsched_core::trace`]).
fn trace_context(headers: &axum::http::HeaderMap) -> std::collections::BTreeMap<String, String> {
    wasmsched_core::trace::context_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
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

/// Every route of the API but the api triggers', each group behind its
/// token (see [`access`]): the routes within the per-client rate limit,
/// and those outside it (health checks). [`crate::web::router`] mounts
/// them beside the dashboard, with [`api_triggers`] as the fallback.
pub fn routes(state: &AppState) -> (Router<AppState>, Router<AppState>) {
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
    (api, always)
}
