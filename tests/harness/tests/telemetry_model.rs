//! The full API Management telemetry model through the real Envoy: dependencies,
//! exceptions, traces, correlation, sampling, verbosity, per-API diagnostics and
//! multiplexing. Every item is also validated against the schema by the endpoint.

mod common;

use common::*;
use envoy_appinsights::sampling;
use harness::http;
use harness::ingest::{IngestConfig, IngestServer};
use serde_json::json;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str, span: &str, flags: &str) -> String {
    format!("00-{trace}-{span}-{flags}")
}

#[test]
fn w3c_trace_context_is_continued_and_the_backend_is_parented_to_the_dependency() {
    let s = start(json!({}), &[]);
    let tp = traceparent(TRACE, CALLER_SPAN, "01");
    let r = http::request(
        s.envoy.listener,
        "GET",
        "/w3c?x=1",
        &[("traceparent", &tp), ("tracestate", "congo=t61rcWkgMzE")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let items = settled(&s.ingest, 2);
    assert_eq!(items.len(), 2, "{items:#?}");
    let req = one(&items, "RequestData", "name", "GET /w3c");
    let dep = one(&items, "RemoteDependencyData", "name", "GET /w3c");
    assert_eq!(req["tags"]["ai.operation.id"], TRACE);
    assert_eq!(req["tags"]["ai.operation.parentId"], CALLER_SPAN);
    assert_eq!(req["data"]["baseData"]["properties"]["tracestate"], "congo=t61rcWkgMzE");
    let request_id = req["data"]["baseData"]["id"].as_str().unwrap();
    let dependency_id = dep["data"]["baseData"]["id"].as_str().unwrap();
    assert!(is_hex(request_id, 16) && is_hex(dependency_id, 16) && request_id != dependency_id);
    assert_eq!(dep["tags"]["ai.operation.id"], TRACE);
    assert_eq!(dep["tags"]["ai.operation.parentId"], request_id);
    let d = &dep["data"]["baseData"];
    assert_eq!(d["type"], "HTTP");
    // Envoy passed the client's Host on: the target is the host that served the call, not
    // the gateway's own address; the cluster is a property.
    let backend = s.backend.addr().to_string();
    assert_eq!(d["target"], backend.as_str(), "the host called");
    assert_eq!(d["properties"]["Envoy Cluster"], "backend");
    assert_eq!(d["resultCode"], "200");
    assert_eq!(d["success"], true);
    assert_eq!(d["data"], format!("http://{backend}/w3c?x=1"));
    assert!(d["properties"]["Backend Address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // What the backend received: the same trace, parented to the dependency.
    let seen = s.backend.requests();
    assert_eq!(
        seen[0].header("traceparent"),
        Some(traceparent(TRACE, dependency_id, "01").as_str())
    );
    assert_eq!(
        seen[0].header("tracestate"),
        Some("congo=t61rcWkgMzE"),
        "tracestate passes through"
    );
}

#[test]
fn a_missing_or_invalid_traceparent_starts_a_new_trace() {
    let s = start(json!({}), &[]);
    let upper = traceparent(&TRACE.to_uppercase(), CALLER_SPAN, "01");
    let version_ff = format!("ff-{TRACE}-{CALLER_SPAN}-01");
    http::request(
        s.envoy.listener,
        "GET",
        "/invalid-upper",
        &[("traceparent", &upper)],
        b"",
    )
    .unwrap();
    http::request(
        s.envoy.listener,
        "GET",
        "/invalid-ff",
        &[("traceparent", &version_ff)],
        b"",
    )
    .unwrap();
    http::request(s.envoy.listener, "GET", "/none", &[], b"").unwrap();
    let items = settled(&s.ingest, 6);
    for (path, seen) in ["/invalid-upper", "/invalid-ff", "/none"]
        .iter()
        .zip(s.backend.requests())
    {
        let req = one(&items, "RequestData", "name", &format!("GET {path}"));
        let op = req["tags"]["ai.operation.id"].as_str().unwrap();
        assert!(is_hex(op, 32) && op != TRACE, "{path}: a new trace, got {op}");
        assert_eq!(req["tags"]["ai.operation.parentId"], op, "{path}: a root request");
        let sent = seen.header("traceparent").unwrap();
        assert!(sent.starts_with(&format!("00-{op}-")), "{path}: backend got {sent}");
    }
}

#[test]
fn legacy_correlation_reads_and_writes_bounded_request_ids() {
    let s = start(json!({"diagnostic": {"correlation_protocol": "Legacy"}}), &[]);
    let headers = [
        ("request-id", "|legacy-root.1.2."),
        ("request-context", "appId=cid-v1:caller-app"),
    ];
    http::request(s.envoy.listener, "GET", "/legacy", &headers, b"").unwrap();
    let items = settled(&s.ingest, 2);
    let req = one(&items, "RequestData", "name", "GET /legacy");
    let dep = one(&items, "RemoteDependencyData", "name", "GET /legacy");
    assert_eq!(req["tags"]["ai.operation.id"], "legacy-root");
    assert_eq!(req["tags"]["ai.operation.parentId"], "|legacy-root.1.2.");
    assert_eq!(req["data"]["baseData"]["source"], "cid-v1:caller-app");
    let dep_id = dep["data"]["baseData"]["id"].as_str().unwrap();
    assert!(
        dep_id.starts_with("|legacy-root.") && dep_id.ends_with('.') && dep_id.len() == "|legacy-root.".len() + 17,
        "{dep_id}"
    );
    let seen = &s.backend.requests()[0];
    assert_eq!(
        seen.header("request-id"),
        Some(dep_id),
        "the backend's parent is the dependency"
    );
    assert_eq!(seen.header("traceparent"), None, "Legacy injects no W3C header");
}

#[test]
fn correlation_none_neither_reads_nor_injects() {
    let s = start(json!({"diagnostic": {"correlation_protocol": "None"}}), &[]);
    let tp = traceparent(TRACE, CALLER_SPAN, "01");
    http::request(s.envoy.listener, "GET", "/none", &[("traceparent", &tp)], b"").unwrap();
    let items = settled(&s.ingest, 2);
    let req = one(&items, "RequestData", "name", "GET /none");
    assert_ne!(req["tags"]["ai.operation.id"], TRACE);
    assert_eq!(
        s.backend.requests()[0].header("traceparent"),
        Some(tp.as_str()),
        "the client's header, untouched"
    );
}

/// Trace ids whose Application Insights sampling score is below / above `percentage`.
fn ids_around(percentage: f64, n: usize) -> (Vec<String>, Vec<String>) {
    let (mut below, mut above) = (Vec::new(), Vec::new());
    for i in 1u64.. {
        let id = format!("{:016x}{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i);
        if sampling::score(id.as_bytes()) < percentage {
            if below.len() < n {
                below.push(id);
            }
        } else if above.len() < n {
            above.push(id);
        }
        if below.len() == n && above.len() == n {
            break;
        }
    }
    (below, above)
}

#[test]
fn sampling_keeps_operations_by_the_application_insights_score_and_always_logs_errors() {
    let s = start(json!({"diagnostic": {"sampling_percentage": 50}}), &[]);
    let (kept, dropped) = ids_around(50.0, 6);
    for id in kept.iter().chain(&dropped) {
        let tp = traceparent(id, CALLER_SPAN, "01");
        assert_eq!(
            http::request(
                s.envoy.listener,
                "GET",
                &format!("/s/{id}"),
                &[("traceparent", &tp)],
                b""
            )
            .unwrap()
            .status,
            200
        );
    }
    // Failed requests of dropped operations are kept anyway.
    for id in &dropped[..2] {
        let tp = traceparent(id, CALLER_SPAN, "01");
        http::request(
            s.envoy.listener,
            "GET",
            &format!("/status/500?{id}"),
            &[("traceparent", &tp)],
            b"",
        )
        .unwrap();
    }
    let items = settled(&s.ingest, kept.len() * 2 + 6);
    for id in &kept {
        let op = operation(&items, id);
        assert_eq!(op.len(), 2, "kept {id}: request and dependency");
        assert!(op.iter().all(|i| i["sampleRate"] == 50.0), "each stands for two");
    }
    for id in &dropped[2..] {
        assert!(operation(&items, id).is_empty(), "dropped {id}");
    }
    for id in &dropped[..2] {
        let op = operation(&items, id);
        assert_eq!(
            op.len(),
            3,
            "error of a dropped operation: request, dependency, exception"
        );
        assert!(op.iter().all(|i| i["sampleRate"] == 100.0), "kept errors count once");
    }
    // The backend learns the decision through the sampled flag.
    for seen in s.backend.requests() {
        let sent = seen.header("traceparent").unwrap();
        let id = &sent[3..35];
        let expect = if kept.iter().any(|k| k == id) { "-01" } else { "-00" };
        assert!(sent.ends_with(expect), "{sent}");
    }
}

#[test]
fn failures_produce_exceptions_with_stable_types_and_the_right_dependency() {
    let backend_delay_route = |s: &mut harness::envoy_config::Settings| {
        s.extra_routes = vec![
            r#"{name: direct, match: {prefix: "/direct"}, direct_response: {status: 418}}"#.into(),
            r#"{name: slow, match: {prefix: "/delay"}, route: {cluster: backend, timeout: 0.3s}}"#.into(),
            r#"{name: flaky, match: {prefix: "/flaky"}, route: {cluster: backend, prefix_rewrite: "/status/503", retry_policy: {retry_on: "5xx", num_retries: 2, per_try_timeout: 2s}}}"#.into(),
        ];
        s.extra_virtual_hosts = vec![r#"{name: narrow, domains: ["narrow.test"], routes: [{name: only, match: {prefix: "/only"}, route: {cluster: backend}}]}"#.into()];
    };
    let s = start_with(json!({}), &[], backend_delay_route);
    let gw = s.envoy.listener;
    assert_eq!(http::request(gw, "GET", "/status/500", &[], b"").unwrap().status, 500);
    assert_eq!(http::request(gw, "GET", "/status/404", &[], b"").unwrap().status, 404);
    assert_eq!(http::request(gw, "GET", "/direct", &[], b"").unwrap().status, 418);
    assert_eq!(http::request(gw, "GET", "/delay/2000", &[], b"").unwrap().status, 504);
    assert_eq!(http::request(gw, "GET", "/flaky", &[], b"").unwrap().status, 503);
    assert_eq!(
        http::request(gw, "GET", "/elsewhere", &[("host", "narrow.test")], b"")
            .unwrap()
            .status,
        404
    );
    let items = settled(&s.ingest, 16);
    assert_eq!(s.ingest.stats().items_rejected, 0, "{:?}", s.ingest.stats().rejections);

    // (request name, exception type, dependency result code or None when no backend call)
    let cases = [
        ("GET /status/500", "BackendServerError", Some(("500", false))),
        ("GET /status/404", "BackendClientError", Some(("404", false))),
        ("GET /direct", "RequestRejected", None),
        ("GET /delay/2000", "Timeout", Some(("Timeout", false))),
        ("GET /flaky", "BackendRetriesExhausted", Some(("503", false))),
        ("GET /elsewhere", "OperationNotFound", None),
    ];
    for (name, type_name, dependency) in cases {
        let req = one_at(&items, "RequestData", name.split_once(' ').unwrap().1);
        assert_eq!(req["data"]["baseData"]["success"], false, "{name}");
        let op = operation(&items, req["tags"]["ai.operation.id"].as_str().unwrap());
        let request_id = &req["data"]["baseData"]["id"];
        let exceptions = kind(&op, "ExceptionData");
        assert_eq!(exceptions.len(), 1, "{name}: one exception");
        let e = &exceptions[0];
        assert_eq!(
            e["data"]["baseData"]["exceptions"][0]["typeName"], type_name,
            "{name}: {e:#}"
        );
        assert_eq!(e["tags"]["ai.operation.parentId"], *request_id);
        assert!(
            e["data"]["baseData"]["exceptions"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with(name),
            "{e:#}"
        );
        let deps = kind(&op, "RemoteDependencyData");
        match dependency {
            None => assert!(deps.is_empty(), "{name}: no backend call, no dependency"),
            Some((code, success)) => {
                assert_eq!(deps.len(), 1, "{name}");
                assert_eq!(deps[0]["data"]["baseData"]["resultCode"], code, "{name}");
                assert_eq!(deps[0]["data"]["baseData"]["success"], success, "{name}");
            }
        }
    }
    let timeout = one(&items, "ExceptionData", "problemId", "Timeout at route slow");
    assert_eq!(timeout["data"]["baseData"]["properties"]["Response Flags"], "UT");
    assert_eq!(
        timeout["data"]["baseData"]["properties"]["API Name"], "slow",
        "the route names the API, as on the Request"
    );
    let flaky = one(&items, "RequestData", "name", "GET /flaky");
    let flaky_dep = &kind(
        &operation(&items, flaky["tags"]["ai.operation.id"].as_str().unwrap()),
        "RemoteDependencyData",
    )[0];
    assert_eq!(
        flaky_dep["data"]["baseData"]["properties"]["Attempts"], "3",
        "Envoy retried twice"
    );
    assert_eq!(
        flaky_dep["data"]["baseData"]["name"], "GET /status/{id}",
        "the path sent upstream, templated"
    );
    assert!(
        flaky_dep["data"]["baseData"]["data"]
            .as_str()
            .unwrap()
            .ends_with("/status/503"),
        "the exact path sent upstream: {flaky_dep:#}"
    );
}

#[test]
fn the_dependency_reports_the_request_as_rewritten_for_the_backend() {
    let s = start_with(json!({}), &[], |s| {
        s.extra_routes = vec![r#"{name: public, match: {prefix: "/public/"}, route: {cluster: backend, prefix_rewrite: "/internal/", host_rewrite_literal: "orders.internal"}}"#.into()];
    });
    http::request(s.envoy.listener, "GET", "/public/orders?id=1", &[], b"").unwrap();
    let items = settled(&s.ingest, 2);
    let req = one(&items, "RequestData", "name", "GET /public/orders");
    assert_eq!(
        req["data"]["baseData"]["url"],
        format!("http://{}/public/orders?id=1", s.envoy.listener)
    );
    let dep = one(&items, "RemoteDependencyData", "name", "GET /internal/orders");
    assert_eq!(
        dep["data"]["baseData"]["data"],
        "http://orders.internal/internal/orders?id=1"
    );
    assert_eq!(s.backend.requests()[0].path, "/internal/orders?id=1");
}

#[test]
fn trace_rules_emit_unsampled_messages_filtered_by_verbosity() {
    let s = start_with(
        json!({"diagnostic": {"sampling_percentage": 0, "always_log_errors": false, "verbosity": "information", "traces": [
            {"severity": "error", "source": "errors", "when": {"status": ["5xx"]},
             "message": "{request.method} {request.path} failed with {response.status} for {request.header.x-tenant}",
             "metadata": {"tenant": "{request.header.x-tenant}", "cache": "{response.header.x-backend}"}},
            {"severity": "information", "when": {"request_headers": [{"name": "x-debug", "equals": "1"}]}, "message": "debug call to {route}"},
            {"severity": "verbose", "message": "every call"}
        ]}}),
        &[],
        |s| s.extra_routes = vec![r#"{name: ok-route, match: {prefix: "/ok"}, route: {cluster: backend}}"#.into()],
    );
    http::request(s.envoy.listener, "GET", "/status/503", &[("x-tenant", "contoso")], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/ok", &[("x-debug", "1")], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/quiet", &[("x-debug", "0")], b"").unwrap();
    let items = settled(&s.ingest, 2);
    assert_eq!(
        items.len(),
        2,
        "only traces: requests are sampled out; verbose is below verbosity: {items:#?}"
    );
    let error = one(&items, "MessageData", "severityLevel", "Error");
    let d = &error["data"]["baseData"];
    assert_eq!(d["message"], "GET /status/503 failed with 503 for contoso");
    assert_eq!(d["properties"]["tenant"], "contoso");
    assert_eq!(d["properties"]["Source"], "errors");
    assert_eq!(error["sampleRate"], 100.0);
    let info = one(&items, "MessageData", "severityLevel", "Information");
    assert_eq!(info["data"]["baseData"]["message"], "debug call to ok-route");
}

#[test]
fn a_trace_whose_template_renders_to_nothing_is_still_a_valid_item() {
    // The service refuses an empty message (settled() fails on any schema rejection).
    let s = start(
        json!({"diagnostic": {"sampling_percentage": 0, "always_log_errors": false,
                              "traces": [{"severity": "information", "message": "{request.header.x-absent}"}]}}),
        &[],
    );
    http::request(s.envoy.listener, "GET", "/anything", &[], b"").unwrap();
    let items = settled(&s.ingest, 1);
    assert_eq!(items[0]["data"]["baseData"]["message"], "(empty)");
}

#[test]
fn verbosity_error_logs_only_failed_requests() {
    let s = start(json!({"diagnostic": {"verbosity": "error"}}), &[]);
    http::request(s.envoy.listener, "GET", "/fine", &[], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/status/502", &[], b"").unwrap();
    let items = settled(&s.ingest, 3);
    assert_eq!(items.len(), 3, "{items:#?}");
    one(&items, "RequestData", "name", "GET /status/{id}");
    assert!(kind(&items, "RequestData")
        .iter()
        .all(|r| r["data"]["baseData"]["name"] != "GET /fine"));
}

#[test]
fn per_api_diagnostics_override_and_multiplex() {
    let audit = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let audit_logger = logger_for(&audit, "audit_ingestion");
    let s = start_with(
        json!({
            "diagnostic": {"loggers": ["main"]},
            "apis": [
                {"name": "orders", "revision": "2", "match": {"path_prefixes": ["/orders"]},
                 "operations": [{"name": "get-order", "method": "GET", "path": "/orders/{id}"}],
                 "diagnostic": {"loggers": ["main", "audit"]}},
                {"name": "health", "match": {"route_names": ["health"]},
                 "diagnostic": {"sampling_percentage": 0, "always_log_errors": false}}
            ]
        }),
        &[],
        |s| {
            s.plugin_config["loggers"]["audit"] = audit_logger;
            s.extra_routes = vec![r#"{name: health, match: {prefix: "/health"}, route: {cluster: backend}}"#.into()];
        },
    );
    let gw = s.envoy.listener;
    http::request(gw, "GET", "/orders/7", &[], b"").unwrap();
    http::request(gw, "GET", "/health", &[], b"").unwrap();
    http::request(gw, "GET", "/other", &[], b"").unwrap();
    let main_items = settled(&s.ingest, 4);
    let audit_items = settled(&audit, 2);
    let order = one(&main_items, "RequestData", "name", "GET /orders/{id}");
    assert_eq!(order["tags"]["ai.operation.name"], "orders;rev=2 - get-order");
    assert_eq!(order["data"]["baseData"]["properties"]["API Name"], "orders");
    assert_eq!(order["data"]["baseData"]["properties"]["Operation Name"], "get-order");
    let copy = one(&audit_items, "RequestData", "name", "GET /orders/{id}");
    assert_eq!(
        copy["tags"]["ai.operation.id"], order["tags"]["ai.operation.id"],
        "the same operation in both resources"
    );
    assert_eq!(audit_items.len(), 2, "audit gets only the orders API: {audit_items:#?}");
    let other = one(&main_items, "RequestData", "name", "GET /other");
    assert_eq!(other["tags"]["ai.operation.name"], "GET /other");
    assert!(
        kind(&main_items, "RequestData")
            .iter()
            .all(|r| r["data"]["baseData"]["name"] != "GET /health"),
        "health is not logged"
    );
    assert_eq!(main_items.len(), 4);
}

#[test]
fn sampling_at_0_25_and_100_percent_keeps_exactly_the_operations_the_score_selects() {
    let s = start(
        json!({"apis": [
            {"name": "p0", "match": {"path_prefixes": ["/p0/"]}, "diagnostic": {"sampling_percentage": 0}},
            {"name": "p25", "match": {"path_prefixes": ["/p25/"]}, "diagnostic": {"sampling_percentage": 25}},
            {"name": "p100", "match": {"path_prefixes": ["/p100/"]}, "diagnostic": {"sampling_percentage": 100}}
        ]}),
        &[],
    );
    const N: usize = 200;
    for level in ["p0", "p25", "p100"] {
        for i in 0..N {
            // No traceparent: the gateway starts each operation with its own random id.
            assert_eq!(
                http::request(s.envoy.listener, "GET", &format!("/{level}/{i}"), &[], b"")
                    .unwrap()
                    .status,
                200
            );
        }
    }
    let seen = s.backend.requests();
    assert_eq!(seen.len(), 3 * N);
    let mut expected_kept = 0;
    for r in &seen {
        let tp = r
            .header("traceparent")
            .expect("every backend request carries trace context");
        let trace = &tp[3..35];
        let percentage = match r.path.split('/').nth(1) {
            Some("p0") => 0.0,
            Some("p25") => 25.0,
            _ => 100.0,
        };
        let kept = sampling::is_sampled_in(trace.as_bytes(), percentage);
        assert!(tp.ends_with(if kept { "-01" } else { "-00" }), "{tp}");
        if kept {
            expected_kept += 1;
        }
    }
    let items = settled(&s.ingest, expected_kept * 2);
    let requests = kind(&items, "RequestData");
    assert_eq!(requests.len(), expected_kept, "exactly the operations the score keeps");
    let kept_at_25 = requests
        .iter()
        .filter(|r| r["data"]["baseData"]["name"].as_str().unwrap().starts_with("GET /p25/"))
        .count();
    assert!((30..=70).contains(&kept_at_25), "about a quarter of {N}: {kept_at_25}");
    for r in &requests {
        let name = r["data"]["baseData"]["name"].as_str().unwrap();
        let op = r["tags"]["ai.operation.id"].as_str().unwrap();
        assert!(!name.starts_with("GET /p0/"), "nothing at 0%");
        let (percentage, rate) = if name.starts_with("GET /p25/") {
            (25.0, 25.0)
        } else {
            (100.0, 100.0)
        };
        assert!(
            sampling::is_sampled_in(op.as_bytes(), percentage),
            "{op} kept at {percentage}"
        );
        assert_eq!(r["sampleRate"], rate);
    }
    assert_eq!(
        requests
            .iter()
            .filter(|r| r["data"]["baseData"]["name"]
                .as_str()
                .unwrap()
                .starts_with("GET /p100/"))
            .count(),
        N
    );
}

#[test]
fn verbosity_verbose_adds_verbose_traces() {
    let s = start(
        json!({"diagnostic": {"verbosity": "verbose", "traces": [{"message": "verbose {request.path}"}]}}),
        &[],
    );
    http::request(s.envoy.listener, "GET", "/chatty", &[], b"").unwrap();
    let items = settled(&s.ingest, 3);
    let trace = one(&items, "MessageData", "message", "verbose /chatty");
    assert_eq!(trace["data"]["baseData"]["severityLevel"], "Verbose");
    one(&items, "RequestData", "name", "GET /chatty");
}

#[test]
fn route_metadata_names_the_api_and_operation() {
    let s = start_with(
        json!({"apis": [{"name": "catalog", "revision": "7", "match": {"route_metadata": true}}]}),
        &[],
        |s| {
            s.extra_routes = vec![
                r#"{name: items, match: {prefix: "/items"}, route: {cluster: backend}, metadata: {filter_metadata: {appinsights: {api: catalog, operation: list-items}}}}"#.into(),
            ];
            s.extra_virtual_hosts = vec![
                r#"{name: shop, domains: ["shop.test"], metadata: {filter_metadata: {appinsights: {api: catalog}}}, routes: [{name: shop-any, match: {prefix: "/"}, route: {cluster: backend}}]}"#.into(),
            ];
        },
    );
    http::request(s.envoy.listener, "GET", "/items?page=2", &[], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/cart", &[("host", "shop.test")], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/elsewhere", &[], b"").unwrap();
    let items = settled(&s.ingest, 6);
    let listed = one(&items, "RequestData", "name", "GET /items");
    assert_eq!(listed["tags"]["ai.operation.name"], "catalog;rev=7 - list-items");
    assert_eq!(listed["data"]["baseData"]["properties"]["Operation Name"], "list-items");
    let cart = one(&items, "RequestData", "name", "GET /cart");
    assert_eq!(
        cart["tags"]["ai.operation.name"], "catalog;rev=7 - shop-any",
        "virtual-host metadata; the route name as operation"
    );
    let other = one(&items, "RequestData", "name", "GET /elsewhere");
    assert_eq!(other["tags"]["ai.operation.name"], "GET /elsewhere");
}

#[test]
fn custom_properties_come_from_config_and_request_headers_with_secrets_masked() {
    let s = start(
        json!({"diagnostic": {"properties": {"Region": "West Europe"},
                              "header_properties": {"Tenant": "x-tenant", "Credentials": "authorization"}}}),
        &[],
    );
    http::request(
        s.envoy.listener,
        "GET",
        "/status/500",
        &[("x-tenant", "contoso"), ("authorization", "Bearer top-secret-token")],
        b"",
    )
    .unwrap();
    let items = settled(&s.ingest, 3);
    assert_eq!(items.len(), 3);
    for item in &items {
        let p = &item["data"]["baseData"]["properties"];
        assert_eq!(p["Region"], "West Europe");
        assert_eq!(p["Tenant"], "contoso");
        assert_eq!(p["Credentials"], "***");
    }
    for r in s.ingest.requests() {
        assert!(
            !String::from_utf8_lossy(&r.body).contains("top-secret-token"),
            "the raw payload never carries the secret"
        );
    }
}

#[test]
fn legacy_correlation_sends_request_context_both_ways_when_the_application_id_is_known() {
    let s = start_with(json!({"diagnostic": {"correlation_protocol": "Legacy"}}), &[], |s| {
        let cs = s.plugin_config["loggers"]["main"]["connection_string"]
            .as_str()
            .unwrap()
            .to_string();
        s.plugin_config["loggers"]["main"]["connection_string"] =
            json!(format!("{cs};ApplicationId=00000000-aaaa-bbbb-cccc-000000000042"));
    });
    let r = http::request(s.envoy.listener, "GET", "/ctx", &[], b"").unwrap();
    assert_eq!(
        r.header("request-context"),
        Some("appId=cid-v1:00000000-aaaa-bbbb-cccc-000000000042"),
        "told to the client"
    );
    let seen = &s.backend.requests()[0];
    assert_eq!(
        seen.header("request-context"),
        Some("appId=cid-v1:00000000-aaaa-bbbb-cccc-000000000042"),
        "told to the backend"
    );
    settled(&s.ingest, 2);
}

#[test]
fn parent_based_sampling_keeps_every_caller_sampled_operation_and_passes_the_flag_on() {
    let s = start(
        json!({"diagnostic": {"sampling_percentage": 0, "sampling_mode": "parent"}}),
        &[],
    );
    // 20 callers that record their trace, 20 that do not, 5 without a traceparent.
    let trace = |i: usize| format!("{:032x}", 0x1000 + i);
    for i in 0..40 {
        let flags = if i < 20 { "01" } else { "00" };
        let tp = traceparent(&trace(i), CALLER_SPAN, flags);
        let r = http::request(
            s.envoy.listener,
            "GET",
            &format!("/p/{i}"),
            &[("traceparent", &tp)],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    for i in 0..5 {
        http::request(s.envoy.listener, "GET", &format!("/none/{i}"), &[], b"").unwrap();
    }
    let items = settled(&s.ingest, 40);
    for i in 0..40 {
        let op = operation(&items, &trace(i));
        if i < 20 {
            assert_eq!(op.len(), 2, "caller-sampled {i}: request and dependency at 0%");
            assert!(op.iter().all(|item| item["sampleRate"] == 100.0));
        } else {
            assert!(op.is_empty(), "caller did not sample {i}");
        }
    }
    assert_eq!(
        kind(&items, "RequestData").len(),
        20,
        "no traceparent: the score (0%) decides"
    );
    for seen in s.backend.requests() {
        let sent = seen.header("traceparent").unwrap();
        let i = seen.path.trim_start_matches("/p/").parse::<usize>();
        let expected = match i {
            Ok(i) if i < 20 => "-01",
            _ => "-00",
        };
        assert!(sent.ends_with(expected), "{} got {sent}", seen.path);
    }
}

#[test]
fn a_rewritten_host_names_the_dependency_target_and_data() {
    let s = start_with(json!({}), &[], |s| {
        s.extra_routes = vec![
            r#"{name: rewritten, match: {prefix: "/rewritten"}, route: {cluster: backend, host_rewrite_literal: "orders.internal:8443", prefix_rewrite: "/v2/orders"}}"#.into(),
        ];
    });
    let r = http::request(s.envoy.listener, "GET", "/rewritten?id=7", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let items = settled(&s.ingest, 2);
    let dep = &kind(&items, "RemoteDependencyData")[0]["data"]["baseData"];
    assert_eq!(dep["target"], "orders.internal:8443", "the host the route sent");
    assert_eq!(
        dep["data"], "http://orders.internal:8443/v2/orders?id=7",
        "the URL as sent"
    );
    assert_eq!(dep["name"], "GET /v2/orders");
    assert_eq!(dep["properties"]["Envoy Cluster"], "backend");
    assert_eq!(s.backend.requests()[0].header("host"), Some("orders.internal:8443"));
}
