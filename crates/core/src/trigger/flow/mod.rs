//! Flow control for event triggers: which events of a key fire, and when.
//!
//! An event trigger may set, per value of a `key` (a JSON Pointer into the
//! event's data; an event without it has the empty key):
//!
//! ```toml
//! key = "/service"
//! dedupe = { window = "10m" }                     # one firing per key within the window
//! throttle = { limit = 1, period = "5m" }         # at most `limit` firings per key per period
//! debounce = { period = "30s", max_wait = "5m" }  # fire once the key is quiet (last event)
//! batch = { max_events = 100, max_wait = "10s" }  # fire with up to max_events events at once
//! concurrency = 2                                 # at most N firings per key in flight
//! ```
//!
//! Applied after the filter and before the factory, in that order. The
//! settings are a [`FlowSpec`]; what one key has seen is a
//! [`window::KeyWindow`] (kept in the state store, see `gate.rs`).

pub(crate) mod gate;
pub mod window;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::units::{deserialize_duration, format_duration};

/// One firing per key within `window`: later events of the key are
/// dropped until it has passed since the one that fired.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// How long a key stays seen.
    #[serde(deserialize_with = "deserialize_duration", serialize_with = "human")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10m"))]
    pub window: Duration,
}

/// At most `limit` firings per key in any `period` (a sliding window); the
/// rest are dropped and counted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// Firings allowed per period (at least 1).
    #[serde(deserialize_with = "crate::units::deserialize_whole")]
    pub limit: u32,
    /// The period.
    #[serde(deserialize_with = "deserialize_duration", serialize_with = "human")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10m"))]
    pub period: Duration,
}

/// Fire once a key has been quiet for `period`, with its last event; a key
/// that is never quiet fires `max_wait` after the first event it held.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debounce {
    /// The quiet time that ends a burst.
    #[serde(deserialize_with = "deserialize_duration", serialize_with = "human")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10m"))]
    pub period: Duration,
    /// The longest an event is held (at least `period`).
    #[serde(deserialize_with = "deserialize_duration", serialize_with = "human")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10m"))]
    pub max_wait: Duration,
}

/// Fire with up to `max_events` events of a key at once, or with what has
/// come `max_wait` after the first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Events per firing (1 to [`MAX_BATCH_EVENTS`]).
    #[serde(deserialize_with = "crate::units::deserialize_whole")]
    pub max_events: usize,
    /// The longest the first event of a batch waits.
    #[serde(deserialize_with = "deserialize_duration", serialize_with = "human")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "10m"))]
    pub max_wait: Duration,
}

/// The most firings of one key a trigger may have in flight.
pub const MAX_CONCURRENCY: usize = 10_000;

/// The most events one batch may hold.
pub const MAX_BATCH_EVENTS: usize = 10_000;

fn human<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*duration))
}

/// The flow control of an event trigger; the default controls nothing.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSpec {
    /// A JSON Pointer into the event's data (`/service`); `None`: one key
    /// for every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// See [`Dedupe`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<Dedupe>,
    /// See [`Throttle`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<Throttle>,
    /// See [`Debounce`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Debounce>,
    /// See [`Batch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// Firings of one key in flight at once (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

impl FlowSpec {
    /// Does it control anything?
    pub fn is_active(&self) -> bool {
        self.dedupe.is_some()
            || self.throttle.is_some()
            || self.debounce.is_some()
            || self.batch.is_some()
            || self.concurrency.is_some()
    }

    /// Does it hold events to fire them later (debounce, batch)?
    pub fn defers(&self) -> bool {
        self.debounce.is_some() || self.batch.is_some()
    }

