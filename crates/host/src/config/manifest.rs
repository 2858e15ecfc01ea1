//! Plugin manifests (`plugins/NAME.toml`): their `[[trigger]]`, `[[sink]]`
//! and `[plugin]` tables ([`Manifest`]), and the checks shared with the
//! main file (ids unique, errors naming the file and the table).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::plugin::{PluginManifest, PluginTable};
use super::{ConfigError, DeclaredIn, SinkConfig, TriggerConfig, one_line, parse_text, read_file};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    trigger: Vec<toml::Value>,
    #[serde(default)]
    sink: Vec<toml::Value>,
    #[serde(default)]
    plugin: Option<PluginTable>,
}

/// What one manifest declares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// Its `[[trigger]]` tables.
    pub triggers: Vec<TriggerConfig>,
    /// Its `[[sink]]` tables.
    pub sinks: Vec<SinkConfig>,
    /// Its `[plugin]` table.
    pub plugin: Option<PluginManifest>,
}

/// Loads one manifest file.
pub fn load_manifest(path: &Path) -> Result<Manifest, ConfigError> {
    parse_manifest(path, &read_file(path)?)
}

/// Parses the manifest `path` whose contents are `text`; an id declared
/// twice in it is an error.
pub fn parse_manifest(path: &Path, text: &str) -> Result<Manifest, ConfigError> {
    let manifest: ManifestFile = parse_text(path, text)?;
    let triggers = parse_triggers(path, manifest.trigger)?;
    check_unique_ids(&triggers)?;
    let sinks = parse_sinks(path, manifest.sink)?;
    let plugin = manifest
        .plugin
        .map(|table| table.into_manifest(path))
        .transpose()
        .map_err(|message| ConfigError::Syntax {
            path: path.to_owned(),
            message: format!("[plugin]: {message}"),
        })?;
    Ok(Manifest {
        triggers,
        sinks,
        plugin,
    })
}

/// The `*.toml` files directly in `dir`, sorted; none if `dir` is missing.
pub fn manifests_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut manifests: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    manifests.sort();
    Ok(manifests)
}

pub(super) fn parse_triggers(
    path: &Path,
    tables: Vec<toml::Value>,
) -> Result<Vec<TriggerConfig>, ConfigError> {
    let file = DeclaredIn::File(Arc::from(path));
    tables
        .into_iter()
        .enumerate()
        .map(|(index, table)| {
            let id = table
                .get("id")
                .and_then(toml::Value::as_str)
                .map_or_else(|| format!("#{}", index + 1), str::to_owned);
            let error = |message: String| ConfigError::Trigger {
                path: path.to_owned(),
                id: id.clone(),
                message,
            };
            let mut trigger: TriggerConfig =
                super::deserialize_named(table).map_err(|e| error(one_line(&e)))?;
            trigger.declared_in = file.clone();
            Ok(trigger)
        })
        .collect()
}

pub(super) fn parse_sinks(
    path: &Path,
    tables: Vec<toml::Value>,
) -> Result<Vec<SinkConfig>, ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    tables
        .into_iter()
        .enumerate()
        .map(|(index, table)| {
            let id = table
                .get("id")
                .and_then(toml::Value::as_str)
                .map_or_else(|| format!("#{}", index + 1), str::to_owned);
            let error = |message: String| ConfigError::Syntax {
                path: path.to_owned(),
                message: format!("sink `{id}`: {message}"),
            };
            let mut sink: SinkConfig =
                super::deserialize_named(table).map_err(|e| error(one_line(&e)))?;
            sink.validate().map_err(error)?;
            if !seen.insert(sink.id.clone()) {
                return Err(error("declared twice".into()));
            }
            sink.declared_in = path.to_owned();
            Ok(sink)
        })
        .collect()
}

pub(super) fn check_unique_sinks(sinks: &[SinkConfig]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for sink in sinks {
        if let Some(first) = seen.insert(sink.id.as_str(), &sink.declared_in) {
            return Err(ConfigError::Syntax {
                path: sink.declared_in.clone(),
                message: format!(
                    "sink `{}` is declared twice: in {} and here",
                    sink.id,
                    first.display()
                ),
            });
        }
    }
    Ok(())
}

pub(super) fn check_unique_ids(triggers: &[TriggerConfig]) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &DeclaredIn> = BTreeMap::new();
    for trigger in triggers {
        if let Some(first) = seen.insert(&trigger.id, &trigger.declared_in) {
            return Err(ConfigError::DuplicateId {
                id: trigger.id.clone(),
                first: first.clone(),
                second: trigger.declared_in.clone(),
            });
        }
    }
    Ok(())
}
