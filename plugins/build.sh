#!/usr/bin/env bash
# Build the Rust guest plugins (plugins/rust) as WebAssembly components and
# copy the example plugins next to their manifests: plugins/NAME.wasm.
# The adversarial test plugins (adv_*) stay where cargo puts them:
# plugins/rust/target/wasm32-wasip2/release/.
#
# Usage: bash plugins/build.sh   (from any directory)
# Needs the wasm32-wasip2 target: rustup target add wasm32-wasip2
# Honours CARGO_TARGET_DIR if it is set.
set -euo pipefail

plugins_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$plugins_dir/rust"
target_dir="${CARGO_TARGET_DIR:-$workspace/target}"
out="$target_dir/wasm32-wasip2/release"

examples=(large_dataset error_alert github_webhook pipeline_stage chat_poster)
adversarial=(adv_loop adv_alloc adv_panic adv_fs adv_net adv_other_world legacy_v01 kv_probe)

if command -v rustup >/dev/null \
    && ! rustup target list --installed | grep -x wasm32-wasip2 >/dev/null; then
    echo "build.sh: the wasm32-wasip2 target is missing; run: rustup target add wasm32-wasip2" >&2
    exit 1
fi

echo "build.sh: building guest plugins in $workspace" >&2
cargo build --manifest-path "$workspace/Cargo.toml" --release --target wasm32-wasip2

size() { stat -c %s "$1"; }

echo "Example plugins:"
for name in "${examples[@]}"; do
    src="$out/$name.wasm"
    [[ -f "$src" ]] || { echo "build.sh: missing $src" >&2; exit 1; }
    cp "$src" "$plugins_dir/$name.wasm"
    printf '  %-66s %7s bytes\n' "$plugins_dir/$name.wasm" "$(size "$plugins_dir/$name.wasm")"
done
echo "Adversarial test plugins:"
for name in "${adversarial[@]}"; do
    src="$out/$name.wasm"
    [[ -f "$src" ]] || { echo "build.sh: missing $src" >&2; exit 1; }
    printf '  %-66s %7s bytes\n' "$src" "$(size "$src")"
done
