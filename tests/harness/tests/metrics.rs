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

/// Every item the endpoint received passed its schema check (MetricData included).
fn assert_schema_valid(s: &Stack) {
    let stats = s.ingest.stats();
    assert_eq!(stats.items_rejected, 0, "schema rejections: {:?}", stats.rejections);
    assert!(stats.items_accepted > 0);
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
    s.ingest.wait_for_metrics(Duration::from_secs(30), |items| {
        total_count(items, "Server response time") >= 2000
    });
    // Anything late would show as a count above 2,000.
    std::thread::sleep(Duration::from_millis(1500));
    let items = [s.ingest.items(), s.ingest.metrics()].concat();
    assert_schema_valid(&s);
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
            ("Timeout", 200)
        ]
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect(),
        "every backend call (the local reply made none), by result"
    );
    let backend = s.backend.addr().to_string();
    assert!(
        deps.keys().all(|k| k[2] == backend),
        "dependency/target is the host called, as on the Dependency items: {deps:?}"
    );
    for d in kind(&s.ingest.items(), "RemoteDependencyData") {
        assert_eq!(d["data"]["baseData"]["target"], backend.as_str());
    }
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

/// A filter before ours that stores the caller's `x-consumer` in the dynamic metadata,
/// as `jwt_authn` stores a token's claims.
const CONSUMER_TO_METADATA: &str = r#"{name: envoy.filters.http.header_to_metadata, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config, request_rules: [{header: x-consumer, on_header_present: {metadata_namespace: consumers, key: id, type: STRING}, remove: false}]}}"#;

fn orders_rule() -> Value {
    json!([{"name": "Order amount", "namespace": "shop", "value": "request.header.x-amount",
            "dimensions": [{"name": "API ID"},
                           {"name": "Consumer", "value": "{metadata.consumers/id}"},
                           {"name": "Status", "value": "{response.status}"}]}])
}

