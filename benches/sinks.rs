//! Webhook deliveries/s through a sink, on the memory broker and on
//! JetStream, side by side with the same POSTs made directly with reqwest
//! (the baseline: what HTTP alone costs), same run.
//!
//! Run: `cargo bench --bench sinks` (needs `nats-server`: `apt-get install
//! nats-server`; the bench starts its own on a free port).
//!
//! A receiver in this process (axum on loopback) answers 204 and counts.
//! Each round, per contender: 5 000 events published to `alerts.bench`
//! (64 publishes in flight), time until the receiver counted all 5 000.
//! Sinks use their default `max_in_flight = 4`; the baseline is four tasks
//! POSTing the same body one after another (4 in flight). 5 rounds
//! alternating; medians.

use wasmsched_test_support::nats_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::json;
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::{Event, Topic};

const EVENTS: usize = 5_000;
const ROUNDS: usize = 5;

fn main() {
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let received = Arc::new(AtomicUsize::new(0));
    let receiver = start_receiver(received.clone()).await;
    let server = nats_server::NatsServer::start();
    let memory = start_host(&receiver, "").await;
    let nats = format!("[broker]\nkind = \"nats\"\nurl = \"{}\"\n", server.url());
    let jetstream = start_host(&receiver, &nats).await;
    let mut results = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        results[0].push(baseline(&receiver, &received).await);
        results[1].push(through_sink(&memory, &received).await);
        results[2].push(through_sink(&jetstream, &received).await);
    }
    let names = [
        "reqwest, 4 POSTs in flight (baseline)",
        "sink, memory broker",
        "sink, JetStream",
    ];
    println!("webhook deliveries/s, {EVENTS} events, median of {ROUNDS} rounds");
    let base = median(&mut results[0].clone());
    for (name, samples) in names.iter().zip(results.iter_mut()) {
        let rate = median(samples);
        println!("{name:<40} {rate:>9.0}/s  {:.2}x of baseline", rate / base);
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn start_receiver(received: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let received = received.clone();
            async move {
                received.fetch_add(1, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn start_host(receiver: &str, broker: &str) -> Arc<Host> {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let config = format!(
        "[plugins]\nwatch = false\ncache = false\n\n{broker}\n[[sink]]\nid = \"bench\"\n\
         pattern = \"alerts.**\"\nurl = \"{receiver}\"\n"
    );
    std::fs::write(dir.join("wasmsched.toml"), config).unwrap();
    Host::start(Config::load(&dir.join("wasmsched.toml")).unwrap())
        .await
        .unwrap()
}

async fn wait_for(received: &AtomicUsize, count: usize) {
    while received.load(Ordering::Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn through_sink(host: &Arc<Host>, received: &Arc<AtomicUsize>) -> f64 {
    received.store(0, Ordering::Relaxed);
    let broker = host.broker().clone();
    let topic = Topic::new("alerts.bench").unwrap();
    let started = Instant::now();
    futures_util::stream::iter(0..EVENTS)
        .map(|n| {
            let (broker, topic) = (broker.clone(), topic.clone());
            async move {
                broker
                    .publish(Event::new(topic, json!({ "n": n })))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    wait_for(received, EVENTS).await;
    EVENTS as f64 / started.elapsed().as_secs_f64()
}

async fn baseline(url: &str, received: &Arc<AtomicUsize>) -> f64 {
    received.store(0, Ordering::Relaxed);
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // Four workers, each POSTing one event after another: 4 in flight.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, next, url) = (client.clone(), next.clone(), url.to_owned());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < EVENTS {
                    let event = Event::new(Topic::new("alerts.bench").unwrap(), json!({"n": 1}));
                    let body = json!({
                        "id": event.id, "topic": event.topic, "time": event.time,
                        "data": event.data, "headers": event.headers,
                    })
                    .to_string();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    wait_for(received, EVENTS).await;
    EVENTS as f64 / started.elapsed().as_secs_f64()
}
