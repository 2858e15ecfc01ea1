//! A plugin slot bound to a trigger, as the [`Factory`] and [`Filter`] ports
//! the scheduler calls; and the conversions between the crate's events and
//! firings and the WIT records.
//!
//! Each call waits for its trigger's turn (see `admission.rs`), then runs
//! the version current in the slot when it starts (see
//! [`super::PluginSlot`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::SecondsFormat;

use super::admission::Lane;
use super::bindings::wit;
use super::{CallError, PluginSlot};
use wasmsched_core::event::{Event, NewEvent};
use wasmsched_core::firing::{BoxError, Factory, Filter, Firing};
use wasmsched_core::topic::Topic;
use wasmsched_core::trigger::TriggerKind;

/// A plugin slot bound to one trigger: what its factory and filter call.
pub(crate) struct Bound {
    pub(crate) slot: Arc<PluginSlot>,
    pub(crate) trigger: Arc<str>,
    /// The trigger's `[trigger.config]`, read through `host.config`.
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// The trigger's way past the concurrency limits (see `admission.rs`).
    pub(crate) lane: Lane,
}

/// A plugin's `make-events`, for one trigger.
pub(crate) struct PluginFactory(pub(crate) Bound);

#[async_trait]
impl Factory for PluginFactory {
    async fn make_events(&self, firing: &Firing) -> Result<Vec<NewEvent>, BoxError> {
        let bound = &self.0;
        let _admitted = bound.lane.admit().await;
        let plugin = bound.slot.current();
        Ok(plugin
            .make_events(&bound.trigger, &bound.config, firing)
            .await?)
    }

    fn plugin(&self) -> Option<String> {
        Some(self.0.slot.current().name().to_owned())
    }

    fn is_timeout(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        is_timeout(error)
    }
}

/// A plugin's `accept`, for one trigger.
pub(crate) struct PluginFilter(pub(crate) Bound);

#[async_trait]
impl Filter for PluginFilter {
    async fn accept(&self, event: &Event) -> Result<bool, BoxError> {
        let bound = &self.0;
        let _admitted = bound.lane.admit().await;
        let plugin = bound.slot.current();
        Ok(plugin.accept(&bound.trigger, &bound.config, event).await?)
    }

    fn plugin(&self) -> Option<String> {
        Some(self.0.slot.current().name().to_owned())
    }
}

fn time(instant: &chrono::DateTime<chrono::Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn headers_to_wit(headers: &BTreeMap<String, String>) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

pub(crate) fn event_to_wit(event: &Event) -> wit::Event {
    wit::Event {
        id: event.id.to_string(),
        topic: event.topic.to_string(),
        time: time(&event.time),
        data: event.data.to_string(),
        headers: headers_to_wit(&event.headers),
    }
}

pub(crate) fn firing_to_wit(firing: &Firing) -> wit::Firing {
    wit::Firing {
        trigger_id: firing.trigger_id.clone(),
        kind: match firing.kind() {
            TriggerKind::Cron => wit::TriggerKind::Cron,
            TriggerKind::Api => wit::TriggerKind::Api,
            TriggerKind::Event => wit::TriggerKind::Event,
        },
        instant: time(&firing.instant),
        payload: firing.payload().map(|p| p.to_string()),
        source: firing.source().map(event_to_wit),
        batch: firing
            .batch()
            .map(|events| events.iter().map(event_to_wit).collect()),
    }
}

/// The events a factory returned, checked: JSON data, valid topics. A
/// header name given twice keeps its last value.
pub(crate) fn new_events_from_wit(events: Vec<wit::NewEvent>) -> Result<Vec<NewEvent>, String> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let topic = match event.topic {
                Some(topic) => Some(
                    Topic::new(topic.clone())
                        .map_err(|e| format!("event {i}: invalid topic `{topic}`: {e}"))?,
                ),
                None => None,
            };
            let data = serde_json::from_str(&event.data)
                .map_err(|e| format!("event {i}: data is not valid JSON: {e}"))?;
            Ok(NewEvent {
                topic,
                data,
                headers: event.headers.into_iter().collect(),
            })
        })
        .collect()
}

/// Did a plugin call fail by running out of time?
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<CallError>(),
        Some(CallError::Timeout { .. } | CallError::WallTimeout { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_convert_both_ways() {
        let event = Event::new(Topic::new("logs.app").unwrap(), json!({"level": "ERROR"}))
            .with_header("source", "test");
        let wit = event_to_wit(&event);
        assert_eq!(wit.topic, "logs.app");
        assert_eq!(wit.data, r#"{"level":"ERROR"}"#);
        assert_eq!(wit.headers, [("source".to_owned(), "test".to_owned())]);
        assert!(wit.time.ends_with('Z'), "{}", wit.time);
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(&wit.time).unwrap(),
            event.time
        );

        let drafts = vec![
            wit::NewEvent {
                topic: None,
                data: "[1,2]".into(),
                headers: vec![("a".into(), "1".into())],
            },
            wit::NewEvent {
                topic: Some("alerts.critical".into()),
                data: "{}".into(),
                headers: vec![],
            },
        ];
        let events = new_events_from_wit(drafts).unwrap();
        assert_eq!(events[0].data, json!([1, 2]));
        assert_eq!(events[0].headers["a"], "1");
        assert_eq!(
            events[1].topic.as_ref().unwrap().as_str(),
            "alerts.critical"
        );
    }

    #[test]
    fn bad_data_is_named() {
        let bad_json = wit::NewEvent {
            topic: None,
            data: "not json".into(),
            headers: vec![],
        };
        let err = new_events_from_wit(vec![bad_json]).unwrap_err();
        assert!(err.starts_with("event 0: data is not valid JSON"), "{err}");
        let bad_topic = wit::NewEvent {
            topic: Some("a..b".into()),
            data: "1".into(),
            headers: vec![],
        };
        let err = new_events_from_wit(vec![bad_topic]).unwrap_err();
        assert!(err.starts_with("event 0: invalid topic `a..b`"), "{err}");
    }
}
