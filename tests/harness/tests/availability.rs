//! Availability against the real Envoy: the built-in tests run once per interval for the
//! whole gateway (four workers coordinating through shared data), each failing target is
//! reported with its reason, and the health endpoint is answered by the filter itself
//! without reaching the backend or writing telemetry; a test can probe the gateway's own
//! listener through a cluster pointing at it. The local ingestion endpoint checks every
//! AvailabilityData item against the schema.

mod common;

use common::*;
use envoy_appinsights::telemetry::availability::{write, TestResult};
use envoy_appinsights::telemetry::Sender;
use harness::backend::Backend;
use harness::envoy::{filter_wasm, Envoy};
use harness::envoy_config::{render, Settings};
use harness::http;
use harness::ingest::{of_kind, IngestConfig, IngestServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECOND_NANOS: u64 = 1_000_000_000;

/// A test against `cluster` at `path`, every second.
fn every_second(name: &str, cluster: &str, path: &str, timeout_ms: u64) -> Value {
    json!({"name": name, "cluster": cluster, "path": path, "authority": "probe.test",
           "interval_ms": 1000, "timeout_ms": timeout_ms})
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The second (since the unix epoch) of the item's time: its interval, at one second.
fn second_of(item: &Value) -> u64 {
    let t = item["time"].as_str().unwrap();
    harness::schema::parse_time(t)
        .unwrap_or_else(|| panic!("time {t}"))
        .floor() as u64
}

/// A TimeSpan `hh:mm:ss.fffffff` in seconds.
fn seconds(timespan: &str) -> f64 {
    let (hms, fraction) = timespan.split_once('.').unwrap();
    let parts: Vec<f64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2] + format!("0.{fraction}").parse::<f64>().unwrap()
}

#[test]
fn four_workers_run_each_test_once_per_interval_and_say_why_it_failed() {
    let closed = closed_port();
    let tests = json!([
        every_second("healthy", "backend", "/status/200", 500),
        every_second("failing", "backend", "/status/503", 500),
        every_second("refused", "closed", "/", 500),
        every_second("slow", "backend", "/delay/2000", 300),
        every_second("no cluster", "nowhere", "/", 500),
    ]);
    let s = start_with(
        json!({"availability": {"tests": tests, "location": "it-gateway"}}),
        &["--concurrency", "4"],
        |settings| settings.extra_clusters = vec![("closed".into(), format!("127.0.0.1:{closed}"))],
    );
    let started = SystemTime::now();
    std::thread::sleep(Duration::from_millis(5500));
    let ended = SystemTime::now();
    // The results of the last interval arrive with the next flush.
    std::thread::sleep(Duration::from_millis(800));
    let items = s.ingest.items();
    let stats = s.ingest.stats();
    assert_eq!(stats.items_rejected, 0, "schema rejections: {:?}", stats.rejections);
    let results = of_kind(&items, "AvailabilityData");
    assert!(
        kind(&items, "RequestData").is_empty(),
        "tests are not requests through the gateway"
    );

    let mut by_test: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in &results {
        by_test
            .entry(r["data"]["baseData"]["name"].as_str().unwrap().into())
            .or_default()
            .push(r);
    }
    let window = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 / SECOND_NANOS;
    let (first, last) = (window(started), window(ended));
    for (name, runs) in &by_test {
        let mut per_interval: BTreeMap<u64, usize> = BTreeMap::new();
        for r in runs {
            *per_interval.entry(second_of(r)).or_default() += 1;
        }
        assert!(
            per_interval.values().all(|&n| n == 1),
            "{name}: one run per interval for the whole gateway: {per_interval:?}"
        );
        // Intervals that began after the gateway started (the first may be spent creating
        // the shared key) up to the last whole one.
        let whole = (first + 2..last).filter(|w| per_interval.contains_key(w)).count() as u64;
        assert_eq!(
            whole,
            last.saturating_sub(first + 2),
            "{name}: every interval ran: {per_interval:?}"
        );
        assert!((4..=6).contains(&runs.len()), "{name}: {} runs in 5.5 s", runs.len());
    }
    let base = |name: &str| by_test[name][0]["data"]["baseData"].clone();
    let healthy = base("healthy");
    assert_eq!(healthy["success"], true, "{healthy}");
    assert_eq!(healthy["runLocation"], "it-gateway");
    assert_eq!(healthy["properties"]["Status"], "200");
    assert!(by_test["healthy"]
        .iter()
        .all(|r| r["data"]["baseData"]["success"] == true));
    let failing = base("failing");
    assert_eq!(
        (failing["success"].clone(), failing["message"].clone()),
        (json!(false), json!("expected status 200, got 503"))
    );
    let refused = base("refused");
    assert_eq!(refused["success"], false);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("no answer (connection failed or reset)"),
        "{refused}"
    );
    let slow = base("slow");
    assert_eq!(slow["message"], "no answer within 300 ms", "{slow}");
    let waited = seconds(slow["duration"].as_str().unwrap());
    assert!((0.3..1.0).contains(&waited), "the timeout, measured: {waited} s");
    let nowhere = base("no cluster");
    assert!(
        nowhere["message"]
            .as_str()
            .unwrap()
            .starts_with("could not start the request: Envoy has no cluster named nowhere"),
        "{nowhere}"
    );

    // The backend saw the probes the results report (and at most one whose result was
    // not collected yet), each carrying its result's id: the workers that lost sent none.
    let probes: Vec<_> = s
        .backend
        .requests()
        .into_iter()
        .filter(|r| r.path == "/status/200")
        .collect();
    let reported = by_test["healthy"].len();
    assert!(
        (reported..=reported + 1).contains(&probes.len()),
        "{} probes, {reported} results",
        probes.len()
    );
    for r in &by_test["healthy"] {
        let id = r["data"]["baseData"]["id"].as_str().unwrap();
        assert_eq!(r["tags"]["ai.operation.id"], id);
        assert!(
            probes
                .iter()
                .any(|p| p.header("traceparent").is_some_and(|tp| tp[3..35] == *id)),
            "no probe carried {id}"
        );
    }
    assert!(probes.iter().all(|p| p.header("host") == Some("probe.test")));
}

