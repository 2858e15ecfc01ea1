#!/usr/bin/env bash
# Build the JavaScript guest plugins (plugins/js/NAME/*.js) as WebAssembly
# components with componentize-js: plugins/NAME.wasm.
#
# Usage: bash plugins/build-js.sh [NAME...]   (from any directory)
#   Builds js_threshold and js_enrich unless names are given.
#   PLUGIN_OUT_DIR=DIR writes DIR/NAME.wasm instead (created if missing;
#   the tests read them from $CARGO_TARGET_DIR/polyglot, see tests/polyglot.rs).
# Needs node (>= 18) and npm. Runs `npm ci` in plugins/js on first use (the
# versions are pinned in package.json / package-lock.json); after that it
# works offline. Do not add --aot: it downloads a tool at build time.
#
# All the WASI features componentize-js can drop are disabled (http,
# fetch-event, stdio, random, clocks), so a component imports only
# wasmsched:plugin/{host,types}. Without stdio, console.log goes nowhere:
# log through host.log. Override with JS_DISABLE="http fetch-event" (a
# space-separated list) to keep the others; the component then also imports
# wasi:cli, wasi:io, wasi:clocks, wasi:random and wasi:filesystem.
set -euo pipefail

plugins_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
js_dir="$plugins_dir/js"
wit_dir="$plugins_dir/../wit"
out_dir="${PLUGIN_OUT_DIR:-$plugins_dir}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"  # absolute: the build runs in another directory
tool="$js_dir/node_modules/.bin/componentize-js"
want_version="$(node -p "require('$js_dir/package.json').devDependencies['@bytecodealliance/componentize-js']")"

if [[ ! -x "$tool" ]] || [[ "$("$tool" --version 2>/dev/null)" != "$want_version" ]]; then
    echo "build-js.sh: installing componentize-js $want_version (npm ci in $js_dir)" >&2
    (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

# name -> "WIT world:source file"
declare -A plugins=(
    [js_threshold]="filter-plugin:js_threshold/threshold.js"
    [js_enrich]="factory-plugin:js_enrich/enrich.js"
)
if (($# > 0)); then names=("$@"); else names=(js_threshold js_enrich); fi

read -r -a disable <<<"${JS_DISABLE:-http fetch-event stdio random clocks}"

for name in "${names[@]}"; do
    spec="${plugins[$name]:-}"
    [[ -n "$spec" ]] || { echo "build-js.sh: unknown plugin $name" >&2; exit 1; }
    world="${spec%%:*}"
    src="${spec#*:}"  # relative to $js_dir
    out="$out_dir/$name.wasm"
    echo "build-js.sh: $name ($world) -> $out" >&2
    # Run from $js_dir with a relative source path: componentize-js 0.23.0
    # mangles an absolute one when the working directory is `/`.
    (cd "$js_dir" && "$tool" "$src" --wit "$wit_dir" --world-name "$world" \
        --disable "${disable[@]}" --out "$out.tmp" >/dev/null)
    mv "$out.tmp" "$out"
    printf '  %-60s %9s bytes\n' "$out" "$(stat -c %s "$out")"
done
