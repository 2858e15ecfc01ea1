//! Events: what flows through the broker, and what factories ask to publish.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::topic::Topic;

/// An event on the broker.
///
/// Ids are UUIDv7: unique, and sortable by creation time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique; sorts by creation time.
    pub id: Uuid,
    /// Where it was published, e.g. `logs.app.error`.
    pub topic: Topic,
    /// When it was created.
    pub time: DateTime<Utc>,
    /// Any JSON value.
    pub data: Value,
    /// Free-form metadata, e.g. `traceparent`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Event {
    /// A new event stamped with a fresh id and the current time.
    pub fn new(topic: Topic, data: Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            topic,
            time: Utc::now(),
            data,
            headers: BTreeMap::new(),
        }
    }

    /// The event with header `name` set to `value`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}

/// An event a factory asks the scheduler to publish. The scheduler gives it
/// an id and a time, and the trigger's topic unless it names its own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewEvent {
    /// Where to publish it; `None` is the trigger's topic.
    pub topic: Option<Topic>,
    /// Any JSON value.
    pub data: Value,
    /// Free-form metadata.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl NewEvent {
    /// An event for the trigger's own topic.
    pub fn new(data: Value) -> Self {
        Self {
            topic: None,
            data,
            headers: BTreeMap::new(),
        }
    }

    /// Publish to `topic` instead of the trigger's topic.
    pub fn to_topic(mut self, topic: Topic) -> Self {
        self.topic = Some(topic);
        self
    }

    /// The draft with header `name` set to `value`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Turns the draft into an event, on `default_topic` unless it names its own.
    pub fn into_event(self, default_topic: &Topic) -> Event {
        Event {
            id: Uuid::now_v7(),
            topic: self.topic.unwrap_or_else(|| default_topic.clone()),
            time: Utc::now(),
            data: self.data,
            headers: self.headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_sort_by_creation() {
        let topic = Topic::new("a.b").unwrap();
        let ids: Vec<Uuid> = (0..100)
            .map(|_| Event::new(topic.clone(), json!({})).id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let event = Event::new(Topic::new("logs.app").unwrap(), json!({"level": "ERROR"}))
            .with_header("source", "test");
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), event);
        let bad = text.replace("logs.app", "logs..app");
        assert!(serde_json::from_str::<Event>(&bad).is_err());
    }
}