#[test]
fn the_health_endpoint_is_answered_by_the_filter_and_writes_nothing() {
    let s = start(json!({"availability": {"health_path": "/healthz"}}), &[]);
    let get = http::get(s.envoy.listener, "/healthz?from=azure").unwrap();
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-type"), Some("application/json"));
    assert_eq!(get.json().unwrap(), json!({"status": "ok"}));
    let head = http::request(s.envoy.listener, "HEAD", "/healthz", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(s.backend.request_count(), 0, "never forwarded");
    // Each cost two calls into Envoy: the request header map, and the reply.
    std::thread::sleep(Duration::from_millis(300));
    let calls = envoy_stats(&s.envoy, "appinsights.host_calls");
    assert_eq!(calls.get("appinsights.host_calls"), Some(&4), "{calls:?}");
    // Anything else is an ordinary request: forwarded and recorded.
    let post = http::request(s.envoy.listener, "POST", "/healthz", &[], b"x").unwrap();
    assert_eq!(post.status, 200);
    assert_eq!(s.backend.request_count(), 1);
    let items = settled(&s.ingest, 2);
    let requests = kind(&items, "RequestData");
    assert_eq!(requests.len(), 1, "only the POST: {requests:#?}");
    assert_eq!(requests[0]["data"]["baseData"]["name"], "POST /healthz");
    assert!(of_kind(&items, "AvailabilityData").is_empty());
}

#[test]
fn a_test_can_probe_the_gateways_own_listener_through_a_cluster() {
    // A cluster pointing at the listener's own address: the probe goes through the
    // listener's routes and filters like any client's request.
    let port = closed_port();
    let tests = json!([
        every_second("gateway health", "self", "/healthz", 500),
        every_second("through the gateway", "self", "/status/200", 500)
    ]);
    let ingest = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let config = json!({"loggers": {"main": logger_for(&ingest, "appinsights")}, "delivery": {"flush_interval_ms": 200},
                        "availability": {"health_path": "/healthz", "tests": tests}});
    let mut settings = Settings::local(&backend.addr().to_string(), filter_wasm().to_str().unwrap(), config);
    (settings.listen_port, settings.admin_port) = (port, 0);
    settings.extra_clusters = vec![("self".into(), format!("127.0.0.1:{port}"))];
    let envoy = Envoy::start_yaml(&render(&settings).unwrap(), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(envoy.listener.port(), port);
    let items = ingest.wait_until(Duration::from_secs(10), |items| {
        let results = of_kind(items, "AvailabilityData");
        ["gateway health", "through the gateway"]
            .iter()
            .all(|n| results.iter().any(|r| r["data"]["baseData"]["name"] == *n))
            && !of_kind(items, "RequestData").is_empty()
    });
    assert_eq!(ingest.stats().items_rejected, 0, "{:?}", ingest.stats().rejections);
    let results = of_kind(&items, "AvailabilityData");
    assert!(
        results.iter().all(|r| r["data"]["baseData"]["success"] == true),
        "{results:#?}"
    );
    // The health check wrote nothing; the probe through the gateway is a request of its
    // own, in the result's operation: the end-to-end view shows both.
    let through = results
        .iter()
        .find(|r| r["data"]["baseData"]["name"] == "through the gateway")
        .unwrap();
    let requests = kind(&items, "RequestData");
    assert!(
        requests
            .iter()
            .all(|r| r["data"]["baseData"]["name"] == "GET /status/{id}"),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r["tags"]["ai.operation.id"] == through["tags"]["ai.operation.id"]),
        "{requests:#?} {through:#}"
    );
    assert!(
        backend.requests().iter().all(|r| r.path == "/status/200"),
        "the health checks never left the gateway"
    );
    drop(envoy);
}

#[test]
fn the_writer_stays_within_the_schema_at_its_limits() {
    let who = Sender::new(IKEY, "gw", "gw-1");
    let long = "é\"\n".repeat(4000);
    let props = [("Envoy Cluster", long.as_str()), ("Status", "503")];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    for (success, message) in [(true, "passed: status 200"), (false, long.as_str())] {
        let mut out = Vec::new();
        write(
            &mut out,
            &who,
            &TestResult {
                id: b"4bf92f3577b34da6a3ce929d0e0e4736",
                name: &long,
                start_unix_nanos: now,
                duration_nanos: 86_400 * SECOND_NANOS + 1,
                success,
                run_location: &long,
                message,
                properties: &props,
            },
        );
        let line = out.strip_suffix(b"\n").unwrap();
        harness::schema::validate_line(line, SystemTime::now()).unwrap_or_else(|e| panic!("{e}"));
    }
}
