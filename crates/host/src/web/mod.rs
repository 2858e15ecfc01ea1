//! The web surface a host serves: the HTTP API ([`crate::http`]) and the
//! dashboard ([`crate::dashboard`]) mounted on one router, behind the
//! guards every route shares (per-client rate limit, cross-site refusal,
//! panics answered 500), and the listener that serves it ([`serve`]:
//! connection cap, timeouts, TLS).

mod serve;
mod tls;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};

pub use serve::{open_file_limit, raise_open_file_limit, serve};

use crate::app::{ApiError, AppState};
use crate::{dashboard, http};

/// Every route a host serves: the API's groups behind their tokens, the
/// dashboard's pages, and the api triggers (the fallback).
pub fn router(state: AppState) -> Router {
    let (api, always) = http::routes(&state);
    api.merge(dashboard::routes(state.clone(), http::openapi_document()))
        .fallback(http::api_triggers)
        .layer(from_fn_with_state(state.clone(), limit_client))
        .layer(from_fn_with_state(state.clone(), http::refuse_cross_site))
        // Outside the client limit: health checks always answer.
        .merge(always)
        .method_not_allowed_fallback(method_not_allowed)
        // A handler that panics answers 500 (counted, logged) instead of
        // dropping the connection.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
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
    let message = wasmsched_core::supervise::panic_message(&panic);
    let message = wasmsched_core::supervise::caught(
        wasmsched_core::supervise::Task::Http,
        "request",
        message,
    );
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

#[cfg(test)]
mod tests {
    use crate::config::RESERVED_PATHS;
    use crate::config::TriggerConfig;
    use crate::{dashboard, http};

    /// Every path the host serves, `{param}`s filled in.
    fn served() -> Vec<String> {
        let document = http::openapi_document();
        let api = document["paths"].as_object().unwrap().keys().cloned();
        let pages = dashboard::paths().into_iter().map(str::to_owned);
        api.chain(pages)
            .map(|path| {
                let segments = path.split('/').map(|s| match s.starts_with('{') {
                    true => "x",
                    false => s,
                });
                segments.collect::<Vec<_>>().join("/")
            })
            .collect()
    }

    /// An api trigger can never take a path the API or the dashboard
    /// serves (`/` aside: it is only the overview), and every reserved
    /// prefix is one the host serves.
    #[test]
    fn reserved_paths_are_the_routers_paths() {
        let served = served();
        // `/` is only the overview; `/api/triggers/...` is the api
        // triggers' own.
        let host_routes = served
            .iter()
            .filter(|p| *p != "/" && !p.starts_with("/api/triggers/"));
        for path in host_routes {
            let table = serde_json::json!({"id": "a", "kind": "api", "topic": "t", "path": path});
            assert!(
                TriggerConfig::from_json(table).is_err(),
                "an api trigger may take `{path}`, which the host serves"
            );
        }
        for reserved in RESERVED_PATHS {
            assert!(
                served
                    .iter()
                    .any(|p| p == reserved || p.starts_with(&format!("{reserved}/"))),
                "`{reserved}` is reserved but nothing is served under it"
            );
        }
    }
}
