//! Load from `wrk` (an outside process, so it does not share the runtime
//! it measures): POST a JSON body for a while, report req/s and latency.

use std::process::Command;

/// An api call the `github_webhook` example plugin turns into an event
/// (the body the HTTP benches send).
pub const GITHUB_BODY: &str = r#"{"data": {"action": "opened", "repository": {"full_name": "o/r"}, "sender": {"login": "u"}, "n": 1}}"#;

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Is wrk installed? Says how to get it if not.
pub fn available(bench: &str) -> bool {
    let found = Command::new("wrk").arg("--version").output().is_ok();
    if !found {
        eprintln!("{bench} bench: `wrk` not found; install it with `apt-get install wrk`");
    }
    found
}

/// A wrk script POSTing `body` as JSON and printing `RESULT req/s p50 p99`.
pub fn post_script(name: &str, body: &str) -> std::path::PathBuf {
    let script = std::env::temp_dir().join(format!("wasmsched-bench-{name}.lua"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             done = function(summary, latency, requests)\n  io.write(string.format(\"RESULT %f %f %f\\n\", \
             summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))\nend\n"
        ),
    )
    .unwrap();
    script
}

/// `wrk -t2 -c<connections> -d<seconds>s` with `script` against `url`;
/// any non-2xx answer fails the bench.
pub fn run(script: &std::path::Path, url: &str, connections: u32, seconds: u32) -> Sample {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("Non-2xx"), "errors from {url}:\n{text}");
    let numbers: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no result from wrk:\n{text}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    Sample {
        requests_per_second: numbers[0],
        p50_ms: numbers[1],
        p99_ms: numbers[2],
    }
}

/// The median run by throughput.
pub fn median(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
    sorted[sorted.len() / 2]
}
