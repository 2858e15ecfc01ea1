//! Builds the Rust guest plugins in `plugins/rust` (a separate cargo
//! workspace) for `wasm32-wasip2`, copies the example plugins next to their
//! manifests (`plugins/NAME.wasm`; `chat_poster`, which needs a grant, next
//! to its own in `plugins/rust/chat_poster/` until a user copies both in),
//! and tells the tests where the adversarial ones are (`WASMSCHED_GUEST_DIR`).
//!
//! Set `WASMSCHED_SKIP_GUESTS=1` to skip (e.g. when the target is missing
//! and you only need the host).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The example plugins and where each goes (relative to the repository).
const EXAMPLES: &[(&str, &str)] = &[
    ("large_dataset", "plugins"),
    ("error_alert", "plugins"),
    ("github_webhook", "plugins"),
    ("pipeline_stage", "plugins"),
    // Refused without its manifest's grant: `wasmsched run` would report
    // it at every start.
    ("chat_poster", "plugins/rust/chat_poster"),
];

fn main() {
    println!("cargo:rerun-if-env-changed=WASMSCHED_SKIP_GUESTS");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("plugins/rust");
    // Guests get their own target dir so this nested cargo never waits on
    // the lock of the outer build.
    let target_dir = guest_target_dir(&manifest_dir);
    let out = target_dir.join("wasm32-wasip2/release");
    println!("cargo:rustc-env=WASMSCHED_GUEST_DIR={}", out.display());
    // The core alone (`--no-default-features`) runs no plugin.
    let plugins = std::env::var_os("CARGO_FEATURE_PLUGINS").is_some();
    if !plugins || std::env::var_os("WASMSCHED_SKIP_GUESTS").is_some() || !workspace.exists() {
        return;
    }
    watch(&workspace);
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("wit").display()
    );

    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // Do not inherit the outer build's flags (e.g. coverage, profiles).
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo for the guest plugins");
    if !status.success() {
        panic!(
            "building the guest plugins in {} failed. If the target is missing, run: \
             rustup target add wasm32-wasip2",
            workspace.display()
        );
    }
    for (name, dir) in EXAMPLES {
        let from = out.join(format!("{name}.wasm"));
        let to = manifest_dir.join(format!("{dir}/{name}.wasm"));
        // Copy only on change so a running host does not see a spurious write.
        if std::fs::read(&from).ok() != std::fs::read(&to).ok() {
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        }
    }
}

fn guest_target_dir(manifest_dir: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("guests"),
        None => manifest_dir.join("target/guests"),
    }
}

fn watch(workspace: &Path) {
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    let Ok(crates) = std::fs::read_dir(workspace) else {
        return;
    };
    for entry in crates.flatten() {
        let path = entry.path();
        if path.join("Cargo.toml").exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
