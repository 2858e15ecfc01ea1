//! The dashboard's login: a form asking for the admin token once, and the
//! session cookie that proves it (signed in [`crate::app::session`]).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::shell;
use crate::app::AppState;
use crate::app::session::{COOKIE, SESSION, sign, unix_now};
use crate::config::TokenKind;

/// Whether the dashboard is open (no token configured at all).
pub fn is_open(app: &AppState) -> bool {
    app.tokens.is_empty()
}

/// Where to go after logging in: a path on this host only.
#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `next` if it is a path on this host: `/` then not `/` or `\\` (browsers
/// read `/\\evil.example` as `//evil.example`), no backslash or control
/// character anywhere; else `/`.
pub fn local_path(next: Option<String>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !matches!(n.as_bytes().get(1), Some(b'/' | b'\\'))
            && !n.chars().any(|c| c == '\\' || c.is_control())
    })
    .unwrap_or_else(|| "/".to_owned())
}

/// `GET /login`: the form.
pub async fn login_form(State(app): State<AppState>, Query(next): Query<Next>) -> Response {
    form(&app, &local_path(next.next), None).into_response()
}

fn form(app: &AppState, next: &str, error: Option<&str>) -> impl IntoResponse {
    let body = html! {
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Admin token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Log in" }
        }
        p.hint { "The token is [server] admin_token in wasmsched.toml, or WASMSCHED_ADMIN_TOKEN." }
    };
    shell(app, "Log in", body, false)
}

/// The login form's fields.
#[derive(Deserialize)]
pub struct Login {
    token: String,
    next: Option<String>,
}

/// `POST /login`: checks the token, sets the cookie, goes on.
pub async fn login(State(app): State<AppState>, Form(login): Form<Login>) -> Response {
    let next = local_path(login.next);
    let Some(key) = app.tokens.admin_digest() else {
        return Redirect::to(&next).into_response();
    };
    if !app.tokens.admits(TokenKind::Admin, &login.token) {
        tracing::warn!("dashboard login with a wrong token");
        let page = form(&app, &next, Some("Wrong token."));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let issued = unix_now();
    let secure = match app.host.config().server.tls {
        Some(_) => "; Secure",
        None => "",
    };
    let cookie = format!(
        "{COOKIE}=v1.{issued}.{}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        sign(&key, issued),
        SESSION.as_secs()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: clears the cookie.
pub async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    let cleared = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Percent-encodes a URL query component.
pub fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        for (next, wanted) in [
            ("/triggers/x?y=1", "/triggers/x?y=1"),
            ("//evil.example", "/"),
            ("/\\evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("https://evil.example", "/"),
            ("/a\\b", "/"),
        ] {
            assert_eq!(local_path(Some(next.to_owned())), wanted, "{next:?}");
        }
    }
}
