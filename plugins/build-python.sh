#!/usr/bin/env bash
# Build the Python guest plugins (plugins/python/NAME/app.py) as WebAssembly
# components with componentize-py: plugins/NAME.wasm.
#
# Usage: bash plugins/build-python.sh [NAME...]   (from any directory)
#   Builds py_threshold, py_enrich, py_error_counter and py_digest unless
#   names are given.
#   PLUGIN_OUT_DIR=DIR writes DIR/NAME.wasm instead (created if missing;
#   the tests read them from $CARGO_TARGET_DIR/polyglot, see tests/polyglot.rs).
# Needs python3 (>= 3.10, with the venv module). Installs the pinned
# componentize-py (plugins/python/requirements.txt) into plugins/python/.venv
# on first use; after that it works offline.
#
# By default the components are built with `--stub-wasi`: every WASI import
# is replaced by a trapping stub, so a component imports only
# wasmsched:plugin/{host,types}. A plugin built this way traps if it calls
# print(), time.time(), open(), os.urandom() or anything else that reaches
# WASI (use host.log to log); its `random` module is seeded at build time.
# Set PY_STUB_WASI=0 to build with real WASI imports instead (the component
# then also imports wasi:clocks, wasi:random, wasi:filesystem and
# wasi:sockets, which the host must provide).
set -euo pipefail

plugins_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py_dir="$plugins_dir/python"
wit_dir="$plugins_dir/../wit"
out_dir="${PLUGIN_OUT_DIR:-$plugins_dir}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"  # absolute: the build runs in another directory
venv="$py_dir/.venv"
tool="$venv/bin/componentize-py"
want_version="$(sed -n 's/^componentize-py==\([^[:space:]]*\).*/\1/p' "$py_dir/requirements.txt")"

if [[ ! -x "$tool" ]] || [[ "$("$tool" --version 2>/dev/null)" != "componentize-py $want_version" ]]; then
    echo "build-python.sh: installing componentize-py $want_version into $venv" >&2
    [[ -d "$venv" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$py_dir/requirements.txt"
fi

# name -> WIT world
declare -A worlds=([py_threshold]=filter-plugin [py_enrich]=factory-plugin [py_error_counter]=factory-plugin [py_digest]=factory-plugin)
if (($# > 0)); then names=("$@"); else names=(py_threshold py_enrich py_error_counter py_digest); fi

stub=(--stub-wasi)
[[ "${PY_STUB_WASI:-1}" == 0 ]] && stub=()

for name in "${names[@]}"; do
    world="${worlds[$name]:-}"
    [[ -n "$world" ]] || { echo "build-python.sh: unknown plugin $name" >&2; exit 1; }
    out="$out_dir/$name.wasm"
    echo "build-python.sh: $name ($world) -> $out" >&2
    # The Python path is the plugin's directory plus the venv's
    # site-packages (componentize-py adds it when VIRTUAL_ENV is set; naming
    # the venv keeps it from falling back to the system site-packages).
    # Only modules the app imports end up in the component: componentize-py
    # runs the app's module-level code at build time and snapshots the heap.
    (cd "$py_dir/$name" && VIRTUAL_ENV="$venv" "$tool" -q -d "$wit_dir" -w "$world" \
        componentize ${stub[@]+"${stub[@]}"} -p . app -o "$out.tmp")
    mv "$out.tmp" "$out"
    printf '  %-60s %9s bytes\n' "$out" "$(stat -c %s "$out")"
done
