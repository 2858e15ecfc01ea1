//! Who may use which routes: each route group (admin, publish, read,
//! metrics) asks for its bearer token when one is configured.
//!
//! | group | routes | opened by |
//! |---|---|---|
//! | admin | `/api/admin/**` | the admin token |
//! | publish | `POST /api/events` | the publish token, else the admin token |
//! | read | `GET /api/events/stream`, run history, dead letters | the read token, else the admin token |
//! | metrics | `GET /metrics` | the metrics token (open without one) |
//!
//! The admin token opens every group. A group with no token to ask for is
//! open. `/healthz` and `/openapi.json` are always open; api triggers have
//! their own `auth`. Tokens are kept as SHA-256 digests and compared in
//! constant time; no token is ever logged.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::tokens::{Tokens, bearer};
use crate::app::{ApiError, AppState, session};
use crate::config::TokenKind;

/// Checks `headers` against what opens `group`.
pub fn check(tokens: &Tokens, group: TokenKind, headers: &HeaderMap) -> Result<(), Refused> {
    let openers = tokens.openers(group);
    if openers.is_empty() {
        return Ok(());
    }
    let Some(given) = bearer(headers) else {
        return Err(Refused::Missing(group, openers));
    };
    match tokens.matches(&openers, given) {
        true => Ok(()),
        false => Err(Refused::Wrong(group, openers)),
    }
}

/// Why a request was refused: no token, or one that opens nothing here.
#[derive(Debug)]
pub enum Refused {
    /// No `Authorization: Bearer` header.
    Missing(TokenKind, Vec<TokenKind>),
    /// A token that does not open the group.
    Wrong(TokenKind, Vec<TokenKind>),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (what, group, openers) = match self {
            Refused::Missing(group, openers) => {
                ("missing `Authorization: Bearer <token>`", group, openers)
            }
            Refused::Wrong(group, openers) => ("wrong bearer token", group, openers),
        };
        let names: Vec<&str> = openers.iter().map(|k| k.key()).collect();
        let message = format!(
            "{what}: {} needs the {} ([server] in wasmsched.toml)",
            group_name(group),
            names.join(" or the ")
        );
        ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
    }
}

fn group_name(group: TokenKind) -> &'static str {
    match group {
        TokenKind::Admin => "the admin API",
        TokenKind::Publish => "publishing events",
        TokenKind::Read => "reading events, run history and dead letters",
        TokenKind::Metrics => "/metrics",
    }
}

/// Middleware: lets a request through if it carries a token that opens
/// `group`; 401 (JSON, `WWW-Authenticate: Bearer`) otherwise.
pub async fn require(
    State((app, group)): State<(AppState, TokenKind)>,
    request: Request,
    next: Next,
) -> Response {
    let checked = check(&app.tokens, group, request.headers());
    // The dashboard's session (the admin token, proven once) opens the
    // event stream, for its live view.
    let by_session = request.uri().path() == "/api/events/stream"
        && session::has_valid_cookie(&app.tokens, request.headers());
    match checked {
        Ok(()) => next.run(request).await,
        Err(_) if by_session => next.run(request).await,
        Err(refused) => {
            tracing::debug!(path = %request.uri().path(), group = group.key(), "request refused: {refused:?}");
            refused.into_response()
        }
    }
}

/// Whether a POST came from a page of this host: browsers send `Origin`
/// (and `Sec-Fetch-Site`) with every form POST; a request with neither is
/// not from a browser page (curl), which is no cross-site forgery.
pub fn same_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    host.is_some() && origin_host == host
}

/// Whether `host` (a `Host` header) names this machine by a loopback name.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Middleware for every route: a request that changes something (not
/// GET/HEAD) sent by a page of another site is refused (403), and a host
/// left open on loopback (no admin token) answers only to loopback names,
/// so another site cannot reach it through DNS rebinding.
pub async fn refuse_cross_site(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let read_only = matches!(
        request.method(),
        &axum::http::Method::GET | &axum::http::Method::HEAD
    );
    if !read_only && !same_site(request.headers()) {
        let message = "refused: sent by a page of another site (Origin / Sec-Fetch-Site)";
        return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
    }
    let open_on_loopback =
        !app.tokens.has(TokenKind::Admin) && app.host.config().server.listen.ip().is_loopback();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    if open_on_loopback && host.is_some_and(|h| !is_loopback_host(h)) {
        let message = "refused: this host has no admin token and answers only to localhost names";
        return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn the_admin_token_covers_groups_without_their_own() {
        let tokens = Tokens::new([(TokenKind::Admin, "a".to_owned())]);
        for group in [TokenKind::Admin, TokenKind::Publish, TokenKind::Read] {
            assert!(check(&tokens, group, &HeaderMap::new()).is_err());
            assert!(check(&tokens, group, &with_bearer("a")).is_ok());
            assert!(check(&tokens, group, &with_bearer("b")).is_err());
        }
        // /metrics stays open without a metrics token.
        assert!(check(&tokens, TokenKind::Metrics, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn a_group_token_opens_its_group_only() {
        let tokens = Tokens::new([
            (TokenKind::Admin, "a".to_owned()),
            (TokenKind::Publish, "p".to_owned()),
            (TokenKind::Metrics, "m".to_owned()),
        ]);
        assert!(check(&tokens, TokenKind::Publish, &with_bearer("p")).is_ok());
        assert!(check(&tokens, TokenKind::Publish, &with_bearer("a")).is_ok());
        assert!(check(&tokens, TokenKind::Admin, &with_bearer("p")).is_err());
        assert!(check(&tokens, TokenKind::Read, &with_bearer("p")).is_err());
        assert!(check(&tokens, TokenKind::Metrics, &with_bearer("m")).is_ok());
        assert!(check(&tokens, TokenKind::Metrics, &HeaderMap::new()).is_err());
    }

    #[test]
    fn no_tokens_no_gate() {
        let tokens = Tokens::default();
        for group in [
            TokenKind::Admin,
            TokenKind::Publish,
            TokenKind::Read,
            TokenKind::Metrics,
        ] {
            assert!(check(&tokens, group, &HeaderMap::new()).is_ok());
        }
    }

    #[test]
    fn loopback_names() {
        for host in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "app.localhost",
            "127.0.0.1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:8080", "192.168.1.2", "localhost.evil.example"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
