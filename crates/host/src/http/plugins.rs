//! `GET /api/admin/plugins`: every plugin, loaded or not, with its
//! counters, grants and history.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use crate::host::PluginChange;
use wasmsched_plugin::{ContractVersion, GrantsView, Plugin, PluginStats};

/// One plugin: loaded, or known by a load that failed.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PluginView {
    /// Loaded (a version serves, even if a later load failed).
    Loaded(Box<LoadedPlugin>),
    /// Never loaded: every load failed.
    Failed(FailedPlugin),
}

/// A loaded plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoadedPlugin {
    /// What it may do beyond its sandbox (secret names, never values).
    pub grants: GrantsView,
    /// The SHA-256 of the version serving now.
    pub hash: String,
    /// Its loads, reloads and failed loads, oldest first.
    pub history: Vec<PluginChange>,
    /// What the component imports, e.g. `wasi:cli/stdout@0.2.6`.
    pub imports: Vec<String>,
    /// The error of the last load, if it failed (the version before serves).
    pub last_error: Option<String>,
    /// Its time and memory budget per call.
    pub limits: PluginLimits,
    /// When the version serving now was loaded (RFC 3339).
    pub loaded_at: String,
    /// Its name (`plugins/NAME.wasm`).
    pub name: String,
    /// Its call counters since it was loaded.
    pub stats: PluginStats,
    /// The contract version it targets.
    pub version: ContractVersion,
    /// The WIT worlds it satisfies: `factory-plugin`, `filter-plugin`,
    /// `plugin`.
    pub worlds: Vec<&'static str>,
}

/// A plugin's budget per call.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PluginLimits {
    /// Linear memory of one instance, in bytes.
    pub memory_bytes: u64,
    /// Running time of one call, in milliseconds.
    pub timeout_ms: u64,
    /// Wall-clock time of one call, waits included, in milliseconds.
    pub wall_timeout_ms: u64,
}

/// A plugin no version of which loaded.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailedPlugin {
    /// Why the last load failed.
    pub last_error: Option<String>,
    /// Always `false`.
    pub loaded: bool,
    /// Its name.
    pub name: String,
}

/// Loaded plugins and their counters
///
/// Every plugin in the plugins directory, with the last load error of
/// those that failed.
#[utoipa::path(get, path = "/api/admin/plugins",
    responses((status = 200, description = "The plugins, by name", body = [PluginView])))]
pub async fn list_plugins(State(app): State<AppState>) -> Json<Vec<PluginView>> {
    let mut errors = app.host.plugins().errors();
    let plugins = app.host.plugins().list();
    let mut names: std::collections::BTreeSet<String> = plugins.keys().cloned().collect();
    names.extend(errors.keys().cloned());
    let views = names.into_iter().map(|name| {
        let last_error = errors.remove(&name);
        match plugins.get(&name) {
            Some(plugin) => PluginView::Loaded(Box::new(loaded(&app, plugin, name, last_error))),
            None => PluginView::Failed(FailedPlugin {
                last_error,
                loaded: false,
                name,
            }),
        }
    });
    Json(views.collect())
}

fn loaded(
    app: &AppState,
    plugin: &Plugin,
    name: String,
    last_error: Option<String>,
) -> LoadedPlugin {
    let limits = plugin.limits();
    LoadedPlugin {
        grants: plugin.grants().view(),
        hash: plugin.hash().to_owned(),
        history: app.host.plugins().history(&name),
        imports: plugin.imports().to_vec(),
        last_error,
        limits: PluginLimits {
            memory_bytes: limits.memory_bytes,
            timeout_ms: limits.timeout.as_millis() as u64,
            wall_timeout_ms: limits.wall_timeout.as_millis() as u64,
        },
        loaded_at: plugin.loaded_at().to_rfc3339(),
        name,
        stats: plugin.stats(),
        version: plugin.contract_version(),
        worlds: plugin.worlds().names(),
    }
}
