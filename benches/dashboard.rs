//! The dashboard with 10 000 triggers: time to first byte of the triggers
//! page (`/`, the first 100), side by side in one run with the admin API's
//! JSON list of all triggers and `/healthz` as a floor.
//!
//! Run: `cargo bench --bench dashboard [-- N]` (N = 10 000 by default).
//! Method: one host in this process, N cron triggers on `0 * * * *` from a
//! generated config, served on loopback; each URL is requested 30 times in
//! turn after 3 warm-up requests; the time to the response's headers (the
//! server has sent its first byte) and to the whole body; medians.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched_test_support::Served;

const ROUNDS: usize = 30;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let runtime = wasmsched::host::runtime().unwrap();
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let mut config = String::from("[plugins]\ndir = \"plugins\"\nwatch = false\n");
    for i in 0..n {
        let _ = write!(
            config,
            "\n[[trigger]]\nid = \"t{i:05}\"\nkind = \"cron\"\ntopic = \"jobs.t{i}\"\nschedule = \"0 * * * *\"\ntimezone = \"Europe/Berlin\"\n"
        );
    }
    let path = dir.path().join("wasmsched.toml");
    std::fs::write(&path, config).unwrap();
    let host = Host::start(Config::load(&path).unwrap()).await.unwrap();
    let base = Served::serve(host.clone()).await.base;
    let client = reqwest::Client::new();
    let urls = [
        ("dashboard triggers page (/, first 100)", format!("{base}/")),
        (
            "dashboard triggers page 50 (/?page=50)",
            format!("{base}/?page=50"),
        ),
        (
            "admin API, all triggers as JSON",
            format!("{base}/api/admin/triggers"),
        ),
        ("/healthz (floor)", format!("{base}/healthz")),
    ];
    let mut samples: Vec<(Vec<Duration>, Vec<Duration>, usize)> =
        vec![(Vec::new(), Vec::new(), 0); urls.len()];
    for round in 0..ROUNDS + 3 {
        for (i, (_, url)) in urls.iter().enumerate() {
            let started = Instant::now();
            let response = client.get(url).send().await.unwrap();
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            let first_byte = started.elapsed();
            let body = response.bytes().await.unwrap();
            let whole = started.elapsed();
            if round >= 3 {
                samples[i].0.push(first_byte);
                samples[i].1.push(whole);
                samples[i].2 = body.len();
            }
        }
    }
    println!(
        "{n} cron triggers: time to first byte and to the whole response (median of {ROUNDS})"
    );
    println!(
        "{:<42} {:>12} {:>12} {:>10}",
        "", "first byte", "whole", "bytes"
    );
    for ((name, _), (first, whole, bytes)) in urls.iter().zip(samples) {
        println!(
            "{name:<42} {:>9.1} ms {:>9.1} ms {bytes:>10}",
            median(first).as_secs_f64() * 1000.0,
            median(whole).as_secs_f64() * 1000.0
        );
    }
    host.stop().await;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
