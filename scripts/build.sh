#!/usr/bin/env bash
# Builds the filter (release, wasm32-wasip1) to dist/envoy_appinsights.wasm.
# Usage: scripts/build.sh [extra crate dirs to build as wasm, e.g. tests/noop-filter]
# Uses rustup's wasm32-wasip1 target when present, else Debian's rustc-web with -Zbuild-std
# (see scripts/setup.sh, which installs whichever is available).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

kind="$(wasm_toolchain_kind)" || die "no wasm32-wasip1 toolchain: run scripts/setup.sh"
mkdir -p dist

build_wasm() { # <manifest> <artifact name>
  local manifest="$1" name="$2"
  step "building $name.wasm ($kind toolchain)"
  if [ "$kind" = rustup ]; then
    cargo build --quiet --release --target wasm32-wasip1 --manifest-path "$manifest" -p "${name//_/-}" --lib
  else
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-L /usr/lib/wasm32-wasi -C link-self-contained=no" \
      /usr/bin/cargo build --quiet --release --target wasm32-wasip1 --manifest-path "$manifest" -p "${name//_/-}" --lib \
      -Zbuild-std=std,panic_abort
  fi
  local target_dir
  target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  cp "$target_dir/wasm32-wasip1/release/$name.wasm" "dist/$name.wasm"
  ok "dist/$name.wasm ($(wc -c < "dist/$name.wasm") bytes)"
}

build_wasm Cargo.toml envoy_appinsights
for dir in "$@"; do
  name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1 | tr - _)"
  build_wasm "$dir/Cargo.toml" "$name"
done
