//! Events/s through an event trigger with flow control vs the same trigger
//! without, on the memory broker (SQLite state store) and on JetStream,
//! same run.
//!
//! Run: `cargo bench --bench flow` (needs `nats-server`: `apt-get install
//! nats-server`; the bench starts its own on a free port).
//!
//! Workload: an event trigger on `bench.in.**` without a plugin (it
//! republishes what it fires for), fed `N` events from 10 services, all
//! published at once; events/s = N / (first publish -> the trigger has
//! decided about every event). Contenders, per broker:
//! - plain: no flow control (fires N times);
//! - throttled: `key = "/service"`, `throttle = { limit = 1, period = "1h" }`
//!   (fires 10 times, drops the rest);
//! - batched: `batch = { max_events = 100, max_wait = "10s" }` (fires N/100
//!   times).
//!
//! Every event under flow control reads and writes its key's window in the
//! state store before it is acknowledged: that write is what is measured
//! against the plain trigger. 3 rounds alternating; medians.

use wasmsched_test_support::nats_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmsched::broker::{Broker, MemoryBroker, NatsBroker, NatsOptions};
use wasmsched::state::nats::NatsStore;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{Retention, StateStore};
use wasmsched::trigger::flow::{Batch, FlowSpec, Throttle};
use wasmsched::{Event, EventTrigger, Scheduler, Topic, Trigger};

const ROUNDS: usize = 3;

fn main() {
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(run());
}

fn contenders() -> [(&'static str, FlowSpec); 3] {
    let throttled = FlowSpec {
        key: Some("/service".into()),
        throttle: Some(Throttle {
            limit: 1,
            period: Duration::from_secs(3600),
        }),
        ..FlowSpec::default()
    };
    let batched = FlowSpec {
        batch: Some(Batch {
            max_events: 100,
            max_wait: Duration::from_secs(10),
        }),
        ..FlowSpec::default()
    };
    [
        ("plain", FlowSpec::default()),
        ("throttled", throttled),
        ("batched", batched),
    ]
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let server = nats_server::NatsServer::start();
    println!("events/s through an event trigger, median of {ROUNDS} rounds");
    println!("{:<26} {:>12} {:>10}", "", "events/s", "vs plain");
    for broker_kind in ["memory", "jetstream"] {
        let n = if broker_kind == "memory" {
            5_000
        } else {
            2_000
        };
        let mut samples: [Vec<f64>; 3] = Default::default();
        for round in 0..ROUNDS {
            for (i, (name, flow)) in contenders().into_iter().enumerate() {
                let id = format!("{name}-{round}");
                let rate = match broker_kind {
                    "memory" => {
                        let path = dir.path().join(format!("{id}.db"));
                        let store = SqliteStore::open(&path, Retention::default())
                            .await
                            .unwrap();
                        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
                        measure(broker, Arc::new(store), flow, &id, n).await
                    }
                    _ => {
                        let options = NatsOptions {
                            url: server.url(),
                            ..NatsOptions::default()
                        };
                        let broker = NatsBroker::connect(options).await.unwrap();
                        let jetstream = broker.jetstream();
                        let store = NatsStore::open(jetstream, "WASMSCHED", Retention::default())
                            .await
                            .unwrap();
                        measure(Arc::new(broker), Arc::new(store), flow, &id, n).await
                    }
                };
                samples[i].push(rate);
            }
        }
        let plain = median(&mut samples[0].clone());
        for ((name, _), rates) in contenders().iter().zip(samples.iter_mut()) {
            let rate = median(rates);
            println!(
                "{:<26} {:>12.0} {:>9.2}x",
                format!("{broker_kind}, {name} ({n})"),
                rate,
                rate / plain
            );
        }
    }
}

/// Events/s for `n` events through trigger `id` under `flow` (its own
/// topics: contenders share one JetStream stream).
async fn measure(
    broker: Arc<dyn Broker>,
    store: Arc<dyn StateStore>,
    flow: FlowSpec,
    id: &str,
    n: usize,
) -> f64 {
    let scheduler = Scheduler::new(broker.clone()).with_state(store);
    let source = format!("bench.{id}.in.**").parse().unwrap();
    let trigger = Arc::new(EventTrigger::new(source, None, None).with_flow(flow));
    let out = Topic::new(format!("bench.{id}.out")).unwrap();
    scheduler
        .register_trigger(id, trigger.clone(), out)
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    let started = Instant::now();
    use futures_util::StreamExt;
    let publishing = futures_util::stream::iter(0..n).for_each_concurrent(64, |i| {
        let broker = broker.clone();
        async move {
            let service = format!("s{}", i % 10);
            let topic = Topic::new(format!("bench.{id}.in.{service}")).unwrap();
            let event = Event::new(topic, json!({"service": service, "n": i}));
            broker.publish(event).await.unwrap();
        }
    });
    publishing.await;
    loop {
        let s = trigger.stats();
        // Each event is fired, dropped, or collected into a batch.
        let taken = match s.batched {
            0 => s.fires + s.throttled,
            batched => batched,
        };
        if taken >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    scheduler.stop().await;
    rate
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}
