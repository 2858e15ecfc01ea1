//! A host with two triggers (`nightly`, cron in Asia/Seoul; `hook`, api)
//! and a SQLite state store, serving its HTTP API and dashboard on a free
//! loopback port: what the dashboard and browser tests look at.

use std::sync::Arc;

use wasmsched::config::Config;
use wasmsched::host::Host;
use wasmsched::http::{self, AppState};

pub struct Served {
    pub base: String,
    pub host: Arc<Host>,
    _dir: tempfile::TempDir,
}

/// Starts it, with `server_table` as the body of `[server]`.
pub async fn serve(server_table: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    let path = dir.path().join("wasmsched.toml");
    let config = format!(
        "[server]\n{server_table}\n[plugins]\ndir = \"plugins\"\n[state]\npath = \"state.db\"\n\n\
         [[trigger]]\nid = \"nightly\"\nkind = \"cron\"\ntopic = \"jobs.nightly\"\n\
         schedule = \"0 3 * * *\"\ntimezone = \"Asia/Seoul\"\n\n\
         [[trigger]]\nid = \"hook\"\nkind = \"api\"\ntopic = \"hooks.in\"\n"
    );
    std::fs::write(&path, config).unwrap();
    let host = Host::start(Config::load(&path).unwrap()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(host.clone()).await.unwrap();
    tokio::spawn(http::serve(listener, state, std::future::pending()));
    Served {
        base,
        host,
        _dir: dir,
    }
}
