//! Hot reload: follows the plugins directory and brings the [`Host`] in
//! line with it, without a restart.
//!
//! A watcher (notify, debounced: a file is looked at once it has had no
//! event for [`DEBOUNCE`]) reports changed files. Each `NAME.wasm` or
//! `NAME.toml` (hidden files and others are ignored) is then synced, one at
//! a time, binaries first:
//!
//! 1. Wait for the file to settle: its size, modification time and inode
//!    unchanged across [`SETTLE`] (cargo and cp write in chunks; a file
//!    renamed into place is settled at once). Read it.
//! 2. A `.wasm` is hashed (unchanged bytes: nothing to do), compiled off
//!    the async runtime and checked ([`Plugins::load`] without the
//!    reading); a `.toml` is parsed.
//! 3. If that failed and the file changed meanwhile, it was still being
//!    written: go back to 1. Otherwise commit: swap the plugin in, or
//!    apply the manifest (`host/plugins.rs`, `host/manifests.rs`), or
//!    record and log the error while the previous version keeps serving.
//!
//! A file missing after [`SETTLE`] was deleted: a plugin's triggers are
//! unregistered (pending until it is back), a manifest's removed.
//!
//! When it starts, and when the watcher reports an error (lost events), the
//! whole directory is rescanned ([`Host::rescan`]).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use notify_debouncer_mini::notify::event::{AccessKind, AccessMode};
use notify_debouncer_mini::notify::{
    self, Event, EventHandler, EventKind, RecommendedWatcher, RecursiveMode, WatcherKind,
};
use notify_debouncer_mini::{
    Config as DebounceConfig, DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer_opt,
};
use tokio::sync::mpsc;

use super::{Candidate, Host};
use crate::config::{self, ConfigError};

/// Quiet time after a file's last event before it is looked at.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// How long a file must stay unchanged to count as fully written.
pub const SETTLE: Duration = Duration::from_millis(100);
/// Longest wait for a file to settle; then it is read as it is.
const MAX_SETTLE: Duration = Duration::from_secs(10);
/// Loads of one file retried while it keeps changing.
const MAX_ATTEMPTS: usize = 20;

/// Follows the plugins directory until dropped (it goes with its host).
pub(crate) struct Watcher {
    _debouncer: Debouncer<ChangesOnly>,
}

impl Watcher {
    /// Starts watching `host`'s plugins directory, then rescans it (for
    /// changes made while the host was loading). `None`, with a warning,
    /// if the directory cannot be watched.
    pub(crate) fn start(host: &Arc<Host>) -> Option<Self> {
        let dir = &host.config.plugins_dir;
        let (sender, receiver) = mpsc::unbounded_channel();
        let config = DebounceConfig::default()
            .with_timeout(DEBOUNCE)
            .with_batch_mode(false);
        let watching = new_debouncer_opt(config, move |events: DebounceEventResult| {
            let _ = sender.send(events);
        })
        .and_then(|mut debouncer: Debouncer<ChangesOnly>| {
            debouncer
                .watcher()
                .watch(dir, RecursiveMode::NonRecursive)?;
            Ok(debouncer)
        });
        match watching {
            Ok(debouncer) => {
                tracing::info!(dir = %dir.display(), "watching the plugins directory");
                tokio::spawn(follow(Arc::downgrade(host), receiver));
                Some(Self {
                    _debouncer: debouncer,
                })
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), "not watching the plugins directory (no hot reload): {error}");
                None
            }
        }
    }
}

/// The platform's watcher, passing on only the events that may change a
/// file: not opening or reading one (the debouncer takes any event for a
/// change, and the host reads every file it syncs, which would sync it
/// again, forever).
struct ChangesOnly(RecommendedWatcher);

