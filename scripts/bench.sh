#!/usr/bin/env bash
# Side-by-side benchmark, one run: plain Envoy, Envoy with a no-op wasm filter, and Envoy
# with this filter, each proxying to the same backend. Reports requests/s and the
# gateway's CPU time per request (from /proc), median of interleaved rounds (A B C A B C…),
# and the ratios that matter. Writes docs/performance.md.
#
#   scripts/bench.sh [--rounds N] [--duration SECONDS] [--connections N]
#
# Envoy runs one worker pinned to CPU 0; load generator, backend and ingestion endpoint
# share the other CPU(s). Absolute numbers depend on the machine; ratios from one run hold.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh
scripts/build.sh tests/noop-filter
step "building the backend and the ingestion endpoint (release)"
cargo build --quiet --release -p harness --bins
exec python3 scripts/bench.py "$@"
