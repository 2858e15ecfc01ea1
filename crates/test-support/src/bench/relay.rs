//! Throughput through a relay event trigger from `bench.in` to
//! `bench.out`: a burst published with 64 publishes in flight, timed until
//! a trigger-kind sink (never drops; acknowledges each output as an event
//! trigger would) read every output.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::json;
use wasmsched_core::broker::{Broker, SubscriberKind, Subscription};
use wasmsched_core::{Event, Topic, TopicPattern};

/// A sink on `bench.out` named `name` (a durable consumer on JetStream).
pub async fn sink(broker: &Arc<dyn Broker>, name: String) -> Subscription {
    broker
        .subscribe(
            &TopicPattern::new("bench.out").unwrap(),
            SubscriberKind::Trigger { name },
        )
        .await
        .unwrap()
}

/// Events/s for `events` events through the relay, read from `outputs`.
pub async fn burst(broker: &Arc<dyn Broker>, outputs: &mut Subscription, events: usize) -> f64 {
    let input = Topic::new("bench.in").unwrap();
    let started = Instant::now();
    let publishing = tokio::spawn({
        let broker = broker.clone();
        async move {
            futures_util::stream::iter(0..events)
                .map(|n| {
                    let (broker, input) = (broker.clone(), input.clone());
                    async move {
                        broker
                            .publish(Event::new(input, json!({ "n": n })))
                            .await
                            .unwrap()
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<()>>()
                .await;
        }
    });
    for _ in 0..events {
        outputs
            .next()
            .await
            .expect("an output")
            .ack()
            .await
            .unwrap();
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    publishing.await.unwrap();
    rate
}