impl notify::Watcher for ChangesOnly {
    fn new<F: EventHandler>(mut handler: F, config: notify::Config) -> notify::Result<Self> {
        let changes = move |event: notify::Result<Event>| {
            let read = |kind: &EventKind| match kind {
                EventKind::Access(access) => *access != AccessKind::Close(AccessMode::Write),
                _ => false,
            };
            if !event.as_ref().is_ok_and(|e| read(&e.kind)) {
                handler.handle_event(event);
            }
        };
        RecommendedWatcher::new(changes, config).map(Self)
    }

    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        self.0.watch(path, mode)
    }

    fn unwatch(&mut self, path: &Path) -> notify::Result<()> {
        self.0.unwatch(path)
    }

    fn kind() -> WatcherKind {
        RecommendedWatcher::kind()
    }
}

/// Syncs the files the watcher reports, while the host lives. Reports
/// that queued up meanwhile are merged, so a file is synced once for them.
async fn follow(host: Weak<Host>, mut events: mpsc::UnboundedReceiver<DebounceEventResult>) {
    match host.upgrade() {
        Some(host) => rescan(&host).await,
        None => return,
    }
    while let Some(first) = events.recv().await {
        let Some(host) = host.upgrade() else { return };
        let mut files = BTreeSet::new();
        let mut lost_events = false;
        let mut next = Some(first);
        while let Some(result) = next {
            match result {
                Ok(reported) => {
                    let changed = reported
                        .iter()
                        .filter(|event| event.kind == DebouncedEventKind::Any)
                        .filter_map(|event| PluginFile::classify(&host, &event.path));
                    files.extend(changed);
                }
                Err(error) => {
                    let dir = host.config.plugins_dir.display();
                    tracing::warn!(dir = %dir, "watching the plugins directory: {error}; rescanning");
                    lost_events = true;
                }
            }
            next = events.try_recv().ok();
        }
        if lost_events {
            rescan(&host).await;
            continue;
        }
        for file in files {
            sync(&host, &file, None).await;
        }
    }
}

/// A file of the plugins directory the host cares about. Binaries sort
/// first, so a manifest dropped with its plugin finds it loaded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PluginFile {
    Wasm { name: String, path: PathBuf },
    Manifest { path: PathBuf },
}

impl PluginFile {
    /// `path` as a file of `host`'s plugins directory, if it is one.
    fn classify(host: &Host, path: &Path) -> Option<Self> {
        let file_name = path.file_name()?.to_str()?;
        if file_name.starts_with('.') {
            return None;
        }
        let path = host.config.plugins_dir.join(file_name);
        let (stem, extension) = file_name.rsplit_once('.')?;
        match extension {
            "wasm" => Some(PluginFile::Wasm {
                name: stem.to_owned(),
                path,
            }),
            "toml" if !same_file(&path, &host.config.path) => Some(PluginFile::Manifest { path }),
            _ => None,
        }
    }

    fn path(&self) -> &Path {
        match self {
            PluginFile::Wasm { path, .. } | PluginFile::Manifest { path } => path,
        }
    }
}

/// Does `a` name the same file as `b` (which may not exist)?
fn same_file(a: &Path, b: &Path) -> bool {
    let dir = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()
    };
    a.file_name() == b.file_name() && dir(a) == dir(b)
}

/// Syncs every file of the plugins directory, and every plugin or manifest
/// the host knows whose file is gone.
pub(crate) async fn rescan(host: &Host) {
    let dir = &host.config.plugins_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), "cannot rescan the plugins directory: {error}");
            return;
        }
    };
    let mut files: BTreeSet<PluginFile> = entries
        .flatten()
        .filter_map(|entry| PluginFile::classify(host, &entry.path()))
        .collect();
    let (plugins, manifests) = host.known_files();
    files.extend(plugins.into_iter().map(|name| PluginFile::Wasm {
        path: host.plugins().path(&name),
        name,
    }));
    files.extend(
        manifests
            .into_iter()
            .map(|path| PluginFile::Manifest { path }),
    );
    // One settling interval for all: files unchanged across it are settled.
    let seen: Vec<_> = files
        .into_iter()
        .map(|file| (fingerprint(file.path()).ok(), file))
        .collect();
    tokio::time::sleep(SETTLE).await;
    for (earlier, file) in seen {
        sync(host, &file, earlier).await;
    }
}

