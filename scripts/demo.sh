#!/usr/bin/env bash
# The demo: a sample backend behind Envoy with the filter, a mix of traffic, and what
# telemetry arrived.
#
# Without APPLICATIONINSIGHTS_CONNECTION_STRING: telemetry goes to the local ingestion
# endpoint (tests/harness), which validates every item against the Application Insights
# schema, and the demo prints what arrived.
# With it: telemetry goes to that Application Insights resource; the demo prints what the
# ingestion service answered (look for the items in the portal's Transaction search).
#
# With OTEL_BACKEND=1: the backend behind the gateway is tests/otel-backend/app.py, instrumented
# with the official Azure Monitor OpenTelemetry distro for Python; it sends its own telemetry
# to the same place, and its items nest under the gateway's (its Request is the child of the
# gateway's Dependency). It calls the sample backend as its own dependency.
#
# The local endpoint serves the viewer page at http://127.0.0.1:19001/; in a terminal the
# demo keeps running for it until Ctrl-C (DEMO_KEEP=0 exits after the summary, DEMO_KEEP=1
# keeps running anywhere).
#
# Ports (override with env): DEMO_PORT=10000 (gateway), DEMO_ADMIN_PORT=19901,
# DEMO_BACKEND_PORT=18080, DEMO_INGEST_PORT=19001, DEMO_OTEL_PORT=18081 (OTEL_BACKEND=1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DEMO_PORT="${DEMO_PORT:-10000}"
DEMO_ADMIN_PORT="${DEMO_ADMIN_PORT:-19901}"
DEMO_BACKEND_PORT="${DEMO_BACKEND_PORT:-18080}"
DEMO_INGEST_PORT="${DEMO_INGEST_PORT:-19001}"
DEMO_OTEL_PORT="${DEMO_OTEL_PORT:-18081}"
OTEL_BACKEND="${OTEL_BACKEND:-0}"

SKIP_LOAD_TOOLS=1 scripts/setup.sh
scripts/build.sh
step "building the sample backend and the local ingestion endpoint"
cargo build --quiet -p harness --bins

mkdir -p .work
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

wait_for() { # <description> <command...>
  local what="$1"; shift
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what did not come up"
}

target/debug/backend --listen "127.0.0.1:$DEMO_BACKEND_PORT" > .work/demo-backend.log 2>&1 &
pids+=($!)
if [ -z "${APPLICATIONINSIGHTS_CONNECTION_STRING:-}" ]; then
  local_ingest=1
  rm -f .work/demo-items.ndjson
  # The Python exporter adds ai.user.userAgent, a tag outside the schema: tolerated, not rejected.
  target/debug/ingest --listen "127.0.0.1:$DEMO_INGEST_PORT" --store .work/demo-items.ndjson --tolerate-tag ai.user.userAgent \
    > .work/demo-ingest.log 2>&1 &
  pids+=($!)
  export APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-00000000de70;IngestionEndpoint=http://127.0.0.1:$DEMO_INGEST_PORT/"
  wait_for "the local ingestion endpoint" curl -sf "http://127.0.0.1:$DEMO_INGEST_PORT/_stats"
  step "telemetry goes to the local ingestion endpoint on 127.0.0.1:$DEMO_INGEST_PORT"
  step "viewer: http://127.0.0.1:$DEMO_INGEST_PORT/ (search, end-to-end transactions, failures, metrics)"
else
  local_ingest=0
  step "telemetry goes to the Application Insights resource in APPLICATIONINSIGHTS_CONNECTION_STRING"
fi

upstream="127.0.0.1:$DEMO_BACKEND_PORT"
if [ "$OTEL_BACKEND" = 1 ]; then
  step "starting the instrumented backend (Azure Monitor OpenTelemetry distro) on 127.0.0.1:$DEMO_OTEL_PORT"
  .venv/bin/python tests/otel-backend/app.py --listen "127.0.0.1:$DEMO_OTEL_PORT" --role orders-backend \
    --downstream "http://127.0.0.1:$DEMO_BACKEND_PORT" > .work/demo-otel-backend.log 2>&1 &
  pids+=($!)
  wait_for "the instrumented backend (log: .work/demo-otel-backend.log)" curl -sf "http://127.0.0.1:$DEMO_OTEL_PORT/health"
  upstream="127.0.0.1:$DEMO_OTEL_PORT"
fi

