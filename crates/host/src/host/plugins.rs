//! Loading, swapping and unloading plugins (`plugins/NAME.wasm`).
//!
//! A load reads and hashes the file (the bytes of the version in use, or
//! of the last failed load, are not compiled again), compiles and checks
//! it off the async runtime, then, under the change lock, gives a new
//! plugin its slot, or swaps a new version into the slot of a loaded one
//! if it still exports what the triggers using it call (a factory, a
//! filter): otherwise the old version keeps serving and the refusal is
//! reported. A broken file is reported the same way. Either way triggers
//! waiting for the plugin are registered once it loads.
//!
//! A plugin is loaded with the limits and grants of the `[plugin]` table
//! of its manifest (`plugins/NAME.toml`), secrets read then; a change to
//! that table reloads it ([`Host::plugin_manifest_changed`]).
//!
//! Deleting the file ([`Plugins::unload`]) unregisters the triggers
//! using the plugin and keeps them pending until the file is back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Declared, Failure, Host, HostError, Removal, Serial};
use crate::config::{PluginManifest, TriggerConfig};
use wasmsched_plugin::{Plugin, PluginError, PluginSlot, content_hash};

/// A plugin file, compiled and checked but not in use yet.
pub(crate) enum Candidate {
    /// The bytes of the version in use.
    Current,
    /// The bytes of the last failed load, already reported.
    KnownBroken,
    /// Compiled with the `[plugin]` table it names.
    New(Arc<Plugin>, Option<PluginManifest>),
    Broken {
        /// The bytes' hash, if they could be read.
        hash: Option<String>,
        error: PluginError,
    },
}

impl Candidate {
    pub(crate) fn is_broken(&self) -> bool {
        matches!(self, Candidate::Broken { .. })
    }
}

/// The first 12 hex digits of a hash, to name a version in logs.
fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

impl Host {
    /// Compiles and checks `bytes` as plugin `name`, off the async runtime,
    /// with the limits and grants of its manifest, unless they are those of
    /// the version in use (under the same manifest) or of the last failure.
    pub(crate) async fn compile_plugin(&self, name: &str, bytes: Vec<u8>) -> Candidate {
        let hash = content_hash(&bytes);
        let manifest = self.state().plugin_manifests.get(name).cloned();
        {
            let state = self.state();
            if let Some(slot) = state.plugins.get(name)
                && slot.current().hash() == hash
                && state.loaded_with.get(name) == Some(&manifest)
            {
                return Candidate::Current;
            }
            if let Some(failure) = state.failures.get(name)
                && failure.hash.as_deref() == Some(&hash)
            {
                return Candidate::KnownBroken;
            }
        }
        let runtime = self.runtime.clone();
        let owned = name.to_owned();
        let with = manifest.clone();
        let load = move || match &with {
            Some(manifest) => {
                let limits = manifest.limits(runtime.options().default_limits);
                let grants = manifest.grants()?;
                runtime.load_granted(&owned, &bytes, Some(limits), grants)
            }
            None => runtime.load_bytes(&owned, &bytes, None),
        };
        let loaded = tokio::task::spawn_blocking(load)
            .await
            .unwrap_or_else(|panic| {
                Err(PluginError::Compile {
                    name: name.to_owned(),
                    message: format!("compiling panicked: {panic}"),
                })
            });
        match loaded {
            Ok(plugin) => Candidate::New(plugin, manifest),
            Err(error) => Candidate::Broken {
                hash: Some(hash),
                error,
            },
        }
    }

