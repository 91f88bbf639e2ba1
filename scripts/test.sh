#!/usr/bin/env bash
# The project's test command (README, CI): installs what is missing, checks formatting,
# builds the filter, then runs lints, docs, the code-shape check, unit tests and the
# integration tests against the real Envoy binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh

step "formatting (cargo fmt --check, rustfmt.toml)"
cargo fmt --all --check -- -l || die "the files above are not formatted: run cargo fmt --all"

scripts/build.sh

step "clippy (host and wasm32-wasip1; warnings are errors)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
if [ "$(wasm_toolchain_kind)" = rustup ]; then
  cargo clippy --quiet --release --target wasm32-wasip1 -p envoy-appinsights -p noop-filter -p host-call-floor --lib -- -D warnings
fi

step "docs (cargo doc, warnings are errors) and code shape (scripts/code_shape.py)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --workspace --document-private-items \
  || die "cargo doc reported problems"
python3 scripts/code_shape.py || die "a file or function outgrew its limit (scripts/code_shape.py)"

step "unit and integration tests (integration tests drive .venv/bin/envoy with dist/envoy_appinsights.wasm)"
ENVOY="$PWD/.venv/bin/envoy" WASM="$PWD/dist/envoy_appinsights.wasm" \
  cargo test --workspace --no-fail-fast || die "tests failed"
ok "all tests passed"
