"""A small HTTP service instrumented with the official Azure Monitor OpenTelemetry distro.

It stands behind the gateway (Envoy with the filter) so that the backend's own telemetry
can be checked to join the gateway's: its Request continues the gateway's operation and
is the child of the gateway's Dependency; its own outgoing call is its Dependency.

Routes:
  GET /api/orders/<id>   JSON order; calls DOWNSTREAM (a child dependency) first
  GET /api/stock/<id>    JSON stock level (the default DOWNSTREAM: the service calls itself)
  GET /fail              raises an exception (500)
  GET /health            200, no outgoing call

Usage: app.py --connection-string CS [--listen 127.0.0.1:0] [--downstream URL] [--role NAME]
It prints `listening on HOST:PORT` once it serves (port 0 picks a free one).

It runs offline: the environment below (set before the distro is imported, unless the
caller set it) turns off everything that would call Azure rather than the ingestion
endpoint of the connection string, and makes the batch processors flush quickly.
"""

import argparse
import os
import sys

OFFLINE_ENV = {
    # Statsbeat (the SDK's own usage telemetry, sent to Microsoft's endpoints) and the
    # customer SDK stats.
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    # The OneSettings control plane, which the exporter polls for configuration.
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    # Resource detectors: only OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; the distro's
    # default adds azure_app_service and azure_vm (the latter calls the IMDS at 169.254.169.254).
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
    # Keep every trace: the distro's default sampler keeps 5 traces per second
    # (microsoft.rate_limited), which would drop requests of a burst. The fixed-percentage
    # sampler uses the Application Insights score, as the gateway does.
    "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
    "OTEL_TRACES_SAMPLER_ARG": "1.0",
    # Flush quickly: spans, logs and metrics.
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connection-string", default=os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"))
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--downstream", default=None, help="base URL the orders route calls (default: itself)")
    parser.add_argument("--role", default=os.environ.get("OTEL_SERVICE_NAME", "orders-backend"))
    args = parser.parse_args()
    if not args.connection_string:
        sys.exit("app.py: need --connection-string or APPLICATIONINSIGHTS_CONNECTION_STRING")

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ["OTEL_SERVICE_NAME"] = args.role  # becomes ai.cloud.role

    from azure.monitor.opentelemetry import configure_azure_monitor

    # Before Flask and requests are imported, so the distro's instrumentations patch them.
    configure_azure_monitor(
        connection_string=args.connection_string,
        enable_live_metrics=False,  # Live Metrics (QuickPulse) talks to rt.services.visualstudio.com
        enable_performance_counters=False,
        disable_offline_storage=True,  # no retry files left in /tmp by tests
        logger_name="orders",
    )

    import logging

    import requests
    from flask import Flask, jsonify
    from werkzeug.serving import make_server

    log = logging.getLogger("orders")
    log.setLevel(logging.INFO)
    app = Flask("orders-backend")

    @app.get("/api/orders/<order_id>")
    def get_order(order_id):
        base = args.downstream or f"http://{app.config['SELF']}"
        stock = requests.get(f"{base.rstrip('/')}/api/stock/{order_id}", timeout=5)
        log.info("order %s looked up (stock answered %d)", order_id, stock.status_code)
        return jsonify(id=order_id, item="widget", stock_status=stock.status_code)

    @app.get("/api/stock/<item_id>")
    def get_stock(item_id):
        return jsonify(id=item_id, available=7)

    @app.get("/fail")
    def fail():
        raise RuntimeError("the orders backend failed on purpose")

    @app.get("/health")
    def health():
        return jsonify(ok=True)

    host, port = args.listen.rsplit(":", 1)
    server = make_server(host, int(port), app, threaded=True)
    app.config["SELF"] = f"{host}:{server.server_port}"
    print(f"listening on {host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
