//! Operations endpoints: `/healthz` and `/openapi.json` (`/metrics` is
//! [`super::metrics`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use wasmsched_core::broker::BrokerHealth;

/// The host's health.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// The broker's connection.
    pub broker: BrokerHealth,
    /// Plugins loaded.
    pub plugins: usize,
    /// `ok`, or `degraded` while the broker is unreachable.
    #[schema(pattern = "^(ok|degraded)$")]
    pub status: &'static str,
    /// Triggers registered.
    pub triggers: usize,
    /// Cron triggers still starting: reading their last fire from the
    /// state store, claiming their first instant, catching up what they
    /// missed. A host with 100 000 of them answers before they are all
    /// started; it is settled once this is 0.
    pub starting: usize,
    /// The broker is connected and no trigger is still starting: what a
    /// readiness probe should wait for.
    pub ready: bool,
}

/// Health, including the broker connection
///
/// 200 `"ok"`, or 503 `"degraded"` while the broker is unreachable (the
/// host keeps running and reconnects). `ready` is `false` while cron
/// triggers are still starting (`starting` says how many): a host with
/// many triggers answers before it has started them all. Always open, and
/// outside the per-client rate limit.
#[utoipa::path(get, path = "/healthz",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Degraded: the broker is unreachable", body = Health),
    ))]
pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let triggers = app.host.triggers();
    let broker = app.host.broker().health();
    let (status, code) = match broker.connected {
        true => ("ok", StatusCode::OK),
        false => ("degraded", StatusCode::SERVICE_UNAVAILABLE),
    };
    let starting = triggers.starting();
    let body = Health {
        ready: broker.connected && starting == 0,
        broker,
        plugins: app.host.plugins().list().len(),
        status,
        triggers: triggers.count(),
        starting,
    };
    (code, Json(body))
}

/// This document
///
/// The OpenAPI document of the HTTP API (the dashboard's `/docs` renders
/// it), as this host serves it: a route asks for the tokens configured
/// that open it, and one that none guards is open. Always open.
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi(State(app): State<AppState>) -> Json<Value> {
    Json(super::openapi::served_document(&app.tokens))
}
