//! The real `wasmsched run` with its default store (an SQLite file next to
//! the config): kill -9 and restart keeps admin triggers, pauses and run
//! history; cron instants missed while down are caught up; a corrupt store
//! file is reported, naming it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::json;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{LastFire, Retention, StateStore};
use wasmsched_test_support::http::{call, get, post};
use wasmsched_test_support::replica::Replica;

fn write_config(dir: &Path, triggers: &str) -> PathBuf {
    wasmsched_test_support::write_run_config(dir, triggers)
}

/// Kills the host with SIGKILL: nothing is flushed or closed.
fn kill_9(mut host: Replica) {
    host.child.kill().unwrap();
    host.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keep_admin_triggers_pauses_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[trigger]]\nid = \"nightly\"\nkind = \"cron\"\ntopic = \"reports\"\nschedule = \"0 3 * * *\"\n",
    );
    let host = Replica::start(&config).await;
    let base = host.base.clone();
    let (status, view) = post(
        format!("{base}/api/admin/triggers"),
        json!({"id": "hook", "kind": "api", "topic": "hooks.in"}),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    // A file already declares `nightly`.
    let (status, body) = post(
        format!("{base}/api/admin/triggers"),
        json!({"id": "nightly", "kind": "api", "topic": "x"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    for n in 1..=2 {
        let (status, _) = post(
            format!("{base}/api/triggers/hook/trigger"),
            json!({"data": {"n": n}}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = post(
        format!("{base}/api/admin/triggers/nightly/pause"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, runs) = get(format!("{base}/api/admin/triggers/hook/runs")).await;
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    kill_9(host);

    let host = Replica::start(&config).await;
    let base = host.base.clone();
    let (status, hook) = get(format!("{base}/api/admin/triggers/hook")).await;
    assert_eq!(status, 200, "the admin trigger is back: {hook}");
    assert_eq!(hook["declared_in"], "admin API");
    let (_, nightly) = get(format!("{base}/api/admin/triggers/nightly")).await;
    assert_eq!(nightly["paused"], true, "{nightly}");
    assert_eq!(nightly["running"], false, "{nightly}");
    let (status, _) = post(
        format!("{base}/api/triggers/hook/trigger"),
        json!({"data": {"n": 3}}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, runs) = get(format!("{base}/api/admin/triggers/hook/runs?limit=2")).await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "limit=2: {runs:?}");
    assert_eq!(runs[0]["outcome"], "ok");
    assert_eq!(runs[0]["kind"], "api");
    assert_eq!(runs[0]["events"].as_array().unwrap().len(), 1);
    assert!(runs[0]["duration_ms"].as_f64().is_some());
    assert!(runs[0]["instant"].as_str().unwrap() > runs[1]["instant"].as_str().unwrap());
    let (status, body) = get(format!("{base}/api/admin/triggers/hook/runs?limit=0")).await;
    assert_eq!(status, 400, "{body}");
    // A malformed query string is a JSON error too.
    let (status, body) = get(format!("{base}/api/admin/triggers/hook/runs?limit=abc")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let (status, _) = get(format!("{base}/api/admin/triggers/nope/runs")).await;
    assert_eq!(status, 404);

    // `wasmsched runs` prints the same history.
    let output = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(["runs", "hook", "--url", &base])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert_eq!(
        printed.lines().filter(|l| l.contains(" api ")).count(),
        3,
        "{printed}"
    );

    // Removed through the admin API: gone for good.
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("{base}/api/admin/triggers/hook"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    kill_9(host);
    let host = Replica::start(&config).await;
    let (status, _) = get(format!("{}/api/admin/triggers/hook", host.base)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_instants_missed_while_down_are_caught_up_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[trigger]]\nid = \"hourly\"\nkind = \"cron\"\ntopic = \"ticks\"\nschedule = \"0 * * * *\"\n\
         catch_up = \"latest\"\ncatch_up_window = \"3h\"\n",
    );
    // The host last fired five hours ago, then went down.
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let last = hour - TimeDelta::hours(5);
    {
        let store = SqliteStore::open(&dir.path().join("wasmsched.db"), Retention::default())
            .await
            .unwrap();
        let mark = LastFire {
            instant: last,
            schedule: "0 * * * * @ UTC".into(),
        };
        assert!(
            store
                .claim_fire("hourly", &mark, None)
                .await
                .unwrap()
                .is_some()
        );
    }
    let host = Replica::start(&config).await;
    let url = format!("{}/api/admin/triggers/hourly/runs", host.base);
    let mut runs = Vec::new();
    for _ in 0..100 {
        runs = get(url.clone())
            .await
            .1
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(runs.len(), 5, "{runs:?}");
    assert_eq!(runs[0]["outcome"], "ok", "{runs:?}");
    assert_eq!(runs[0]["catch_up"], true);
    assert_eq!(
        runs[0]["instant"].as_str().unwrap(),
        hour.to_rfc3339().replace("+00:00", "Z")
    );
    for (age, run) in (1..=4).zip(&runs[1..]) {
        assert_eq!(run["outcome"], "missed", "{run}");
        let instant: chrono::DateTime<Utc> = run["instant"].as_str().unwrap().parse().unwrap();
        assert_eq!(instant, hour - TimeDelta::hours(age));
    }
    let (_, view) = get(format!("{}/api/admin/triggers/hourly", host.base)).await;
    assert_eq!(view["stats"]["missed"], 4, "{view}");
    assert_eq!(view["stats"]["catch_ups"], 1, "{view}");
    let metrics = wasmsched_test_support::http::text(format!("{}/metrics", host.base)).await;
    assert!(
        metrics.contains("wasmsched_trigger_missed_total{trigger=\"hourly\",kind=\"cron\"} 4"),
        "{metrics}"
    );
    // By reason, across triggers: the 4 missed split between the window and the policy.
    let by_reason = |reason: &str| -> u64 {
        let prefix = format!("wasmsched_cron_missed_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
    };
    assert_eq!(by_reason("outside_window") + by_reason("policy"), 4);
    assert_eq!(by_reason("over_max"), 0);
}

#[test]
fn a_corrupt_store_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::write(dir.path().join("wasmsched.db"), "hello, not a database").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("wasmsched.db") && stderr.contains("not a wasmsched state file"),
        "{stderr}"
    );
    // Nothing was reset.
    let kept = std::fs::read_to_string(dir.path().join("wasmsched.db")).unwrap();
    assert_eq!(kept, "hello, not a database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_leave_out_series_per_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[metrics]\nper_trigger = false\n\n[[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"h\"\n\n\
         [[trigger]]\nid = \"hook2\"\nkind = \"api\"\ntopic = \"h\"\n",
    );
    let host = Replica::start(&config).await;
    for id in ["hook", "hook2"] {
        let (status, _) = post(
            format!("{}/api/triggers/{id}/trigger", host.base),
            json!({"data": {}}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let metrics = wasmsched_test_support::http::text(format!("{}/metrics", host.base)).await;
    assert!(
        metrics.contains("wasmsched_trigger_firings_total{kind=\"api\"} 2"),
        "{metrics}"
    );
    assert!(!metrics.contains("trigger=\"hook\""), "{metrics}");
    assert!(
        metrics.contains("wasmsched_cron_lateness_seconds_count"),
        "{metrics}"
    );
}

/// Many cron triggers in `wasmsched.toml`: `/healthz` says `ready` once
/// every one has started against the store (`starting` counts down to 0),
/// and the log says how many were registered in one line, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_says_ready_once_every_cron_trigger_started_and_the_log_summarises() {
    const N: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let triggers: String = (0..N)
        .map(|i| {
            format!("[[trigger]]\nid = \"t{i}\"\nkind = \"cron\"\ntopic = \"x\"\nschedule = \"0 3 1 1 *\"\n\n")
        })
        .collect();
    let config = write_config(dir.path(), &triggers);
    let host = Replica::start_with_env(&config, &[("RUST_LOG", "info")]).await;
    let mut seen_starting = Vec::new();
    let health = loop {
        let (status, health) = wasmsched_test_support::replica::health(&host.base).await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["triggers"], N, "{health}");
        let starting = health["starting"].as_u64().unwrap();
        seen_starting.push(starting);
        if health["ready"] == true {
            break health;
        }
        assert!(
            seen_starting.len() < 600,
            "not ready in 60 s: {seen_starting:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["starting"], 0, "{health}");
    assert!(
        seen_starting.windows(2).all(|w| w[1] <= w[0]),
        "`starting` only counts down: {seen_starting:?}"
    );
    let log = host.log.lock().unwrap().join("\n");
    assert!(
        log.contains(&format!("registered {N} triggers ({N} cron)")),
        "{log}"
    );
    assert!(
        !log.contains("registered trigger"),
        "no line per trigger at info"
    );
}
