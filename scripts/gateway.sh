#!/usr/bin/env bash
# Runs Envoy with the Application Insights filter in front of a backend, in the foreground.
# Ctrl-C / SIGTERM stop it cleanly.
#
#   APPLICATIONINSIGHTS_CONNECTION_STRING  where telemetry goes (fills the logger when
#                                          PLUGIN_CONFIG has none)
#   BACKEND        host:port of the backend, plain HTTP (required)
#   LISTEN_PORT    gateway port (default 10000); LISTEN_ADDRESS (default 0.0.0.0)
#   ADMIN_PORT     Envoy admin port (default 9901, on 127.0.0.1)
#   PLUGIN_CONFIG  optional path to a JSON file with the filter configuration (README)
#   CONCURRENCY    Envoy worker threads (default: one per core)
#   SERVICE_CLUSTER / SERVICE_NODE  Envoy's --service-cluster / --service-node (the
#                  telemetry's default cloud role and role instance; without SERVICE_NODE
#                  the role instance is HOSTNAME, default: this machine's host name)
#   IMDS_ADDRESS   the instance metadata endpoint for managed identity (default
#                  169.254.169.254:80)
#
# The Envoy cluster for ingestion is derived from the connection string's endpoint
# (plain http, or https with SNI and certificate verification).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

[ -n "${BACKEND:-}" ] || die "BACKEND=host:port of the backend is required"
if [ ! -x .venv/bin/envoy ]; then SKIP_LOAD_TOOLS=1 scripts/setup.sh; fi
if [ "${SKIP_BUILD:-}" != 1 ] && wasm_toolchain_kind >/dev/null 2>&1; then
  scripts/build.sh
fi
[ -f dist/envoy_appinsights.wasm ] || die "dist/envoy_appinsights.wasm is missing: run scripts/setup.sh and scripts/build.sh"
render="${ENVOY_CONFIG_BIN:-}"
if [ -z "$render" ]; then
  cargo build --quiet -p harness --bin envoy-config
  render=target/debug/envoy-config
fi

mkdir -p .work
config=".work/gateway-${LISTEN_PORT:-10000}.yaml"
WASM="$PWD/dist/envoy_appinsights.wasm" "$render" > "$config" || die "could not render the Envoy configuration"
step "gateway on ${LISTEN_ADDRESS:-0.0.0.0}:${LISTEN_PORT:-10000} -> $BACKEND (admin 127.0.0.1:${ADMIN_PORT:-9901}, config $config)"
# The rendered configuration passes HOSTNAME to the filter (vm_config host_env_keys) for
# the default role instance, but bash sets HOSTNAME without exporting it: export it, or
# every gateway would report its role as its instance.
HOSTNAME="${HOSTNAME:-$(hostname 2>/dev/null || uname -n)}"
export HOSTNAME
args=(-c "$config" --use-dynamic-base-id -l "${LOG_LEVEL:-info}")
[ -n "${CONCURRENCY:-}" ] && args+=(--concurrency "$CONCURRENCY")
[ -n "${SERVICE_CLUSTER:-}" ] && args+=(--service-cluster "$SERVICE_CLUSTER")
[ -n "${SERVICE_NODE:-}" ] && args+=(--service-node "$SERVICE_NODE")
# exec: Envoy itself receives SIGINT/SIGTERM and drains and exits cleanly.
exec .venv/bin/envoy "${args[@]}"
