//! Edge cases found in review, through the real Envoy: requests answered before this filter
//! ran, correlation headers that must be removed or restarted, content big enough to break
//! the 64 KB item limit, and the HOSTNAME fallback for the role instance.

mod common;

use common::*;
use harness::envoy::{filter_wasm, Envoy};
use harness::envoy_config::Settings;
use harness::http;
use harness::ingest::{IngestConfig, IngestServer};
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[test]
fn a_request_answered_by_an_earlier_filter_is_still_reported() {
    // A local rate limiter with no tokens, placed before this filter: it answers 429 and this
    // filter's request-headers callback never runs.
    let s = start_with(json!({}), &[], |s| {
        s.filters_before = vec![r#"{name: envoy.filters.http.local_ratelimit, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: limited, token_bucket: {max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s}, filter_enabled: {default_value: {numerator: 100}, runtime_key: rl_enabled}, filter_enforced: {default_value: {numerator: 100}, runtime_key: rl_enforced}}}"#.into()];
    });
    assert_eq!(
        http::request(s.envoy.listener, "GET", "/first?x=1", &[], b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http::request(s.envoy.listener, "GET", "/limited?x=2", &[], b"")
            .unwrap()
            .status,
        429
    );
    let items = settled(&s.ingest, 4);
    let limited = one(&items, "RequestData", "name", "GET /limited");
    assert_eq!(limited["data"]["baseData"]["responseCode"], "429");
    assert_eq!(
        limited["data"]["baseData"]["url"],
        format!("http://{}/limited?x=2", s.envoy.listener)
    );
    let op = operation(&items, limited["tags"]["ai.operation.id"].as_str().unwrap());
    assert!(
        kind(&op, "RemoteDependencyData").is_empty(),
        "the backend was never called"
    );
    assert_eq!(
        kind(&op, "ExceptionData")[0]["data"]["baseData"]["exceptions"][0]["typeName"],
        "RateLimitExceeded"
    );
}

#[test]
fn legacy_mode_removes_a_callers_traceparent_so_the_backend_follows_request_id() {
    let s = start(json!({"diagnostic": {"correlation_protocol": "Legacy"}}), &[]);
    let tp = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let headers = [
        ("request-id", "|legacy.1."),
        ("traceparent", tp.as_str()),
        ("tracestate", "a=1"),
    ];
    http::request(s.envoy.listener, "GET", "/legacy-both", &headers, b"").unwrap();
    settled(&s.ingest, 2);
    let seen = &s.backend.requests()[0];
    assert_eq!(seen.header("traceparent"), None);
    assert_eq!(seen.header("tracestate"), None);
    assert!(seen.header("request-id").unwrap().starts_with("|legacy."));
}

#[test]
fn w3c_mode_continues_a_compatible_request_id_and_restarts_on_bad_traceparents() {
    let s = start(json!({}), &[]);
    let gw = s.envoy.listener;
    http::request(
        gw,
        "GET",
        "/compat",
        &[("request-id", &format!("|{TRACE}.00f067aa0ba902b7."))],
        b"",
    )
    .unwrap();
    let tp = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let mut c = std::net::TcpStream::connect(gw).unwrap();
    use std::io::{Read, Write};
    write!(
        c,
        "GET /dup HTTP/1.1\r\nHost: gw\r\ntraceparent: {tp}\r\ntraceparent: {tp}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    http::request(
        gw,
        "GET",
        "/restarted",
        &[
            ("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            ("tracestate", "vendor=stale"),
        ],
        b"",
    )
    .unwrap();
    let items = settled(&s.ingest, 6);
    let compat = one(&items, "RequestData", "name", "GET /compat");
    assert_eq!(compat["tags"]["ai.operation.id"], TRACE, "continued from Request-Id");
    let dup = one(&items, "RequestData", "name", "GET /dup");
    assert_ne!(
        dup["tags"]["ai.operation.id"], TRACE,
        "two traceparent headers are invalid: a new trace"
    );
    let restarted = one(&items, "RequestData", "name", "GET /restarted");
    assert!(
        restarted["data"]["baseData"]["properties"].get("tracestate").is_none(),
        "a stale tracestate is not recorded"
    );
    let seen = s.backend.requests();
    let backend_restarted = seen.iter().find(|r| r.path == "/restarted").unwrap();
    assert_eq!(
        backend_restarted.header("tracestate"),
        None,
        "nor forwarded with the new trace"
    );
}

#[test]
fn content_that_would_exceed_64_kb_never_costs_an_item() {
    let s = start(
        json!({"diagnostic": {"frontend": {"request": {"body_bytes": 8192}, "response": {"body_bytes": 8192}},
                              "header_properties": {"A": "x-a", "B": "x-b"}}}),
        &[],
    );
    // Control characters in the body escape to six bytes each, quotes in header values to
    // two; and a 40,000-character path on a failure.
    let body = vec![0x01u8; 8192];
    let big = "\"".repeat(7000);
    let long_path = format!("/status/500?{}", "p".repeat(40_000));
    http::request(
        s.envoy.listener,
        "POST",
        "/echo",
        &[("x-a", &big), ("x-b", &big)],
        &body,
    )
    .unwrap();
    http::request(s.envoy.listener, "GET", &long_path, &[], b"").unwrap();
    let items = settled(&s.ingest, 5);
    let stats = s.ingest.stats();
    assert_eq!(stats.items_rejected, 0);
    let echo = one(&items, "RequestData", "name", "POST /echo");
    assert_eq!(echo["data"]["baseData"]["properties"]["Capture-Truncated"], "true");
    one(&items, "RemoteDependencyData", "name", "POST /echo");
    let failed = one_at(&items, "RequestData", "/status/500");
    let op = operation(&items, failed["tags"]["ai.operation.id"].as_str().unwrap());
    assert_eq!(
        kind(&op, "ExceptionData").len(),
        1,
        "the exception of a huge URL is kept"
    );
    for r in s.ingest.requests() {
        for line in r.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(line.len() <= 64 * 1024, "an item of {} bytes", line.len());
        }
    }
}

#[test]
fn without_a_service_node_the_role_instance_is_the_hostname() {
    let ingest = IngestServer::start(IngestConfig::default()).unwrap();
    let backend = harness::backend::Backend::start("127.0.0.1:0").unwrap();
    let config =
        json!({"loggers": {"main": logger_for(&ingest, "appinsights")}, "delivery": {"flush_interval_ms": 200}});
    let settings = Settings::local(&backend.addr().to_string(), filter_wasm().to_str().unwrap(), config);
    let envoy = Envoy::start_env(&settings, &[], &[("HOSTNAME", "gateway-pod-7")]).unwrap();
    http::request(envoy.listener, "GET", "/who", &[], b"").unwrap();
    let items = settled(&ingest, 2);
    assert!(
        items
            .iter()
            .all(|i| i["tags"]["ai.cloud.roleInstance"] == "gateway-pod-7"),
        "{items:#?}"
    );
}

/// Sends raw bytes and returns what came back (until the peer closes or 2 s pass).
fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn requests_envoy_rejects_itself_make_schema_valid_items() {
    // Envoy answers these before any filter sees headers: a malformed request line (400),
    // headers over its limit (431), an HTTP version it does not speak (426).
    let s = start(json!({}), &[]);
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    for (request, status) in [
        (b"GARBAGE\r\n\r\n".to_vec(), "400"),
        (big.into_bytes(), "431"),
        (b"GET /v HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), "426"),
    ] {
        let answer = raw(s.envoy.listener, &request);
        assert!(answer.contains(status), "{status}: {answer}");
    }
    // settled() fails on any item the schema validator rejects.
    let items = settled(&s.ingest, 3);
    let requests = kind(&items, "RequestData");
    assert_eq!(requests.len(), 3);
    for item in requests {
        let d = &item["data"]["baseData"];
        assert_eq!(
            d["name"], "HTTP",
            "no method: named as OpenTelemetry names it; {item:#}"
        );
        assert_eq!(item["tags"]["ai.operation.name"], "HTTP");
        assert!(d.get("url").is_none(), "no URL to tell: {item:#}");
        assert!(d["properties"].get("HTTP Method").is_none());
    }
}
