//! The local viewer (appinsights-local's page) driven in headless Chromium, after real
//! traffic: the real Envoy with the filter in front of a backend instrumented with the
//! official Azure Monitor distro for Python, both sending to one local endpoint. The
//! search lists every item, an operation's tree nests the backend's request under the
//! gateway's dependency, the failures view counts exceptions by type exactly, the metrics
//! view counts the requests sent, and a rejected item shows the validator's reason.
//!
//! `BLESS=1` writes the screenshots the README shows (docs/viewer/*.png).

mod common;

use common::{logger_for, IKEY};
use harness::backend::Backend;
use harness::browser;
use harness::envoy::{filter_wasm, repo_root, scratch_dir, Envoy};
use harness::envoy_config::Settings;
use harness::http;
use harness::ingest::{IngestConfig, IngestServer};
use harness::otel_backend::OtelBackend;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const GATEWAY: &str = "orders-gateway";
const BACKEND: &str = "orders-backend";
const ORDERS: usize = 12;
const FAILURES: usize = 3;
/// Virtual time the page gets to fetch and render.
const WAIT_MS: u64 = 4000;

/// Every `data-testid="<id>"` element's opening tag in `dom`.
fn tags<'a>(dom: &'a str, id: &str) -> Vec<&'a str> {
    let needle = format!("data-testid=\"{id}\"");
    dom.match_indices(&needle)
        .map(|(at, _)| {
            let start = dom[..at].rfind('<').unwrap_or(at);
            let end = dom[at..].find('>').map_or(dom.len(), |e| at + e);
            &dom[start..end]
        })
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let at = tag.find(&key)? + key.len();
    tag[at..].split('"').next()
}

/// The text right inside the first element with `data-testid="<id>"` (up to its first tag).
fn text_of(dom: &str, id: &str) -> String {
    let needle = format!("data-testid=\"{id}\"");
    let Some(at) = dom.find(&needle) else {
        return String::new();
    };
    let rest = &dom[at..];
    let body = &rest[rest.find('>').map_or(0, |e| e + 1)..];
    body.split('<').next().unwrap_or("").to_string()
}

fn count(items: &[Value], role: &str, base_type: &str) -> usize {
    items
        .iter()
        .filter(|i| i["tags"]["ai.cloud.role"] == role && i["data"]["baseType"] == base_type)
        .count()
}

struct Scene {
    ingest: IngestServer,
    _stock: Backend,
    _app: OtelBackend,
    _envoy: Envoy,
}

/// The gateway (standard metrics every second) in front of the instrumented backend,
/// after `ORDERS` orders, `FAILURES` failures and one item the service would refuse.
fn scene() -> Scene {
    let ingest = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        tolerated_tags: harness::ingest::SDK_TAGS.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    })
    .unwrap();
    let stock = Backend::start("127.0.0.1:0").unwrap();
    let downstream = format!("http://{}", stock.addr());
    let app = OtelBackend::start(&ingest.connection_string(IKEY), BACKEND, Some(&downstream)).unwrap();
    let config = json!({"loggers": {"main": logger_for(&ingest, "appinsights")}, "cloud_role": GATEWAY,
                        "delivery": {"flush_interval_ms": 200}, "metrics": {"interval_ms": 1000}});
    let settings = Settings::local(&app.addr().to_string(), filter_wasm().to_str().unwrap(), config);
    let envoy = Envoy::start(&settings, &[]).unwrap();
    for i in 0..ORDERS {
        let r = http::get(envoy.listener, &format!("/api/orders/{i}")).unwrap();
        assert_eq!(r.status, 200, "{}", app.log());
    }
    for _ in 0..FAILURES {
        assert_eq!(http::get(envoy.listener, "/fail").unwrap().status, 500);
    }
    let refused = br#"{"name":"Microsoft.ApplicationInsights.Request","time":"2026-12-01T00:00:00Z","iKey":"00000000-0000-0000-0000-000000000000","data":{"baseType":"RequestData","baseData":{"ver":2}}}"#;
    http::post(ingest.addr(), "/v2.1/track", "application/x-json-stream", refused).unwrap();
    let want = |items: &[Value]| {
        count(items, GATEWAY, "RequestData") == ORDERS + FAILURES
            && count(items, BACKEND, "RequestData") == ORDERS + FAILURES
            && count(items, GATEWAY, "ExceptionData") == FAILURES
            && count(items, BACKEND, "ExceptionData") == FAILURES
    };
    ingest.wait_until(Duration::from_secs(20), want);
    std::thread::sleep(Duration::from_millis(2500)); // the metric interval closes and is sent
    let items = ingest.items();
    let counts: Vec<usize> = [
        (GATEWAY, "RequestData"),
        (BACKEND, "RequestData"),
        (GATEWAY, "ExceptionData"),
        (BACKEND, "ExceptionData"),
    ]
    .iter()
    .map(|(r, t)| count(&items, r, t))
    .collect();
    assert!(want(&items), "requests and exceptions by role: {counts:?}");
    Scene {
        ingest,
        _stock: stock,
        _app: app,
        _envoy: envoy,
    }
}

