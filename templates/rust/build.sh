#!/usr/bin/env bash
# Build the {{name}} plugin as a WebAssembly component and install it, with
# its manifest, into the plugins directory of a wasmsched host.
#
# Usage: bash build.sh [PLUGINS_DIR]   (from any directory)
#   Installs {{name}}.wasm and {{name}}.toml into PLUGINS_DIR: the argument,
#   else $WASMSCHED_PLUGINS, else ./plugins relative to the directory you run
#   this from (run it where you run `wasmsched run`).
# Needs Rust with the wasm32-wasip2 target (rustup target add wasm32-wasip2).
# Honours CARGO_TARGET_DIR.
set -euo pipefail

name="{{name}}"
project="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
plugins="${1:-${WASMSCHED_PLUGINS:-plugins}}"

if command -v rustup >/dev/null \
    && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "build.sh: the wasm32-wasip2 target is missing; run: rustup target add wasm32-wasip2" >&2
    exit 1
fi

echo "build.sh: building $name in $project" >&2
cargo build --manifest-path "$project/Cargo.toml" --release --target wasm32-wasip2
target_dir="${CARGO_TARGET_DIR:-$project/target}"
built="$target_dir/wasm32-wasip2/release/$name.wasm"
[[ -f "$built" ]] || { echo "build.sh: cargo did not produce $built" >&2; exit 1; }

# Install: write next to the target and rename, so a running host (which
# watches the plugins directory) never reads a half-written file.
mkdir -p "$plugins"
plugins="$(cd "$plugins" && pwd)"
cp "$built" "$plugins/$name.wasm.tmp" && mv "$plugins/$name.wasm.tmp" "$plugins/$name.wasm"
cp "$project/$name.toml" "$plugins/$name.toml.tmp" && mv "$plugins/$name.toml.tmp" "$plugins/$name.toml"
echo "build.sh: installed $plugins/$name.wasm ($(wc -c <"$plugins/$name.wasm" | tr -d " ") bytes) and $plugins/$name.toml"
