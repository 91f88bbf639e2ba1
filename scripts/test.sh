#!/usr/bin/env bash
# The project's test command (README, CI): installs what is missing, builds the filter,
# then runs lints, unit tests and the integration tests against the real Envoy binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh
scripts/build.sh

step "clippy (host and wasm32-wasip1; warnings are errors)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
if [ "$(wasm_toolchain_kind)" = rustup ]; then
  cargo clippy --quiet --release --target wasm32-wasip1 -p envoy-appinsights -p noop-filter -p host-call-floor --lib -- -D warnings
fi

step "unit and integration tests (integration tests drive .venv/bin/envoy with dist/envoy_appinsights.wasm)"
ENVOY="$PWD/.venv/bin/envoy" WASM="$PWD/dist/envoy_appinsights.wasm" \
  cargo test --workspace --no-fail-fast || die "tests failed"
ok "all tests passed"
