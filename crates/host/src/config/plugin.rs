//! A manifest's `[plugin]` table ([`PluginManifest`]): the limits of the
//! plugin named like the manifest (`plugins/NAME.toml` for
//! `plugins/NAME.wasm`), and what it is granted beyond the sandbox.
//!
//! ```toml
//! [plugin]
//! timeout = "100ms"          # running time per call (default: [plugins.limits])
//! wall_timeout = "10s"       # wall-clock time per call, waits included
//! memory_bytes = "64MiB"
//! allowed_outbound_hosts = ["https://chat.example.com", "http://127.0.0.1:9000"]
//! http_timeout = "5s"        # per request; default 10 s, at most wall_timeout
//! max_request_bytes = "1MiB" # default 1 MiB
//! max_response_bytes = "4MiB" # default 4 MiB
//! [plugin.kv]                # a key-value store (absent: none)
//! max_keys = 1000            # default 1 000
//! max_bytes = "1MiB"         # keys and values together; default 1 MiB
//! [plugin.secrets]           # names the plugin reads with host.secret
//! CHAT_TOKEN = { env = "CHAT_TOKEN" }
//! API_KEY = { file = "/run/secrets/api_key" }   # relative to the manifest
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use wasmsched_core::units::{deserialize_bytes, deserialize_optional_duration as duration};
use wasmsched_plugin::{Grants, HttpGrant, KvQuota, Limits, Origin, PluginError, Secret};

/// Where a secret's value comes from; never the value itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSource {
    /// An environment variable of the host.
    Env(String),
    /// A file (relative to the manifest); a trailing newline is dropped.
    File(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env {name}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// The `[plugin]` table of `plugins/NAME.toml`, for `plugins/NAME.wasm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginManifest {
    /// The plugin it is for (the manifest's file stem).
    pub plugin: String,
    /// The manifest.
    pub declared_in: PathBuf,
    timeout: Option<Duration>,
    wall_timeout: Option<Duration>,
    memory_bytes: Option<u64>,
    /// Outbound HTTP, if any origin is allowed.
    pub http: Option<HttpGrant>,
    /// The key-value quota, if a store is granted.
    pub kv: Option<KvQuota>,
    /// Secrets by name, and where each is read from.
    pub secrets: BTreeMap<String, SecretSource>,
}

impl PluginManifest {
    /// The plugin's limits: these, over `defaults` (`[plugins.limits]`).
    pub fn limits(&self, defaults: Limits) -> Limits {
        let mut limits = defaults;
        limits.timeout = self.timeout.unwrap_or(limits.timeout);
        limits.memory_bytes = self.memory_bytes.unwrap_or(limits.memory_bytes);
        limits.wall_timeout = self.wall_timeout.unwrap_or(limits.wall_timeout);
        limits
    }

    /// The grants, with each secret read from its source. Blocks (reads
    /// files): call it off the async runtime. A missing variable or
    /// unreadable file is an error naming the secret and its source,
    /// never a value.
    pub fn grants(&self) -> Result<Grants, PluginError> {
        let mut grants = Grants::default();
        grants.http = self.http.clone();
        grants.kv = self.kv;
        for (name, source) in &self.secrets {
            let failed = |message: String| PluginError::Secret {
                name: self.plugin.clone(),
                secret: name.clone(),
                source_name: source.to_string(),
                message,
            };
            let value = match source {
                SecretSource::Env(variable) => std::env::var(variable)
                    .map_err(|_| failed("the environment variable is not set".into()))?,
                SecretSource::File(path) => {
                    let base = self.declared_in.parent().unwrap_or(Path::new("."));
                    let text = std::fs::read_to_string(base.join(path))
                        .map_err(|e| failed(format!("cannot read the file: {e}")))?;
                    text.strip_suffix('\n').unwrap_or(&text).to_owned()
                }
            };
            grants.secrets.insert(name.clone(), Secret::new(value));
        }
        Ok(grants)
    }
}

/// The table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PluginTable {
    #[serde(default, deserialize_with = "duration")]
    timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    wall_timeout: Option<Duration>,
    #[serde(default, alias = "memory", deserialize_with = "optional_bytes")]
    memory_bytes: Option<u64>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default, deserialize_with = "duration")]
    http_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_bytes")]
    max_request_bytes: Option<u64>,
    #[serde(default, deserialize_with = "optional_bytes")]
    max_response_bytes: Option<u64>,
    #[serde(default)]
    kv: Option<KvTable>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KvTable {
    max_keys: Option<u64>,
    #[serde(default, deserialize_with = "optional_bytes")]
    max_bytes: Option<u64>,
}

fn optional_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    deserialize_bytes(d).map(Some)
}

