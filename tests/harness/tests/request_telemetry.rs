//! Request telemetry end to end: real Envoy with the built filter, a real backend and the
//! local ingestion endpoint, which validates every item against the official schema.

mod common;

use common::{is_hex, start, timespan_secs, Stack, IKEY};
use harness::http;
use harness::ingest::of_kind;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// (method, path with query, request body, expected status, expected response body size)
/// (method, path, the Request's name: ids templated, body, status, response size)
const EXCHANGES: &[(&str, &str, &str, &str, u16, u64)] = &[
    ("GET", "/api/orders?page=1&size=20", "GET /api/orders", "", 200, 0),
    ("GET", "/bytes/1000?n=1", "GET /bytes/{id}", "", 200, 1000),
    (
        "POST",
        "/status/201?create=1",
        "POST /status/{id}",
        "{\"id\":17,\"qty\":2}",
        201,
        0,
    ),
    ("PUT", "/status/204?put=1", "PUT /status/{id}", "x", 204, 0),
    ("DELETE", "/status/404?gone=1", "DELETE /status/{id}", "", 404, 0),
    ("PATCH", "/status/500?patch=1", "PATCH /status/{id}", "{}", 500, 0),
    ("GET", "/status/503?unavailable=1", "GET /status/{id}", "", 503, 0),
    ("GET", "/status/302?moved=1", "GET /status/{id}", "", 302, 0),
    ("OPTIONS", "/api/cors?o=1", "OPTIONS /api/cors", "", 200, 0),
    (
        "GET",
        "/api/%E2%82%AC/caf%C3%A9?q=%20space",
        "GET /api/{id}/{id}",
        "",
        200,
        0,
    ),
    ("HEAD", "/api/head?h=1", "HEAD /api/head", "", 200, 0),
    ("POST", "/status/400?bad=1", "POST /status/{id}", "not json", 400, 0),
];

/// The version in the repository's Cargo.toml, read as a release reads it.
fn cargo_version() -> String {
    let cargo = std::fs::read_to_string(harness::envoy::repo_root().join("Cargo.toml")).unwrap();
    let line = cargo.lines().find(|l| l.starts_with("version = ")).unwrap();
    line.trim_start_matches("version = ").trim_matches('"').to_string()
}

fn item_for<'a>(items: &'a [Value], url: &str) -> &'a Value {
    let found: Vec<&Value> = items.iter().filter(|i| i["data"]["baseData"]["url"] == url).collect();
    assert_eq!(found.len(), 1, "exactly one item for {url}; items: {items:#?}");
    found[0]
}

