//! `[broker] replicas` against real NATS: a single server refuses
//! `replicas = 3` with a clear error; on a real 3-node cluster, two
//! wasmsched replicas connected to different servers lose no acknowledged
//! event, handle none twice, and answer api calls again soon after the
//! server leading the stream is killed with SIGKILL; cron instants keep
//! firing once; the killed server rejoins and catches up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::DurationRound;
use futures_util::StreamExt;
use serde_json::json;
use wasmsched::broker::{NatsBroker, NatsOptions};
use wasmsched_test_support::nats_cluster::NatsCluster;
use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::Replica;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_3_against_a_single_server_is_a_clear_setup_error() {
    let server = NatsServer::start();
    let options = NatsOptions {
        url: server.url(),
        replicas: 3,
        ..NatsOptions::default()
    };
    let error = NatsBroker::connect(options)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("replicas = 3 needs a NATS cluster of at least 3 servers"),
        "{error}"
    );
    let bad = NatsOptions {
        replicas: 2,
        ..NatsOptions::default()
    };
    assert!(bad.validate().unwrap_err().contains("use 1, 3 or 5"));
}

fn write_config(dir: &Path, urls: &str) -> PathBuf {
    let text = format!(
        "[broker]\nkind = \"nats\"\nurl = \"{urls}\"\n\
         replicas = 3\nack_wait_secs = 2\n\n\
         [[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks.in\"\n\n\
         [[trigger]]\nid = \"relay\"\nkind = \"event\"\nsource = \"hooks.*\"\ntopic = \"relayed\"\n\n\
         [[trigger]]\nid = \"tick\"\nkind = \"cron\"\nschedule = \"* * * * *\"\ntopic = \"ticks\"\n"
    );
    wasmsched_test_support::write_run_config(dir, &text)
}