#[test]
fn a_custom_metric_with_three_dimensions_aggregates_exactly_across_two_workers() {
    let s = start_with(
        json!({"diagnostic": {"sampling_percentage": 0, "metrics": true, "emit_metrics": orders_rule()},
               "metrics": {"interval_ms": 1000}}),
        &["--concurrency", "2"],
        |s| {
            s.filters_before = vec![CONSUMER_TO_METADATA.into()];
            s.extra_routes = vec![r#"{name: shop, match: {prefix: "/status/"}, route: {cluster: backend}}"#.into()];
        },
    );
    // 600 requests: 3 consumers, 2 statuses, amounts 0..=99 (known per series).
    let mut expected: BTreeMap<Vec<String>, (u64, f64, f64, f64)> = BTreeMap::new();
    let mut requests = Vec::new();
    for i in 0..600u32 {
        let consumer = ["alice", "bob", "carol"][(i % 3) as usize];
        let status = if i % 5 == 0 { "503" } else { "200" };
        let amount = f64::from((i * 37) % 100);
        let e = expected
            .entry(vec!["shop".to_string(), consumer.to_string(), status.to_string()])
            .or_insert((0, 0.0, f64::MAX, f64::MIN));
        *e = (e.0 + 1, e.1 + amount, e.2.min(amount), e.3.max(amount));
        requests.push((
            format!("/status/{status}?i={i}"),
            vec![
                ("x-consumer".to_string(), consumer.to_string()),
                ("x-amount".to_string(), amount.to_string()),
            ],
        ));
    }
    send_all(s.envoy.listener, requests, 6);
    s.ingest.wait_for_metrics(Duration::from_secs(30), |items| {
        total_count(items, "Order amount") >= 600
    });
    std::thread::sleep(Duration::from_millis(1500));
    let items = [s.ingest.items(), s.ingest.metrics()].concat();
    assert_schema_valid(&s);
    let got = aggregates(&items, "Order amount", &["API ID", "Consumer", "Status"]);
    assert_eq!(got, expected, "count, sum, min and max of each series");
    let m = metric_items(&items, "Order amount")[0];
    assert_eq!(m["data"]["baseData"]["metrics"][0]["ns"], "shop");
    assert_eq!(m["data"]["baseData"]["properties"]["_MS.AggregationIntervalMs"], "1000");
    // Both workers served requests (and so reported their own aggregates).
    let stats = s
        .envoy
        .admin_get("/stats?filter=downstream_cx_total")
        .unwrap_or_default();
    let workers: Vec<i64> = (0..2)
        .map(|w| {
            stats
                .lines()
                .filter_map(|l| l.split_once(": "))
                .filter(|(k, _)| k.starts_with("listener.") && k.ends_with(&format!("worker_{w}.downstream_cx_total")))
                .filter_map(|(_, v)| v.trim().parse::<i64>().ok())
                .sum()
        })
        .collect();
    assert!(workers.iter().all(|&n| n > 0), "connections per worker: {workers:?}");
}

#[test]
fn with_metrics_false_the_rules_emit_nothing() {
    let s = start_with(
        json!({"diagnostic": {"metrics": false, "emit_metrics": orders_rule()}, "metrics": {"interval_ms": 500}}),
        &[],
        |s| s.filters_before = vec![CONSUMER_TO_METADATA.into()],
    );
    for i in 0..20 {
        http::request(
            s.envoy.listener,
            "GET",
            &format!("/status/200?{i}"),
            &[("x-amount", "5"), ("x-consumer", "a")],
            b"",
        )
        .unwrap();
    }
    s.ingest.wait_for_metrics(Duration::from_secs(20), |items| {
        total_count(items, "Server response time") >= 20
    });
    std::thread::sleep(Duration::from_millis(1000));
    let items = [s.ingest.items(), s.ingest.metrics()].concat();
    assert_schema_valid(&s);
    assert!(metric_items(&items, "Order amount").is_empty(), "no custom metric");
    assert_eq!(
        total_count(&items, "Server response time"),
        20,
        "the standard metrics are still there"
    );
}

#[test]
fn series_beyond_max_series_fold_into_one_overflow_series_and_are_counted() {
    let rule = json!([{"name": "Calls", "dimensions": [{"name": "Tenant", "value": "{request.header.x-tenant}"}]}]);
    let s = start(
        json!({"diagnostic": {"sampling_percentage": 0, "metrics": true, "emit_metrics": rule},
               "metrics": {"interval_ms": 2000, "max_series": 3}}),
        &[],
    );
    // Start just after an interval boundary (intervals are aligned to unix time), so the
    // ten requests, a few milliseconds in all, fall into one interval.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into_interval = (since_epoch.as_millis() % 2000) as u64;
    std::thread::sleep(Duration::from_millis(2000 - into_interval + 20));
    for i in 0..10 {
        let tenant = format!("tenant-{i}");
        http::request(s.envoy.listener, "GET", "/status/200", &[("x-tenant", &tenant)], b"").unwrap();
    }
    let metrics = s
        .ingest
        .wait_for_metrics(Duration::from_secs(10), |m| total_count(m, "Calls") >= 10);
    // Per interval (almost always one): at most 3 series, the rest in DIMENSION-CAPPED.
    let mut windows: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for m in metric_items(&metrics, "Calls") {
        let tenant = m["data"]["baseData"]["properties"]["Tenant"]
            .as_str()
            .unwrap()
            .to_string();
        let count = m["data"]["baseData"]["metrics"][0]["count"].as_u64().unwrap();
        windows.entry(m["time"].to_string()).or_default().push((tenant, count));
    }
    let mut folded = 0;
    for (time, series) in &windows {
        let (capped, kept): (Vec<_>, Vec<_>) = series.iter().partition(|(t, _)| t == "DIMENSION-CAPPED");
        assert!(kept.len() <= 3 && capped.len() <= 1, "{time}: {series:?}");
        assert!(kept.iter().all(|(_, n)| *n == 1), "{time}: {series:?}");
        folded += capped.iter().map(|(_, n)| *n).sum::<u64>();
    }
    let kept: usize = windows
        .values()
        .map(|s| s.iter().filter(|(t, _)| t != "DIMENSION-CAPPED").count())
        .sum();
    assert_eq!(folded + kept as u64, 10, "every value counted once: {windows:?}");
    if windows.len() == 1 {
        assert_eq!(folded, 7, "10 tenants, 3 series");
    }
    let overflowed = || {
        envoy_stats(&s.envoy, "appinsights.main.metric_values_overflowed")
            .values()
            .sum::<i64>()
    };
    assert_eq!(overflowed(), folded as i64, "the stat counts every folded value");
    let said = s
        .envoy
        .log()
        .matches("more series this interval than metrics.max_series")
        .count();
    let windows_with_overflow = windows
        .values()
        .filter(|s| s.iter().any(|(t, _)| t == "DIMENSION-CAPPED"))
        .count();
    assert_eq!(said, windows_with_overflow, "said once per interval");
    assert_schema_valid(&s);
}

/// Reads the response of `path` until `marker` shows; returns how long that took and the
/// whole response.
fn stream_until(gw: SocketAddr, path: &str, marker: &str) -> (Duration, String) {
    let started = Instant::now();
    let mut c = std::net::TcpStream::connect(gw).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(marker) {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended before {marker:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let first = started.elapsed();
    c.read_to_end(&mut got).unwrap();
    (first, String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn token_metrics_come_from_json_and_streaming_responses_exactly() {
    let s = start(
        json!({"diagnostic": {"sampling_percentage": 0, "metrics": true,
                              "token_metrics": {"namespace": "llm", "dimensions": [{"name": "API ID"},
                                                {"name": "Consumer", "value": "{request.header.x-consumer}"}]}},
               "metrics": {"interval_ms": 1000}}),
        &[],
    );
    let gw = s.envoy.listener;
    let mut expected = BTreeMap::new();
    let mut add = |consumer: &str, prompt: u64, completion: u64| {
        let e = expected.entry(consumer.to_string()).or_insert((0u64, 0u64, 0u64));
        *e = (e.0 + prompt + completion, e.1 + prompt, e.2 + completion);
    };
    for (i, consumer) in ["alice", "bob", "alice"].iter().enumerate() {
        let (p, c) = (10 + i as u64, 100 + i as u64);
        let path = format!("/openai/json?prompt={p}&completion={c}");
        http::request(gw, "POST", &path, &[("x-consumer", consumer)], b"{}").unwrap();
        add(consumer, p, c);
    }
    http::request(
        gw,
        "POST",
        "/openai/json?prompt=7&completion=9&api=responses",
        &[("x-consumer", "bob")],
        b"{}",
    )
    .unwrap();
    add("bob", 7, 9);
    // A stream of 6 chunks 300 ms apart, usage in its final event: the first chunk is not
    // held back.
    let (first, body) = stream_until(
        gw,
        "/openai/sse?events=6&interval_ms=300&prompt=21&completion=34",
        "data: ",
    );
    assert!(first < Duration::from_millis(250), "first event after {first:?}");
    assert!(body.contains("[DONE]"));
    add("<empty>", 21, 34);
    let (_, body) = stream_until(
        gw,
        "/openai/sse?events=3&interval_ms=10&prompt=5&completion=6&api=responses",
        "data: ",
    );
    assert!(body.contains("response.completed"));
    add("<empty>", 5, 6);
    // No usage: nothing emitted, counted.
    http::request(gw, "POST", "/openai/none", &[("x-consumer", "carol")], b"{}").unwrap();
    s.ingest
        .wait_until(Duration::from_secs(20), |items| total_count(items, "Total Tokens") >= 6);
    std::thread::sleep(Duration::from_millis(1200));
    let items = [s.ingest.items(), s.ingest.metrics()].concat();
    assert_schema_valid(&s);
    let sums = |name: &str| -> BTreeMap<String, u64> {
        aggregates(&items, name, &["Consumer"])
            .into_iter()
            .map(|(k, v)| {
                (
                    if k[0].is_empty() {
                        "<empty>".to_string()
                    } else {
                        k[0].clone()
                    },
                    v.1 as u64,
                )
            })
            .collect()
    };
    let (total, prompt, completion) = (sums("Total Tokens"), sums("Prompt Tokens"), sums("Completion Tokens"));
    for (consumer, (t, p, c)) in &expected {
        assert_eq!(
            (total[consumer], prompt[consumer], completion[consumer]),
            (*t, *p, *c),
            "{consumer}"
        );
    }
    assert_eq!(total.len(), expected.len(), "{total:?}");
    assert_eq!(
        metric_items(&items, "Total Tokens")[0]["data"]["baseData"]["metrics"][0]["ns"],
        "llm"
    );
    let missing = envoy_stats(&s.envoy, "appinsights.token_usage_missing");
    assert_eq!(missing.values().sum::<i64>(), 1, "{missing:?}");
}
