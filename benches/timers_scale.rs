//! Many pending one-off timers: a host starting with 1 000 000 of them in
//! its SQLite store (each publishing a small event a day or more from
//! now): how long the start takes, the memory the host holds for them, and
//! CPU while idle.
//!
//! Run: `cargo bench --bench timers_scale [-- N]` (N = 1 000 000 by
//! default). The store is filled in one transaction before the host
//! starts (through the public API it would take a write per timer).

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::json;
use wasmsched::Topic;
use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::state::sqlite::SqliteStore;
use wasmsched::state::{OneOffTimer, Retention, TimerAction};

use wasmsched_test_support::bench::proc;

use proc::{cpu_seconds, rss_mib};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(
        SqliteStore::open(&path, Retention::default())
            .await
            .unwrap(),
    );
    let filled = Instant::now();
    fill(&path, n);
    println!(
        "{n} timers written to the store in {:.1?}",
        filled.elapsed()
    );

    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let config = dir.path().join("wasmsched.toml");
    std::fs::write(
        &config,
        "[plugins]\nwatch = false\ncache = false\n[state]\npath = \"state.db\"\n",
    )
    .unwrap();
    let base = rss_mib();
    let started = Instant::now();
    let host = Host::start(Config::load(&config).unwrap()).await.unwrap();
    let ready = started.elapsed();
    // The timer task takes the timers in after the start returns.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resident = rss_mib();
    let cpu = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = (cpu_seconds() - cpu) / 10.0 * 100.0;
    println!(
        "host with {n} pending timers: ready in {ready:.2?}; resident {resident:.0} MiB \
         (+{:.0} MiB, {:.0} bytes per timer); idle CPU {idle:.2} %",
        resident - base,
        (resident - base) * 1048576.0 / n as f64
    );
    host.stop().await;
}

/// Writes `n` timers straight into the store's `timers` table, as
/// `put_timer` would, in one transaction.
fn fill(path: &std::path::Path, n: usize) {
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let transaction = connection.transaction().unwrap();
    {
        let mut insert = transaction
            .prepare("INSERT INTO timers (id, due, record) VALUES (?1, ?2, ?3)")
            .unwrap();
        let topic = Topic::new("reminders.bench").unwrap();
        let first = Utc::now() + TimeDelta::days(1);
        for i in 0..n {
            let timer = OneOffTimer {
                id: format!("timer-{i}"),
                due: first + TimeDelta::seconds(i as i64),
                action: TimerAction::Publish {
                    topic: topic.clone(),
                    data: json!({ "invoice": i }),
                },
                fired: None,
            };
            let record = serde_json::to_string(&timer).unwrap();
            insert
                .execute(rusqlite::params![timer.id, timer.due.to_rfc3339(), record])
                .unwrap();
        }
    }
    transaction.commit().unwrap();
}