impl PluginTable {
    /// Checks the table of `path` and names what is wrong.
    pub(super) fn into_manifest(self, path: &Path) -> Result<PluginManifest, String> {
        let plugin = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let allowed = self
            .allowed_outbound_hosts
            .iter()
            .map(|origin| Origin::parse(origin).map_err(|e| format!("allowed_outbound_hosts: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let http_settings = self.http_timeout.is_some()
            || self.max_request_bytes.is_some()
            || self.max_response_bytes.is_some();
        if allowed.is_empty() && http_settings {
            return Err(
                "http_timeout and the body caps need allowed_outbound_hosts (which origins \
                 the plugin may reach)"
                    .into(),
            );
        }
        let http = (!allowed.is_empty()).then(|| {
            let default = HttpGrant::new(Vec::new());
            HttpGrant::new(allowed)
                .with_timeout(self.http_timeout.unwrap_or(default.timeout))
                .with_body_caps(
                    self.max_request_bytes.unwrap_or(default.max_request_bytes),
                    self.max_response_bytes
                        .unwrap_or(default.max_response_bytes),
                )
        });
        if let Some(http) = &http
            && http.timeout.is_zero()
        {
            return Err("http_timeout must be more than 0".into());
        }
        let kv = self.kv.map(|table| {
            let default = KvQuota::default();
            KvQuota {
                max_keys: table.max_keys.unwrap_or(default.max_keys),
                max_bytes: table.max_bytes.unwrap_or(default.max_bytes),
            }
        });
        Ok(PluginManifest {
            plugin,
            declared_in: path.to_owned(),
            timeout: self.timeout,
            wall_timeout: self.wall_timeout,
            memory_bytes: self.memory_bytes,
            http,
            kv,
            secrets: self.secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PluginManifest, String> {
        let table: PluginTable = toml::from_str(text).map_err(|e| e.to_string())?;
        table.into_manifest(Path::new("/srv/plugins/chat.toml"))
    }

    #[test]
    fn a_full_table() {
        let manifest = parse(
            r#"
            timeout = "50ms"
            wall_timeout = "10s"
            allowed_outbound_hosts = ["https://chat.example.com"]
            http_timeout = "2s"
            max_response_bytes = "64KiB"
            kv = { max_keys = 10 }
            secrets = { TOKEN = { env = "CHAT_TOKEN" }, KEY = { file = "key.txt" } }
            "#,
        )
        .unwrap();
        assert_eq!(manifest.plugin, "chat");
        let limits = manifest.limits(Limits::default());
        assert_eq!(limits.timeout, Duration::from_millis(50));
        assert_eq!(limits.wall_timeout, Duration::from_secs(10));
        assert_eq!(limits.memory_bytes, Limits::default().memory_bytes);
        let http = manifest.http.as_ref().unwrap();
        assert!(http.allows("https", "chat.example.com", None));
        assert_eq!(http.timeout, Duration::from_secs(2));
        assert_eq!(http.max_response_bytes, 64 << 10);
        assert_eq!(manifest.kv.unwrap().max_keys, 10);
        assert_eq!(manifest.kv.unwrap().max_bytes, KvQuota::default().max_bytes);
        assert_eq!(
            manifest.secrets["KEY"],
            SecretSource::File("key.txt".into())
        );
    }

    #[test]
    fn mistakes_are_named() {
        let error = parse(r#"allowed_outbound_hosts = ["chat.example.com"]"#).unwrap_err();
        assert!(error.contains("allowed_outbound_hosts"), "{error}");
        let error = parse(r#"http_timeout = "1s""#).unwrap_err();
        assert!(error.contains("need allowed_outbound_hosts"), "{error}");
        let error = parse(r#"secrets = { T = { vault = "x" } }"#).unwrap_err();
        assert!(error.contains("vault"), "{error}");
        let error = parse(r#"allowed_hosts = []"#).unwrap_err();
        assert!(error.contains("allowed_hosts"), "{error}");
    }

    #[test]
    fn secrets_are_read_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("wasmsched-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("key.txt"), "s3cr3t-from-file\n").unwrap();
        let table: PluginTable =
            toml::from_str(r#"secrets = { KEY = { file = "key.txt" }, GONE = { env = "WASMSCHED_TEST_UNSET_VARIABLE" } }"#)
                .unwrap();
        let manifest = table.into_manifest(&dir.join("p.toml")).unwrap();
        let error = manifest.grants().unwrap_err().to_string();
        assert!(
            error.contains("GONE") && error.contains("not set"),
            "{error}"
        );
        let mut manifest = manifest;
        manifest.secrets.remove("GONE");
        let grants = manifest.grants().unwrap();
        assert_eq!(grants.secrets["KEY"].expose(), "s3cr3t-from-file");
        assert!(!format!("{grants:?}").contains("s3cr3t"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
