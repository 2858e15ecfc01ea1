#!/usr/bin/env bash
# Build the {{name}} plugin as a WebAssembly component with componentize-js
# and install it, with its manifest, into the plugins directory of a
# wasmsched host.
#
# Usage: bash build.sh [PLUGINS_DIR]   (from any directory)
#   Installs {{name}}.wasm and {{name}}.toml into PLUGINS_DIR: the argument,
#   else $WASMSCHED_PLUGINS, else ./plugins relative to the directory you run
#   this from (run it where you run `wasmsched run`).
# Needs node (>= 18) and npm. Runs `npm ci` here on first use (needs the
# network once; versions pinned in package.json and package-lock.json);
# after that it works offline. COMPONENTIZE_JS=/path/to/componentize-js uses
# an existing install instead. Do not add --aot: it downloads a tool.
#
# All the WASI features componentize-js can drop are disabled, so the
# component imports only wasmsched:plugin (what the host allows).
set -euo pipefail

name="{{name}}"
world="factory-plugin"  # or filter-plugin, or plugin (both); see wit/plugin.wit
project="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
plugins="${1:-${WASMSCHED_PLUGINS:-plugins}}"

tool="${COMPONENTIZE_JS:-}"
if [[ -n "$tool" ]]; then
    [[ "$tool" == */* && "$tool" != /* ]] && tool="$PWD/$tool"
else
    tool="$project/node_modules/.bin/componentize-js"
    want="$(node -p "require(process.argv[1]).devDependencies['@bytecodealliance/componentize-js']" "$project/package.json")"
    if [[ ! -x "$tool" ]] || [[ "$("$tool" --version 2>/dev/null)" != "$want" ]]; then
        echo "build.sh: installing componentize-js $want (npm ci in $project)" >&2
        (cd "$project" && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

echo "build.sh: building $name ($world) in $project" >&2
# A relative source path: componentize-js 0.23.0 mangles an absolute one
# when the working directory is `/`.
(cd "$project" && "$tool" app.js --wit wit --world-name "$world" \
    --disable http fetch-event stdio random clocks --out "$name.wasm.tmp" >/dev/null)
mv "$project/$name.wasm.tmp" "$project/$name.wasm"

# Install: write next to the target and rename, so a running host (which
# watches the plugins directory) never reads a half-written file.
mkdir -p "$plugins"
plugins="$(cd "$plugins" && pwd)"
cp "$project/$name.wasm" "$plugins/$name.wasm.tmp" && mv "$plugins/$name.wasm.tmp" "$plugins/$name.wasm"
cp "$project/$name.toml" "$plugins/$name.toml.tmp" && mv "$plugins/$name.toml.tmp" "$plugins/$name.toml"
echo "build.sh: installed $plugins/$name.wasm ($(wc -c <"$plugins/$name.wasm" | tr -d " ") bytes) and $plugins/$name.toml"