#[test]
fn every_request_becomes_exactly_one_schema_valid_request_item() {
    let stack = start(
        json!({}),
        &["--service-cluster", "it-gateway", "--service-node", "it-node-1"],
    );
    let gw = stack.envoy.listener;
    let today = harness::schema::format_time(SystemTime::now())[..10].to_string();
    for (method, path, _, body, status, _) in EXCHANGES {
        let r = http::request(gw, method, path, &[], body.as_bytes()).unwrap();
        assert_eq!(r.status, *status, "{method} {path}");
    }
    stack
        .ingest
        .wait_for_kind("RequestData", EXCHANGES.len(), Duration::from_secs(10));
    // Nothing more may arrive: one Request item per request, no duplicates.
    std::thread::sleep(Duration::from_millis(1500));
    let all = stack.ingest.items();
    let items: Vec<Value> = of_kind(&all, "RequestData").into_iter().cloned().collect();
    assert_eq!(items.len(), EXCHANGES.len(), "items: {items:#?}");
    let stats = stack.ingest.stats();
    assert_eq!(stats.items_rejected, 0, "schema rejections: {:?}", stats.rejections);

    let mut operation_ids = HashSet::new();
    let mut item_ids = HashSet::new();
    for (method, path, name, body, status, response_size) in EXCHANGES {
        let url = format!("http://{gw}{path}");
        let item = item_for(&items, &url);
        let d = &item["data"]["baseData"];
        assert_eq!(item["name"], "Microsoft.ApplicationInsights.Request");
        assert_eq!(item["iKey"], IKEY);
        assert_eq!(item["sampleRate"], 100.0);
        assert_eq!(item["data"]["baseType"], "RequestData");
        assert_eq!(d["ver"], 2);
        assert_eq!(d["name"], *name);
        assert_eq!(d["responseCode"], status.to_string());
        assert_eq!(d["success"], *status < 400, "{name}");
        let duration = timespan_secs(d["duration"].as_str().unwrap());
        assert!(duration > 0.0 && duration < 10.0, "{name}: duration {duration}");

        let time = item["time"].as_str().unwrap();
        assert!(time.ends_with('Z'), "{time}");
        let tags = &item["tags"];
        let op = tags["ai.operation.id"].as_str().unwrap();
        assert!(is_hex(op, 32), "operation id {op}");
        assert!(
            operation_ids.insert(op.to_string()),
            "operation ids are new per request"
        );
        assert_eq!(tags["ai.operation.parentId"], op, "a new operation is its own parent");
        assert_eq!(tags["ai.operation.name"], *name, "no API, an unnamed route: the name");
        assert_eq!(tags["ai.cloud.role"], "it-gateway");
        assert_eq!(tags["ai.cloud.roleInstance"], "it-node-1");
        assert_eq!(
            tags["ai.internal.sdkVersion"],
            format!("envoyappinsights:{}", cargo_version())
        );
        assert!(
            tags.get("ai.location.ip").is_none(),
            "client IP is not logged by default"
        );
        let id = d["id"].as_str().unwrap();
        assert!(is_hex(id, 16), "item id {id}");
        assert!(item_ids.insert(id.to_string()));

        let p = &d["properties"];
        assert_eq!(p["HTTP Method"], *method);
        assert!(p.get("API Name").is_none(), "no API, no route name");
        assert_eq!(p["Service Name"], "it-gateway");
        assert!(!p["Request Id"].as_str().unwrap().is_empty());
        let m = &d["measurements"];
        assert_eq!(m["Request Size"], body.len() as f64, "{name}");
        if *method != "HEAD" && *response_size > 0 {
            assert_eq!(m["Response Size"], *response_size as f64, "{name}");
        }
    }
    // Items are stamped with when the request started.
    for item in &items {
        let t = item["time"].as_str().unwrap();
        assert!(t.starts_with(&today), "time {t} is today ({today})");
    }
    // The log line at load names the version.
    let loaded = format!("envoy-appinsights {} configured", cargo_version());
    assert!(
        stack.envoy.log().contains(&loaded),
        "no {loaded:?} in the log:\n{}",
        stack.envoy.log()
    );
    // Every request reached the backend.
    assert_eq!(stack.backend.requests().len(), EXCHANGES.len());
    // Track requests went to /v2.1/track as NDJSON.
    for r in stack.ingest.requests() {
        assert_eq!(r.path, "/v2.1/track");
        let ct = r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        assert_eq!(ct, Some("application/x-json-stream"));
    }
}

#[test]
fn client_ip_is_logged_only_when_enabled() {
    let stack = start(
        json!({"diagnostic": {"log_client_ip": true}, "cloud_role": "edge", "cloud_role_instance": "edge-7"}),
        &[],
    );
    http::request(stack.envoy.listener, "GET", "/with-ip", &[], b"").unwrap();
    let items = stack.ingest.wait_for_items(2, Duration::from_secs(10));
    assert_eq!(items.len(), 2, "request and dependency");
    assert!(
        items.iter().all(|i| i["tags"]["ai.location.ip"] == "127.0.0.1"),
        "on every item of the operation"
    );
    assert_eq!(items[0]["tags"]["ai.cloud.role"], "edge");
    assert_eq!(items[0]["tags"]["ai.cloud.roleInstance"], "edge-7");
    assert_eq!(stack.ingest.stats().items_rejected, 0);
}

