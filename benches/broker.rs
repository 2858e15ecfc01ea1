//! Events/s and latency through an event trigger on NATS JetStream, side
//! by side with the memory broker, same workload, same run.
//!
//! Run: `cargo bench --bench broker` (needs `nats-server`: `apt-get install
//! nats-server`; the bench starts its own on a free port, file storage in a
//! temporary directory).
//!
//! Workload: one event trigger `relay` (no plugin: it republishes the
//! source event's data) from `bench.in` to `bench.out`, and a sink reading
//! `bench.out` as a trigger does (acknowledging each). Each round, per broker:
//! - throughput: 5 000 events published with 64 publishes in flight; events/s
//!   = 5 000 / (first publish → last output observed);
//! - latency: 1 000 events one every 2 ms (well under capacity); latency =
//!   publish called → output observed, p50 and p99.
//!
//! Contenders: the memory broker; JetStream as configured by default (16
//! events in flight per trigger); JetStream handling one event at a time.
//! 3 rounds alternating them; the median of each is reported.

use wasmsched_test_support::bench::relay;
use wasmsched_test_support::nats_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wasmsched::broker::{Broker, MemoryBroker, NatsBroker, NatsOptions};
use wasmsched::trigger::create_event_trigger;
use wasmsched::{Event, Scheduler, Topic};

const BURST: usize = 5_000;
const PACED: usize = 1_000;
const PACE: Duration = Duration::from_millis(2);
const ROUNDS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Sample {
    events_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn main() {
    if std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "broker bench: `nats-server` not found; install it with `apt-get install nats-server`"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = nats_server::NatsServer::start();
    let nats = |in_flight_per_trigger| NatsOptions {
        url: server.url(),
        in_flight_per_trigger,
        ..NatsOptions::default()
    };
    let contenders: [(&str, Option<NatsOptions>); 3] = [
        ("memory", None),
        (
            "JetStream, 16 in flight per trigger (default)",
            Some(nats(16)),
        ),
        ("JetStream, 1 in flight per trigger", Some(nats(1))),
    ];
    let mut samples = vec![Vec::new(); contenders.len()];
    for round in 0..ROUNDS {
        for (index, (name, options)) in contenders.iter().enumerate() {
            let sample = runtime.block_on(async {
                let broker: Arc<dyn Broker> = match options {
                    None => Arc::new(MemoryBroker::new()),
                    Some(options) => Arc::new(NatsBroker::connect(options.clone()).await.unwrap()),
                };
                measure(broker, &format!("{round}-{index}")).await
            });
            println!("round {round} {name}: {sample:?}");
            samples[index].push(sample);
        }
    }
    let medians: Vec<Sample> = samples.iter().map(|s| median(s)).collect();
    println!("\n| broker | events/s (burst of {BURST}) | latency p50 | latency p99 |");
    println!("|---|---|---|---|");
    for ((name, _), s) in contenders.iter().zip(&medians) {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            s.events_per_second, s.p50_ms, s.p99_ms
        );
    }
    let (memory, jetstream, sequential) = (medians[0], medians[1], medians[2]);
    println!(
        "\nJetStream (default) / memory: throughput {:.3}x, p50 latency {:.1}x; 16 vs 1 in flight: throughput {:.1}x",
        jetstream.events_per_second / memory.events_per_second,
        jetstream.p50_ms / memory.p50_ms,
        jetstream.events_per_second / sequential.events_per_second,
    );
}

fn median(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.events_per_second.total_cmp(&b.events_per_second));
    let mut p50: Vec<f64> = samples.iter().map(|s| s.p50_ms).collect();
    let mut p99: Vec<f64> = samples.iter().map(|s| s.p99_ms).collect();
    p50.sort_by(f64::total_cmp);
    p99.sort_by(f64::total_cmp);
    Sample {
        events_per_second: sorted[sorted.len() / 2].events_per_second,
        p50_ms: p50[p50.len() / 2],
        p99_ms: p99[p99.len() / 2],
    }
}

async fn measure(broker: Arc<dyn Broker>, run: &str) -> Sample {
    let scheduler = Scheduler::new(broker.clone());
    let trigger = create_event_trigger("bench.in", None, None).unwrap();
    scheduler
        .register_trigger(
            format!("relay{run}"),
            trigger,
            Topic::new("bench.out").unwrap(),
        )
        .await
        .unwrap();
    scheduler.start().await.unwrap();
    let mut outputs = relay::sink(&broker, format!("sink{run}")).await;
    let input = Topic::new("bench.in").unwrap();
    let events_per_second = relay::burst(&broker, &mut outputs, BURST).await;

    // Latency: paced, one event every PACE.
    let origin = Instant::now();
    let pacing = tokio::spawn({
        let (broker, input) = (broker.clone(), input.clone());
        async move {
            let mut ticks = tokio::time::interval(PACE);
            for _ in 0..PACED {
                ticks.tick().await;
                let sent_us = origin.elapsed().as_micros() as u64;
                broker
                    .publish(Event::new(input.clone(), json!({ "sent_us": sent_us })))
                    .await
                    .unwrap();
            }
        }
    });
    let mut latencies = Vec::with_capacity(PACED);
    for _ in 0..PACED {
        let output = outputs.next().await.expect("an output");
        let sent_us = output.event.data["sent_us"].as_u64().unwrap();
        output.ack().await.unwrap();
        latencies.push((origin.elapsed().as_micros() as u64 - sent_us) as f64 / 1000.0);
    }
    pacing.await.unwrap();
    scheduler.stop().await;
    latencies.sort_by(f64::total_cmp);
    Sample {
        events_per_second,
        p50_ms: latencies[latencies.len() / 2],
        p99_ms: latencies[latencies.len() * 99 / 100],
    }
}