# The demo's filter configuration: an "orders" API with operations, a trace rule for 5xx.
# The logger comes from APPLICATIONINSIGHTS_CONNECTION_STRING.
PLUGIN_CONFIG="$PWD/scripts/demo-plugin.json" \
BACKEND="$upstream" LISTEN_ADDRESS=127.0.0.1 LISTEN_PORT="$DEMO_PORT" ADMIN_PORT="$DEMO_ADMIN_PORT" \
  CONCURRENCY=1 SERVICE_CLUSTER=demo-gateway SERVICE_NODE=demo-gateway-0 \
  scripts/gateway.sh > .work/demo-gateway.log 2>&1 &
pids+=($!)
wait_for "the gateway (log: .work/demo-gateway.log)" curl -sf "http://127.0.0.1:$DEMO_ADMIN_PORT/ready"

step "sending traffic through the gateway on 127.0.0.1:$DEMO_PORT"
requests=(
  "GET /api/orders?page=1" "GET /api/orders/42" "POST /api/orders" "PUT /api/orders/42"
  "DELETE /api/orders/7" "GET /api/customers?name=ada" "GET /status/404" "GET /status/500"
  "GET /status/503" "GET /delay/150" "GET /bytes/2048" "GET /api/health"
)
if [ "$OTEL_BACKEND" = 1 ]; then # what the instrumented backend serves
  requests=("GET /api/orders/42" "GET /api/orders/7" "GET /health" "GET /fail" "GET /api/unknown")
fi
for r in "${requests[@]}"; do
  method="${r%% *}"; path="${r#* }"
  body=(); [ "$method" = GET ] || body=(-H 'content-type: application/json' --data-binary '{"demo":true}')
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "$method" "${body[@]}" "http://127.0.0.1:$DEMO_PORT$path" || true)
  printf '   %-7s %-28s -> %s\n' "$method" "$path" "$code"
done
sent=${#requests[@]}

if [ "$local_ingest" = 1 ]; then
  step "waiting for the telemetry of $sent requests at the local ingestion endpoint"
  for _ in $(seq 1 100); do
    n=$(curl -sf "http://127.0.0.1:$DEMO_INGEST_PORT/_items" | grep -c '"RequestData"' || true)
    [ "$n" -ge "$sent" ] && break
    sleep 0.2
  done
  sleep 1.5 # one more flush interval, for items batched after the last request
  curl -sf "http://127.0.0.1:$DEMO_INGEST_PORT/_items" | python3 scripts/summarize.py
  curl -sf "http://127.0.0.1:$DEMO_INGEST_PORT/_stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("\nendpoint: %d track requests, %d items received, %d accepted (schema-valid), %d rejected"
      % (s["requests"], s["items_received"], s["items_accepted"], s["items_rejected"]))
for r in s["rejections"][:5]:
    print("  rejected:", r)'
  echo "all items: .work/demo-items.ndjson"
  # In a terminal, the gateway and the viewer stay up to be looked at (DEMO_KEEP=0: exit).
  if [ "${DEMO_KEEP:-$([ -t 1 ] && echo 1 || echo 0)}" = 1 ]; then
    step "viewer: http://127.0.0.1:$DEMO_INGEST_PORT/ — the gateway (127.0.0.1:$DEMO_PORT) and the viewer keep running; Ctrl-C stops them"
    wait
  fi
else
  step "waiting for the gateway to deliver (flush interval 1 s)"
  sleep 3
  curl -sf "http://127.0.0.1:$DEMO_ADMIN_PORT/stats?format=json&filter=^cluster\.appinsights\." | python3 -c '
import json, sys
stats = {s["name"].split(".", 2)[2]: s.get("value", 0) for s in json.load(sys.stdin)["stats"] if "value" in s}
print("ingestion callouts: %d sent, %d answered 2xx (delivered), %d 4xx, %d 5xx, %d connection failures"
      % (stats.get("upstream_rq_total", 0), stats.get("upstream_rq_2xx", 0), stats.get("upstream_rq_4xx", 0),
         stats.get("upstream_rq_5xx", 0), stats.get("upstream_cx_connect_fail", 0)))'
  grep -h "appinsights\[[0-9]*\]: " .work/demo-gateway.log | grep -v "configured" | tail -5 || true
  echo "Sent $sent requests through the gateway."
  echo "The items appear in Application Insights (Transaction search) within a few minutes."
fi
