//! Low-cardinality names through the real Envoy: a thousand ids are one operation, the
//! URL keeps each id, a named route names its operation, and templating can be turned off.

mod common;

use common::*;
use harness::http;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// An unnamed route for `/orders/` (Envoy gives it no name), one named `order-lookup` for
/// `/lookup/`, before the harness's catch-all route `backend`.
fn routes(s: &mut harness::envoy_config::Settings) {
    s.extra_routes = vec![
        r#"{match: {prefix: "/orders/"}, route: {cluster: backend}}"#.into(),
        r#"{name: order-lookup, match: {prefix: "/lookup/"}, route: {cluster: backend}}"#.into(),
    ];
}

/// The `i`-th id, of four kinds: numbers, UUIDs, Mongo-style hex ids, base64url tokens.
fn id(i: usize) -> String {
    match i % 4 {
        0 => format!("{}", 100_000 + i),
        1 => format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", i * 7919, i, i, i, i * 104_729),
        2 => format!("{:024x}", 0x5f1d_7a00_0000_0000_u64 + i as u64),
        _ => format!("tok_{i:05}AbCdEfGhIjKlMnOp"),
    }
}

fn field_set(items: &[Value], get: impl Fn(&Value) -> Option<&str>) -> BTreeSet<String> {
    items.iter().filter_map(|i| get(i).map(str::to_string)).collect()
}

#[test]
fn a_thousand_distinct_ids_make_one_operation_and_every_url_keeps_its_id() {
    let s = start_with(json!({}), &[], routes);
    for i in 0..1000 {
        let r = http::request(s.envoy.listener, "GET", &format!("/orders/{}?v=1", id(i)), &[], b"").unwrap();
        assert_eq!(r.status, 200);
    }
    let items = s.ingest.wait_for_kind("RequestData", 1000, Duration::from_secs(30));
    let requests = kind(&items, "RequestData");
    let dependencies = kind(&items, "RemoteDependencyData");
    assert_eq!((requests.len(), dependencies.len()), (1000, 1000));
    let names = field_set(&requests, |r| r["tags"]["ai.operation.name"].as_str());
    assert_eq!(names, BTreeSet::from(["GET /orders/{id}".to_string()]), "one operation");
    let request_names = field_set(&requests, |r| r["data"]["baseData"]["name"].as_str());
    assert_eq!(request_names, names, "one Request name");
    let dependency_names = field_set(&dependencies, |d| d["data"]["baseData"]["name"].as_str());
    assert_eq!(dependency_names, names, "one Dependency name");
    let urls = field_set(&requests, |r| r["data"]["baseData"]["url"].as_str());
    let expected: BTreeSet<String> = (0..1000)
        .map(|i| format!("http://{}/orders/{}?v=1", s.envoy.listener, id(i)))
        .collect();
    assert_eq!(urls, expected, "each URL exact");
    let data = field_set(&dependencies, |d| d["data"]["baseData"]["data"].as_str());
    assert_eq!(data.len(), 1000, "each Dependency's data exact");
    assert_eq!(s.ingest.stats().items_rejected, 0);
}

#[test]
fn a_named_route_names_its_operation_and_templating_can_be_turned_off() {
    let s = start_with(json!({"diagnostic": {"templated_names": false}}), &[], routes);
    http::request(s.envoy.listener, "GET", "/orders/42", &[], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/lookup/42", &[], b"").unwrap();
    let items = settled(&s.ingest, 4);
    let raw = one_at(&items, "RequestData", "/orders/42");
    assert_eq!(raw["data"]["baseData"]["name"], "GET /orders/42");
    assert_eq!(raw["tags"]["ai.operation.name"], "GET /orders/42", "templating off");
    let named = one_at(&items, "RequestData", "/lookup/42");
    assert_eq!(named["tags"]["ai.operation.name"], "order-lookup", "the route's name");
    assert_eq!(named["data"]["baseData"]["properties"]["API Name"], "order-lookup");
}
