//! Memory and start time of many cron triggers on one scheduler: 100 000
//! triggers on one schedule (`0 * * * *`, not due), registered then
//! started; resident memory from `/proc/self/statm`.
//!
//! Run: `cargo bench --bench cron_scale [-- N]`. (Against a peer such as
//! tokio-cron-scheduler: still to do, see issue "Schedules beyond cron".)

use std::sync::Arc;
use std::time::Instant;
use wasmsched::{MemoryBroker, Scheduler, Topic};

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / 1048576.0
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`: the count is the first number given.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let scheduler = Scheduler::new(Arc::new(MemoryBroker::new()));
    let base = rss_mib();
    let start = Instant::now();
    for i in 0..n {
        let spec = wasmsched::TriggerSpec::cron("0 * * * *");
        let trigger = wasmsched::create_trigger(&spec, None, None).unwrap();
        scheduler
            .register(format!("t{i}"), trigger, Topic::new("x").unwrap())
            .await
            .unwrap();
    }
    let registered = rss_mib();
    scheduler.start().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    println!(
        "{n} triggers: registered {:.1} MiB (+{:.1}), started {:.1} MiB, {:.2?}; {:.1} KiB per trigger",
        registered,
        registered - base,
        rss_mib(),
        start.elapsed(),
        (rss_mib() - base) * 1024.0 / n as f64
    );
}
