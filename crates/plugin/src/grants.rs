//! What a plugin may do beyond its sandbox ([`Grants`]): outbound HTTP to
//! listed origins, a key-value store with a quota, named secrets. All are
//! denied unless granted; the host reads them from the `[plugin]` table of
//! the plugin's manifest (see `config::plugin`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use wasmsched_core::state::KvQuota;

/// Capabilities granted to one plugin. The default grants nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grants {
    /// Outbound HTTP (`wasi:http/outgoing-handler`), if granted.
    pub http: Option<HttpGrant>,
    /// The key-value store (`wasmsched:plugin/kv`) and its quota, if granted.
    pub kv: Option<KvQuota>,
    /// Secrets by name (`host.secret`); values never shown.
    pub secrets: BTreeMap<String, Secret>,
}

impl Grants {
    /// Grants outbound HTTP.
    pub fn with_http(mut self, http: HttpGrant) -> Self {
        self.http = Some(http);
        self
    }

    /// Grants a key-value store with this quota.
    pub fn with_kv(mut self, quota: KvQuota) -> Self {
        self.kv = Some(quota);
        self
    }

    /// Grants secret `name` with this value.
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), Secret(value.into()));
        self
    }

    /// What is granted, with secret names but no values (for the admin
    /// API and `wasmsched check`).
    pub fn view(&self) -> GrantsView {
        GrantsView {
            allowed_outbound_hosts: self
                .http
                .iter()
                .flat_map(|h| h.allowed.iter().map(Origin::to_string))
                .collect(),
            http_timeout_ms: self.http.as_ref().map(|h| h.timeout.as_millis() as u64),
            kv: self.kv,
            secrets: self.secrets.keys().cloned().collect(),
        }
    }
}

/// [`Grants`] as shown to users: never a secret's value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GrantsView {
    /// Origins the plugin may send HTTP requests to.
    pub allowed_outbound_hosts: Vec<String>,
    /// Time limit of one outbound request, in milliseconds.
    pub http_timeout_ms: Option<u64>,
    /// The key-value quota, if a store is granted.
    pub kv: Option<KvQuota>,
    /// Names of the granted secrets.
    pub secrets: Vec<String>,
}

/// A secret's value: shown as `***` by `Debug`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the plugin that asks for it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Outbound HTTP granted to a plugin: where to, and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpGrant {
    /// The origins requests may go to; any other is refused inside the
    /// plugin (`HTTP-request-denied`), redirects included (they are not
    /// followed by the host: a plugin that follows one makes a new request,
    /// checked like any other).
    pub allowed: Vec<Origin>,
    /// Time limit of one request, from sending it to the end of the
    /// response head (default 10 s); never longer than the plugin's
    /// `wall_timeout`. The guest may ask for less, not more.
    pub timeout: Duration,
    /// Most bytes of a request body (default 1 MiB).
    pub max_request_bytes: u64,
    /// Most bytes of a response body (default 4 MiB); a longer body fails
    /// the read with `HTTP-response-body-size`.
    pub max_response_bytes: u64,
}

impl HttpGrant {
    /// Requests to `allowed`, with the default limits.
    pub fn new(allowed: Vec<Origin>) -> Self {
        Self {
            allowed,
            timeout: Duration::from_secs(10),
            max_request_bytes: 1 << 20,
            max_response_bytes: 4 << 20,
        }
    }

    /// With this time limit per request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With these body caps, in bytes.
    pub fn with_body_caps(mut self, request: u64, response: u64) -> Self {
        self.max_request_bytes = request;
        self.max_response_bytes = response;
        self
    }

    /// Is a request to `scheme://authority` allowed?
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.allowed.iter().any(|origin| {
            origin.scheme == scheme && origin.port == port && origin.host.eq_ignore_ascii_case(host)
        })
    }
}

/// `scheme://host[:port]`: where outbound requests may go. The port
/// defaults to the scheme's (80, 443); a request must match scheme, host
/// and port exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/`
    /// is allowed; a path, query, user or wildcard is not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("`{text}` is not an origin like `https://api.example.com`: {why}");
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default =
            default_port(&scheme).ok_or_else(|| bad("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        if rest.contains(['/', '?', '#', '@', '*']) {
            return Err(bad("give only scheme, host and port"));
        }
        let authority: http::uri::Authority = rest.parse().map_err(|_| bad("invalid host"))?;
        Ok(Self {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default),
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match default_port(&self.scheme) == Some(self.port) {
            true => write!(f, "{}://{}", self.scheme, self.host),
            false => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_and_match() {
        let api = Origin::parse("https://API.example.com/").unwrap();
        assert_eq!(api.to_string(), "https://api.example.com");
        let local = Origin::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(local.to_string(), "http://127.0.0.1:9000");
        let grant = HttpGrant::new(vec![api, local]);
        assert!(grant.allows("https", "api.example.com", None));
        assert!(grant.allows("https", "api.example.com", Some(443)));
        assert!(!grant.allows("http", "api.example.com", None));
        assert!(!grant.allows("https", "api.example.com", Some(8443)));
        assert!(!grant.allows("https", "evil.example.com", None));
        assert!(grant.allows("http", "127.0.0.1", Some(9000)));
        assert!(!grant.allows("http", "127.0.0.1", None));
        for bad in [
            "api.example.com",
            "ftp://x",
            "https://",
            "https://x/path",
            "https://*.x.com",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_shown() {
        let grants = Grants::default().with_secret("TOKEN", "hunter2");
        assert!(!format!("{grants:?}").contains("hunter2"));
        let view = serde_json::to_string(&grants.view()).unwrap();
        assert!(
            view.contains("TOKEN") && !view.contains("hunter2"),
            "{view}"
        );
    }
}
