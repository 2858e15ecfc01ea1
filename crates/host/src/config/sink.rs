//! One `[[sink]]` table ([`SinkConfig`]): where the events matching a
//! pattern are delivered over HTTP, and how hard to try.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use wasmsched_core::topic::TopicPattern;

/// A sink's id, what its `[[sink]]` table calls it (`ops-chat`).
///
/// Sinks run as event triggers, which share the scheduler's one id space
/// with the triggers a user declares: a sink's trigger is
/// [`SinkId::trigger_id`] (`sink:ops-chat`), and [`SinkId::of_trigger`]
/// tells a sink's trigger from a user's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SinkId(String);

impl SinkId {
    /// What a sink's trigger id starts with.
    pub const TRIGGER_PREFIX: &str = "sink:";

    /// Sink `id` (checked with the config's rules by
    /// [`SinkConfig::validate`]; an HTTP path names sinks by it too).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scheduler id of this sink's trigger: its runs, dead letters and
    /// pause are kept under it.
    pub fn trigger_id(&self) -> String {
        format!("{}{}", Self::TRIGGER_PREFIX, self.0)
    }

    /// The sink whose trigger is `trigger`, if it is a sink's.
    pub fn of_trigger(trigger: &str) -> Option<Self> {
        trigger.strip_prefix(Self::TRIGGER_PREFIX).map(Self::new)
    }
}

impl fmt::Display for SinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for SinkId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A webhook sink, as declared in `wasmsched.toml` or a manifest.
///
/// ```toml
/// [[sink]]
/// id = "ops-chat"
/// pattern = "alerts.**"
/// url = "https://chat.example.com/hooks/abc"
/// secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"   # optional: Standard Webhooks signing
/// timeout = "5s"                                      # per attempt; default 5 s
/// max_attempts = 6                                    # default 6, then a dead letter
/// backoff = ["1s", "5s", "30s", "2m"]                 # the default; the last repeats; jittered
/// max_in_flight = 4                                   # deliveries at once; default 4
/// format = "cloudevents"                              # or "wasmsched" (the default)
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique among sinks.
    pub id: SinkId,
    /// The topics delivered (`*` one segment, `**` any number).
    pub pattern: TopicPattern,
    /// Where each event is POSTed (`http://` or `https://`).
    pub url: String,
    /// Signs each delivery (Standard Webhooks) when set.
    #[serde(default)]
    pub secret: Option<SigningSecret>,
    /// How long one attempt may take.
    #[serde(
        default = "default_timeout",
        deserialize_with = "wasmsched_core::units::deserialize_duration"
    )]
    pub timeout: Duration,
    /// Attempts before the event becomes a dead letter of the sink.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The wait before each retry; the last repeats; each is jittered.
    #[serde(default = "default_backoff", deserialize_with = "durations")]
    pub backoff: Vec<Duration>,
    /// Deliveries under way at once (per replica).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// The shape of each delivery's body.
    #[serde(default)]
    pub format: SinkFormat,
    /// The file that declares it.
    #[serde(skip)]
    pub declared_in: PathBuf,
}

/// The body a sink POSTs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    /// `{"id", "topic", "time", "data", "headers"}` as `application/json`.
    #[default]
    Wasmsched,
    /// A CloudEvent in structured mode (`application/cloudevents+json`),
    /// mapped as [`wasmsched_core::cloudevent`] says.
    CloudEvents,
}

/// A Standard Webhooks signing secret (`whsec_` and base64); shown as
/// `whsec_***` in logs and debug output.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// The HMAC key: the base64 after `whsec_`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl TryFrom<String> for SigningSecret {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        use base64::Engine;
        let encoded = text.strip_prefix("whsec_").unwrap_or(&text);
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                "`secret` is not a Standard Webhooks secret (`whsec_` and base64)".to_owned()
            })?;
        if key.is_empty() {
            return Err("`secret` is empty".into());
        }
        Ok(Self { key })
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whsec_***")
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_attempts() -> u32 {
    6
}

fn default_backoff() -> Vec<Duration> {
    [1, 5, 30, 120].map(Duration::from_secs).to_vec()
}

fn default_max_in_flight() -> usize {
    4
}

fn durations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let texts: Vec<String> = Vec::deserialize(deserializer)?;
    texts
        .iter()
        .map(|t| wasmsched_core::units::parse_duration(t).map_err(serde::de::Error::custom))
        .collect()
}

impl SinkConfig {
    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        super::trigger::check_id(self.id.as_str())?;
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "`url` must start with http:// or https://: `{}`",
                self.url
            ));
        }
        if self.timeout.is_zero() {
            return Err("`timeout` must be more than 0s".into());
        }
        if self.max_attempts == 0 {
            return Err("`max_attempts` must be at least 1".into());
        }
        if self.max_in_flight == 0 {
            return Err("`max_in_flight` must be at least 1".into());
        }
        let day = Duration::from_secs_f64(wasmsched_core::broker::retry::MAX_BACKOFF_SECS);
        if self.backoff.iter().any(|b| *b > day) {
            return Err("`backoff`: each wait is at most a day (\"1d\")".into());
        }
        Ok(())
    }

    /// The retry policy of its deliveries.
    pub fn retry_policy(&self) -> wasmsched_core::broker::RetryPolicy {
        wasmsched_core::broker::RetryPolicy {
            max_deliver: self.max_attempts,
            retry_backoff_secs: self.backoff.iter().map(Duration::as_secs_f64).collect(),
            jitter: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_id_names_its_trigger_and_is_a_plain_string_in_json_and_toml() {
        let id = SinkId::new("ops-chat");
        assert_eq!(id.trigger_id(), "sink:ops-chat");
        assert_eq!(SinkId::of_trigger(&id.trigger_id()), Some(id.clone()));
        assert_eq!(SinkId::of_trigger("ops-chat"), None);
        assert_eq!(serde_json::to_value(&id).unwrap(), "ops-chat");
        let config = sink("id = \"ops-chat\"\npattern = \"a\"\nurl = \"http://x\"").unwrap();
        assert_eq!(config.id, id);
    }

    fn sink(toml: &str) -> Result<SinkConfig, String> {
        let config: SinkConfig = toml::from_str(toml).map_err(|e| e.message().to_owned())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn defaults_and_bad_values() {
        let ok =
            sink("id = \"a\"\npattern = \"alerts.**\"\nurl = \"http://127.0.0.1:1/x\"").unwrap();
        assert_eq!(
            (ok.timeout, ok.max_attempts, ok.max_in_flight),
            (Duration::from_secs(5), 6, 4)
        );
        assert_eq!(ok.backoff.len(), 4);
        let signed = sink(
            "id = \"a\"\npattern = \"a\"\nurl = \"https://x\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
        )
        .unwrap();
        assert_eq!(format!("{signed:?}").matches("whsec_***").count(), 1);
        assert!(!format!("{signed:?}").contains("MfKQ9r8"));
        let bad = |extra: &str| sink(&format!("id = \"a\"\npattern = \"a\"\n{extra}")).unwrap_err();
        assert!(bad("url = \"ftp://x\"").contains("`url`"));
        assert!(bad("url = \"http://x\"\nmax_attempts = 0").contains("`max_attempts`"));
        assert!(bad("url = \"http://x\"\nsecret = \"whsec_!!\"").contains("Standard Webhooks"));
        assert!(bad("url = \"http://x\"\nbackoff = [\"1 fortnight\"]").contains("duration"));
    }
}
