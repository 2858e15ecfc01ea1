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
