//! Metrics against the real Envoy: the standard metrics stay exact under sampling, custom
//! metrics (APIM's emit-metric) aggregate exactly across workers, `metrics: false` emits
//! none, the cardinality cap folds the excess, and token metrics come out of JSON and
//! streaming responses without holding the stream back. The local ingestion endpoint
//! checks every MetricData item against the schema.

mod common;

use common::*;
use harness::http;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The MetricData items whose data point is named `name`.
fn metric_items<'i>(items: &'i [Value], name: &str) -> Vec<&'i Value> {
    items
        .iter()
        .filter(|i| i["data"]["baseType"] == "MetricData" && i["data"]["baseData"]["metrics"][0]["name"] == name)
        .collect()
}

/// Count, sum, min and max of a metric's series, summed over intervals and workers, by
/// the values of `dimensions`.
fn aggregates(items: &[Value], name: &str, dimensions: &[&str]) -> BTreeMap<Vec<String>, (u64, f64, f64, f64)> {
    let mut out: BTreeMap<Vec<String>, (u64, f64, f64, f64)> = BTreeMap::new();
    for m in metric_items(items, name) {
        let props = &m["data"]["baseData"]["properties"];
        let key = dimensions
            .iter()
            .map(|d| props[*d].as_str().unwrap_or("<absent>").to_string())
            .collect();
        let p = &m["data"]["baseData"]["metrics"][0];
        let e = out.entry(key).or_insert((0, 0.0, f64::MAX, f64::MIN));
        e.0 += p["count"].as_u64().unwrap();
        e.1 += p["value"].as_f64().unwrap();
        e.2 = e.2.min(p["min"].as_f64().unwrap());
        e.3 = e.3.max(p["max"].as_f64().unwrap());
    }
    out
}

fn total_count(items: &[Value], name: &str) -> u64 {
    metric_items(items, name)
        .iter()
        .map(|m| m["data"]["baseData"]["metrics"][0]["count"].as_u64().unwrap())
        .sum()
}

/// Sends `paths` from `threads` clients at once (new connection each).
fn send_all(gw: SocketAddr, requests: Vec<(String, Vec<(String, String)>)>, threads: usize) {
    let chunks: Vec<Vec<_>> = requests
        .chunks(requests.len().div_ceil(threads))
        .map(<[_]>::to_vec)
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || {
                for (path, headers) in chunk {
                    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    http::request(gw, "GET", &path, &h, b"").unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn standard_metrics_stay_exact_at_ten_percent_sampling() {
    let routes = |s: &mut harness::envoy_config::Settings| {
        s.extra_routes = vec![
            r#"{name: local, match: {prefix: "/local"}, direct_response: {status: 429}}"#.into(),
            r#"{name: slow, match: {prefix: "/delay"}, route: {cluster: backend, timeout: 0.05s}}"#.into(),
        ];
    };
    let s = start_with(
        json!({"diagnostic": {"sampling_percentage": 10}, "metrics": {"interval_ms": 1000}}),
        &[],
        routes,
    );
    // 2,000 exchanges: 2xx, 4xx and 5xx from the backend, a local reply (no backend
    // call), and backend timeouts.
    let mix = [
        "/status/200",
        "/status/200",
        "/status/200",
        "/status/201",
        "/status/404",
        "/status/500",
        "/status/503",
        "/local",
        "/status/200",
        "/delay/500",
    ];
    let requests: Vec<(String, Vec<(String, String)>)> = (0..2000)
        .map(|i| (format!("{}?n={i}", mix[i % 10]), Vec::new()))
        .collect();
    send_all(s.envoy.listener, requests, 4);
    s.ingest.wait_until(Duration::from_secs(30), |items| {
        total_count(items, "Server response time") >= 2000
    });
    // Anything late would show as a count above 2,000.
    std::thread::sleep(Duration::from_millis(1500));
    let items = s.ingest.items();
    let by_code = aggregates(
        &items,
        "Server response time",
        &["request/resultCode", "Request.Success"],
    );
    let counts: BTreeMap<(String, String), u64> = by_code
        .iter()
        .map(|(k, v)| ((k[0].clone(), k[1].clone()), v.0))
        .collect();
    let expected: BTreeMap<(String, String), u64> = [
        ("200", "True", 800),
        ("201", "True", 200),
        ("404", "False", 200),
        ("429", "False", 200),
        ("500", "False", 200),
        ("503", "False", 200),
        ("504", "False", 200),
    ]
    .into_iter()
    .map(|(c, ok, n)| ((c.to_string(), ok.to_string()), n))
    .collect();
    assert_eq!(
        counts, expected,
        "requests/duration, exactly, by result code and success"
    );
    let deps = aggregates(
        &items,
        "Dependency duration",
        &["dependency/resultCode", "Dependency.Success", "dependency/target"],
    );
    let dep_counts: BTreeMap<String, u64> = deps.iter().map(|(k, v)| (k[0].clone(), v.0)).collect();
    assert_eq!(
        dep_counts,
        [
            ("200", 800),
            ("201", 200),
            ("404", 200),
            ("500", 200),
            ("503", 200),
            ("BackendTimeout", 200)
        ]
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect(),
        "every backend call (the local reply made none), by result"
    );
    assert!(
        deps.keys().all(|k| k[2] == "backend"),
        "dependency/target is the cluster"
    );
    assert_eq!(
        total_count(&items, "Exceptions"),
        1000,
        "every failed exchange, sampled or not"
    );
    // Only the sampled items were sent (failures are always logged), each marked.
    let requests = kind(&items, "RequestData");
    let successes = requests
        .iter()
        .filter(|r| r["data"]["baseData"]["success"] == true)
        .count();
    assert!(successes < 400, "about a tenth of the 1,000 successes: {successes}");
    for item in items.iter().filter(|i| i["data"]["baseType"] != "MetricData") {
        let mark = &item["data"]["baseData"]["properties"]["_MS.ProcessedByMetricExtractors"];
        assert!(mark.as_str().is_some_and(|m| m.starts_with("(Name:'")), "{item}");
    }
    let one = metric_items(&items, "Server response time")[0];
    let props = &one["data"]["baseData"]["properties"];
    assert_eq!(props["_MS.MetricId"], "requests/duration");
    assert_eq!(props["_MS.IsAutocollected"], "True");
    assert_eq!(props["_MS.AggregationIntervalMs"], "1000");
    assert_eq!(props["operation/synthetic"], "False");
}
