//! `wasmsched check FILE.wasm`: load a plugin as the host would (with the
//! grants of the `[plugin]` table in `FILE.toml`, if there is one) and say
//! what it is.

use std::path::Path;

use anyhow::{Context, Result};
use wasmsched::config;
use wasmsched::plugin::{Grants, PluginRuntime, RuntimeOptions};

pub fn run(file: &Path) -> Result<()> {
    let runtime = PluginRuntime::new(RuntimeOptions::default())?;
    let manifest_path = file.with_extension("toml");
    let manifest = match manifest_path.is_file() {
        true => config::load_manifest(&manifest_path)?.plugin,
        false => None,
    };
    let defaults = runtime.options().default_limits;
    let limits = manifest.as_ref().map(|m| m.limits(defaults));
    // Secrets are not needed to load: only their names are shown.
    let grants = match &manifest {
        Some(manifest) => {
            let mut without_secrets = manifest.clone();
            without_secrets.secrets.clear();
            without_secrets.grants()?
        }
        None => Grants::default(),
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plugin = runtime.load_granted(&name, &bytes, limits, grants)?;
    println!("{}: ok", file.display());
    println!("  plugin:  {}", plugin.name());
    println!("  sha256:  {}", plugin.hash());
    println!("  targets: {}", plugin.contract_version());
    println!("  worlds:  {}", plugin.worlds().names().join(", "));
    println!("  imports:");
    for import in plugin.imports() {
        println!("    {import}");
    }
    if let Some(manifest) = &manifest {
        let view = plugin.grants().view();
        println!("  granted by {}:", manifest.declared_in.display());
        if !view.allowed_outbound_hosts.is_empty() {
            println!(
                "    outbound HTTP to {}",
                view.allowed_outbound_hosts.join(", ")
            );
        }
        if let Some(kv) = view.kv {
            println!(
                "    key-value store ({} keys, {} bytes)",
                kv.max_keys, kv.max_bytes
            );
        }
        for secret in manifest.secrets.keys() {
            println!("    secret {secret}");
        }
    }
    Ok(())
}