#[test]
fn requests_answered_by_envoy_itself_are_reported_too() {
    // The backend is gone: Envoy answers 503 itself (connection failure), and the item says so.
    let stack = start(json!({}), &[]);
    let backend_addr = stack.backend.addr();
    let Stack { ingest, backend, envoy } = stack;
    drop(backend);
    // Wait until the backend port refuses connections.
    for _ in 0..50 {
        if std::net::TcpStream::connect(backend_addr).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = http::request(envoy.listener, "GET", "/no-backend", &[], b"").unwrap();
    assert_eq!(r.status, 503);
    let items = ingest.wait_for_items(3, Duration::from_secs(10));
    assert_eq!(items.len(), 3, "request, failed dependency, exception: {items:#?}");
    let requests = of_kind(&items, "RequestData");
    let d = &requests[0]["data"]["baseData"];
    assert_eq!(d["responseCode"], "503");
    assert_eq!(d["success"], false);
    let exception = &of_kind(&items, "ExceptionData")[0]["data"]["baseData"];
    assert_eq!(exception["exceptions"][0]["typeName"], "BackendConnectionFailure");
    assert_eq!(exception["properties"]["Response Flags"], "UF");
    let dependency = &of_kind(&items, "RemoteDependencyData")[0]["data"]["baseData"];
    assert_eq!(
        dependency["resultCode"], "BackendConnectionFailure",
        "the backend never answered"
    );
    assert_eq!(ingest.stats().items_rejected, 0);
}

#[test]
fn batches_respect_the_item_limit() {
    let stack = start(
        json!({"delivery": {"flush_interval_ms": 60000, "max_batch_items": 5}}),
        &[],
    );
    for i in 0..10 {
        http::request(stack.envoy.listener, "GET", &format!("/batch/{i}"), &[], b"").unwrap();
    }
    // The flush interval is a minute: only full batches can have been sent.
    let items = stack.ingest.wait_for_items(20, Duration::from_secs(10));
    assert_eq!(items.len(), 20, "a request and a dependency each");
    let requests = stack.ingest.requests();
    assert_eq!(requests.len(), 4, "four batches of five");
    for r in requests {
        assert_eq!(r.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 5);
    }
}

#[test]
fn a_response_the_client_did_not_receive_in_full_is_not_successful() {
    use std::io::{Read, Write};
    let stack = start(json!({}), &[]);
    // A server-sent-events stream: read the first event, then hang up mid-stream.
    let mut s = std::net::TcpStream::connect(stack.envoy.listener).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /sse?events=50&interval_ms=100 HTTP/1.1\r\nHost: gw\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data: event") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    drop(s);
    let items = stack.ingest.wait_for_items(3, Duration::from_secs(10));
    let requests = of_kind(&items, "RequestData");
    assert_eq!(requests.len(), 1, "{items:#?}");
    let d = &requests[0]["data"]["baseData"];
    assert_eq!(d["responseCode"], "200", "the status the client saw");
    assert_eq!(d["success"], false, "but the response did not reach it in full");
    let exceptions = of_kind(&items, "ExceptionData");
    assert_eq!(
        exceptions[0]["data"]["baseData"]["exceptions"][0]["typeName"],
        "ClientConnectionFailure"
    );
    assert_eq!(stack.ingest.stats().items_rejected, 0);
}

#[test]
fn a_wrong_ingestion_cluster_never_affects_traffic_and_is_logged() {
    // The logger names a cluster Envoy does not have: Envoy refuses each callout.
    let stack = start(
        json!({"loggers": {"main": {"instrumentation_key": IKEY, "cluster": "no_such_cluster"}}}),
        &[],
    );
    for i in 0..20 {
        let r = http::request(stack.envoy.listener, "GET", &format!("/still-served/{i}"), &[], b"").unwrap();
        assert_eq!(r.status, 200);
        // Spread over two seconds: about ten batches (200 ms flush) fail to go out.
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = stack.envoy.log();
        if log.contains("could not send") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = log
        .lines()
        .find(|l| l.contains("could not send"))
        .unwrap_or_else(|| panic!("no warning; log:\n{log}"));
    assert!(
        line.contains("logger main") && line.contains("cluster no_such_cluster"),
        "{line}"
    );
    assert!(line.contains("appinsights["), "{line}");
    assert!(
        line.contains("Envoy has no cluster named no_such_cluster"),
        "says what is wrong: {line}"
    );
    assert_eq!(stack.backend.requests().len(), 20);
    // One warning per 10 s, not one per batch.
    assert_eq!(log.matches("could not send").count(), 1, "rate-limited; log:\n{log}");
}
