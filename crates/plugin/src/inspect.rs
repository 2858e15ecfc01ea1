//! Load-time checks of a component against the contract: which worlds it
//! implements and in which version (its exports), and whether everything
//! it imports is granted (to every plugin, or to this one by its manifest).

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::bindings::ContractVersion;
use super::error::PluginError;
use super::grants::Grants;
use super::host::{GRANTED, HTTP_GRANTED};

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

/// Which exports of the contract a component has, in which version.
pub(crate) struct ContractExports {
    pub(crate) worlds: Worlds,
    pub(crate) version: ContractVersion,
}

/// Finds the factory and filter exports; refuses other versions, and a
/// component whose two exports target different versions.
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
        match version.and_then(ContractVersion::of) {
            Some(version) => *slot = Some((export.to_owned(), version)),
            None => {
                incompatible.get_or_insert_with(|| export.to_owned());
            }
        }
    }
    if let (Some((a, va)), Some((b, vb))) = (&factory, &filter)
        && va != vb
    {
        return Err(PluginError::Contract {
            name: name.to_owned(),
            message: format!("it exports `{a}` and `{b}`: both must be of one version"),
        });
    }
    if let Some(found) = incompatible {
        return Err(PluginError::IncompatibleVersion {
            name: name.to_owned(),
            found,
        });
    }
    let Some((_, version)) = factory.as_ref().or(filter.as_ref()) else {
        return Err(PluginError::MissingExports {
            name: name.to_owned(),
            found,
        });
    };
    Ok(ContractExports {
        worlds: Worlds {
            factory: factory.is_some(),
            filter: filter.is_some(),
        },
        version: *version,
    })
}

/// The component's imports, in order; refuses any that is not granted.
///
/// Of several refused imports the error names a file-system, socket or
/// HTTP one first: that is the capability the author reached for, while
/// e.g. `wasi:clocks` usually came along with it. An HTTP import the
/// manifest does not grant names the key that would.
pub(crate) fn imports(
    name: &str,
    component: &Component,
    engine: &Engine,
    grants: &Grants,
) -> Result<Vec<String>, PluginError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
    let allowed =
        |import: &&String| granted(import) || (grants.http.is_some() && http_granted(import));
    let refused = imports.iter().filter(|import| !allowed(import));
    let worst = refused
        .clone()
        .find(|import| is_capability(import))
        .or_else(|| refused.clone().next());
    if let Some(import) = worst {
        let (interface, version) = split_version(import);
        if interface.starts_with("wasmsched:plugin/")
            && version.and_then(ContractVersion::of).is_none()
        {
            return Err(PluginError::IncompatibleVersion {
                name: name.to_owned(),
                found: import.clone(),
            });
        }
        if http_granted(import) {
            return Err(PluginError::NeedsGrant {
                name: name.to_owned(),
                import: import.clone(),
                key: "allowed_outbound_hosts",
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
        ContractVersion::of(version).is_some()
    }
}

/// Is it one of the interfaces a grant of outbound HTTP allows?
fn http_granted(import: &str) -> bool {
    let (interface, version) = split_version(import);
    HTTP_GRANTED.contains(&interface) && version.is_some_and(|v| v.starts_with("0.2."))
}

fn is_capability(import: &str) -> bool {
    ["wasi:filesystem/", "wasi:sockets/", "wasi:http/"]
        .iter()
        .any(|prefix| import.starts_with(prefix))
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
    fn grants() {
        assert!(granted("wasi:cli/stdout@0.2.6"));
        assert!(granted("wasi:io/streams@0.2.0"));
        assert!(granted("wasmsched:plugin/host@0.1.0"));
        assert!(granted("wasmsched:plugin/host@0.2.0"));
        assert!(granted("wasmsched:plugin/kv@0.2.0"));
        assert!(!granted("wasmsched:plugin/host@0.3.0"));
        assert!(!granted("wasi:http/outgoing-handler@0.2.6"));
        assert!(http_granted("wasi:http/outgoing-handler@0.2.6"));
        assert!(http_granted("wasi:clocks/monotonic-clock@0.2.0"));
        assert!(!http_granted("wasi:clocks/wall-clock@0.2.0"));
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
