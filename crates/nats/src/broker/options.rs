//! `[broker] kind = "nats"`: where the server is and how the stream and
//! the trigger consumers are set up.

use std::time::Duration;

use serde::Deserialize;

use wasmsched_core::broker::RetryPolicy;

/// The settings of the NATS JetStream broker, with their defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsOptions {
    /// The server, e.g. `nats://127.0.0.1:4222` (several: comma-separated).
    pub url: String,
    /// The JetStream stream holding the events (created if missing).
    pub stream: String,
    /// Topic `a.b` is the subject `<subject_prefix>.a.b`.
    pub subject_prefix: String,
    /// How long the stream remembers a publish key: replicas firing the
    /// same cron instant within it publish once.
    pub duplicate_window_secs: f64,
    /// How long the stream keeps an event.
    pub max_age_secs: f64,
    /// How long a replica may hold an event unacknowledged before it is
    /// delivered again (to any replica): the time a crashed replica's
    /// events wait.
    pub ack_wait_secs: f64,
    /// Attempts per event and trigger before it goes to
    /// `deadletter.<trigger id>`.
    pub max_deliver: u32,
    /// Wait before each retry after a failure; the last value repeats.
    pub retry_backoff_secs: Vec<f64>,
    /// Events one event trigger handles at once on one replica, so that
    /// waiting for JetStream to store its output overlaps; 1 handles them
    /// one by one, in stream order.
    pub in_flight_per_trigger: usize,
    /// Copies JetStream keeps of every stream, consumer and key-value
    /// bucket wasmsched creates (1, 3 or 5; more than 1 needs a NATS
    /// cluster of at least that many servers): with 3, any one server can
    /// die without losing an event or a state record.
    pub replicas: usize,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "WASMSCHED".to_owned(),
            subject_prefix: "ev".to_owned(),
            duplicate_window_secs: 120.0,
            max_age_secs: 7.0 * 24.0 * 3600.0,
            ack_wait_secs: 30.0,
            max_deliver: RetryPolicy::default().max_deliver,
            retry_backoff_secs: RetryPolicy::default().retry_backoff_secs,
            in_flight_per_trigger: 16,
            replicas: 1,
        }
    }
}

impl NatsOptions {
    /// Checks values the server would refuse or misread; the message names
    /// the `[broker]` key.
    pub fn validate(&self) -> Result<(), String> {
        if self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        {
            return Err(format!(
                "[broker] stream = {:?}: a stream name is non-empty, without spaces, `.`, `*`, `>`, `/` or `\\`",
                self.stream
            ));
        }
        let positive = [
            ("duplicate_window_secs", self.duplicate_window_secs),
            ("max_age_secs", self.max_age_secs),
            ("ack_wait_secs", self.ack_wait_secs),
        ];
        let most = wasmsched_core::units::MAX_DURATION.as_secs_f64();
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0 && value <= most) {
                return Err(format!(
                    "[broker] {key} = {value}: must be a positive number of seconds, at most {most} (100 years)"
                ));
            }
        }
        if self.duplicate_window_secs > self.max_age_secs {
            return Err(format!(
                "[broker] duplicate_window_secs = {} is longer than max_age_secs = {}: the stream would forget events it still deduplicates",
                self.duplicate_window_secs, self.max_age_secs
            ));
        }
        if self.in_flight_per_trigger == 0 {
            return Err("[broker] in_flight_per_trigger = 0: a trigger handles at least one event at a time".to_owned());
        }
        if ![1, 3, 5].contains(&self.replicas) {
            return Err(format!(
                "[broker] replicas = {}: use 1, 3 or 5 (an odd count keeps a majority when a server dies)",
                self.replicas
            ));
        }
        self.retry_policy().validate()?;
        Ok(())
    }

    /// `duplicate_window_secs` as a duration.
    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs_f64(self.duplicate_window_secs)
    }

    /// `max_age_secs` as a duration.
    pub fn max_age(&self) -> Duration {
        Duration::from_secs_f64(self.max_age_secs)
    }

    /// `ack_wait_secs` as a duration.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs_f64(self.ack_wait_secs)
    }

    /// `max_deliver` and `retry_backoff_secs`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_deliver: self.max_deliver,
            retry_backoff_secs: self.retry_backoff_secs.clone(),
            jitter: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_retry_like_the_memory_broker() {
        let options = NatsOptions::default();
        options.validate().unwrap();
        assert_eq!(options.retry_policy(), RetryPolicy::default());
        let none = NatsOptions {
            retry_backoff_secs: vec![],
            ..options
        };
        assert_eq!(none.retry_policy().delay(3), Duration::ZERO);
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |options: NatsOptions| options.validate().unwrap_err();
        let base = NatsOptions::default();
        assert!(
            bad(NatsOptions {
                stream: "a.b".into(),
                ..base.clone()
            })
            .contains("stream")
        );
        assert!(
            bad(NatsOptions {
                ack_wait_secs: 0.0,
                ..base.clone()
            })
            .contains("ack_wait_secs")
        );
        assert!(
            bad(NatsOptions {
                duplicate_window_secs: 1e9,
                ..base.clone()
            })
            .contains("duplicate_window_secs")
        );
        assert!(
            bad(NatsOptions {
                max_deliver: 0,
                ..base.clone()
            })
            .contains("max_deliver")
        );
        assert!(
            bad(NatsOptions {
                retry_backoff_secs: vec![-1.0],
                ..base
            })
            .contains("retry_backoff_secs")
        );
    }
}
