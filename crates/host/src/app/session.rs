//! The dashboard's session cookie (`v1.<issued, unix seconds>.<hex HMAC>`,
//! keyed by the admin token's digest: changing the token ends every
//! session): signed at login by the dashboard, and accepted by the API for
//! the event stream the dashboard's live view reads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::tokens::{Tokens, same_secret};

pub(crate) const COOKIE: &str = "wasmsched_session";
/// How long a login lasts.
pub(crate) const SESSION: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn sign(key: &[u8; 32], issued: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("wasmsched dashboard session {issued}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether the request carries a session cookie signed with the current
/// admin token, issued less than [`SESSION`] ago (false with no admin
/// token: there is no session to prove).
pub fn has_valid_cookie(tokens: &Tokens, headers: &HeaderMap) -> bool {
    let Some(key) = tokens.admin_digest() else {
        return false;
    };
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        });
    let now = unix_now();
    cookies.into_iter().any(|value| {
        let mut parts = value.splitn(3, '.');
        let (Some("v1"), Some(issued), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(issued) = issued.parse::<u64>() else {
            return false;
        };
        let fresh = now.saturating_sub(issued) < SESSION.as_secs();
        fresh && same_secret(mac, &sign(&key, issued))
    })
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
