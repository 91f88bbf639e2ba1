#!/usr/bin/env bash
# Side-by-side benchmark, one run: plain Envoy, Envoy with a no-op wasm filter, a filter
# that only makes this filter's host calls (tests/host-call-floor, at 100% and 0%), this
# filter at 100%, 10% and 0% sampling (four captured headers), with 1 KB body capture, with
# gzip off, and Envoy's own OpenTelemetry tracer (default and tuned flush), each proxying to
# the same backend. Reports requests/s, the gateway's CPU time per request (from /proc;
# median of differences with plain Envoy in interleaved rounds A B C … A B C …), host calls
# and wire bytes per item, memory, the budget's ratios and the split of the filter's cost
# between Envoy's host calls and its own code. Writes docs/performance.md and
# docs/performance.svg (about 7 minutes with the defaults).
#
#   scripts/bench.sh [--rounds N] [--duration SECONDS] [--connections N] [--only KEY,KEY]
#
# Envoy runs one worker pinned to CPU 0; load generator, backend, ingestion endpoint and
# OTLP sink share the other CPU(s). Absolute numbers depend on the machine; ratios from
# one run hold.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh
scripts/build.sh tests/noop-filter tests/host-call-floor
step "building the backend and the ingestion endpoint (release)"
cargo build --quiet --release -p harness --bins
exec python3 scripts/bench.py "$@"
