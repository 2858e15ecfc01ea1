//! Plugin manifests (`plugins/NAME.toml`) while the host runs.
//!
//! Applying a manifest compares the triggers it declares now with those it
//! declared before (registered or pending, by their `declared_in`): it
//! removes the ids gone, registers the new ones, and replaces the ones
//! whose table changed (unregister, then register); the triggers of other
//! files, and unchanged ones, are not touched. A replaced event trigger
//! drops its broker subscription for that moment, and the in-memory broker
//! drops events published for it in between: only changed or removed
//! triggers are restarted, never others, and never on a plugin swap.
//!
//! A manifest that does not parse changes nothing (its triggers keep
//! running as they were), nor does a changed table that does not build; the
//! error is recorded (see [`Plugins::errors`]) until the file is fixed.
//! A deleted manifest removes every trigger it declared. Its sinks follow
//! the same rules.

use std::path::Path;
use std::sync::Arc;

use super::{Host, HostError, NativeLogic, Removal};
use crate::config::{self, ConfigError, DeclaredIn, Manifest};

/// What applying a manifest did, by trigger id (`sink:<id>` for sinks).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ManifestChanges {
    /// Triggers new in the manifest.
    pub added: Vec<String>,
    /// Triggers whose table changed (replaced; a pause stays).
    pub changed: Vec<String>,
    /// Triggers no longer in it.
    pub removed: Vec<String>,
}

/// `ids` for a log line: all of a few, the first few of many and how
/// many more (a manifest may declare 100 000 triggers).
fn listed(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown = ids[..ids.len().min(SHOWN)].join(", ");
    match ids.len() {
        n if n > SHOWN => format!("[{shown}, and {} more]", n - SHOWN),
        _ => format!("[{shown}]"),
    }
}

impl ManifestChanges {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// `message`, naming `file` unless it already starts with it.
fn in_file(file: &Path, message: String) -> String {
    let name = file.display().to_string();
    match message.starts_with(&name) {
        true => message,
        false => format!("{name}: {message}"),
    }
}

impl Host {
    /// (Re)applies the manifest `path` as it is now (the watcher first
    /// waits for the file to settle); a missing file removes every trigger
    /// it declared.
    pub async fn load_manifest(&self, path: &Path) -> Result<ManifestChanges, HostError> {
        let parsed = match std::fs::read_to_string(path) {
            Ok(text) => config::parse_manifest(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        };
        self.apply_manifest(path, parsed).await
    }

    /// Brings the triggers declared in `path` in line with `parsed`, or
    /// records why it cannot.
    pub(crate) async fn apply_manifest(
        &self,
        path: &Path,
        parsed: Result<Manifest, ConfigError>,
    ) -> Result<ManifestChanges, HostError> {
        let Manifest {
            triggers: declared,
            sinks,
            plugin,
        } = match parsed {
            Ok(manifest) => manifest,
            Err(error) => {
                tracing::error!(file = %path.display(), "{error}; its triggers keep running as they were");
                let message = in_file(path, error.to_string());
                self.state_mut()
                    .manifest_errors
                    .insert(path.to_owned(), message);
                return Err(error.into());
            }
        };
        let serial = self.serial().await;
        let before = self.declared_in(path);
        let mut changes = ManifestChanges::default();
        let mut errors = Vec::new();
        for id in before.keys() {
            if declared.iter().any(|t| &t.id == id) {
                continue;
            }
            match self.remove_locked(&serial, id, Removal::Forget).await {
                Ok(_) => changes.removed.push(id.clone()),
                Err(error) => errors.push(error.to_string()),
            }
        }
        for config in declared {
            let id = config.id.clone();
            let list = match before.get(&id) {
                Some(old) if *old == config => continue,
                Some(_) => {
                    // Keep the old version if the new table does not build.
                    if let Err(error) = self.build_trigger(&config, NativeLogic::default())
                        && !error.waits_for_plugin()
                    {
                        errors.push(format!("{error} (the trigger keeps its previous table)"));
                        continue;
                    }
                    if let Err(error) = self.remove_locked(&serial, &id, Removal::Replace).await {
                        errors.push(error.to_string());
                        continue;
                    }
                    &mut changes.changed
                }
                None => {
                    if let Some(first) = self.declared_elsewhere(&id, path) {
                        let second = DeclaredIn::File(Arc::from(path));
                        errors.push(ConfigError::DuplicateId { id, first, second }.to_string());
                        continue;
                    }
                    &mut changes.added
                }
            };
            match self.register_declared(&serial, config).await {
                Ok(_) => list.push(id),
                Err(error) => {
                    // Gone for good (not waiting for its plugin): a pause
                    // kept for its return would outlive it.
                    self.scheduler.forget_pause(&id).await;
                    errors.push(error.to_string());
                }
            }
        }
        self.apply_sinks(&serial, path, sinks, &mut changes, &mut errors)
            .await;
        if !changes.is_empty() {
            tracing::info!(file = %path.display(), added = %listed(&changes.added), changed = %listed(&changes.changed), removed = %listed(&changes.removed), "applied manifest");
        }
        {
            let mut state = self.state_mut();
            if errors.is_empty() {
                state.manifest_errors.remove(path);
            } else {
                let message = in_file(path, errors.join("; "));
                tracing::error!(file = %path.display(), "{message}");
                state.manifest_errors.insert(path.to_owned(), message);
            }
        }
        drop(serial);
        // The plugin named like the manifest, only from the plugins directory.
        if path.parent() == Some(self.config.plugins_dir.as_path())
            && let Some(stem) = path.file_stem()
        {
            let name = stem.to_string_lossy().into_owned();
            self.plugin_manifest_changed(&name, plugin).await;
        }
        Ok(changes)
    }

    /// The file declaring trigger `id`, if it is not `file`.
    fn declared_elsewhere(&self, id: &str, file: &Path) -> Option<DeclaredIn> {
        let state = self.state();
        let registered = state.triggers.get(id).map(|b| &b.config);
        let config = registered.or_else(|| state.pending.get(id))?;
        (config.declared_in.file() != Some(file)).then(|| config.declared_in.clone())
    }
}
