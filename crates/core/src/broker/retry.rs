//! Retries and dead letters, the same on every broker: an event a trigger
//! fails on is delivered again after a backoff, up to `max_deliver`
//! attempts; then it is a *dead letter*, kept in the state store (for
//! replay) and published to `deadletter.<trigger id>`.

use std::time::Duration;

use serde::Deserialize;

use crate::topic::{Topic, TopicPattern, safe_segment};

/// The longest wait before a retry (a day).
pub const MAX_BACKOFF_SECS: f64 = 86_400.0;

/// The first segment of every dead-letter topic.
pub const DEAD_LETTER_PREFIX: &str = "deadletter";

/// Where the events trigger `trigger_id` gave up on are published.
pub fn dead_letter_topic(trigger_id: &str) -> Topic {
    Topic::new(format!("{DEAD_LETTER_PREFIX}.{}", safe_segment(trigger_id)))
        .expect("safe segments are segments")
}

/// Does an event on `topic` reach a trigger watching `pattern`? It
/// matches, and a dead letter reaches only a pattern that names dead
/// letters (so a `**` trigger failing on one does not feed on its own).
pub fn reaches_trigger(pattern: &TopicPattern, topic: &Topic) -> bool {
    if !pattern.matches(topic) {
        return false;
    }
    let dead_letter = topic.segments().next() == Some(DEAD_LETTER_PREFIX);
    !dead_letter || pattern.literal_prefix().first() == Some(&DEAD_LETTER_PREFIX)
}

/// How often an event is tried, and how long apart (`[broker]
/// max_deliver`, `retry_backoff_secs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per event and trigger before it is a dead letter (default 5).
    pub max_deliver: u32,
    /// Wait before each retry, in seconds; the last value repeats
    /// (default 1, 5, 30).
    pub retry_backoff_secs: Vec<f64>,
    /// Wait a random half to all of each backoff, so that retries of many
    /// events do not arrive together (sinks; not set from `[broker]`).
    #[serde(skip)]
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_deliver: 5,
            retry_backoff_secs: vec![1.0, 5.0, 30.0],
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// Checks the values; the message names the `[broker]` key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_deliver == 0 {
            return Err("[broker] max_deliver = 0: an event needs at least one attempt".to_owned());
        }
        if let Some(bad) = self
            .retry_backoff_secs
            .iter()
            .find(|v| !(v.is_finite() && (0.0..=MAX_BACKOFF_SECS).contains(*v)))
        {
            return Err(format!(
                "[broker] retry_backoff_secs contains {bad}: each wait is 0 to {MAX_BACKOFF_SECS} seconds (a day)"
            ));
        }
        Ok(())
    }

    /// The wait before retrying an event that failed on its `attempt`th
    /// delivery (1 = the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let delay = self
            .retry_backoff_secs
            .get(index)
            .or(self.retry_backoff_secs.last())
            .map_or(Duration::ZERO, |s| Duration::from_secs_f64(*s));
        match self.jitter {
            true => delay.mul_f64(0.5 + fastrand::f64() / 2.0),
            false => delay,
        }
    }

    /// Is an event that failed on its `attempt`th delivery a dead letter?
    pub fn gives_up(&self, attempt: u32) -> bool {
        attempt >= self.max_deliver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_repeat_the_last_and_dead_letters_reach_only_who_asks() {
        let policy = RetryPolicy::default();
        policy.validate().unwrap();
        let delays: Vec<u64> = (1..=5).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 5, 30, 30, 30]);
        assert!(!policy.gives_up(4) && policy.gives_up(5));
        let letter = dead_letter_topic("a.b");
        assert!(letter.as_str().starts_with("deadletter.a_b_"), "{letter}");
        let everything: TopicPattern = "**".parse().unwrap();
        assert!(!reaches_trigger(&everything, &letter));
        assert!(reaches_trigger(&"deadletter.**".parse().unwrap(), &letter));
        assert!(reaches_trigger(&everything, &Topic::new("a.b").unwrap()));
        let jittered = RetryPolicy {
            jitter: true,
            ..policy
        };
        for _ in 0..100 {
            let delay = jittered.delay(3).as_secs_f64();
            assert!((15.0..=30.0).contains(&delay), "{delay}");
        }
    }
}