    /// Checks the settings; the error names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(key) = &self.key {
            if !key.starts_with('/') {
                return Err(format!(
                    "`key` must be a JSON Pointer starting with `/` (e.g. \"/service\"), got \"{key}\""
                ));
            }
            if !self.is_active() {
                return Err(
                    "`key` needs one of `dedupe`, `throttle`, `debounce`, `batch`, `concurrency`"
                        .into(),
                );
            }
        }
        let positive = |name: &str, d: Duration| match d.is_zero() {
            true => Err(format!("`{name}` must be more than 0s")),
            false => Ok(()),
        };
        if let Some(dedupe) = &self.dedupe {
            positive("dedupe.window", dedupe.window)?;
        }
        if let Some(throttle) = &self.throttle {
            positive("throttle.period", throttle.period)?;
            if throttle.limit == 0 {
                return Err("`throttle.limit` must be at least 1".into());
            }
        }
        if let Some(debounce) = &self.debounce {
            positive("debounce.period", debounce.period)?;
            if debounce.max_wait < debounce.period {
                return Err(format!(
                    "`debounce.max_wait` ({}) must be at least `debounce.period` ({})",
                    format_duration(debounce.max_wait),
                    format_duration(debounce.period)
                ));
            }
        }
        if let Some(batch) = &self.batch {
            positive("batch.max_wait", batch.max_wait)?;
            if !(1..=MAX_BATCH_EVENTS).contains(&batch.max_events) {
                return Err(format!(
                    "`batch.max_events` must be 1 to {MAX_BATCH_EVENTS}, got {}",
                    batch.max_events
                ));
            }
        }
        if self.debounce.is_some() && self.batch.is_some() {
            return Err(
                "`debounce` and `batch` do not combine: debounce keeps the last event of a \
                 burst, batch keeps them all; choose one"
                    .into(),
            );
        }
        if let Some(n) = self.concurrency
            && !(1..=MAX_CONCURRENCY).contains(&n)
        {
            return Err(format!(
                "`concurrency` must be 1 to {MAX_CONCURRENCY}, got {n}"
            ));
        }
        Ok(())
    }

    /// The key of an event with `data`: the value at the pointer (a string
    /// as it is, anything else as JSON text), or `""` when absent.
    pub fn key_of(&self, data: &Value) -> String {
        let Some(pointer) = &self.key else {
            return String::new();
        };
        match data.pointer(pointer) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// What it does, in words (for `GET /api/admin/match`).
    pub fn describe(&self) -> Vec<String> {
        let per = match &self.key {
            Some(key) => format!(" per {key}"),
            None => String::new(),
        };
        let mut steps = Vec::new();
        if let Some(d) = &self.dedupe {
            steps.push(format!(
                "dedupe{per}: one firing per {}",
                format_duration(d.window)
            ));
        }
        if let Some(t) = &self.throttle {
            steps.push(format!(
                "throttle{per}: at most {} per {}, the rest dropped",
                t.limit,
                format_duration(t.period)
            ));
        }
        if let Some(d) = &self.debounce {
            steps.push(format!(
                "debounce{per}: fires after {} quiet (at most {} after the first), with the last event",
                format_duration(d.period),
                format_duration(d.max_wait)
            ));
        }
        if let Some(b) = &self.batch {
            steps.push(format!(
                "batch{per}: up to {} events, or what came within {}",
                b.max_events,
                format_duration(b.max_wait)
            ));
        }
        if let Some(n) = self.concurrency {
            steps.push(format!("concurrency{per}: at most {n} firings in flight"));
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(json: Value) -> Result<FlowSpec, String> {
        let spec: FlowSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        spec.validate().map(|()| spec)
    }

    #[test]
    fn settings_parse_and_bad_ones_name_their_key() {
        let full = spec(json!({"key": "/service", "dedupe": {"window": "10m"},
            "throttle": {"limit": 1, "period": "5m"}, "batch": {"max_events": 100, "max_wait": "10s"},
            "concurrency": 2}))
        .unwrap();
        assert_eq!(full.throttle.unwrap().period, Duration::from_secs(300));
        assert_eq!(full.describe().len(), 4);
        for (bad, key) in [
            (
                json!({"throttle": {"limit": 1, "period": "0s"}}),
                "throttle.period",
            ),
            (
                json!({"throttle": {"limit": 0, "period": "1m"}}),
                "throttle.limit",
            ),
            (
                json!({"key": "service", "throttle": {"limit": 1, "period": "1m"}}),
                "`key`",
            ),
            (json!({"key": "/service"}), "`key` needs"),
            (
                json!({"debounce": {"period": "1m", "max_wait": "30s"}}),
                "debounce.max_wait",
            ),
            (
                json!({"debounce": {"period": "1s", "max_wait": "1s"}, "batch": {"max_events": 2, "max_wait": "1s"}}),
                "do not combine",
            ),
            (
                json!({"batch": {"max_events": 0, "max_wait": "1s"}}),
                "batch.max_events",
            ),
            (json!({"concurrency": 0}), "concurrency"),
            (json!({"dedupe": {"window": "1m", "size": 3}}), "size"),
        ] {
            let error = spec(bad.clone()).unwrap_err();
            assert!(error.contains(key), "{bad}: {error}");
        }
    }

    #[test]
    fn keys_come_from_the_pointer() {
        let spec = FlowSpec {
            key: Some("/service".into()),
            ..FlowSpec::default()
        };
        assert_eq!(spec.key_of(&json!({"service": "db"})), "db");
        assert_eq!(spec.key_of(&json!({"service": 7})), "7");
        assert_eq!(spec.key_of(&json!({"other": 1})), "");
        assert_eq!(spec.key_of(&json!("text")), "");
        assert_eq!(FlowSpec::default().key_of(&json!({"service": "db"})), "");
    }
}