    /// Puts a candidate in use, or records why it cannot be; returns the
    /// version in use after.
    pub(crate) async fn commit_plugin(
        &self,
        name: &str,
        candidate: Candidate,
    ) -> Result<Arc<Plugin>, HostError> {
        let refused = |message: String| HostError::Refused {
            plugin: name.to_owned(),
            message,
        };
        match candidate {
            Candidate::New(plugin, manifest) => {
                let serial = self.serial().await;
                let installed = self.install(&serial, name, plugin).await;
                if installed.is_ok() {
                    self.state_mut()
                        .loaded_with
                        .insert(name.to_owned(), manifest);
                }
                installed
            }
            Candidate::Current => {
                let mut state = self.state_mut();
                if state.failures.remove(name).is_some() {
                    tracing::info!(plugin = %name, "the file holds the loaded version again: error cleared");
                }
                let slot = state.plugins.get(name);
                slot.map(|s| s.current())
                    .ok_or_else(|| refused("unloaded meanwhile".into()))
            }
            Candidate::KnownBroken => {
                let state = self.state();
                let error = state.failures.get(name).map(|f| f.error.clone());
                Err(refused(error.unwrap_or_default()))
            }
            Candidate::Broken { hash, error } => {
                self.record_failure(name, error.to_string(), hash);
                Err(error.into())
            }
        }
    }

    /// Gives `plugin` a slot, or swaps it into its slot if it exports what
    /// the triggers using the old version call; then registers the
    /// triggers waiting for it.
    async fn install(
        &self,
        serial: &Serial<'_>,
        name: &str,
        plugin: Arc<Plugin>,
    ) -> Result<Arc<Plugin>, HostError> {
        let slot = self.state().plugins.get(name).cloned();
        match slot {
            Some(slot) => {
                if let Some(message) = self.refusal(name, &plugin) {
                    self.record_failure(name, message.clone(), None);
                    return Err(HostError::Refused {
                        plugin: name.to_owned(),
                        message,
                    });
                }
                let old = slot.replace(plugin.clone());
                let change = PluginChangeKind::Swapped {
                    from: old.hash().to_owned(),
                    hash: plugin.hash().to_owned(),
                };
                self.state_mut().record_change(name, change);
                tracing::info!(plugin = %name, from = %short(old.hash()), to = %short(plugin.hash()), triggers = ?self.users(name), "swapped plugin: calls under way finish on the old version, later ones use the new");
            }
            None => {
                let slot = PluginSlot::new(plugin.clone());
                let mut state = self.state_mut();
                state.plugins.insert(name.to_owned(), slot);
                let hash = plugin.hash().to_owned();
                state.record_change(name, PluginChangeKind::Loaded { hash });
                drop(state);
                tracing::info!(plugin = %name, hash = %short(plugin.hash()), worlds = ?plugin.worlds().names(), "loaded plugin");
            }
        }
        self.state_mut().failures.remove(name);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.register_waiting(serial, name).await;
        Ok(plugin)
    }

    /// Why `new` may not replace the loaded version: a trigger using
    /// plugin `name` calls an export `new` lacks.
    fn refusal(&self, name: &str, new: &Plugin) -> Option<String> {
        let state = self.state();
        let has = new.worlds();
        let using = |bound: &super::Bound| bound.config.plugin.as_deref() == Some(name);
        if !new.takes_batches()
            && let Some((id, _)) = state.triggers.iter().find(|(_, bound)| {
                using(bound) && bound.uses.factory && super::triggers::batches(&bound.config)
            })
        {
            return Some(format!(
                "the new version ({}) targets wasmsched:plugin@0.1.0, whose factories cannot \
                 take the batches trigger `{id}` fires with",
                short(new.hash()),
            ));
        }
        let (id, bound) = state
            .triggers
            .iter()
            .find(|(_, bound)| using(bound) && !has.covers(bound.uses))?;
        let export = match bound.uses.factory && !has.factory {
            true => "factory",
            false => "filter",
        };
        Some(format!(
            "the new version ({}) exports no {export}, which trigger `{id}` calls",
            short(new.hash()),
        ))
    }

