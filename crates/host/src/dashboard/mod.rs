//! The web dashboard: server-rendered HTML pages (maud) served by
//! `wasmsched run` at `/`, meaningful before any script runs, with every
//! asset embedded in the binary (no CDN, no Node build).
//!
//! Pages: `/` (overview and triggers), `/triggers/{id}`, `/plugins`,
//! `/events` (live tail, publish), `/events/{id}` (an event a run
//! published), `/queues` (dead letters, timers, sinks),
//! `/cron?expr=...&tz=...`, `/docs` (the API reference). Actions (pause, resume, run now) are form
//! POSTs that redirect back (303), refused when they come from another
//! site (`Origin` / `Sec-Fetch-Site`).
//!
//! Access: with an admin token configured, a page asks for it once (a
//! login form) and sets an HttpOnly, SameSite=Strict cookie that proves
//! it (an HMAC of its issue time keyed by the token, valid 7 days: no
//! server-side session, so it survives restarts and works on every
//! replica sharing the token). Without a token the dashboard says it is
//! open.

mod cron;
mod docs;
mod events;
mod pages;
mod queues;
mod session;
mod timeline;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::app::AppState;
use docs::ApiDocument;

/// The stylesheet and script, embedded.
const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// The dashboard's routes (mounted beside the HTTP API's by
/// [`crate::web::router`]); `/docs` renders `api_document`.
pub fn routes(state: AppState, api_document: serde_json::Value) -> Router<AppState> {
    let document = Extension(ApiDocument(Arc::new(api_document)));
    let pages = pages()
        .into_iter()
        .fold(Router::new(), |router, (path, route)| {
            router.route(path, route)
        })
        .route_layer(from_fn_with_state(state, gate))
        .layer(document);
    open()
        .into_iter()
        .fold(Router::new().merge(pages), |router, (path, route)| {
            router.route(path, route)
        })
        .layer(axum::middleware::from_fn(no_framing))
}

/// The pages and actions, behind the login when there is an admin token.
fn pages() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/", get(pages::overview)),
        ("/triggers/{id}", get(pages::trigger)),
        ("/triggers/{id}/pause", post(pages::pause)),
        ("/triggers/{id}/resume", post(pages::resume)),
        ("/triggers/{id}/run", post(pages::run_now)),
        ("/plugins", get(pages::plugins)),
        ("/events", get(events::live)),
        ("/events/publish", post(events::publish)),
        ("/events/{id}", get(events::event)),
        ("/queues", get(queues::queues)),
        ("/queues/deadletters/{id}/replay", post(queues::replay)),
        ("/queues/deadletters/{id}/discard", post(queues::discard)),
        ("/queues/timers/{id}/cancel", post(queues::cancel_timer)),
        ("/queues/sinks/{id}/{verb}", post(queues::sink)),
        ("/docs", get(docs::reference)),
        ("/cron", get(cron::playground)),
    ]
}

/// The login and the assets, open to all.
fn open() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/login", get(session::login_form).post(session::login)),
        ("/logout", post(session::logout)),
        ("/assets/dashboard.css", get(css)),
        ("/assets/dashboard.js", get(js)),
    ]
}

/// Every path the dashboard serves (api triggers must stay clear of them).
pub fn paths() -> Vec<&'static str> {
    pages()
        .into_iter()
        .chain(open())
        .map(|(path, _)| path)
        .collect()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// Middleware: pages need the session cookie when any token is set (and
/// so an admin token to log in with). Cross-site POSTs are refused for
/// every route by the HTTP layer (`access::refuse_cross_site`).
async fn gate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if app.tokens.is_empty() {
        return next.run(request).await;
    }
    if app.tokens.admin_digest().is_none() {
        // Other tokens guard the API; the dashboard (which publishes and
        // reads too) would bypass them without a login of its own.
        let body = html! { p { "The dashboard needs an admin token to log in with: set [server] admin_token or WASMSCHED_ADMIN_TOKEN (other tokens are set, so it is not left open)." } };
        return (StatusCode::FORBIDDEN, page(&app, "Dashboard locked", body)).into_response();
    }
    if !crate::app::session::has_valid_cookie(&app.tokens, request.headers()) {
        let next = request
            .uri()
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string());
        let target = format!("/login?next={}", session::encode_component(&next));
        return Redirect::to(&target).into_response();
    }
    next.run(request).await
}

/// A whole page: header with navigation (and a log-out button when
/// tokens are set), then `body`.
fn page(app: &AppState, title: &str, body: Markup) -> Html<String> {
    shell(app, title, body, !app.tokens.is_empty())
}

fn shell(app: &AppState, title: &str, body: Markup, logout: bool) -> Html<String> {
    let open = session::is_open(app);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · wasmsched" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "wasmsched" }
                    nav aria-label="Main" {
                        a href="/" { "Triggers" }
                        a href="/plugins" { "Plugins" }
                        a href="/events" { "Events" }
                        a href="/queues" { "Queues" }
                        a href="/cron" { "Cron" }
                        a href="/docs" { "API" }
                    }
                    @if logout {
                        form.logout method="post" action="/logout" { button type="submit" { "Log out" } }
                    }
                    @if open {
                        span.badge.warn title="No [server] admin_token is set: anyone who can reach this address can use this dashboard." { "open: no admin token" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// Middleware: pages may not be framed by other sites (clickjacking).
async fn no_framing(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("x-frame-options", header::HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        header::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

/// An instant in UTC, shown in the reader's zone by the script (the
/// `datetime` attribute keeps UTC; the title shows it on hover).
fn time(instant: chrono::DateTime<chrono::Utc>) -> Markup {
    let utc = instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    html! { time datetime=(utc) title=(utc) { (instant.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// An empty state: what is missing and what to do.
fn empty(what: &str, todo: Markup) -> Markup {
    html! { p.empty { (what) ": " (todo) } }
}

/// A message for a page that failed (unknown trigger...).
fn not_found(app: &AppState, message: String) -> Response {
    let body = html! { p { (message) } p { a href="/" { "Back to the triggers" } } };
    (StatusCode::NOT_FOUND, page(app, "Not found", body)).into_response()
}

/// Marks text as already-escaped HTML (for inline SVG built by us).
fn raw(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}
