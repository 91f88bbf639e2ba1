//! API Management's Request dimensions through the real Envoy: the service dimensions as
//! configured, `API Type`, subscription and product taken from a real JWT filter's claims,
//! `Cache` from a real Envoy cache filter, and `Client Time (in ms)`.

mod common;

use common::*;
use harness::http;
use serde_json::{json, Value};

/// HS256, key [`JWKS`]; claims `iss` https://issuer.test, `sub` contoso-subscription,
/// `product` starter, `aud` gateway (made with Python's hmac for this test).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci50ZXN0Iiwic3ViIjoiY29udG9zby1zdWJzY3JpcHRpb24iLCJwcm9kdWN0Ijoic3RhcnRlciIsImF1ZCI6ImdhdGV3YXkifQ.VcJwipuZsgTiFiX2U3smlw_2eZuZUaw0yxZHNTk1eVY";
const JWKS: &str = r#"{"keys":[{"kty":"oct","alg":"HS256","k":"YXBpbS1kaW1lbnNpb25zLXRlc3Qta2V5LTMyLWJ5dGVzISE"}]}"#;

/// Envoy's JWT filter: verifies the token (when there is one) and puts its claims in the
/// dynamic metadata, `envoy.filters.http.jwt_authn` / `jwt_payload`.
fn jwt_filter() -> String {
    let jwks = Value::String(JWKS.into()).to_string();
    format!(
        r#"{{name: envoy.filters.http.jwt_authn, typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication, providers: {{test: {{issuer: "https://issuer.test", audiences: [gateway], local_jwks: {{inline_string: {jwks}}}, payload_in_metadata: jwt_payload, forward: true}}}}, rules: [{{match: {{prefix: "/"}}, requires: {{allow_missing: {{}}}}}}]}}}}"#
    )
}

/// Envoy's cache filter, after this one: a cached response still passes through it.
const CACHE_FILTER: &str = r#"{name: envoy.filters.http.cache, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig, typed_config: {"@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig}}}"#;

fn props(item: &Value) -> &Value {
    &item["data"]["baseData"]["properties"]
}

#[test]
fn requests_carry_apim_dimensions_from_configuration_jwt_claims_and_the_cache() {
    let claim = |c: &str| format!("{{metadata.envoy.filters.http.jwt_authn/jwt_payload/{c}}}");
    let s = start_with(
        json!({
            "service": {"type": "API Management", "id": "contoso-gw", "region": "West Europe"},
            "diagnostic": {"dynamic_properties": {"Subscription Name": claim("sub"), "Product Name": claim("product")}},
            "apis": [{"name": "orders", "type": "http", "match": {"path_prefixes": ["/orders"]},
                      "operations": [{"name": "get-order", "method": "GET", "path": "/orders/{id}"}]}]
        }),
        &["--service-cluster", "contoso-edge"],
        |s| {
            s.filters_before = vec![jwt_filter()];
            s.filters_after = vec![CACHE_FILTER.into()];
        },
    );
    let gw = s.envoy.listener;
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        http::request(gw, "GET", "/orders/1", &[("authorization", &bearer)], b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(http::request(gw, "GET", "/cacheable/a", &[], b"").unwrap().status, 200);
    let again = http::request(gw, "GET", "/cacheable/a", &[], b"").unwrap();
    assert_eq!(again.status, 200);
    assert!(again.header("age").is_some(), "the cache answered the second time");
    let items = settled(&s.ingest, 4);
    assert_eq!(s.ingest.stats().items_rejected, 0, "{:?}", s.ingest.stats().rejections);

    let order = one_at(&items, "RequestData", "/orders/1");
    let p = props(&order);
    assert_eq!(p["API Name"], "orders");
    assert_eq!(p["Operation Name"], "get-order");
    assert_eq!(p["API Type"], "http");
    assert_eq!(p["Service Name"], "contoso-edge", "unset: the cloud role");
    assert_eq!(p["Service Type"], "API Management");
    assert_eq!(p["Service ID"], "contoso-gw");
    assert_eq!(p["Region"], "West Europe");
    assert_eq!(p["Subscription Name"], "contoso-subscription", "the JWT's sub claim");
    assert_eq!(p["Product Name"], "starter");
    assert_eq!(p["Cache"], "None");
    let m = &order["data"]["baseData"]["measurements"];
    let client_ms = m["Client Time (in ms)"].as_f64().unwrap();
    let total_ms = timespan_secs(order["data"]["baseData"]["duration"].as_str().unwrap()) * 1000.0;
    assert!(
        client_ms >= 0.0 && client_ms <= total_ms + 0.001,
        "{client_ms} of {total_ms} ms"
    );

    // The table in docs/telemetry.md is what users read: every APIM field it lists is on
    // the Request (captured headers aside: none are captured here).
    let docs = std::fs::read_to_string(harness::envoy::repo_root().join("docs/telemetry.md")).unwrap();
    let table = docs.split("#### APIM's Request dimensions").nth(1).unwrap();
    let fields: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("| APIM's field"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('`').nth(1))
        .filter(|f| !f.contains('<'))
        .collect();
    assert!(fields.len() >= 14, "{fields:?}");
    for field in fields {
        assert!(
            p.get(field).is_some() || m.get(field).is_some(),
            "{field} is in the docs' table, not on the Request"
        );
    }

    let cached: Vec<Value> = kind(&items, "RequestData")
        .into_iter()
        .filter(|r| r["data"]["baseData"]["url"].as_str().unwrap().ends_with("/cacheable/a"))
        .collect();
    let caches: Vec<&Value> = cached.iter().map(|r| &props(r)["Cache"]).collect();
    assert_eq!(caches, [&json!("None"), &json!("Hit")], "{cached:#?}");
    assert!(
        props(&cached[1]).get("Subscription Name").is_none(),
        "no token, no claim"
    );
    let hit_operation = operation(&items, cached[1]["tags"]["ai.operation.id"].as_str().unwrap());
    assert!(
        kind(&hit_operation, "RemoteDependencyData").is_empty(),
        "a cache hit calls no backend"
    );
}