/// What a read of a file gave.
enum Attempt<'a> {
    Wasm(&'a str, Candidate),
    Manifest(Result<config::Manifest, ConfigError>),
}

impl Attempt<'_> {
    fn failed(&self) -> bool {
        match self {
            Attempt::Wasm(_, candidate) => candidate.is_broken(),
            Attempt::Manifest(parsed) => parsed.is_err(),
        }
    }
}

/// Brings the host in line with `file` once it has settled (`earlier`: a
/// fingerprint taken at least [`SETTLE`] ago, if any). Errors are logged
/// and recorded by the host.
async fn sync(host: &Host, file: &PluginFile, mut earlier: Option<Fingerprint>) {
    let path = file.path();
    tracing::debug!(file = %path.display(), "syncing");
    for _ in 0..MAX_ATTEMPTS {
        let read = match read_settled(path, earlier.take()).await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(file = %path.display(), "cannot read: {error}");
                return;
            }
        };
        let Some((bytes, read_at)) = read else {
            match file {
                PluginFile::Wasm { name, .. } => host.plugins().unload(name).await,
                PluginFile::Manifest { path } => {
                    let _ = host
                        .apply_manifest(path, Ok(config::Manifest::default()))
                        .await;
                }
            }
            return;
        };
        let attempt = match file {
            PluginFile::Wasm { name, .. } => {
                Attempt::Wasm(name, host.compile_plugin(name, bytes).await)
            }
            PluginFile::Manifest { path } => Attempt::Manifest(parse_manifest(path, bytes)),
        };
        if attempt.failed() && changed_since(path, read_at).await {
            tracing::debug!(file = %path.display(), "failed to load while still being written; trying again");
            continue;
        }
        match attempt {
            Attempt::Wasm(name, candidate) => {
                let _ = host.commit_plugin(name, candidate).await;
            }
            Attempt::Manifest(parsed) => {
                let _ = host.apply_manifest(path, parsed).await;
            }
        }
        return;
    }
    tracing::warn!(file = %path.display(), "gave up loading: the file keeps changing");
}

fn parse_manifest(path: &Path, bytes: Vec<u8>) -> Result<config::Manifest, ConfigError> {
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Syntax {
        path: path.to_owned(),
        message: "not UTF-8 text".into(),
    })?;
    config::parse_manifest(path, &text)
}

/// Size, modification time and inode of a file; `None` if it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(Option<(u64, Option<SystemTime>, u64)>);

fn fingerprint(path: &Path) -> io::Result<Fingerprint> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Fingerprint(Some((
            meta.len(),
            meta.modified().ok(),
            inode(&meta),
        )))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Fingerprint(None)),
        Err(error) => Err(error),
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// The file's bytes once its fingerprint held still for [`SETTLE`], with
/// that fingerprint; `None` if the file is missing.
async fn read_settled(
    path: &Path,
    earlier: Option<Fingerprint>,
) -> io::Result<Option<(Vec<u8>, Fingerprint)>> {
    let mut seen = match earlier {
        Some(seen) => seen,
        None => {
            let seen = fingerprint(path)?;
            tokio::time::sleep(SETTLE).await;
            seen
        }
    };
    let give_up = Instant::now() + MAX_SETTLE;
    loop {
        let now = fingerprint(path)?;
        let overdue = Instant::now() >= give_up;
        if now == seen || overdue {
            if now.0.is_none() {
                return Ok(None);
            }
            let owned = path.to_owned();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(owned))
                .await
                .map_err(io::Error::other)?;
            match bytes {
                Ok(bytes) if overdue || fingerprint(path)? == now => return Ok(Some((bytes, now))),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        seen = now;
        tokio::time::sleep(SETTLE).await;
    }
}

/// Does the file change within [`SETTLE`] of `read_at`?
async fn changed_since(path: &Path, read_at: Fingerprint) -> bool {
    tokio::time::sleep(SETTLE).await;
    !fingerprint(path).is_ok_and(|now| now == read_at)
}