/// The server leading stream `name`.
async fn leader(cluster: &NatsCluster, name: &str) -> usize {
    let client = async_nats::connect(cluster.url_list()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream(name).await.unwrap();
    let info = stream.info().await.unwrap();
    let leader = info
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap();
    cluster.index_of(&leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_node_cluster_survives_losing_the_stream_leader() {
    let mut cluster = NatsCluster::start(3).await;
    let root = tempfile::tempdir().unwrap();
    // Each replica connects through a different server first.
    let a_urls = format!("{},{}", cluster.url(0), cluster.url(1));
    let b_urls = format!("{},{}", cluster.url(2), cluster.url(0));
    let (a_config, b_config) = (
        write_config(&root.path().join("a"), &a_urls),
        write_config(&root.path().join("b"), &b_urls),
    );
    let (a, b) = tokio::join!(Replica::start(&a_config), Replica::start(&b_config));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let call = |base: String, n: usize| {
        let request = client
            .post(format!("{base}/api/triggers/hook/trigger"))
            .json(&json!({ "data": { "n": n } }));
        async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };

    let mut acknowledged = Vec::new();
    for n in 0..50 {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        if call(base.clone(), n).await == 200 {
            acknowledged.push(n);
        }
    }
    assert_eq!(acknowledged.len(), 50, "all calls succeed before the kill");

    // The kill lands a second before a cron instant: the replicas claim
    // it while the cluster elects new leaders.
    let boundary = (chrono::Utc::now() + chrono::TimeDelta::minutes(1))
        .duration_trunc(chrono::TimeDelta::minutes(1))
        .unwrap();
    let until_kill = (boundary - chrono::TimeDelta::seconds(1) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(until_kill).await;
    let killed = leader(&cluster, "WASMSCHED").await;
    cluster.kill(killed);
    let killed_at = Instant::now();
    let (mut unavailable_until, mut n) = (None, 50);
    while acknowledged.len() < 150 {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        match call(base.clone(), n).await {
            200 => acknowledged.push(n),
            503 | 0 => unavailable_until = Some(killed_at.elapsed()),
            other => panic!("call {n}: {other}"),
        }
        n += 1;
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "calls did not recover"
        );
    }
    if let Some(outage) = unavailable_until {
        println!("api calls failed for {outage:?} after the leader was killed");
        assert!(
            outage < Duration::from_secs(20),
            "unavailable for {outage:?}"
        );
    }

    // The killed server comes back and catches up.
    cluster.restart(killed);
    let client = async_nats::connect(cluster.url_list()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Requests may time out while the cluster takes the server back.
        let replicas = match jetstream.get_stream("WASMSCHED").await {
            Ok(mut stream) => match stream.info().await {
                Ok(info) => info.cluster.clone().map(|c| c.replicas).unwrap_or_default(),
                Err(_) => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        if replicas.len() == 2 && replicas.iter().all(|r| r.current) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed server did not catch up: {replicas:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every acknowledged call was relayed, none twice.
    let stream = jetstream.get_stream("WASMSCHED").await.unwrap();
    let expected: usize = acknowledged.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let relayed = loop {
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: "ev.relayed".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut relayed: BTreeMap<u64, usize> = BTreeMap::new();
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(2), messages.next()).await
        {
            // The stream keeps each event whole: {id, topic, time, data, headers}.
            let data: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
            *relayed
                .entry(data["data"]["n"].as_u64().unwrap())
                .or_default() += 1;
        }
        if relayed.len() >= expected || Instant::now() > deadline {
            break relayed;
        }
    };
    let lost: Vec<&usize> = acknowledged
        .iter()
        .filter(|n| !relayed.contains_key(&(**n as u64)))
        .collect();
    assert!(lost.is_empty(), "acknowledged but never relayed: {lost:?}");
    let twice: Vec<_> = relayed.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "relayed twice: {twice:?}");

    // The instant due during the election, and every other, fired once
    // across the two replicas.
    let next_minute = boundary;
    let wait = (boundary + chrono::TimeDelta::seconds(25) - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let runs: serde_json::Value = reqwest::get(format!("{}/api/admin/triggers/tick/runs", a.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut per_instant: BTreeMap<String, usize> = BTreeMap::new();
    for run in runs.as_array().unwrap() {
        *per_instant
            .entry(run["instant"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        per_instant
            .keys()
            .any(|i| i.parse::<chrono::DateTime<chrono::Utc>>().unwrap() == next_minute),
        "{next_minute} fired: {per_instant:?}"
    );
    assert!(
        per_instant.values().all(|n| *n == 1),
        "each instant once: {per_instant:?}\n{}",
        runs.as_array()
            .unwrap()
            .iter()
            .map(|r| format!(
                "{} {} {} {}",
                r["instant"], r["outcome"], r["events"], r["catch_up"]
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_stay_exclusive_after_the_bucket_leader_dies() {
    use wasmsched::state::nats::NatsStore;
    use wasmsched::state::{LastFire, Retention, StateStore};
    let mut cluster = NatsCluster::start(3).await;
    let open = |urls: Vec<String>| async move {
        let client = async_nats::connect(urls).await.unwrap();
        NatsStore::open_replicated(
            async_nats::jetstream::new(client),
            "CLAIMS",
            Retention::default(),
            3,
        )
        .await
        .unwrap()
    };
    let a = open(vec![cluster.url(0), cluster.url(1)]).await;
    let b = open(vec![cluster.url(2), cluster.url(0)]).await;
    let killed = leader(&cluster, "KV_CLAIMS_fires").await;
    cluster.kill(killed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start: chrono::DateTime<chrono::Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let mut doubles = Vec::new();
    for n in 0..40 {
        let seen = loop {
            match a.last_fire("job").await {
                Ok(seen) => break seen.map(|s| s.revision),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let next = LastFire {
            instant: start + chrono::TimeDelta::minutes(n),
            schedule: "* * * * * @ UTC".into(),
        };
        let (x, y) = tokio::join!(
            a.claim_fire("job", &next, seen),
            b.claim_fire("job", &next, seen)
        );
        if matches!((&x, &y), (Ok(Some(_)), Ok(Some(_)))) {
            doubles.push((n, x, y));
        }
    }
    assert!(doubles.is_empty(), "both claims landed: {doubles:?}");
}
