//! The `[server]` table: where the HTTP API listens, who may use which
//! routes, how connections are bounded, and TLS.
//!
//! ```toml
//! [server]
//! listen = "0.0.0.0:8443"
//! admin_token = { env = "WASMSCHED_ADMIN_TOKEN" }   # or { file = "..." }, or a string
//! publish_token = { file = "/etc/wasmsched/publish-token" }
//! read_token = { file = "/etc/wasmsched/read-token" }
//! metrics_token = { env = "METRICS_TOKEN" }
//! max_connections = 10000     # default 10 000 (fewer if the open-file limit is lower)
//! header_timeout = "10s"      # a request's headers must arrive within (default 10 s)
//! idle_timeout = "60s"        # an idle keep-alive connection is closed after (default 60 s)
//! body_timeout = "30s"        # a request's body must arrive within (default 30 s)
//! rate_limit_per_client = "100/s"   # per client address (default: none)
//! shutdown_grace = "30s"      # on SIGTERM, firings in flight may finish within (default 30 s)
//! tls_cert = "cert.pem"       # PEM, relative to this file; reloaded when it changes
//! tls_key = "key.pem"
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use wasmsched_core::units::Rate;

/// Environment variables that set each token (over the config file).
pub const TOKEN_ENV: [(TokenKind, &str); 4] = [
    (TokenKind::Admin, "WASMSCHED_ADMIN_TOKEN"),
    (TokenKind::Publish, "WASMSCHED_PUBLISH_TOKEN"),
    (TokenKind::Read, "WASMSCHED_READ_TOKEN"),
    (TokenKind::Metrics, "WASMSCHED_METRICS_TOKEN"),
];

/// Default for [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default for [`ServerConfig::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default for [`ServerConfig::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ServerConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`ServerConfig::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The routes a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `/api/admin/**`: every route; the admin token opens the others too.
    Admin,
    /// `POST /api/events`.
    Publish,
    /// `/api/events/stream`, run history, dead letters.
    Read,
    /// `/metrics`.
    Metrics,
}

impl TokenKind {
    /// The key in `[server]`.
    pub fn key(self) -> &'static str {
        match self {
            TokenKind::Admin => "admin_token",
            TokenKind::Publish => "publish_token",
            TokenKind::Read => "read_token",
            TokenKind::Metrics => "metrics_token",
        }
    }
}

/// Where a token is read from: the value itself, an environment variable,
/// or a file (relative to the config file; a trailing newline is dropped).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TokenSource {
    /// Written in the file.
    Value(String),
    /// `{ env = "NAME" }`.
    Env {
        /// The variable.
        env: String,
    },
    /// `{ file = "path" }`.
    File {
        /// The file.
        file: PathBuf,
    },
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Value(_) => f.write_str("Value(***)"),
            TokenSource::Env { env } => write!(f, "Env({env})"),
            TokenSource::File { file } => write!(f, "File({})", file.display()),
        }
    }
}

