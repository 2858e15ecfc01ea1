//! `wasmsched run` processes and the helpers the replica tests use to
//! drive them: start one on a free port, read its health and status.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::nats_server::NatsServer;

/// How long a replica may take to start.
const START: Duration = Duration::from_secs(20);

/// Spawns `command` (a `wasmsched run`) with its stderr piped and read
/// line by line into the log it returns (so it never blocks on a full
/// pipe), and waits for the address it logs (`HTTP API on ...`): the child,
/// `http://ADDRESS` and the log. With `echo`, warnings and errors are
/// printed too (shown when a test fails).
pub fn spawn_listening(command: &mut Command, echo: bool) -> (Child, String, Log) {
    let mut child = command
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (address, listening) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Log::default();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            kept.lock().unwrap().push(line.clone());
            if let Some((_, base)) = line.split_once("HTTP API on ") {
                let _ = address.send(base.trim().to_owned());
            }
            let loud =
                line.contains(" WARN ") || line.contains(" ERROR ") || line.contains("DEBUG");
            if echo && loud {
                eprintln!("[wasmsched {}] {line}", std::process::id());
            }
        }
    });
    let base = listening
        .recv_timeout(START)
        .unwrap_or_else(|_| panic!("no HTTP address logged: {:?}", log.lock().unwrap()));
    (child, base, log)
}

/// Every line a process logged so far.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A `wasmsched run` process.
pub struct Replica {
    pub child: Child,
    pub base: String,
    /// Every line it logged so far.
    pub log: Log,
}

impl Replica {
    /// Starts `wasmsched run --config config` on a port it picks itself
    /// (`--listen 127.0.0.1:0`, read back from its log) and waits until
    /// `/healthz` answers 200.
    pub async fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[]).await
    }

    /// [`Self::start`] with these environment variables set (`RUST_LOG`
    /// among them overrides the default).
    pub async fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(crate::binary());
        command
            .args(["run", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .env(
                "RUST_LOG",
                std::env::var("WASMSCHED_TEST_LOG")
                    .unwrap_or_else(|_| "warn,wasmsched::cli::run=info".into()),
            );
        for (name, value) in env {
            command.env(name, value);
        }
        let (child, base, log) = spawn_listening(&mut command, true);
        let replica = Self { child, base, log };
        let deadline = Instant::now() + START;
        while health(&replica.base).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "replica on {} did not start",
                replica.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replica
    }

    /// How often its `relay` trigger fired so far.
    pub async fn fires(&self) -> u64 {
        let url = format!("{}/api/admin/triggers/relay", self.base);
        let view: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        view["fire_count"].as_u64().unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `wasmsched status` prints about the host at `base`.
pub async fn wasmsched_status(base: &str) -> String {
    let base = base.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(crate::binary())
            .args(["status", "--url", &base])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

pub async fn health(base: &str) -> (u16, Value) {
    match reqwest::get(format!("{base}/healthz")).await {
        Ok(response) => (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        ),
        Err(_) => (0, Value::Null),
    }
}

/// A `wasmsched.toml` in `dir` on `server` with `triggers`, no plugins.
pub fn write_config(dir: &Path, server: &NatsServer, triggers: &str) -> PathBuf {
    let broker = format!(
        "[broker]\nkind = \"nats\"\nurl = \"{}\"\nack_wait_secs = 2\n\n",
        server.url()
    );
    crate::write_run_config(dir, &format!("{broker}{triggers}"))
}
