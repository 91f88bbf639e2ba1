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
#   WATCH_CONFIG=1 the filter comes through extension config discovery (ECDS) from a
#                  file, as Istio delivers it, and edits of PLUGIN_CONFIG apply without a
#                  restart: the script checks the file every second, renders the new
#                  resource (a refused configuration is reported and the last good one
#                  kept) and renames it into place, where Envoy picks it up
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
wasm="$PWD/dist/envoy_appinsights.wasm"
if [ "${WATCH_CONFIG:-}" = 1 ]; then
  [ -n "${PLUGIN_CONFIG:-}" ] || die "WATCH_CONFIG=1 watches PLUGIN_CONFIG: set it to the configuration file"
  ecds_dir="$PWD/.work/gateway-${LISTEN_PORT:-10000}-ecds"
  mkdir -p "$ecds_dir"
  export ECDS_FILE="$ecds_dir/appinsights.yaml"
  RENDER=ecds WASM="$wasm" "$render" > "$ECDS_FILE.new" || die "could not render the filter's configuration"
  mv -f "$ECDS_FILE.new" "$ECDS_FILE"
fi
WASM="$wasm" "$render" > "$config" || die "could not render the Envoy configuration"
step "gateway on ${LISTEN_ADDRESS:-0.0.0.0}:${LISTEN_PORT:-10000} -> $BACKEND (admin 127.0.0.1:${ADMIN_PORT:-9901}, config $config)"
# The rendered configuration passes HOSTNAME to the filter (vm_config host_env_keys) for
# the default role instance, but bash sets HOSTNAME without exporting it: export it, or
# every gateway would report its role as its instance.
HOSTNAME="${HOSTNAME:-$(hostname 2>/dev/null || uname -n)}"
export HOSTNAME
args=(-c "$config" --use-dynamic-base-id -l "${LOG_LEVEL:-info}")
[ -n "${CONCURRENCY:-}" ] && args+=(--concurrency "$CONCURRENCY")
if [ "${WATCH_CONFIG:-}" = 1 ]; then
  # File-based xDS needs a node: the filter's defaults (role `envoy`, instance HOSTNAME).
  args+=(--service-cluster "${SERVICE_CLUSTER:-envoy}" --service-node "${SERVICE_NODE:-$HOSTNAME}")
else
  [ -n "${SERVICE_CLUSTER:-}" ] && args+=(--service-cluster "$SERVICE_CLUSTER")
  [ -n "${SERVICE_NODE:-}" ] && args+=(--service-node "$SERVICE_NODE")
fi
if [ "${WATCH_CONFIG:-}" != 1 ]; then
  # exec: Envoy itself receives SIGINT/SIGTERM and drains and exits cleanly.
  exec .venv/bin/envoy "${args[@]}"
fi

# Applies PLUGIN_CONFIG whenever its content changes: the new resource is written next to
# the watched one and renamed over it (Envoy reads one complete file). A configuration
# that needs other clusters (a new ingestion endpoint) changes the bootstrap, which only a
# restart applies: it is reported, not half applied.
watch_plugin_config() {
  local last now
  last="$(cksum < "$PLUGIN_CONFIG" 2>/dev/null || true)"
  while sleep 1; do
    now="$(cksum < "$PLUGIN_CONFIG" 2>/dev/null || true)"
    [ "$now" != "$last" ] || continue
    last="$now"
    if ! WASM="$wasm" "$render" > "$config.new"; then
      note "PLUGIN_CONFIG changed but is refused (above): Envoy keeps the last good configuration"
    elif ! cmp -s "$config.new" "$config"; then
      note "PLUGIN_CONFIG changed Envoy's clusters (a new ingestion endpoint?): restart gateway.sh to apply it"
    elif RENDER=ecds WASM="$wasm" "$render" > "$ECDS_FILE.new"; then
      mv -f "$ECDS_FILE.new" "$ECDS_FILE"
      step "PLUGIN_CONFIG changed: applied without a restart"
    fi
  done
}
# SIGINT/SIGTERM go to Envoy, which drains and exits; the script exits as Envoy did.
envoy_pid=""
trap '[ -z "$envoy_pid" ] || kill -TERM "$envoy_pid" 2>/dev/null || true' INT TERM
.venv/bin/envoy "${args[@]}" &
envoy_pid=$!
watch_plugin_config &
watcher_pid=$!
while :; do
  status=0
  wait "$envoy_pid" || status=$?
  # A signal interrupts `wait`; Envoy (even exited but not yet reaped) is still there.
  kill -0 "$envoy_pid" 2>/dev/null || break
done
kill "$watcher_pid" 2>/dev/null || true
exit "$status"
