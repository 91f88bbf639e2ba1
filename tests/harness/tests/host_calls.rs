//! The performance regression guard that runs in the real Envoy: the number of host calls
//! the filter makes per request (Envoy's `appinsights.host_calls` stat). Each call leaves
//! the VM and comes back, about a microsecond (the first in a callback about two); with the
//! JSON and gzip work that `tests/exchange_cost.rs` counts, they are what the filter costs
//! per request. Counts are exact, so a noisy machine cannot fool this test; the timings
//! live in `scripts/bench.sh`.
//!
//! The exact sequence is pinned without Envoy, against the core's read plan and a fake
//! host (`src/pipeline/stream.rs`); this test is the end-to-end guard that Envoy counts the
//! same. Adding a host call to the per-request path must be a decision: update the expected
//! counts there and here, with the reason, and the measured cost in docs/performance.md.

mod common;

use common::*;
use harness::http;
use serde_json::{json, Value};
use std::time::Duration;

/// Sends `n` requests shaped like the benchmark's (POST, 1 KB each way) and returns the
/// host calls they cost, after the items (if any) arrived and the stat was published.
fn calls_for(diagnostic: Value, n: usize, items_per_request: usize) -> (i64, Vec<Value>) {
    calls_with(json!({"diagnostic": diagnostic}), n, items_per_request)
}

/// [`calls_for`] with more of the plugin configuration than the diagnostic.
fn calls_with(config: Value, n: usize, items_per_request: usize) -> (i64, Vec<Value>) {
    let s = start(config, &[]);
    let body = vec![b'a'; 1024];
    for i in 0..n {
        let r = http::request(
            s.envoy.listener,
            "POST",
            &format!("/bytes/1024?i={i}"),
            &[("content-type", "application/octet-stream")],
            &body,
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let items = if items_per_request > 0 {
        settled(&s.ingest, n * items_per_request)
    } else {
        Vec::new()
    };
    // The stat is published on the root context's tick.
    std::thread::sleep(Duration::from_millis(400));
    let stats = envoy_stats(&s.envoy, "appinsights.host_calls");
    (stats.get("appinsights.host_calls").copied().unwrap_or(-1), items)
}

/// The calls per request the core's read plan makes for `diagnostic` against the fake
/// host (what the unit tests pin); this test shows Envoy sees the same number.
fn planned(diagnostic: Value) -> i64 {
    harness::floor::exchange_calls(&json!({"diagnostic": diagnostic}))
        .unwrap()
        .total() as i64
}

fn four_headers(sampling: u32) -> Value {
    json!({
        "sampling_percentage": sampling,
        "frontend": {"request": {"headers": ["user-agent", "content-type"]},
                     "response": {"headers": ["content-type", "content-length"]}}
    })
}

#[test]
fn a_sampled_request_with_captured_headers_costs_eleven_host_calls() {
    // Request headers: the header map (one call for all of them), the backend's
    // traceparent, the clock. Log time: the response headers (status included), route
    // name, clock, request start, backend attempts, cluster and address, the request as
    // sent upstream. Plus, once per worker and cluster, whether the cluster uses TLS.
    let n = 40;
    let (calls, items) = calls_for(four_headers(100), n, 2);
    assert_eq!(kind(&items, "RequestData").len(), n);
    assert_eq!(kind(&items, "RemoteDependencyData").len(), n);
    let per_request = 11;
    assert_eq!(
        planned(four_headers(100)),
        per_request,
        "the core's read plan (pipeline::stream)"
    );
    assert!(
        (n as i64 * per_request..=n as i64 * per_request + 1).contains(&calls),
        "{calls} host calls for {n} requests: expected {per_request} per request (+1 for the TLS cache)"
    );
}

#[test]
fn an_unsampled_request_costs_seven_host_calls_with_standard_metrics_and_three_without() {
    // The request headers, the backend's traceparent (propagation goes on when nothing is
    // recorded), and the status at log time (errors are always logged). The standard
    // metrics count every exchange: its duration, whether and where the backend was
    // called, the backend latency.
    let n = 40;
    let (calls, _) = calls_for(four_headers(0), n, 0);
    assert_eq!(planned(four_headers(0)), 7, "the core's read plan (pipeline::stream)");
    // (+1: once per worker and cluster, the backend's address names the dependency target.)
    assert_eq!(calls, n as i64 * 7 + 1, "{calls} host calls for {n} requests");
    let mut without = four_headers(0);
    without["standard_metrics"] = json!(false);
    let (calls, _) = calls_for(without.clone(), n, 0);
    assert_eq!(planned(without), 3, "the core's read plan (pipeline::stream)");
    assert_eq!(calls, n as i64 * 3, "{calls} host calls for {n} requests");
}

/// Two emit-metric rules, as the benchmark's variant has them.
fn two_rules(sampling: u32) -> Value {
    let mut d = four_headers(sampling);
    let extra = envoy_appinsights::host::fake::FakeHost::benchmark_metric_rules();
    d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    d
}

#[test]
fn two_custom_metric_rules_cost_one_more_call_unsampled_and_none_sampled() {
    // Unsampled: the route name (the API ID dimension falls back to it); the header and
    // the sizes are at hand already. Sampled: the items read all of it anyway.
    let n = 40;
    let (calls, _) = calls_for(two_rules(0), n, 0);
    assert_eq!(planned(two_rules(0)), 8, "the core's read plan (pipeline::stream)");
    assert_eq!(
        calls,
        n as i64 * 8 + 1,
        "{calls} host calls for {n} requests (+1: the target)"
    );
    let (calls, _) = calls_for(two_rules(100), n, 2);
    assert_eq!(planned(two_rules(100)), 11, "the core's read plan (pipeline::stream)");
    assert!(
        (n as i64 * 11..=n as i64 * 11 + 1).contains(&calls),
        "{calls} host calls for {n} requests (+1 for the TLS cache)"
    );
}

#[test]
fn a_health_endpoint_costs_other_requests_no_call() {
    // The health check compares the :path of the request header map read anyway.
    let n = 40;
    let config = json!({"diagnostic": four_headers(0), "availability": {"health_path": "/healthz"}});
    let planned_with = harness::floor::exchange_calls(&config).unwrap().total() as i64;
    assert_eq!(
        planned_with,
        planned(four_headers(0)),
        "the core's read plan (pipeline::stream)"
    );
    let (calls, _) = calls_with(config, n, 0);
    assert_eq!(
        calls,
        n as i64 * 7 + 1,
        "{calls} host calls for {n} requests (+1: the target)"
    );
}
