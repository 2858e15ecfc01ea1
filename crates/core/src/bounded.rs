//! Bounds on what user code (closures, plugins) hands the host, the same
//! whichever broker carries the events: the length of an error message or
//! log line, the size of one event, and the number of events one firing
//! may publish.

use std::borrow::Cow;
use std::io;

use serde::Deserialize;

use crate::event::NewEvent;

/// The longest error message or log line from user code that is kept, in
/// bytes; longer ones are cut by [`cut`].
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// At most `max` bytes of `text`, cut at a character boundary and marked
/// with the original length: `"aaaa… (16777216 bytes in all)"`.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes in all)", &text[..end], text.len()).into()
}

/// The longest error of a firing that is kept (twice
/// [`MAX_MESSAGE_BYTES`]: room for the context around a plugin's message,
/// already cut, so that its marker still gives the original length).
pub const MAX_ERROR_BYTES: usize = 2 * MAX_MESSAGE_BYTES;

/// [`cut`] to [`MAX_MESSAGE_BYTES`], owned: for what a guest says.
pub fn message(text: impl AsRef<str>) -> String {
    cut(text.as_ref(), MAX_MESSAGE_BYTES).into_owned()
}

/// [`cut`] to [`MAX_ERROR_BYTES`], owned: for any error of a factory or
/// filter (a native closure's included) in logs, `last_error` and dead
/// letters.
pub fn error(text: impl AsRef<str>) -> String {
    cut(text.as_ref(), MAX_ERROR_BYTES).into_owned()
}

/// What one event and one firing may carry (`[events]` in
/// `wasmsched.toml`). Checked before anything is published: by a factory,
/// an api trigger or `POST /api/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventLimits {
    /// The most bytes of one event: its data as JSON plus every header's
    /// name and value as JSON strings (quoted and escaped, as carried). Default 1 MiB (`max_bytes = "1MiB"`); on NATS never
    /// more than the server's `max_payload` allows.
    #[serde(deserialize_with = "crate::units::deserialize_bytes")]
    pub max_bytes: u64,
    /// The most events one firing may publish. Default 10 000.
    pub max_per_firing: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_per_firing: 10_000,
        }
    }
}

/// Why events were refused by [`EventLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// One event is larger than [`EventLimits::max_bytes`].
    #[error("event {index} is {bytes} bytes (data and headers), over the limit of {limit} bytes")]
    EventTooLarge {
        /// Its place among the firing's events, from 0.
        index: usize,
        /// Its size: data as JSON plus header names and values.
        bytes: u64,
        /// [`EventLimits::max_bytes`].
        limit: u64,
    },
    /// A firing made more events than [`EventLimits::max_per_firing`].
    #[error("{count} events in one firing, over the limit of {limit}")]
    TooManyEvents {
        /// How many it made.
        count: usize,
        /// [`EventLimits::max_per_firing`].
        limit: usize,
    },
}

impl EventLimits {
    /// Checks the events of one firing: their count, then each one's size.
    /// Returns their sizes' sum, in bytes (as [`event_bytes`] counts).
    pub fn check_firing(&self, events: &[NewEvent]) -> Result<u64, LimitError> {
        if events.len() > self.max_per_firing {
            return Err(LimitError::TooManyEvents {
                count: events.len(),
                limit: self.max_per_firing,
            });
        }
        let mut total = 0;
        for (index, event) in events.iter().enumerate() {
            total += self.check_event(index, &event.data, &event.headers)?;
        }
        Ok(total)
    }

    /// Checks one event's data and headers; returns its size in bytes.
    pub fn check_event<'a>(
        &self,
        index: usize,
        data: &serde_json::Value,
        headers: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<u64, LimitError> {
        let bytes = event_bytes(data, headers);
        if bytes > self.max_bytes {
            return Err(LimitError::EventTooLarge {
                index,
                bytes,
                limit: self.max_bytes,
            });
        }
        Ok(bytes)
    }
}

/// The size [`EventLimits::max_bytes`] measures: the data as compact JSON
/// plus every header's name and value as JSON strings (so escapes count as
/// they will be carried), counted without copying.
pub fn event_bytes<'a>(
    data: &serde_json::Value,
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> u64 {
    struct Count(u64);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing JSON to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, data);
    for (name, value) in headers {
        let _ = serde_json::to_writer(&mut count, name);
        let _ = serde_json::to_writer(&mut count, value);
    }
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cut_marks_the_original_length_at_a_char_boundary() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(10); // 20 bytes
        assert_eq!(cut(&long, 5), "éé… (20 bytes in all)");
        assert_eq!(
            message("x".repeat(MAX_MESSAGE_BYTES * 3)).len(),
            MAX_MESSAGE_BYTES + 24
        );
    }

    #[test]
    fn limits_count_data_and_headers_and_events() {
        let limits = EventLimits {
            max_bytes: 20,
            max_per_firing: 2,
        };
        let small = NewEvent::new(json!({"a": 1})).with_header("k", "v"); // 7 + 3 + 3
        assert_eq!(event_bytes(&small.data, &small.headers), 13);
        assert_eq!(limits.check_firing(&[small.clone(), small.clone()]), Ok(26));
        assert_eq!(
            limits.check_firing(&[small.clone(), small.clone(), small.clone()]),
            Err(LimitError::TooManyEvents { count: 3, limit: 2 })
        );
        let big = small.clone().with_header("big", "x".repeat(20));
        assert_eq!(
            limits.check_firing(&[small, big]),
            Err(LimitError::EventTooLarge {
                index: 1,
                bytes: 40,
                limit: 20
            })
        );
    }

    #[test]
    fn limits_parse_from_toml() {
        let limits: EventLimits = toml::from_str("max_bytes = \"2MiB\"").unwrap();
        assert_eq!(limits.max_bytes, 2 << 20);
        assert_eq!(limits.max_per_firing, 10_000);
    }
}
