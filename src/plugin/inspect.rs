//! Load-time checks of a component against the contract: which worlds it
//! implements (its exports) and whether everything it imports is granted.

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginError;
use super::host::GRANTED;

pub(crate) const FACTORY: &str = "wasmsched:plugin/factory";
pub(crate) const FILTER: &str = "wasmsched:plugin/filter";

/// Which exports of the contract a plugin has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Worlds {
    /// Exports `wasmsched:plugin/factory` (can make events).
    pub factory: bool,
    /// Exports `wasmsched:plugin/filter` (can filter events).
    pub filter: bool,
}

impl Worlds {
    /// The WIT worlds the plugin satisfies: `factory-plugin`,
    /// `filter-plugin`, and `plugin` when it has both exports.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.factory {
            names.push("factory-plugin");
        }
        if self.filter {
            names.push("filter-plugin");
        }
        if self.factory && self.filter {
            names.push("plugin");
        }
        names
    }

    /// Does a plugin with these exports have every export `needed` asks
    /// for? (What a new version must keep for the triggers using the old.)
    pub fn covers(&self, needed: Worlds) -> bool {
        (self.factory || !needed.factory) && (self.filter || !needed.filter)
    }
}

/// Exported interface names of the contract, as the component spells them
/// (e.g. `wasmsched:plugin/filter@0.1.0`).
pub(crate) struct ContractExports {
    pub(crate) worlds: Worlds,
    pub(crate) factory: Option<String>,
    pub(crate) filter: Option<String>,
}

/// Finds the factory and filter exports; refuses other versions.
pub(crate) fn exports(
    name: &str,
    component: &Component,
    engine: &Engine,
) -> Result<ContractExports, PluginError> {
    let ty = component.component_type();
    let mut found = Vec::new();
    let (mut factory, mut filter, mut incompatible) = (None, None, None);
    for (export, _) in ty.exports(engine) {
        found.push(export.to_owned());
        let (interface, version) = split_version(export);
        let slot = match interface {
            FACTORY => &mut factory,
            FILTER => &mut filter,
            _ => continue,
        };
        if version.is_some_and(is_contract_version) {
            *slot = Some(export.to_owned());
        } else {
            incompatible.get_or_insert_with(|| export.to_owned());
        }
    }
    if let Some(found) = incompatible {
        return Err(PluginError::IncompatibleVersion {
            name: name.to_owned(),
            found,
        });
    }
    if factory.is_none() && filter.is_none() {
        return Err(PluginError::MissingExports {
            name: name.to_owned(),
            found,
        });
    }
    Ok(ContractExports {
        worlds: Worlds {
            factory: factory.is_some(),
            filter: filter.is_some(),
        },
        factory,
        filter,
    })
}

/// The component's imports, in order; refuses any that is not granted.
///
/// Of several refused imports the error names a file-system, socket or
/// HTTP one first: that is the capability the author reached for, while
/// e.g. `wasi:clocks` usually came along with it.
pub(crate) fn imports(
    name: &str,
    component: &Component,
    engine: &Engine,
) -> Result<Vec<String>, PluginError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
    let refused = imports.iter().filter(|import| !granted(import));
    let worst = refused
        .clone()
        .find(|import| is_capability(import))
        .or_else(|| refused.clone().next());
    if let Some(import) = worst {
        let (interface, version) = split_version(import);
        if interface.starts_with("wasmsched:plugin/") && !version.is_some_and(is_contract_version) {
            return Err(PluginError::IncompatibleVersion {
                name: name.to_owned(),
                found: import.clone(),
            });
        }
        return Err(PluginError::ImportNotGranted {
            name: name.to_owned(),
            import: import.clone(),
        });
    }
    Ok(imports)
}

fn granted(import: &str) -> bool {
    let (interface, version) = split_version(import);
    let Some(version) = version else {
        return false;
    };
    if !GRANTED.contains(&interface) {
        return false;
    }
    if interface.starts_with("wasi:") {
        version.starts_with("0.2.")
    } else {
        is_contract_version(version)
    }
}

fn is_capability(import: &str) -> bool {
    ["wasi:filesystem/", "wasi:sockets/", "wasi:http/"]
        .iter()
        .any(|prefix| import.starts_with(prefix))
}

/// `wasmsched:plugin@0.1.x`, any patch release, no pre-release.
fn is_contract_version(version: &str) -> bool {
    version
        .strip_prefix("0.1.")
        .is_some_and(|patch| !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()))
}

/// `a:b/c@1.2.3` -> (`a:b/c`, Some(`1.2.3`)).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(is_contract_version("0.1.0"));
        assert!(is_contract_version("0.1.17"));
        assert!(!is_contract_version("0.2.0"));
        assert!(!is_contract_version("0.1.0-rc1"));
        assert!(!is_contract_version("1.0.0"));
    }

    #[test]
    fn grants() {
        assert!(granted("wasi:cli/stdout@0.2.6"));
        assert!(granted("wasi:io/streams@0.2.0"));
        assert!(granted("wasmsched:plugin/host@0.1.0"));
        assert!(!granted("wasmsched:plugin/host@0.2.0"));
        assert!(!granted("wasi:filesystem/types@0.2.6"));
        assert!(!granted("wasi:clocks/wall-clock@0.2.6"));
        assert!(!granted("wasi:io/streams@0.3.0"));
        assert!(!granted("wasi:cli/stdout"));
    }

    #[test]
    fn world_names() {
        let both = Worlds {
            factory: true,
            filter: true,
        };
        assert_eq!(both.names(), ["factory-plugin", "filter-plugin", "plugin"]);
        let filter = Worlds {
            factory: false,
            filter: true,
        };
        assert_eq!(filter.names(), ["filter-plugin"]);
        assert!(both.covers(filter) && !filter.covers(both) && filter.covers(filter));
    }
}
