//! Hosts for the tests: a config written in a fresh directory (with
//! `plugins/`, and the example plugins asked for), [`Host::start`]ed in
//! process and served on a free loopback port, as `wasmsched run` would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmsched_host::app::AppState;
use wasmsched_host::config::Config;
use wasmsched_host::host::Host;
use wasmsched_host::web;

/// Writes `text` as `dir/wasmsched.toml` (making `dir` and `dir/plugins`);
/// its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let path = dir.join("wasmsched.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a config for `wasmsched run` in tests: `dir/plugins` neither
/// watched nor cached (nothing changes it; nothing is left behind), then
/// `rest`; its path.
pub fn write_run_config(dir: &Path, rest: &str) -> PathBuf {
    write_config(
        dir,
        &format!("[plugins]\nwatch = false\ncache = false\n\n{rest}"),
    )
}

/// Copies the example plugin `plugins/NAME.wasm` (built by build.rs) into
/// `dir/plugins/`.
pub fn copy_example_plugin(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let from = crate::repository().join(format!("plugins/{name}.wasm"));
    std::fs::copy(&from, dir.join(format!("plugins/{name}.wasm")))
        .unwrap_or_else(|e| panic!("{} (built by build.rs): {e}", from.display()));
}

/// A host serving its HTTP API and dashboard on loopback.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    /// The host.
    pub host: Arc<Host>,
    /// Where its config lives, when [`Served::start`] wrote it (kept as
    /// long as the host runs).
    pub dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Starts a host from `config` (the text of `wasmsched.toml`) written in
    /// a fresh directory with `plugins` (example plugins) in `plugins/`,
    /// and serves it.
    pub async fn start(config: &str, plugins: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for plugin in plugins {
            copy_example_plugin(dir.path(), plugin);
        }
        let path = write_config(dir.path(), config);
        let host = Host::start(Config::load(&path).unwrap()).await.unwrap();
        let mut served = Self::serve(host).await;
        served.dir = Some(dir);
        served
    }

    /// Serves `host`.
    pub async fn serve(host: Arc<Host>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let state = AppState::new(host.clone()).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        // Served until `stop_serving`, not merely until `Served` is dropped.
        let served = tokio::spawn(web::serve(listener, state, async move {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        Self {
            base,
            addr,
            host,
            dir: None,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Stops serving (connections drain as on SIGTERM) and waits for it.
    pub async fn stop_serving(&mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.served.take() {
            Some(served) => served.await.expect("the server task"),
            None => Ok(()),
        }
    }
}

/// The plugins directory, a SQLite state store and two triggers
/// (`nightly`, cron in Asia/Seoul; `hook`, api): the part of
/// `wasmsched.toml` most served hosts of the tests share (after their
/// `[server]` table).
pub const NIGHTLY_AND_HOOK: &str = r#"[plugins]
dir = "plugins"
[state]
path = "state.db"

[[trigger]]
id = "nightly"
kind = "cron"
topic = "jobs.nightly"
schedule = "0 3 * * *"
timezone = "Asia/Seoul"

[[trigger]]
id = "hook"
kind = "api"
topic = "hooks.in"
"#;

/// An event trigger with a key and dedupe (`orders`) and a webhook sink
/// (`ops`, to `sink_url/hook`, one attempt): the tables the API-wide tests
/// (openapi, schemathesis) add to [`NIGHTLY_AND_HOOK`].
pub fn orders_and_ops(sink_url: &str) -> String {
    format!(
        r#"[[trigger]]
id = "orders"
kind = "event"
topic = "orders.handled"
source = "orders.*"
key = "/id"
dedupe = {{ window = "10m" }}

[[sink]]
id = "ops"
pattern = "alerts.**"
url = "{sink_url}/hook"
max_attempts = 1
"#
    )
}

/// A host with [`NIGHTLY_AND_HOOK`], with `server_table` as the body of
/// `[server]`: what the dashboard and browser tests look at.
pub async fn serve(server_table: &str) -> Served {
    let config = format!("[server]\n{server_table}\n{NIGHTLY_AND_HOOK}");
    Served::start(&config, &[]).await
}