    /// The registered triggers using plugin `name`.
    fn users(&self, name: &str) -> Vec<String> {
        let state = self.state();
        let users = state.triggers.iter();
        users
            .filter(|(_, bound)| bound.config.plugin.as_deref() == Some(name))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Registers the pending triggers waiting for plugin `name`.
    async fn register_waiting(&self, serial: &Serial<'_>, name: &str) {
        let waiting: Vec<TriggerConfig> = {
            let mut state = self.state_mut();
            let pending = std::mem::take(&mut state.pending);
            let (waiting, others) = pending
                .into_iter()
                .partition(|(_, t)| t.plugin.as_deref() == Some(name));
            state.pending = others;
            waiting.into_values().collect()
        };
        for config in waiting {
            let id = config.id.clone();
            match self.register_declared(serial, config).await {
                Ok(Declared::Registered) => {
                    tracing::info!(trigger = %id, plugin = %name, "registered the trigger that waited for its plugin");
                }
                Ok(Declared::Waiting(_)) => {}
                Err(error) => {
                    tracing::error!(trigger = %id, plugin = %name, "cannot register the trigger that waited for its plugin: {error}");
                }
            }
        }
    }

    /// Notes, for a plugin that is not loaded, which triggers wait for its
    /// file (unless a load error says more); drops the note when none do.
    pub(super) fn note_waiting(&self, name: &str) {
        let mut state = self.state_mut();
        let real_error = state.failures.get(name).is_some_and(|f| !f.waiting_note);
        if state.plugins.contains_key(name) || real_error {
            return;
        }
        let waiting: Vec<String> = state
            .pending
            .values()
            .filter(|t| t.plugin.as_deref() == Some(name))
            .map(|t| format!("`{}`", t.id))
            .collect();
        if waiting.is_empty() {
            state.failures.remove(name);
            return;
        }
        let error = format!(
            "{} is missing; triggers waiting for it: {}",
            self.plugins().path(name).display(),
            waiting.join(", ")
        );
        let note = Failure {
            error,
            hash: None,
            waiting_note: true,
        };
        state.failures.insert(name.to_owned(), note);
    }

    /// Takes the `[plugin]` table of `name`'s manifest as it is now (`None`:
    /// no table, or no manifest) and, if it changed, reloads the plugin with
    /// it: new grants and limits apply to the calls that start after.
    pub(crate) async fn plugin_manifest_changed(
        &self,
        name: &str,
        manifest: Option<PluginManifest>,
    ) {
        let known = {
            let mut state = self.state_mut();
            let before = match &manifest {
                Some(m) => state.plugin_manifests.insert(name.to_owned(), m.clone()),
                None => state.plugin_manifests.remove(name),
            };
            if before == manifest {
                return;
            }
            // A load that failed under the old table may work under this one.
            state.failures.remove(name);
            state.plugins.contains_key(name) || self.plugins().path(name).is_file()
        };
        if known {
            tracing::info!(plugin = %name, "the [plugin] table of its manifest changed: reloading it");
            if let Err(error) = self.plugins().load(name).await {
                tracing::debug!(plugin = %name, "reload after a manifest change: {error}");
            }
        }
    }

    /// Records (and logs) a failed load of plugin `name`.
    fn record_failure(&self, name: &str, error: String, hash: Option<String>) {
        let mut state = self.state_mut();
        let file = self.plugins().path(name);
        match state.plugins.get(name) {
            Some(slot) => {
                let serving = slot.current();
                tracing::error!(plugin = %name, file = %file.display(), serving = %short(serving.hash()), "{error}; the loaded version keeps serving");
            }
            None => tracing::error!(plugin = %name, file = %file.display(), "{error}"),
        }
        state.record_change(
            name,
            PluginChangeKind::Failed {
                error: error.clone(),
            },
        );
        let failure = Failure {
            error,
            hash,
            waiting_note: false,
        };
        state.failures.insert(name.to_owned(), failure);
    }
}

/// Changes kept per plugin in [`Plugins::history`].
const PLUGIN_HISTORY: usize = 20;

/// One change of a plugin: what happened, when, to which version.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Serialize)]
pub struct PluginChange {
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// What.
    pub change: PluginChangeKind,
}

/// What happened to a plugin.
#[derive(utoipa::ToSchema, Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PluginChangeKind {
    /// First loaded, in version `hash`.
    Loaded {
        /// The version's hash.
        hash: String,
    },
    /// Replaced by version `hash` (calls under way finished on `from`).
    Swapped {
        /// The version before.
        from: String,
        /// The version now.
        hash: String,
    },
    /// A load failed; the version before, if any, kept serving.
    Failed {
        /// Why.
        error: String,
    },
}

