//! `wasmsched check FILE.wasm`: load a plugin as the host would and say
//! what it is.

use std::path::Path;

use anyhow::Result;
use wasmsched::plugin::{PluginRuntime, RuntimeOptions};

pub fn run(file: &Path) -> Result<()> {
    let runtime = PluginRuntime::new(RuntimeOptions::default())?;
    let plugin = runtime.load_file(file, None)?;
    println!("{}: ok", file.display());
    println!("  plugin:  {}", plugin.name());
    println!("  sha256:  {}", plugin.hash());
    println!("  worlds:  {}", plugin.worlds().names().join(", "));
    println!("  imports:");
    for import in plugin.imports() {
        println!("    {import}");
    }
    Ok(())
}
