//! The gateway in front of a backend instrumented with the official Azure Monitor
//! OpenTelemetry distro for Python (tests/otel-backend/app.py): both send to one local
//! ingestion endpoint, which validates every item, and the backend's telemetry nests
//! under the gateway's (gateway Request → gateway Dependency → backend Request →
//! backend Dependency), as it does in Application Insights' transaction view.

mod common;

use common::{logger_for, IKEY};
use harness::backend::Backend;
use harness::envoy::{filter_wasm, Envoy};
use harness::envoy_config::Settings;
use harness::http;
use harness::ingest::{IngestConfig, IngestServer};
use harness::otel_backend::OtelBackend;
use serde_json::{json, Value};
use std::time::Duration;

const GATEWAY_ROLE: &str = "orders-gateway";
const BACKEND_ROLE: &str = "orders-backend";

fn by(items: &[Value], role: &str, base_type: &str) -> Vec<Value> {
    items
        .iter()
        .filter(|i| i["tags"]["ai.cloud.role"] == role && i["data"]["baseType"] == base_type)
        .cloned()
        .collect()
}

fn one(items: &[Value], role: &str, base_type: &str) -> Value {
    let found = by(items, role, base_type);
    assert_eq!(found.len(), 1, "exactly one {base_type} from {role}: {items:#?}");
    found[0].clone()
}

fn id(item: &Value) -> &str {
    item["data"]["baseData"]["id"].as_str().expect("an id")
}

fn parent(item: &Value) -> &str {
    item["tags"]["ai.operation.parentId"].as_str().expect("a parent id")
}

/// The items of the operation whose gateway Request has `path`, once the expected
/// kinds from both roles are there.
fn operation_of(ingest: &IngestServer, path: &str, expected: &[(&str, &str)]) -> Vec<Value> {
    let op_of = |items: &[Value]| -> Option<(String, Vec<Value>)> {
        let req = items.iter().find(|i| {
            i["tags"]["ai.cloud.role"] == GATEWAY_ROLE
                && i["data"]["baseType"] == "RequestData"
                && i["data"]["baseData"]["url"].as_str().is_some_and(|u| u.ends_with(path))
        })?;
        let op = req["tags"]["ai.operation.id"].as_str()?.to_string();
        let members: Vec<Value> = items
            .iter()
            .filter(|i| i["tags"]["ai.operation.id"] == op.as_str())
            .cloned()
            .collect();
        Some((op, members))
    };
    let complete = |items: &[Value]| {
        op_of(items).is_some_and(|(_, m)| expected.iter().all(|(role, kind)| !by(&m, role, kind).is_empty()))
    };
    ingest.wait_until(Duration::from_secs(15), complete);
    std::thread::sleep(Duration::from_millis(600)); // a straggler would show as a duplicate
    let items = ingest.items();
    let (_, members) = op_of(&items).unwrap_or_else(|| panic!("no gateway Request for {path}: {items:#?}"));
    assert!(complete(&items), "{path}: missing items; got {members:#?}");
    members
}

