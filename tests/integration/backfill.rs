//! Backfills through the real binary: every instant `cron next` lists for
//! the range (across a daylight-saving jump in Europe/Berlin), oldest
//! first and marked; cancelled midway; bad ranges refused naming the field.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmsched_test_support::http::send;
use wasmsched_test_support::replica::Replica;

fn write_config(dir: &Path) -> PathBuf {
    wasmsched_test_support::write_run_config(
        dir,
        "[[trigger]]\nid = \"berlin\"\nkind = \"cron\"\ntopic = \"reports\"\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n\n\
         [[trigger]]\nid = \"minutely\"\nkind = \"cron\"\ntopic = \"ticks\"\nschedule = \"* * * * *\"\n\n\
         [[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks\"\n",
    )
}

async fn until_ended(url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, progress) = send(reqwest::Client::new().get(url)).await;
        if progress["state"] != "running" {
            return progress;
        }
        assert!(Instant::now() < deadline, "{progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_fires_what_cron_next_lists_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let host = Replica::start(&write_config(dir.path())).await;
    let (base, http) = (host.base.clone(), reqwest::Client::new());
    let url = format!("{base}/api/admin/triggers/berlin/backfill");
    let range = json!({"from": "2026-03-27T00:00:00Z", "to": "2026-03-31T00:00:00Z", "rate": 1000});
    let (status, started) = send(http.post(&url).json(&range)).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["total"], 4);
    let ended = until_ended(&url).await;
    assert_eq!(
        (ended["state"].as_str(), ended["done"].as_u64()),
        (Some("done"), Some(4)),
        "{ended}"
    );

    // What `cron next` lists for the same range, as UTC instants.
    let output = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args([
            "cron",
            "next",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2026-03-27T00:00:00Z",
            "-n",
            "4",
        ])
        .output()
        .unwrap();
    let listed: Vec<chrono::DateTime<chrono::Utc>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| chrono::DateTime::parse_from_rfc3339(l).unwrap().to_utc())
        .collect();
    let (_, runs) = send(http.get(format!("{base}/api/admin/triggers/berlin/runs"))).await;
    let mut fired: Vec<chrono::DateTime<chrono::Utc>> = runs
        .as_array()
        .unwrap()
        .iter()
        .inspect(|r| assert_eq!(r["backfill"], true, "{r}"))
        .map(|r| r["instant"].as_str().unwrap().parse().unwrap())
        .collect();
    fired.reverse(); // the history is newest first; the backfill ran oldest first
    assert_eq!(
        fired, listed,
        "including 03:00 CEST on the day 02:30 does not exist"
    );

    // The command line follows one with a progress bar.
    let output = Command::new(env!("CARGO_BIN_EXE_wasmsched"))
        .args([
            "backfill",
            "berlin",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-03T00:00:00Z",
            "--rate",
            "1000",
            "--url",
            &base,
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && printed.contains("2/2") && printed.contains("done"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_can_be_cancelled_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let host = Replica::start(&write_config(dir.path())).await;
    let (base, http) = (host.base.clone(), reqwest::Client::new());
    let url = format!("{base}/api/admin/triggers/minutely/backfill");
    let day = json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "rate": 20});
    assert_eq!(send(http.post(&url).json(&day)).await.0, 202);
    let (status, body) = send(http.post(&url).json(&day)).await;
    assert_eq!(status, 409, "one at a time: {body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = send(http.delete(&url)).await;
    assert_eq!(status, 200);
    let ended = until_ended(&url).await;
    assert_eq!(ended["state"], "cancelled", "{ended}");
    assert!(ended["done"].as_u64().unwrap() < 1440, "{ended}");

    for (trigger, body, status, needle) in [
        (
            "minutely",
            json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
            422,
            "`from`",
        ),
        (
            "minutely",
            json!({"from": "2026-01-01T00:00:00Z", "to": "soon"}),
            422,
            "`to`",
        ),
        (
            "minutely",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}),
            422,
            "10000",
        ),
        (
            "hook",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}),
            422,
            "not a cron trigger",
        ),
        (
            "nope",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}),
            404,
            "nope",
        ),
        // Once a panic that left the backfill marked running for good.
        (
            "minutely",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "rate": 1e-300}),
            422,
            "`rate`: 1e-300 is out of range",
        ),
        (
            "minutely",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "rate": 1e300}),
            422,
            "`rate`",
        ),
        (
            "minutely",
            json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "rate": 0}),
            422,
            "`rate`",
        ),
    ] {
        let url = format!("{base}/api/admin/triggers/{trigger}/backfill");
        let (got, answer) = send(http.post(&url).json(&body)).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} -> {answer}"
        );
    }
    // Nothing refused was left running: a good backfill still starts.
    assert_eq!(send(http.post(&url).json(&day)).await.0, 202);
}