impl super::State {
    fn record_change(&mut self, plugin: &str, change: PluginChangeKind) {
        let history = self.plugin_history.entry(plugin.to_owned()).or_default();
        history.push_back(PluginChange {
            at: chrono::Utc::now(),
            change,
        });
        while history.len() > PLUGIN_HISTORY {
            history.pop_front();
        }
    }
}

/// The host's plugins: loaded, failed and their history; loading and unloading one by name.
#[derive(Clone, Copy)]
pub struct Plugins<'a> {
    host: &'a Host,
}

impl Host {
    /// The host's plugins.
    pub fn plugins(&self) -> Plugins<'_> {
        Plugins { host: self }
    }
}

impl Plugins<'_> {
    /// Where plugin `name` lives: `<plugins dir>/NAME.wasm`.
    pub fn path(self, name: &str) -> std::path::PathBuf {
        self.host.config.plugins_dir.join(format!("{name}.wasm"))
    }

    /// (Re)loads `plugins/NAME.wasm` as it is now (the watcher first waits
    /// for the file to settle). On failure the error is recorded (see
    /// [`Plugins::errors`]) and the version loaded before, if any,
    /// keeps serving.
    pub async fn load(self, name: &str) -> Result<Arc<Plugin>, HostError> {
        let path = self.path(name);
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(path)).await
        };
        let candidate = match read.map_err(std::io::Error::other).and_then(|r| r) {
            Ok(bytes) => self.host.compile_plugin(name, bytes).await,
            Err(source) => Candidate::Broken {
                hash: None,
                error: PluginError::Read { path, source },
            },
        };
        self.host.commit_plugin(name, candidate).await
    }

    /// Forgets plugin `name`, whose file was deleted: the triggers using it
    /// are unregistered and wait (pending) for the file to come back.
    pub async fn unload(self, name: &str) {
        let serial = self.host.serial().await;
        let file = self.path(name);
        for id in self.host.users(name) {
            match self
                .host
                .remove_locked(&serial, &id, Removal::Replace)
                .await
            {
                Ok(config) => {
                    tracing::warn!(trigger = %id, plugin = %name, file = %file.display(), "unregistered the trigger: its plugin file was deleted (it comes back with the file)");
                    self.host.state_mut().pending.insert(id, config);
                }
                Err(error) => {
                    tracing::error!(trigger = %id, plugin = %name, "cannot unregister the trigger: {error}");
                }
            }
        }
        self.host.state_mut().loaded_with.remove(name);
        let slot = self.host.state_mut().plugins.remove(name);
        if let Some(slot) = slot {
            let hash = slot.current().hash().to_owned();
            tracing::info!(plugin = %name, hash = %short(&hash), file = %file.display(), "unloaded plugin: its file was deleted");
        }
        self.host.state_mut().failures.remove(name);
        self.host.note_waiting(name);
    }

    /// The current version of each loaded plugin, by name.
    pub fn list(self) -> BTreeMap<String, Arc<Plugin>> {
        self.host
            .state()
            .plugins
            .iter()
            .map(|(name, slot)| (name.clone(), slot.current()))
            .collect()
    }

    /// The last error of each plugin whose latest file failed to load (or
    /// that triggers wait for), and of each manifest that failed to apply
    /// (under its file stem, naming the file). Cleared once fixed.
    pub fn errors(self) -> BTreeMap<String, String> {
        let state = self.host.state();
        let mut errors: BTreeMap<String, String> = state
            .failures
            .iter()
            .map(|(name, failure)| (name.clone(), failure.error.clone()))
            .collect();
        for (path, error) in &state.manifest_errors {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            errors
                .entry(stem.into_owned())
                .and_modify(|e| *e = format!("{e}; {error}"))
                .or_insert_with(|| error.clone());
        }
        errors
    }

    /// How many plugin loads succeeded (first loads and swaps).
    /// The last loads, swaps and failures of plugin `name` (up to 20,
    /// oldest first; kept in memory since the start).
    pub fn history(self, name: &str) -> Vec<PluginChange> {
        let state = self.host.state();
        let history = state.plugin_history.get(name);
        history
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }
}
