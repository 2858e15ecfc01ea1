//! The bearer tokens a host is configured with (`[server]`), kept as
//! SHA-256 digests and compared in constant time; which tokens open which
//! route group. No token is ever logged.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::TokenKind;

/// The configured tokens, as digests.
#[derive(Clone, Default)]
pub struct Tokens(HashMap<TokenKind, [u8; 32]>);

impl Tokens {
    /// Tokens from their values (see [`crate::config::ServerConfig::read_tokens`]).
    pub fn new(tokens: impl IntoIterator<Item = (TokenKind, String)>) -> Self {
        Self(
            tokens
                .into_iter()
                .map(|(kind, value)| (kind, digest(&value)))
                .collect(),
        )
    }

    /// Whether no token at all is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a token of `kind` is configured.
    pub fn has(&self, kind: TokenKind) -> bool {
        self.0.contains_key(&kind)
    }

    /// The tokens that open `group` (none: it is open).
    pub fn openers(&self, group: TokenKind) -> Vec<TokenKind> {
        // Without a metrics token, /metrics stays open for scrapers.
        if group == TokenKind::Metrics && !self.has(TokenKind::Metrics) {
            return Vec::new();
        }
        opened_by(group)
            .into_iter()
            .filter(|k| self.has(*k))
            .collect()
    }

    /// The admin token's digest: the key the dashboard signs its session
    /// cookie with.
    pub(crate) fn admin_digest(&self) -> Option<[u8; 32]> {
        self.0.get(&TokenKind::Admin).copied()
    }

    /// Whether `token` opens `group`.
    pub fn admits(&self, group: TokenKind, token: &str) -> bool {
        let openers = self.openers(group);
        openers.is_empty() || self.matches(&openers, token)
    }

    pub(crate) fn matches(&self, openers: &[TokenKind], given: &str) -> bool {
        let given = digest(given);
        // Every opener is compared, so the time taken does not say which.
        let matched = openers.iter().fold(subtle::Choice::from(0), |any, kind| {
            any | given.ct_eq(&self.0[kind])
        });
        bool::from(matched)
    }
}

/// The tokens that open `group` when they are configured: its own token
/// and the admin token.
pub fn opened_by(group: TokenKind) -> Vec<TokenKind> {
    match group {
        TokenKind::Admin => vec![TokenKind::Admin],
        own => vec![own, TokenKind::Admin],
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The token of `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Whether two secrets are equal, in time that depends on neither.
pub fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(digest(given).ct_eq(&digest(expected)))
}