/// The `[server]` table, defaults applied.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where the HTTP API listens (default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Each token's source, as configured (the environment overrides it:
    /// [`TOKEN_ENV`]).
    pub tokens: Vec<(TokenKind, TokenSource)>,
    /// Listen beyond loopback with no admin token (`--allow-unauthenticated`).
    pub allow_unauthenticated: bool,
    /// Connections served at once; past it the idlest is closed.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, from the
    /// connection's start or the request's first byte.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive (408 past it).
    pub body_timeout: Duration,
    /// Requests per client address, across every route but `/healthz`.
    pub rate_limit_per_client: Option<Rate>,
    /// Certificate chain and private key (PEM) to serve HTTPS with.
    pub tls: Option<TlsFiles>,
    /// On SIGTERM or Ctrl-C, how long firings in flight may take to
    /// finish; past it the host exits non-zero, naming what was still
    /// stopping.
    pub shutdown_grace: Duration,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    listen: Option<SocketAddr>,
    admin_token: Option<TokenSource>,
    publish_token: Option<TokenSource>,
    read_token: Option<TokenSource>,
    metrics_token: Option<TokenSource>,
    #[serde(default)]
    allow_unauthenticated: bool,
    max_connections: Option<usize>,
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_duration"
    )]
    header_timeout: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_duration"
    )]
    idle_timeout: Option<Duration>,
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_duration"
    )]
    body_timeout: Option<Duration>,
    rate_limit_per_client: Option<Rate>,
    #[serde(
        default,
        deserialize_with = "wasmsched_core::units::deserialize_optional_duration"
    )]
    shutdown_grace: Option<Duration>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl ServerSection {
    /// Applies defaults; paths are resolved against `base` (the config
    /// file's directory). Errors name the key.
    pub(super) fn resolve(self, base: &Path) -> Result<ServerConfig, String> {
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: base.join(cert),
                key: base.join(key),
            }),
            (None, None) => None,
            _ => return Err("[server] needs both `tls_cert` and `tls_key`, or neither".into()),
        };
        if self.max_connections == Some(0) {
            return Err("[server] max_connections must be at least 1".into());
        }
        for (key, value) in [
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if value.is_some_and(|d| d.is_zero()) {
                return Err(format!("[server] {key} must be more than zero"));
            }
        }
        let tokens = [
            (TokenKind::Admin, self.admin_token),
            (TokenKind::Publish, self.publish_token),
            (TokenKind::Read, self.read_token),
            (TokenKind::Metrics, self.metrics_token),
        ]
        .into_iter()
        .filter_map(|(kind, source)| {
            let source = match source? {
                TokenSource::File { file } => TokenSource::File {
                    file: base.join(file),
                },
                other => other,
            };
            Some((kind, source))
        })
        .collect();
        Ok(ServerConfig {
            listen: self
                .listen
                .unwrap_or_else(|| super::DEFAULT_LISTEN.parse().expect("valid default")),
            tokens,
            allow_unauthenticated: self.allow_unauthenticated,
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            header_timeout: self.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT),
            idle_timeout: self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            body_timeout: self.body_timeout.unwrap_or(DEFAULT_BODY_TIMEOUT),
            rate_limit_per_client: self.rate_limit_per_client,
            tls,
            shutdown_grace: self.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        })
    }
}

impl ServerConfig {
    /// Each configured token's value: from its environment variable in
    /// [`TOKEN_ENV`] if set, else from the config. Reads files: call it off
    /// the async runtime. An unset variable, an unreadable file or an empty
    /// token is an error naming the key and the source, never the value.
    pub fn read_tokens(&self) -> Result<Vec<(TokenKind, String)>, String> {
        let mut tokens = Vec::new();
        for (kind, variable) in TOKEN_ENV {
            let from_env = std::env::var(variable).ok().filter(|t| !t.is_empty());
            let configured = self.tokens.iter().find(|(k, _)| *k == kind);
            let value = match (from_env, configured) {
                (Some(value), _) => value,
                (None, None) => continue,
                (None, Some((_, source))) => read_token(kind, source)?,
            };
            tokens.push((kind, value));
        }
        Ok(tokens)
    }
}

fn read_token(kind: TokenKind, source: &TokenSource) -> Result<String, String> {
    let key = kind.key();
    let value = match source {
        TokenSource::Value(value) => value.clone(),
        TokenSource::Env { env } => std::env::var(env)
            .map_err(|_| format!("[server] {key}: the environment variable {env} is not set"))?,
        TokenSource::File { file } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("[server] {key}: cannot read {}: {e}", file.display()))?;
            text.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    if value.is_empty() {
        return Err(format!("[server] {key} is empty"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> Result<ServerConfig, String> {
        let section: ServerSection = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        section.resolve(Path::new("/etc/wasmsched"))
    }

    #[test]
    fn defaults_and_sources() {
        let config = section(
            r#"
            admin_token = "s3cret"
            read_token = { file = "read-token" }
            metrics_token = { env = "SOME_VAR" }
            "#,
        )
        .unwrap();
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(config.header_timeout, DEFAULT_HEADER_TIMEOUT);
        assert!(config.tls.is_none());
        let read = &config
            .tokens
            .iter()
            .find(|(k, _)| *k == TokenKind::Read)
            .unwrap()
            .1;
        assert_eq!(
            read,
            &TokenSource::File {
                file: "/etc/wasmsched/read-token".into()
            }
        );
        // A token's value never shows in debug output.
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn bad_tables_name_the_key() {
        for (text, wanted) in [
            ("tls_cert = \"c.pem\"", "tls_key"),
            ("max_connections = 0", "max_connections"),
            ("header_timeout = \"0s\"", "header_timeout"),
            ("rate_limit_per_client = \"lots\"", "invalid rate"),
        ] {
            let error = section(text).unwrap_err();
            assert!(error.contains(wanted), "{text}: {error}");
        }
    }
}
