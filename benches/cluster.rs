//! Scale-out on a 3-node NATS cluster: events/s through an event trigger
//! and api-trigger req/s with 1, 2 and 3 wasmsched replicas (streams with
//! 3 copies), and what 3 copies cost against 1 with one replica. Same run,
//! same machine (2 cores shared by the 3 nats-servers, the replicas and
//! the load): read the ratios.
//!
//! Run: `cargo bench --bench cluster` (needs `nats-server` and `wrk`).
//!
//! Replicas are hosts in this process, each on its own port, each
//! connected first to a different server. Events/s: 20 000 events
//! published (64 in flight) to `bench.in`, relayed by the `relay` trigger
//! (shared by the replicas through one durable consumer), timed until a
//! consumer of `bench.out` read them all. Api: one `wrk -t2 -c16 -d5s` per
//! replica at once, summed. 3 rounds; medians.

use wasmsched_test_support::bench::relay;
use wasmsched_test_support::bench::wrk;
use wasmsched_test_support::nats_cluster;

use std::sync::Arc;

use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched_test_support::Served;

const EVENTS: usize = 20_000;
const ROUNDS: usize = 3;

fn main() {
    if !wrk::available("cluster") {
        return;
    }
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(run());
}

struct Setup {
    name: &'static str,
    replicas: usize,
    copies: usize,
}

async fn run() {
    let cluster = nats_cluster::NatsCluster::start(3).await;
    let script = wrk::post_script("cluster", r#"{"data": {"n": 1}}"#);
    let setups = [
        Setup {
            name: "1 replica, 1 copy",
            replicas: 1,
            copies: 1,
        },
        Setup {
            name: "1 replica, 3 copies",
            replicas: 1,
            copies: 3,
        },
        Setup {
            name: "2 replicas, 3 copies",
            replicas: 2,
            copies: 3,
        },
        Setup {
            name: "3 replicas, 3 copies",
            replicas: 3,
            copies: 3,
        },
    ];
    let mut rows = Vec::new();
    for (i, setup) in setups.iter().enumerate() {
        let hosts = start_hosts(&cluster, setup, i).await;
        let (mut events, mut requests) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            events.push(events_per_second(&hosts[0].0).await);
            requests.push(requests_per_second(&hosts, &script).await);
        }
        for (host, _) in &hosts {
            host.stop().await;
        }
        rows.push((setup.name, median(&mut events), median(&mut requests)));
    }
    println!(
        "scale-out on a 3-node NATS cluster (this machine's 2 cores), median of {ROUNDS} rounds"
    );
    let (base_events, base_requests) = (rows[1].1, rows[1].2);
    for (name, events, requests) in rows {
        println!(
            "{name:<24} {events:>8.0} events/s ({:.2}x)   {requests:>8.0} api req/s ({:.2}x)",
            events / base_events,
            requests / base_requests
        );
    }
    println!("(ratios against 1 replica with 3 copies)");
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn start_hosts(
    cluster: &nats_cluster::NatsCluster,
    setup: &Setup,
    index: usize,
) -> Vec<(Arc<Host>, String)> {
    let mut hosts = Vec::new();
    for r in 0..setup.replicas {
        // Each replica reaches the cluster through a different server first.
        let urls: Vec<String> = (0..3).map(|k| cluster.url((r + k) % 3)).collect();
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        let config = format!(
            "[plugins]\nwatch = false\ncache = false\n\n[broker]\nkind = \"nats\"\nurl = \"{}\"\n\
             stream = \"BENCH{index}\"\nsubject_prefix = \"b{index}\"\nreplicas = {}\n\n\
             [[trigger]]\nid = \"relay\"\nkind = \"event\"\nsource = \"bench.in\"\ntopic = \"bench.out\"\n\n\
             [[trigger]]\nid = \"plain\"\nkind = \"api\"\ntopic = \"bench.api\"\n",
            urls.join(","),
            setup.copies
        );
        std::fs::write(dir.join("wasmsched.toml"), config).unwrap();
        let host = Host::start(Config::load(&dir.join("wasmsched.toml")).unwrap())
            .await
            .unwrap();
        let base = Served::serve(host.clone()).await.base;
        hosts.push((host, base));
    }
    hosts
}

async fn events_per_second(host: &Arc<Host>) -> f64 {
    let broker = host.broker().clone();
    let mut outputs = relay::sink(&broker, format!("sink-{}", uuid::Uuid::now_v7())).await;
    relay::burst(&broker, &mut outputs, EVENTS).await
}

async fn requests_per_second(hosts: &[(Arc<Host>, String)], script: &std::path::Path) -> f64 {
    let runs: Vec<_> = hosts
        .iter()
        .map(|(_, base)| {
            let (url, script) = (
                format!("{base}/api/triggers/plain/trigger"),
                script.to_owned(),
            );
            tokio::task::spawn_blocking(move || wrk::run(&script, &url, 16, 5))
        })
        .collect();
    let mut total = 0.0;
    for run in runs {
        total += run.await.unwrap().requests_per_second;
    }
    total
}