fn page(ingest: &IngestServer, route: &str) -> String {
    browser::dump_dom(&format!("http://{}/#/{route}", ingest.addr()), WAIT_MS).unwrap()
}

#[test]
fn the_viewer_shows_search_operation_failures_metrics_and_rejections_of_real_traffic() {
    let s = scene();
    let items = s.ingest.items();

    // Search: every item, of every type and both roles, is listed (a type fits a page).
    let summary: Value = serde_json::from_slice(&http::get(s.ingest.addr(), "/api/summary").unwrap().body).unwrap();
    let by_type = summary["by_type"].as_object().unwrap();
    assert!(by_type.len() >= 5, "{summary}");
    let mut listed = 0;
    for (base_type, n) in by_type {
        let dom = page(&s.ingest, &format!("search?type={base_type}"));
        let rows = tags(&dom, "search-row");
        assert_eq!(rows.len() as u64, n.as_u64().unwrap(), "{base_type}: {dom}");
        assert!(rows.iter().all(|r| attr(r, "data-type") == Some(base_type.as_str())));
        listed += rows.len();
    }
    assert_eq!(listed as u64, summary["items"].as_u64().unwrap());
    assert_eq!(by_type["RequestData"], 2 * (ORDERS + FAILURES));

    // An operation: gateway Request → gateway Dependency → backend Request → its children.
    let order = items
        .iter()
        .find(|i| {
            i["tags"]["ai.cloud.role"] == GATEWAY
                && i["data"]["baseData"]["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("/api/orders/3"))
        })
        .unwrap();
    let op = order["tags"]["ai.operation.id"].as_str().unwrap();
    let dom = page(&s.ingest, &format!("operation/{op}"));
    let nodes: Vec<(&str, &str)> = tags(&dom, "tree-node")
        .iter()
        .map(|t| {
            (
                attr(t, "data-depth").unwrap_or("?"),
                attr(t, "data-type").unwrap_or("?"),
            )
        })
        .collect();
    let nested: Vec<(&str, &str)> = nodes.iter().take(3).copied().collect();
    assert_eq!(
        nested,
        [
            ("0", "RequestData"),
            ("1", "RemoteDependencyData"),
            ("2", "RequestData")
        ],
        "{nodes:?}"
    );
    assert!(
        nodes.iter().any(|(d, t)| *d == "3" && *t == "RemoteDependencyData"),
        "the backend's own call under its request: {nodes:?}"
    );

    // Failures: exceptions by type, exactly.
    let dom = page(&s.ingest, "failures");
    let groups: Vec<(&str, &str)> = tags(&dom, "failure-group")
        .iter()
        .filter(|t| attr(t, "data-kind") == Some("exception"))
        .map(|t| {
            (
                attr(t, "data-type").unwrap_or("?"),
                attr(t, "data-count").unwrap_or("?"),
            )
        })
        .collect();
    let gateway_type = items
        .iter()
        .find(|i| i["tags"]["ai.cloud.role"] == GATEWAY && i["data"]["baseType"] == "ExceptionData")
        .map(|i| {
            i["data"]["baseData"]["exceptions"][0]["typeName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    let total = |ty: &str| -> usize {
        groups
            .iter()
            .filter(|(t, _)| *t == ty)
            .map(|(_, c)| c.parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(total(&gateway_type), FAILURES, "{groups:?}");
    assert_eq!(
        groups.iter().map(|(_, c)| c.parse::<usize>().unwrap()).sum::<usize>(),
        2 * FAILURES,
        "{groups:?}"
    );

    // Metrics: the requests sent, gateway and backend.
    let dom = page(&s.ingest, "metrics");
    let shown = text_of(&dom, "metric-requests-total");
    let digits: String = shown.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(digits, (2 * (ORDERS + FAILURES)).to_string(), "shown: {shown:?}");

    // The counts behind it, as the service counts: the gateway's pre-aggregated metrics
    // and the backend's items its SDK did not pre-aggregate (its exceptions).
    let api: Value = serde_json::from_slice(&http::get(s.ingest.addr(), "/api/metrics").unwrap().body).unwrap();
    let sum = |key: &str| -> f64 {
        api["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b[key].as_f64().unwrap())
            .sum()
    };
    assert_eq!(sum("requests"), (2 * (ORDERS + FAILURES)) as f64, "{api}");
    assert_eq!(sum("exceptions"), (2 * FAILURES) as f64, "{api}");

    // Rejected: the validator's reason.
    let dom = page(&s.ingest, "rejected");
    assert_eq!(tags(&dom, "rejected-row").len(), 1, "{dom}");
    let reason = text_of(&dom, "rejected-reason");
    assert!(reason.contains("name") || reason.contains("required"), "{reason:?}");

    screenshots(&s.ingest, op);
}

/// The README's pictures: written to docs/viewer with `BLESS=1`, else to a scratch dir.
fn screenshots(ingest: &IngestServer, op: &str) {
    let dir = match std::env::var_os("BLESS") {
        Some(_) => repo_root().join("docs/viewer"),
        None => scratch_dir("viewer-shots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let views = [
        ("search", "search".to_string()),
        ("operation", format!("operation/{op}")),
        ("failures", "failures".to_string()),
        ("metrics", "metrics".to_string()),
        ("rejected", "rejected".to_string()),
    ];
    for (name, route) in views {
        let path = dir.join(format!("{name}.png"));
        let url = format!("http://{}/#/{route}", ingest.addr());
        browser::screenshot(&url, &path, 1280, 800, WAIT_MS).unwrap();
        assert_eq!(browser::png_size(&path), Some((1280, 800)));
    }
    let phone = dir.join("phone.png");
    browser::screenshot(
        &format!("http://{}/#/operation/{op}", ingest.addr()),
        &phone,
        390,
        844,
        WAIT_MS,
    )
    .unwrap();
}

/// With 100,000 stored items the page still loads and renders each view within a few
/// seconds (printed; `--nocapture`).
#[test]
fn the_viewer_stays_responsive_with_a_hundred_thousand_items() {
    let dir = scratch_dir("viewer-100k");
    let store = dir.join("items.ndjson");
    let mut ndjson = Vec::new();
    for item in appinsights_local::sample::mix(100_000, 1_790_000_000_000) {
        serde_json::to_writer(&mut ndjson, &item).unwrap();
        ndjson.push(b'\n');
    }
    std::fs::write(&store, ndjson).unwrap();
    let ingest = IngestServer::start(IngestConfig {
        store_path: Some(store),
        ..Default::default()
    })
    .unwrap();
    let summary: Value = serde_json::from_slice(&http::get(ingest.addr(), "/api/summary").unwrap().body).unwrap();
    assert!(summary["items"].as_u64().unwrap() >= 100_000, "{summary}");
    for route in ["search", "failures", "metrics", "availability"] {
        let started = Instant::now();
        let dom = page(&ingest, route);
        let took = started.elapsed();
        eprintln!("100k items: #/{route} loaded and rendered in {took:?}");
        assert!(took < Duration::from_secs(20), "#/{route}: {took:?}");
        assert!(!dom.contains("data-testid=\"error\""), "#/{route} showed an error");
    }
    let dom = page(&ingest, "search");
    assert_eq!(tags(&dom, "search-row").len(), 50, "the newest page of 50");
}
