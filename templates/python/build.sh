#!/usr/bin/env bash
# Build the {{name}} plugin as a WebAssembly component with componentize-py
# and install it, with its manifest, into the plugins directory of a
# wasmsched host.
#
# Usage: bash build.sh [PLUGINS_DIR]   (from any directory)
#   Installs {{name}}.wasm and {{name}}.toml into PLUGINS_DIR: the argument,
#   else $WASMSCHED_PLUGINS, else ./plugins relative to the directory you run
#   this from (run it where you run `wasmsched run`).
# Needs python3 (>= 3.10, with the venv module). Installs the pinned
# componentize-py (requirements.txt) into .venv here on first use (needs the
# network once); after that it works offline. COMPONENTIZE_PY=/path/to/
# componentize-py uses an existing install instead.
#
# Built with `--stub-wasi`: every WASI import is replaced by a trapping stub,
# so the component imports only wasmsched:plugin (what the host allows).
set -euo pipefail

name="{{name}}"
world="factory-plugin"  # or filter-plugin, or plugin (both); see wit/plugin.wit
project="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
plugins="${1:-${WASMSCHED_PLUGINS:-plugins}}"

tool="${COMPONENTIZE_PY:-}"
if [[ -n "$tool" ]]; then
    [[ "$tool" == */* && "$tool" != /* ]] && tool="$PWD/$tool"
    # The venv the tool lives in, if any: its site-packages is searched for
    # the app's imports (not the system's).
    venv="$(cd "$(dirname "$tool")/.." && pwd)"
    [[ -f "$venv/pyvenv.cfg" ]] || venv=""
else
    venv="$project/.venv"
    tool="$venv/bin/componentize-py"
    want="$(sed -n 's/^componentize-py==\([^[:space:]]*\).*/\1/p' "$project/requirements.txt")"
    if [[ ! -x "$tool" ]] || [[ "$("$tool" --version 2>/dev/null)" != "componentize-py $want" ]]; then
        echo "build.sh: installing componentize-py $want into $venv" >&2
        [[ -d "$venv" ]] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$project/requirements.txt"
    fi
fi

echo "build.sh: building $name ($world) in $project" >&2
# Only the modules app.py imports end up in the component.
with_venv=()
[[ -n "$venv" ]] && with_venv=("VIRTUAL_ENV=$venv")
(cd "$project" && env ${with_venv[@]+"${with_venv[@]}"} "$tool" -q -d wit -w "$world" \
    componentize --stub-wasi -p . app -o "$name.wasm.tmp")
mv "$project/$name.wasm.tmp" "$project/$name.wasm"

# Install: write next to the target and rename, so a running host (which
# watches the plugins directory) never reads a half-written file.
mkdir -p "$plugins"
plugins="$(cd "$plugins" && pwd)"
cp "$project/$name.wasm" "$plugins/$name.wasm.tmp" && mv "$plugins/$name.wasm.tmp" "$plugins/$name.wasm"
cp "$project/$name.toml" "$plugins/$name.toml.tmp" && mv "$plugins/$name.toml.tmp" "$plugins/$name.toml"
echo "build.sh: installed $plugins/$name.wasm ($(wc -c <"$plugins/$name.wasm" | tr -d " ") bytes) and $plugins/$name.toml"
