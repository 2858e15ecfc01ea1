//! Replicas sharing state through JetStream (a real nats-server, real
//! `wasmsched run` processes): an admin trigger added on one is served by
//! the other, a pause on one stops both, history is one history, and a
//! replica killed mid catch-up leaves each missed instant run once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::json;
use wasmsched::state::nats::NatsStore;
use wasmsched::state::{LastFire, Retention, StateStore};
use wasmsched_test_support::http::{call, get, post};
use wasmsched_test_support::nats_server::NatsServer;
use wasmsched_test_support::replica::{Replica, write_config};
use wasmsched_test_support::wait::until_async;

/// How long a change may take to reach the other replica.
const PROPAGATION: Duration = Duration::from_secs(5);

fn replica_dir(root: &Path, name: &str, server: &NatsServer, triggers: &str) -> PathBuf {
    write_config(&root.join(name), server, triggers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_admin_triggers_pauses_and_history() {
    let server = NatsServer::start();
    let root = tempfile::tempdir().unwrap();
    let file = "[[trigger]]\nid = \"nightly\"\nkind = \"cron\"\ntopic = \"reports\"\nschedule = \"0 3 * * *\"\n";
    let (config_a, config_b) = (
        replica_dir(root.path(), "a", &server, file),
        replica_dir(root.path(), "b", &server, file),
    );
    let (a, b) = tokio::join!(Replica::start(&config_a), Replica::start(&config_b));
    let (a_base, b_base) = (a.base.clone(), b.base.clone());

    // Added on A, served by B.
    let hook = json!({"id": "hook", "kind": "api", "topic": "hooks.in"});
    let (status, body) = post(format!("{a_base}/api/admin/triggers"), hook).await;
    assert_eq!(status, 201, "{body}");
    until_async("B serves the trigger added on A", PROPAGATION, || async {
        post(
            format!("{b_base}/api/triggers/hook/trigger"),
            json!({"data": {}}),
        )
        .await
        .0 == 200
    })
    .await;
    // One history: A reads what B ran (B writes its runs every few ms).
    until_async("A reads the run B made", PROPAGATION, || async {
        let (_, runs) = get(format!("{a_base}/api/admin/triggers/hook/runs")).await;
        runs[0]["outcome"] == "ok"
    })
    .await;

    // Paused on A, stopped on both; resumed on B, running on both.
    let (status, _) = post(
        format!("{a_base}/api/admin/triggers/nightly/pause"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    until_async("B pauses as A did", PROPAGATION, || async {
        let (_, view) = get(format!("{b_base}/api/admin/triggers/nightly")).await;
        view["paused"] == true && view["running"] == false
    })
    .await;
    let (status, _) = post(
        format!("{b_base}/api/admin/triggers/nightly/resume"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    until_async("A resumes as B did", PROPAGATION, || async {
        let (_, view) = get(format!("{a_base}/api/admin/triggers/nightly")).await;
        view["paused"] == false && view["running"] == true
    })
    .await;

    // Removed on B, gone from A.
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("{b_base}/api/admin/triggers/hook"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    until_async("A forgets the trigger B removed", PROPAGATION, || async {
        get(format!("{a_base}/api/admin/triggers/hook")).await.0 == 404
    })
    .await;

    // Kept across restarts of every replica.
    let other = json!({"id": "other", "kind": "api", "topic": "o"});
    assert_eq!(
        post(format!("{a_base}/api/admin/triggers"), other).await.0,
        201
    );
    let (status, _) = post(
        format!("{a_base}/api/admin/triggers/nightly/pause"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    drop((a, b));
    let b = Replica::start(&config_b).await;
    let (status, _) = get(format!("{}/api/admin/triggers/other", b.base)).await;
    assert_eq!(status, 200);
    let (_, view) = get(format!("{}/api/admin/triggers/nightly", b.base)).await;
    assert_eq!(view["paused"], true, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_catch_up_leaves_each_instant_run_once() {
    let server = NatsServer::start();
    let root = tempfile::tempdir().unwrap();
    // Every catch-up firing spins until its 300 ms limit: 20 of them take
    // seconds, shared between the replicas as each claims the next.
    let triggers = "[plugins.limits]\ntimeout = \"300ms\"\n\n\
        [[trigger]]\nid = \"minutely\"\nkind = \"cron\"\ntopic = \"ticks\"\nschedule = \"* * * * *\"\n\
        plugin = \"adv_flood\"\ncatch_up = \"all\"\ncatch_up_window = \"1h\"\ncatch_up_max = 30\n\
        [trigger.config]\nmode = \"spin\"\n";
    let mut configs = Vec::new();
    for name in ["a", "b"] {
        let config = replica_dir(root.path(), name, &server, triggers);
        let plugins = config.parent().unwrap().join("plugins");
        let guest = Path::new(env!("WASMSCHED_GUEST_DIR")).join("adv_flood.wasm");
        std::fs::copy(guest, plugins.join("adv_flood.wasm")).unwrap();
        configs.push(config);
    }
    // The trigger last fired 20 minutes ago.
    let minute = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let store = NatsStore::open(jetstream, "WASMSCHED", Retention::default())
        .await
        .unwrap();
    let mark = LastFire {
        instant: minute - TimeDelta::minutes(20),
        schedule: "* * * * * @ UTC".into(),
    };
    assert!(
        store
            .claim_fire("minutely", &mark, None)
            .await
            .unwrap()
            .is_some()
    );

    let (a, b) = tokio::join!(Replica::start(&configs[0]), Replica::start(&configs[1]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut a = a;
    a.child.kill().unwrap(); // SIGKILL, mid catch-up
    a.child.wait().unwrap();

    // B runs what is left; then every missed instant has one run at most.
    let url = format!("{}/api/admin/triggers/minutely/runs?limit=100", b.base);
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let runs = get(url.clone())
            .await
            .1
            .as_array()
            .cloned()
            .unwrap_or_default();
        let newest_done = runs
            .iter()
            .any(|r| r["instant"].as_str().and_then(|t| t.parse().ok()) == Some(minute));
        if newest_done {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "the catch-up did not finish: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{} runs after the kill", runs.len());
    let mut per_instant: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        let instant: chrono::DateTime<Utc> = run["instant"].as_str().unwrap().parse().unwrap();
        if instant <= minute {
            assert_eq!(run["outcome"], "timeout", "{run}");
            // The newest one runs on time if the replicas started within
            // 5 s of it (instants that recent are not caught up but fired).
            if instant < minute {
                assert_eq!(run["catch_up"], true, "{run}");
            }
            *per_instant.entry(instant.to_rfc3339()).or_default() += 1;
        }
    }
    let twice: Vec<_> = per_instant.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "instants run twice: {twice:?}");
    // The one A was running when killed left no record; every other did.
    assert!(
        per_instant.len() >= 19,
        "{} of 20 instants recorded: {per_instant:?}",
        per_instant.len()
    );
}