#[test]
fn the_backends_distro_telemetry_nests_under_the_gateways_dependency() {
    // One endpoint for both. Strict, except for the one tag the Python exporter adds
    // outside the schema (ai.user.userAgent, reference §2.5 "Not exposed in Swagger").
    let ingest = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        tolerated_tags: harness::ingest::SDK_TAGS.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    })
    .unwrap();
    // The service the instrumented backend calls (its own dependency).
    let stock = Backend::start("127.0.0.1:0").unwrap();
    let app = OtelBackend::start(
        &ingest.connection_string(IKEY),
        BACKEND_ROLE,
        Some(&format!("http://{}", stock.addr())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let config = json!({
        "loggers": {"main": logger_for(&ingest, "appinsights")},
        "delivery": {"flush_interval_ms": 200},
        "cloud_role": GATEWAY_ROLE,
    });
    let settings = Settings::local(&app.addr().to_string(), filter_wasm().to_str().unwrap(), config);
    let envoy = Envoy::start(&settings, &[]).unwrap_or_else(|e| panic!("{e}"));

    // A browser-like caller: the distro puts its User-Agent in the non-schema tag.
    let ok = http::request(
        envoy.listener,
        "GET",
        "/api/orders/42",
        &[("User-Agent", "orders-client/1.0")],
        b"",
    )
    .unwrap();
    assert_eq!(ok.status, 200, "{}\n{}", String::from_utf8_lossy(&ok.body), app.log());
    let body: Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(body["stock_status"], 200, "the backend reached its downstream");
    let failed = http::get(envoy.listener, "/fail").unwrap();
    assert_eq!(failed.status, 500);

    // gateway Request → gateway Dependency → backend Request → backend Dependency
    let op = operation_of(
        &ingest,
        "/api/orders/42",
        &[
            (GATEWAY_ROLE, "RequestData"),
            (GATEWAY_ROLE, "RemoteDependencyData"),
            (BACKEND_ROLE, "RequestData"),
            (BACKEND_ROLE, "RemoteDependencyData"),
        ],
    );
    let g_req = one(&op, GATEWAY_ROLE, "RequestData");
    let g_dep = one(&op, GATEWAY_ROLE, "RemoteDependencyData");
    let b_req = one(&op, BACKEND_ROLE, "RequestData");
    let b_dep = one(&op, BACKEND_ROLE, "RemoteDependencyData");
    assert_eq!(
        parent(&g_dep),
        id(&g_req),
        "the gateway's Dependency is its Request's child"
    );
    assert_eq!(
        parent(&b_req),
        id(&g_dep),
        "the backend's Request is the child of the gateway's Dependency"
    );
    assert_eq!(
        parent(&b_dep),
        id(&b_req),
        "the backend's own call nests under its Request"
    );
    assert_eq!(b_req["data"]["baseData"]["name"], "GET /api/orders/<order_id>");
    assert_eq!(
        b_req["tags"]["ai.user.userAgent"], "orders-client/1.0",
        "the tolerated tag: {b_req:#}"
    );
    assert_eq!(b_req["data"]["baseData"]["responseCode"], "200");
    let stock_url = format!("http://{}/api/stock/42", stock.addr());
    assert_eq!(b_dep["data"]["baseData"]["data"], stock_url.as_str());
    assert_eq!(b_dep["data"]["baseData"]["type"], "HTTP");
    // Its log line (the distro's logging handler) is in the operation too.
    for m in by(&op, BACKEND_ROLE, "MessageData") {
        assert_eq!(parent(&m), id(&b_req), "{m:#}");
    }
    // The roles tell the two apart on the application map.
    assert_ne!(GATEWAY_ROLE, BACKEND_ROLE);
    assert!(g_req["tags"]["ai.internal.sdkVersion"] != b_req["tags"]["ai.internal.sdkVersion"]);
    assert!(
        b_req["tags"]["ai.internal.sdkVersion"]
            .as_str()
            .is_some_and(|v| v.contains(":dst")),
        "the distro's SDK version: {b_req:#}"
    );

    // A failure: the backend's exception under its Request, the gateway's under its own.
    let op = operation_of(
        &ingest,
        "/fail",
        &[
            (GATEWAY_ROLE, "RequestData"),
            (GATEWAY_ROLE, "RemoteDependencyData"),
            (GATEWAY_ROLE, "ExceptionData"),
            (BACKEND_ROLE, "RequestData"),
            (BACKEND_ROLE, "ExceptionData"),
        ],
    );
    let g_req = one(&op, GATEWAY_ROLE, "RequestData");
    let g_dep = one(&op, GATEWAY_ROLE, "RemoteDependencyData");
    let g_exc = one(&op, GATEWAY_ROLE, "ExceptionData");
    let b_req = one(&op, BACKEND_ROLE, "RequestData");
    let b_exc = one(&op, BACKEND_ROLE, "ExceptionData");
    assert_eq!(parent(&b_req), id(&g_dep));
    assert_eq!(
        parent(&b_exc),
        id(&b_req),
        "the backend's Exception is its Request's child"
    );
    assert_eq!(
        parent(&g_exc),
        id(&g_req),
        "the gateway's Exception is its Request's child"
    );
    assert_eq!(b_req["data"]["baseData"]["success"], false);
    assert_eq!(g_req["data"]["baseData"]["responseCode"], "500");
    let b_ex = &b_exc["data"]["baseData"]["exceptions"][0];
    assert_eq!(b_ex["typeName"], "RuntimeError", "{b_exc:#}");
    assert_eq!(b_ex["message"], "the orders backend failed on purpose");
    assert_eq!(
        g_exc["data"]["baseData"]["exceptions"][0]["typeName"],
        "BackendServerError"
    );

    // Every item of both was schema-valid (but for the tolerated tag).
    let stats = ingest.stats();
    assert_eq!(stats.items_rejected, 0, "schema rejections: {:?}", stats.rejections);
    drop(envoy);
}
