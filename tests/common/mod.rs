//! Helpers shared by the integration tests (each test binary includes this
//! module and uses a part of it).
#![allow(dead_code)]

use std::time::Duration;

use wasmsched::broker::{Broker, SubscriberKind, Subscription};
use wasmsched::{Event, TopicPattern};

/// Watches `pattern` on `broker` as an observer (never slows publishers).
pub async fn observe(broker: &(impl Broker + ?Sized), pattern: &str) -> Subscription {
    broker
        .subscribe(
            &TopicPattern::new(pattern).unwrap(),
            SubscriberKind::Observer,
        )
        .await
        .unwrap()
}

/// The next event on `sub`, failing the test if none arrives `within`.
pub async fn next_event_within(sub: &mut Subscription, within: Duration) -> Event {
    tokio::time::timeout(within, sub.next())
        .await
        .expect("no event arrived")
        .expect("subscription closed")
        .event
}
#[cfg(feature = "cli")]
pub mod http;
#[cfg(feature = "cli")]
pub mod nats_cluster;
#[cfg(feature = "cli")]
pub mod nats_server;
#[cfg(feature = "cli")]
pub mod replica;

/// Why `event` is not a CloudEvent in the JSON format, checked against the
/// schema in `tests/data/cloudevents.schema.json` (formats included); empty
/// when it is one.
#[cfg(feature = "cli")]
pub fn cloudevent_errors(event: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../data/cloudevents.schema.json")).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}
