//! `wasmsched run` measured as a black box, as a user runs it: a generated
//! `wasmsched.toml` of cron triggers, the default store (SQLite next to the
//! config), the binary started as a child, and only what a user can see
//! read: `/healthz`, the process's resident memory and CPU time in
//! `/proc`, its log lines, and the events on `/api/events/stream`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};
use wasmsched_test_support::bench::proc::{cpu_seconds_of, rss_mib_of};

use super::Lateness;

/// CPU use (share of one core) below which the host counts as settled.
const QUIET: f64 = 0.02;
/// The window CPU use is averaged over for [`QUIET`].
const WINDOW: Duration = Duration::from_millis(500);

/// A `wasmsched run` child, its config directory and its log line count.
struct Running {
    child: Child,
    base: String,
    log_lines: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

/// The binary measured: this build's, or `WASMSCHED_RUN_BINARY` (another
/// build of it, to compare two versions in one run).
fn binary() -> std::path::PathBuf {
    std::env::var_os("WASMSCHED_RUN_BINARY")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_wasmsched").into())
}

/// Starts `wasmsched run` on `n` cron triggers, the `i`th on
/// `expression(i)`, with nothing but `[server] listen` set besides them.
fn start(n: usize, expression: impl Fn(usize) -> String) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("wasmsched.toml");
    std::fs::write(&config, self::config(n, port, expression)).unwrap();
    let mut child = Command::new(binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log_lines = Arc::new(AtomicUsize::new(0));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = log_lines.clone();
        std::thread::spawn(move || {
            for _ in BufReader::new(pipe).lines() {
                lines.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    Running {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log_lines,
        _dir: dir,
    }
}

/// A `wasmsched.toml` of `n` cron triggers, the `i`th on `expression(i)`,
/// listening on `port` (0: the default).
pub fn config(n: usize, port: u16, expression: impl Fn(usize) -> String) -> String {
    let mut toml = match port {
        0 => String::new(),
        port => format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    };
    for i in 0..n {
        let schedule = expression(i);
        toml.push_str(&format!(
            "\n[[trigger]]\nid = \"t{i}\"\nkind = \"cron\"\ntopic = \"scale\"\nschedule = \"{schedule}\"\n"
        ));
    }
    toml
}

/// Waits for `/healthz` to answer 200 and then to say `ready` (a version
/// without the field: as soon as it answers); the times since `started`.
async fn healthy(running: &Running, started: Instant) -> (f64, f64) {
    let client = reqwest::Client::new();
    let url = format!("{}/healthz", running.base);
    let mut answered_s = None;
    loop {
        let answered = client.get(&url).send().await;
        if let Ok(answer) = answered
            && answer.status().is_success()
        {
            let at = started.elapsed().as_secs_f64();
            let first = *answered_s.get_or_insert(at);
            let health: Value = answer.json().await.unwrap_or_default();
            if health["ready"].as_bool().unwrap_or(true) {
                return (first, at);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "wasmsched run: no /healthz in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the process uses less than [`QUIET`] of a core over a
/// [`WINDOW`]; the time since `started` at the start of that window.
async fn settled(pid: &str, started: Instant) -> f64 {
    loop {
        let at = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds_of(pid);
        tokio::time::sleep(WINDOW).await;
        if (cpu_seconds_of(pid) - cpu) / WINDOW.as_secs_f64() < QUIET {
            return at;
        }
    }
}

/// `n` triggers none due: until `/healthz` answers, until it says
/// `ready`, until settled,
/// resident memory 1 s later, idle CPU over the next 10 s, log lines.
pub async fn capacity(n: usize, distinct: bool) -> Value {
    let started = Instant::now();
    let running = start(n, |i| match distinct {
        true => super::distinct(i),
        false => "0 3 1 1 *".to_owned(),
    });
    let (answers_s, ready_s) = healthy(&running, started).await;
    let pid = running.pid();
    let settled_s = settled(&pid, started).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_mib = rss_mib_of(&pid);
    let cpu = cpu_seconds_of(&pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu_pct = (cpu_seconds_of(&pid) - cpu) / 10.0 * 100.0;
    json!({"answers_s": answers_s, "ready_s": ready_s, "settled_s": settled_s, "rss_mib": rss_mib,
           "idle_cpu_pct": idle_cpu_pct,
           "log_lines": running.log_lines.load(Ordering::Relaxed)})
}

/// `n` triggers on `* * * * *`, their events read from
/// `/api/events/stream`: how late each instant's event was published (its
/// `time`, stamped by the host, minus the instant it carries) and how late
/// it reached the client (its arrival minus the instant), the first minute
/// after the start and the next.
pub async fn lateness(n: usize) -> Value {
    super::before_a_minute_boundary().await;
    let started = Instant::now();
    let running = start(n, |_| "* * * * *".to_owned());
    healthy(&running, started).await;
    let (published, arrived) = (Lateness::default(), Lateness::default());
    let stream = reqwest::get(format!("{}/api/events/stream?pattern=scale", running.base))
        .await
        .unwrap();
    assert!(stream.status().is_success(), "{stream:?}");
    let reader = tokio::spawn(read_stream(stream, published.clone(), arrived.clone()));
    let first = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::minutes(1);
    let second = first + TimeDelta::minutes(1);
    let wait = (second - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(10);
    tokio::time::sleep(wait).await;
    reader.abort();
    drop(running);
    json!({"first": published.summary(first), "second": published.summary(second),
           "arrived": {"first": arrived.summary(first), "second": arrived.summary(second)}})
}

/// Records each `data:` line's event: its `time` and its arrival, each
/// minus `data.scheduled`.
async fn read_stream(stream: reqwest::Response, published: Lateness, arrived: Lateness) {
    let mut bytes = stream.bytes_stream();
    let mut pending = String::new();
    while let Some(Ok(chunk)) = bytes.next().await {
        let now = Utc::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            let instant = |value: &Value| {
                let parsed = value.as_str().map(DateTime::parse_from_rfc3339)?;
                Some(parsed.ok()?.with_timezone(&Utc))
            };
            if let (Some(at), Some(time)) = (
                instant(&event["data"]["scheduled"]),
                instant(&event["time"]),
            ) {
                published.record(at, time - at);
                arrived.record(at, now - at);
            }
        }
    }
}
