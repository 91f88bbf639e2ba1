//! Reliable delivery through the real Envoy, against the local ingestion endpoint's fault
//! modes: outages, throttling, partial success, broken answers, timeouts, managed
//! identity, stats, drain.

mod common;

use common::*;
use harness::envoy::{filter_wasm, Envoy};
use harness::envoy_config::Settings;
use harness::http;
use harness::imds::Imds;
use harness::ingest::{Fault, IngestConfig, IngestServer};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lines(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Sends `rps` requests per second from a thread until stopped; counts them.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    handle: std::thread::JoinHandle<()>,
}

impl Traffic {
    fn start(gateway: std::net::SocketAddr, rps: u64) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let handle = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let _ = http::request(gateway, "GET", &format!("/steady/{i}"), &[], b"");
                n.fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(1000 / rps));
            }
        });
        Traffic { stop, sent, handle }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        self.sent.load(Ordering::Relaxed)
    }
}

#[test]
fn a_thirty_second_outage_loses_only_what_the_budget_cannot_hold_and_counts_it() {
    let s = start(
        json!({"delivery": {"flush_interval_ms": 200, "retry_initial_ms": 200, "retry_max_ms": 1000,
                            "max_batch_bytes": 16384, "max_buffer_bytes": 65536}}),
        &[],
    );
    s.ingest.set_fault(Fault::Status {
        code: 503,
        retry_after: None,
    });
    let traffic = Traffic::start(s.envoy.listener, 20);
    std::thread::sleep(Duration::from_secs(10));
    let memory_at_10s = envoy_stats(&s.envoy, "appinsights.vm_memory_bytes")["appinsights.vm_memory_bytes"];
    std::thread::sleep(Duration::from_secs(20));
    let memory_at_30s = envoy_stats(&s.envoy, "appinsights.vm_memory_bytes")["appinsights.vm_memory_bytes"];
    s.ingest.set_fault(Fault::None);
    std::thread::sleep(Duration::from_secs(3));
    let requests = traffic.stop();
    // At least the last request's two items arrive after the outage; how many of the
    // buffered ones survive depends on item sizes, so the exact number is what the filter
    // counted as accepted (checked below).
    let items = settled(&s.ingest, 2);
    // Nothing pending any more: every created item is accounted for.
    let st = envoy_stats(&s.envoy, "appinsights.main.");
    let get = |k: &str| st.get(&format!("appinsights.main.{k}")).copied().unwrap_or(-1);
    eprintln!("outage: {requests} requests; stats {st:?}; memory {memory_at_10s} -> {memory_at_30s}");
    assert_eq!(get("buffered_items"), 0, "{st:#?}");
    assert_eq!(
        exchange_items(&st, "items_created"),
        2 * requests as i64,
        "a request and a dependency each (and the aggregates of the metric intervals that ended)"
    );
    let dropped = get("items_dropped_buffer_full");
    assert!(dropped > 0, "the outage overflowed the 64 KB budget: {st:#?}");
    assert_eq!(
        get("items_created"),
        get("items_accepted") + dropped + get("items_dropped_rejected"),
        "{st:#?}"
    );
    // Exactly once: what the endpoint stored is what the filter counted as accepted, no duplicates.
    let keys = item_keys(&items);
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "no item delivered twice");
    assert_eq!((items.len() + s.ingest.metrics().len()) as i64, get("items_accepted"));
    assert!(get("items_retried") > 0 && get("throttled") > 0);
    // Memory stayed flat once the budget was full. The VM grows in 64 KiB pages as the
    // allocator's high-water mark rises with the order batches come and go (measured on
    // this test: 0 to 3 pages without the standard metrics, 4 to 5 with them, while the
    // live heap stays flat); `tests/outage_memory.rs` counts the live bytes exactly, to a
    // leak of 2 bytes per exchange. Here: at most 8 pages, a leak of about 1 KB a request.
    assert!(
        memory_at_30s <= memory_at_10s + 512 * 1024,
        "VM memory {memory_at_10s} -> {memory_at_30s}"
    );
    assert!(!s.envoy.log().contains("panicked"));
}

#[test]
fn retry_after_is_respected_nothing_is_sent_early() {
    let s = start(json!({"delivery": {"flush_interval_ms": 100}}), &[]);
    s.ingest.set_fault_for(
        Fault::Status {
            code: 429,
            retry_after: Some("3".into()),
        },
        Some(1),
    );
    http::request(s.envoy.listener, "GET", "/throttled", &[], b"").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    http::request(s.envoy.listener, "GET", "/during-pause", &[], b"").unwrap();
    settled(&s.ingest, 4);
    let reqs = s.ingest.requests();
    assert_eq!(reqs[0].status_answered, 429);
    assert!(reqs.len() >= 2);
    let gap = reqs[1].at_ms - reqs[0].at_ms;
    assert!(
        gap >= 3000,
        "next track request {gap} ms after the 429 (Retry-After: 3)"
    );
    assert_eq!(
        s.ingest.items().len(),
        4,
        "both requests' items delivered once the pause ended"
    );
}

#[test]
fn partial_success_resends_exactly_the_failed_retryable_items() {
    let s = start(
        json!({"delivery": {"flush_interval_ms": 300, "max_batch_items": 4, "retry_initial_ms": 100}}),
        &[],
    );
    s.ingest.set_fault_for(
        Fault::Partial {
            fail_indexes: vec![1, 3],
            code: 500,
        },
        Some(1),
    );
    http::request(s.envoy.listener, "GET", "/partial/a", &[], b"").unwrap();
    http::request(s.envoy.listener, "GET", "/partial/b", &[], b"").unwrap();
    let items = settled(&s.ingest, 4);
    // The standard metrics' aggregates go out when a minute ends, which may fall in the
    // test: their requests are not the ones this test is about.
    let reqs: Vec<_> = s
        .ingest
        .requests()
        .into_iter()
        .filter(|r| lines(&r.body).iter().any(|l| !l.contains("\"MetricData\"")))
        .collect();
    assert_eq!(reqs[0].status_answered, 206);
    let first = lines(&reqs[0].body);
    assert_eq!(first.len(), 4);
    assert_eq!(
        lines(&reqs[1].body),
        vec![first[1].clone(), first[3].clone()],
        "exactly items 1 and 3 again"
    );
    assert_eq!(reqs.len(), 2, "nothing else resent");
    let keys = item_keys(&items);
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 4);
    assert_eq!(items.len(), 4);
}

#[test]
fn garbage_and_truncated_answers_never_break_the_filter() {
    let s = start(json!({"delivery": {"flush_interval_ms": 100}}), &[]);
    for (fault, path) in [
        (Fault::Garbage, "/garbage"),
        (Fault::Truncated, "/truncated"),
        (Fault::None, "/normal"),
    ] {
        s.ingest.set_fault_for(fault, Some(1));
        assert_eq!(
            http::request(s.envoy.listener, "GET", path, &[], b"").unwrap().status,
            200
        );
        std::thread::sleep(Duration::from_millis(400));
    }
    let items = settled(&s.ingest, 6);
    for path in ["/garbage", "/truncated", "/normal"] {
        one(&items, "RequestData", "name", &format!("GET {path}"));
    }
    let log = s.envoy.log();
    assert!(!log.contains("panicked") && !log.contains("critical"), "{log}");
}

#[test]
fn any_2xx_answer_means_the_items_were_stored() {
    // The service stored the items whatever 2xx it answers; only 206 lists refusals.
    let s = start(json!({"delivery": {"flush_interval_ms": 100}}), &[]);
    for code in [201, 202, 204] {
        s.ingest.set_fault_for(Fault::Stored { code }, Some(1));
        let r = http::request(s.envoy.listener, "GET", &format!("/stored/{code}"), &[], b"").unwrap();
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(400));
    }
    settled(&s.ingest, 6);
    std::thread::sleep(Duration::from_millis(300)); // the stats' tick
    let st = envoy_stats(&s.envoy, "appinsights.");
    // Besides the 6 items of the exchanges, the aggregates of a metric interval that ended.
    assert_eq!(exchange_items(&st, "items_created"), 6);
    assert_eq!(exchange_items(&st, "items_accepted"), 6, "{st:?}");
    assert_eq!(st["appinsights.main.items_dropped_rejected"], 0);
    assert_eq!(st["appinsights.main.buffered_items"], 0);
}

#[test]
fn a_slow_endpoint_beyond_the_callout_timeout_is_retried() {
    // One batch and only it: no metric interval may end and send its own batch meanwhile.
    let s = start(
        json!({"delivery": {"flush_interval_ms": 100, "timeout_ms": 500, "retry_initial_ms": 200},
               "diagnostic": {"standard_metrics": false}}),
        &[],
    );
    s.ingest
        .set_fault_for(Fault::Slow(Duration::from_millis(1500)), Some(1));
    http::request(s.envoy.listener, "GET", "/slow", &[], b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.ingest.requests().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let reqs = s.ingest.requests();
    assert!(reqs.len() >= 2, "the timed-out batch was sent again");
    assert_eq!(lines(&reqs[0].body), lines(&reqs[1].body), "the same batch");
    std::thread::sleep(Duration::from_millis(2000));
    let st = envoy_stats(&s.envoy, "appinsights.main.");
    assert!(st["appinsights.main.items_retried"] >= 2, "{st:#?}");
    assert_eq!(st["appinsights.main.buffered_items"], 0);
}

#[test]
fn managed_identity_fetches_caches_and_refreshes_tokens_on_expiry_and_on_401() {
    let imds = Imds::start(8).unwrap();
    let ingest = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let tokens = |list: &[&str]| Some(list.iter().map(|t| t.to_string()).collect());
    ingest.set_accepted_tokens(tokens(&["token-1", "token-2"]));
    let backend = harness::backend::Backend::start("127.0.0.1:0").unwrap();
    let mut logger = logger_for(&ingest, "appinsights");
    logger["identity"] = json!("SystemAssigned");
    let config = json!({"loggers": {"main": logger}, "delivery": {"flush_interval_ms": 100}});
    let mut settings = Settings::local(&backend.addr().to_string(), filter_wasm().to_str().unwrap(), config);
    settings.imds_address = imds.addr().to_string();
    let envoy = Envoy::start(&settings, &[]).unwrap();
    let auth_of = |i: usize| {
        ingest.requests()[i]
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.clone())
    };

    http::request(envoy.listener, "GET", "/mi/1", &[], b"").unwrap();
    settled(&ingest, 2);
    assert_eq!(
        auth_of(0).as_deref(),
        Some("Bearer token-1"),
        "fetched when telemetry was waiting"
    );
    let (path, metadata) = &imds.requests()[0];
    assert_eq!(metadata.as_deref(), Some("true"));
    assert!(
        path.contains("api-version=2018-02-01") && path.contains("resource=https%3A%2F%2Fmonitor.azure.com%2F"),
        "{path}"
    );

    http::request(envoy.listener, "GET", "/mi/2", &[], b"").unwrap();
    settled(&ingest, 4);
    assert_eq!(
        auth_of(ingest.requests().len() - 1).as_deref(),
        Some("Bearer token-1"),
        "cached"
    );
    assert_eq!(imds.issued(), 1);

    // Eight-second tokens are refreshed at half their lifetime; the next one lives long.
    imds.set_lifetime(600);
    std::thread::sleep(Duration::from_secs(5));
    http::request(envoy.listener, "GET", "/mi/3", &[], b"").unwrap();
    settled(&ingest, 6);
    assert_eq!(
        auth_of(ingest.requests().len() - 1).as_deref(),
        Some("Bearer token-2"),
        "refreshed before expiry"
    );

    // The service stops accepting token-2: one 401, a fresh token, the same batch again.
    ingest.set_accepted_tokens(tokens(&["token-3"]));
    http::request(envoy.listener, "GET", "/mi/4", &[], b"").unwrap();
    let items = settled(&ingest, 8);
    let reqs = ingest.requests();
    let summary: Vec<(u16, Option<String>, usize)> = (0..reqs.len())
        .map(|i| (reqs[i].status_answered, auth_of(i), lines(&reqs[i].body).len()))
        .collect();
    let refused = reqs
        .iter()
        .position(|r| r.status_answered == 401)
        .unwrap_or_else(|| panic!("one 401: {summary:?}; imds {:?}", imds.requests()));
    assert_eq!(
        lines(&reqs[refused].body),
        lines(&reqs[refused + 1].body),
        "the refused batch went again"
    );
    assert_eq!(auth_of(refused + 1).as_deref(), Some("Bearer token-3"));
    assert_eq!(
        item_keys(&items).iter().collect::<HashSet<_>>().len(),
        8,
        "delivered exactly once"
    );
    let st = envoy_stats(&envoy, "appinsights.main.token");
    assert_eq!(st["appinsights.main.token_refreshes"], 3);
    assert!(!envoy.log().contains("token-"), "tokens never appear in the log");
}

#[test]
fn envoy_stats_match_what_the_endpoint_saw_and_reach_prometheus() {
    let s = start(json!({"delivery": {"flush_interval_ms": 100}}), &[]);
    for i in 0..10 {
        http::request(s.envoy.listener, "GET", &format!("/counted/{i}"), &[], b"").unwrap();
    }
    let items = settled(&s.ingest, 20);
    std::thread::sleep(Duration::from_millis(300));
    let st = envoy_stats(&s.envoy, "appinsights.");
    let seen = s.ingest.stats();
    assert_eq!(exchange_items(&st, "items_created"), 20);
    assert_eq!(st["appinsights.main.items_sent"], seen.items_received as i64);
    assert_eq!(st["appinsights.main.items_accepted"], seen.items_accepted as i64);
    assert_eq!(
        st["appinsights.main.items_accepted"],
        (items.len() + s.ingest.metrics().len()) as i64
    );
    assert_eq!(st["appinsights.main.batches_sent"], seen.requests as i64);
    assert!(st["appinsights.main.bytes_sent"] > 0);
    assert_eq!(st["appinsights.main.buffered_items"], 0);
    assert_eq!(st["appinsights.operations_sampled_out"], 0);
    assert!(st["appinsights.vm_memory_bytes"] > 0);
    let gz = s.ingest.requests()[0]
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v == "gzip");
    assert!(gz, "batches are gzip-compressed by default");
    let prometheus = s.envoy.admin_get("/stats/prometheus").unwrap_or_default();
    assert!(prometheus.contains("appinsights_main_items_accepted"), "{prometheus}");
}

/// A bootstrap whose listener comes from a watched file (LDS), so the test can replace
/// the filter's configuration while Envoy runs.
fn dynamic_bootstrap(dir: &std::path::Path, backend: std::net::SocketAddr, ingest: std::net::SocketAddr) -> String {
    format!(
        r#"admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
node: {{id: lds-test, cluster: lds-test}}
dynamic_resources:
  lds_config: {{path_config_source: {{path: {lds}}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: backend
    type: STATIC
    load_assignment: {{cluster_name: backend, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {bp}}}}}}}}}]}}]}}
  - name: appinsights
    type: STATIC
    load_assignment: {{cluster_name: appinsights, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {ip}}}}}}}}}]}}]}}
"#,
        lds = dir.join("lds.yaml").display(),
        bp = backend.port(),
        ip = ingest.port(),
    )
}

fn lds(port: u16, plugin_config: &Value) -> String {
    let wasm = filter_wasm();
    format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ingress
  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        route_config: {{virtual_hosts: [{{name: b, domains: ["*"], routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend}}}}]}}]}}
        http_filters:
        - name: envoy.filters.http.wasm
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
            config:
              name: appinsights
              root_id: appinsights
              configuration: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: {config}}}
              vm_config: {{vm_id: appinsights, runtime: envoy.wasm.runtime.v8, code: {{local: {{filename: {wasm}}}}}}}
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#,
        config = Value::String(plugin_config.to_string()),
        wasm = wasm.display(),
    )
}

#[test]
fn replacing_the_configuration_delivers_what_the_old_one_buffered() {
    // The old listener drains for one second, then its filter configuration goes.
    let g = Replaceable::start(
        "lds",
        json!({"cloud_role": "old", "delivery": {"flush_interval_ms": 60000}}),
    );
    for i in 0..3 {
        assert_eq!(
            http::request(g.gateway(), "GET", &format!("/old/{i}"), &[], b"")
                .unwrap()
                .status,
            200
        );
    }
    assert!(
        g.ingest.items().is_empty(),
        "a minute's flush interval: nothing sent yet"
    );
    // A new filter configuration (a different role): Envoy replaces the listener, and the
    // old configuration's root context drains before its VM goes.
    g.replace(json!({"cloud_role": "new", "delivery": {"flush_interval_ms": 100}}));
    let items = g.ingest.wait_for_items(6, Duration::from_secs(15));
    assert_eq!(
        items.len(),
        6,
        "the old configuration's items, flushed on replacement; log:\n{}",
        g.envoy.log()
    );
    assert!(items.iter().all(|i| i["tags"]["ai.cloud.role"] == "old"));
    // The open metric interval goes with the drain: the old configuration's 3 requests
    // and 3 backend calls, counted once (an interval that ended before is sent too).
    let metrics = g.ingest.wait_for_metrics(Duration::from_secs(5), |m| {
        total_count(m, "Server response time") >= 3 && total_count(m, "Dependency duration") >= 3
    });
    assert_eq!(total_count(&metrics, "Server response time"), 3);
    assert_eq!(total_count(&metrics, "Dependency duration"), 3);
    assert!(metrics.iter().all(|i| i["tags"]["ai.cloud.role"] == "old"));
}

#[test]
fn while_envoy_drains_before_shutdown_buffered_telemetry_keeps_flowing() {
    let s = start(json!({}), &[]);
    for i in 0..3 {
        http::request(s.envoy.listener, "GET", &format!("/draining/{i}"), &[], b"").unwrap();
    }
    // The graceful shutdown Envoy documents: drain listeners, wait, then quit.
    assert!(s.envoy.admin_post("/drain_listeners?graceful").is_some());
    let items = s.ingest.wait_for_items(6, Duration::from_secs(5));
    assert_eq!(
        items.len(),
        6,
        "delivered on the normal flush interval during the drain"
    );
}

#[test]
fn a_drain_that_cannot_deliver_gives_up_after_the_drain_timeout() {
    let g = Replaceable::start(
        "lds-timeout",
        json!({"cloud_role": "old", "delivery": {"flush_interval_ms": 60000, "drain_timeout_ms": 2000}}),
    );
    g.ingest.set_fault(Fault::Status {
        code: 503,
        retry_after: None,
    });
    http::request(g.gateway(), "GET", "/old", &[], b"").unwrap();
    g.replace(json!({"cloud_role": "new"}));
    let deadline = Instant::now() + Duration::from_secs(15);
    while !g.envoy.log().contains("drain timeout") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        g.envoy
            .log()
            .contains("shutting down with telemetry not yet delivered (drain timeout)"),
        "{}",
        g.envoy.log()
    );
    assert!(!g.ingest.requests().is_empty(), "it tried");
    // The gateway keeps serving with the new configuration.
    assert_eq!(
        http::request(g.gateway(), "GET", "/after", &[], b"").unwrap().status,
        200
    );
}

/// An LDS-driven gateway whose filter configuration the test can replace.
struct Replaceable {
    ingest: IngestServer,
    _backend: harness::backend::Backend,
    dir: std::path::PathBuf,
    envoy: Envoy,
    port: u16,
    cs: String,
}

impl Replaceable {
    fn start(name: &str, first: Value) -> Replaceable {
        let ingest = IngestServer::start(IngestConfig::default()).unwrap();
        let backend = harness::backend::Backend::start("127.0.0.1:0").unwrap();
        let dir = harness::envoy::scratch_dir(name);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cs = format!("InstrumentationKey={IKEY};IngestionEndpoint=http://{}/", ingest.addr());
        std::fs::write(dir.join("lds.yaml"), lds(port, &Self::with_logger(&cs, first))).unwrap();
        let bootstrap = dynamic_bootstrap(&dir, backend.addr(), ingest.addr());
        let envoy = Envoy::start_yaml(&bootstrap, &["--drain-time-s", "1"]).unwrap();
        Replaceable {
            ingest,
            _backend: backend,
            dir,
            envoy,
            port,
            cs,
        }
    }

    fn with_logger(cs: &str, mut config: Value) -> Value {
        config["loggers"] = json!({"main": {"connection_string": cs}});
        config
    }

    fn gateway(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn replace(&self, config: Value) {
        let yaml = lds(self.port, &Self::with_logger(&self.cs, config));
        std::fs::write(self.dir.join("lds.tmp"), yaml).unwrap();
        std::fs::rename(self.dir.join("lds.tmp"), self.dir.join("lds.yaml")).unwrap();
    }
}

/// A counter of logger `main` without the metric aggregates (MetricData items are written
/// whenever a metric interval ends, one per series: `metric_series_sent`), so a test
/// counts the items of its exchanges exactly, whenever the minute turns.
fn exchange_items(st: &std::collections::BTreeMap<String, i64>, stat: &str) -> i64 {
    st[&format!("appinsights.main.{stat}")] - st["appinsights.main.metric_series_sent"]
}

/// The logger's stats once nothing is buffered any more (or `timeout` passed).
fn stats_once_nothing_is_buffered(envoy: &Envoy, timeout: Duration) -> std::collections::BTreeMap<String, i64> {
    let deadline = Instant::now() + timeout;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let st = envoy_stats(envoy, "appinsights.main.");
        if st["appinsights.main.buffered_items"] == 0 || Instant::now() > deadline {
            return st;
        }
    }
}

/// Every created item is accepted or in exactly one drop counter, and nothing is left.
fn assert_every_item_accounted(st: &std::collections::BTreeMap<String, i64>) {
    let get = |k: &str| st.get(&format!("appinsights.main.{k}")).copied().unwrap_or(0);
    let dropped: i64 = ["buffer_full", "rejected", "too_large", "expired", "shutdown"]
        .iter()
        .map(|r| get(&format!("items_dropped_{r}")))
        .sum();
    assert!(get("items_created") > 0, "{st:?}");
    assert_eq!(get("items_created"), get("items_accepted") + dropped, "{st:?}");
    assert_eq!(get("buffered_items"), 0, "{st:?}");
}

#[test]
fn a_drain_respects_retry_after_and_counts_what_it_could_not_deliver() {
    let g = Replaceable::start(
        "lds-throttled",
        json!({"cloud_role": "old", "delivery": {"flush_interval_ms": 100, "drain_timeout_ms": 5000}}),
    );
    g.ingest.set_fault(Fault::Status {
        code: 429,
        retry_after: Some("60".into()),
    });
    for i in 0..10 {
        assert_eq!(
            http::request(g.gateway(), "GET", &format!("/old/{i}"), &[], b"")
                .unwrap()
                .status,
            200
        );
    }
    std::thread::sleep(Duration::from_millis(500)); // a batch went and was told to wait
    let before = g.ingest.requests().len();
    assert!(before >= 1, "the old configuration tried once");
    g.replace(json!({"cloud_role": "new"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !g.envoy.log().contains("items_dropped_shutdown") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = g.envoy.log();
    assert!(log.contains("(drain timeout): nothing can be sent before it"), "{log}");
    assert!(
        g.ingest.requests().len() <= before + 1,
        "the drain did not hammer a service that asked to wait"
    );
    std::thread::sleep(Duration::from_millis(300));
    let st = envoy_stats(&g.envoy, "appinsights.main.");
    // 10 Requests and 10 Dependencies, and the metric aggregates the drain flushed.
    let created = st["appinsights.main.items_created"];
    assert_eq!(created - st["appinsights.main.metric_series_sent"], 20, "{st:?}");
    assert_eq!(st["appinsights.main.items_dropped_shutdown"], created, "{st:?}");
    assert_every_item_accounted(&st);
}

#[test]
fn vm_memory_is_not_counted_again_for_each_replaced_configuration() {
    let g = Replaceable::start("lds-memory", json!({"delivery": {"flush_interval_ms": 100}}));
    http::request(g.gateway(), "GET", "/first", &[], b"").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let memory = || envoy_stats(&g.envoy, "appinsights.vm_memory_bytes")["appinsights.vm_memory_bytes"];
    let first = memory();
    assert!(first > 0);
    for round in 0..3 {
        g.replace(json!({"cloud_role": format!("r{round}"), "delivery": {"flush_interval_ms": 100}}));
        std::thread::sleep(Duration::from_millis(2500)); // the old listener drains for 1 s
        http::request(g.gateway(), "GET", &format!("/round/{round}"), &[], b"").unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let last = memory();
    assert!(
        last < 2 * first,
        "{last} bytes after three replacements, {first} at first"
    );
    assert_every_item_accounted(&envoy_stats(&g.envoy, "appinsights.main."));
}

#[test]
fn a_flapping_service_gets_everything_the_buffer_can_hold() {
    // Ingestion alternates 6 s down (503) and 6 s up, twice, at about 80 requests/s (160
    // items a second, ~120 KB/s uncompressed): a down window's telemetry (~0.75 MB) fits
    // the 1 MiB buffer, so everything could be delivered. The filter must not sit out the
    // up windows in a backoff grown during the outage: the first delivery after the
    // service is back comes within a tenth of the outage (plus a tick and a round trip).
    // Exponential backoff alone (retry_initial_ms 100, doubling) would wait 3-6 s here.
    let s = start(
        json!({"delivery": {"flush_interval_ms": 200, "max_buffer_bytes": 1_048_576, "retry_initial_ms": 100}}),
        &[],
    );
    let traffic = Traffic::start(s.envoy.listener, 100);
    let (down, mut back_at) = (Duration::from_secs(6), Vec::new());
    for _ in 0..2 {
        s.ingest.set_fault(Fault::Status {
            code: 503,
            retry_after: None,
        });
        std::thread::sleep(down);
        s.ingest.set_fault(Fault::None);
        back_at.push(s.ingest.elapsed_ms());
        std::thread::sleep(Duration::from_secs(6));
    }
    let sent = traffic.stop();
    let st = stats_once_nothing_is_buffered(&s.envoy, Duration::from_secs(15));
    let requests = s.ingest.requests();
    for at in back_at {
        let first = requests
            .iter()
            .find(|r| r.at_ms >= at && r.status_answered == 200)
            .map(|r| r.at_ms - at);
        let allowed = down.as_millis() as u64 / 10 + 700;
        assert!(
            first.is_some_and(|ms| ms <= allowed),
            "first delivery {first:?} ms after the service came back"
        );
    }
    assert_every_item_accounted(&st);
    let (created, accepted) = (
        st["appinsights.main.items_created"],
        st["appinsights.main.items_accepted"],
    );
    let ratio = accepted as f64 / created as f64;
    println!(
        "flapping: {sent} requests, {created} items created, {accepted} accepted ({:.1}%)",
        ratio * 100.0
    );
    assert!(
        ratio >= 0.99,
        "{:.1}% delivered of what the buffer could hold: {st:?}",
        ratio * 100.0
    );
}

#[test]
fn resets_and_timeouts_are_callout_failures_not_throttling() {
    // Envoy answers a reset with its own 503 and a timeout with its own 504: neither is
    // the service asking to slow down.
    for fault in [Fault::Drop, Fault::Slow(Duration::from_millis(1500))] {
        let s = start(
            json!({"delivery": {"flush_interval_ms": 100, "timeout_ms": 500, "retry_initial_ms": 5000}}),
            &[],
        );
        s.ingest.set_fault_for(fault.clone(), Some(1));
        http::request(s.envoy.listener, "GET", "/x", &[], b"").unwrap();
        std::thread::sleep(Duration::from_millis(2000));
        let st = envoy_stats(&s.envoy, "appinsights.main.");
        assert_eq!(st["appinsights.main.callout_failures"], 1, "{fault:?}: {st:?}");
        assert_eq!(st["appinsights.main.throttled"], 0, "{fault:?}: {st:?}");
        assert_eq!(st["appinsights.main.items_retried"], 2, "{fault:?}: {st:?}");
        assert!(s.envoy.log().contains("no answer from cluster"), "{}", s.envoy.log());
    }
}

#[test]
fn a_retry_after_holds_for_every_worker_of_the_gateway() {
    // Four workers. Once the service has told one of them to wait (429 Retry-After: 30),
    // the others, with telemetry of their own, must not each ask again.
    let s = start(
        json!({"delivery": {"flush_interval_ms": 1000}}),
        &["--concurrency", "4"],
    );
    let burst = |tag: &str, n: usize| {
        for i in 0..n {
            http::request(s.envoy.listener, "GET", &format!("/{tag}/{i}"), &[], b"").unwrap();
        }
    };
    burst("warm", 20);
    settled(&s.ingest, 40);
    s.ingest.set_fault(Fault::Status {
        code: 429,
        retry_after: Some("30".into()),
    });
    s.ingest.clear();
    burst("first", 1);
    std::thread::sleep(Duration::from_millis(1500)); // flushed, told to wait
    assert_eq!(s.ingest.requests().len(), 1, "the first worker asked");
    burst("others", 40);
    std::thread::sleep(Duration::from_millis(3000)); // every worker's flush interval passed
    let st = envoy_stats(&s.envoy, "appinsights.main.");
    assert_eq!(
        s.ingest.requests().len(),
        1,
        "nobody else asked while the service said to wait: {st:?}"
    );
    assert_eq!(exchange_items(&st, "items_created"), 40 + 2 + 80);
    assert_eq!(st["appinsights.main.throttled"], 1);
}

#[test]
fn a_full_buffer_stays_within_its_budget_in_vm_memory() {
    // Ingestion down, items of ~32 KB (four captured headers), 64 MiB of buffer: the VM's
    // memory must track the budget (not twice it), and what does not fit is counted.
    let budget: i64 = 64 << 20;
    let s = start(
        json!({"delivery": {"max_buffer_bytes": budget, "flush_interval_ms": 200},
               "diagnostic": {"frontend": {"request": {"headers": ["x-a", "x-b", "x-c", "x-d"]}},
                              "backend": {"request": {"headers": ["x-a", "x-b", "x-c", "x-d"]}}}}),
        &[],
    );
    s.ingest.set_fault(Fault::Status {
        code: 503,
        retry_after: None,
    });
    let big = "b".repeat(8000);
    let headers: Vec<(&str, &str)> = ["x-a", "x-b", "x-c", "x-d"]
        .iter()
        .map(|h| (*h, big.as_str()))
        .collect();
    for i in 0..1600 {
        let r = http::request(s.envoy.listener, "GET", &format!("/big/{i}"), &headers, b"").unwrap();
        assert_eq!(r.status, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = envoy_stats(&s.envoy, "appinsights.");
    let memory = st["appinsights.vm_memory_bytes"];
    println!(
        "buffered {} bytes, VM memory {memory} bytes",
        st["appinsights.main.buffered_bytes"]
    );
    assert!(
        st["appinsights.main.items_dropped_buffer_full"] > 0,
        "the budget was reached: {st:?}"
    );
    assert!(
        memory <= budget * 5 / 4 + (8 << 20),
        "VM memory {memory} for a {budget}-byte budget"
    );
    // The service comes back: what the budget held is delivered, the rest was counted.
    s.ingest.set_fault(Fault::None);
    let st = stats_once_nothing_is_buffered(&s.envoy, Duration::from_secs(30));
    assert_every_item_accounted(&st);
}

#[test]
fn a_redirect_is_followed_and_kept_for_the_next_batches() {
    let s = start(json!({"delivery": {"flush_interval_ms": 100}}), &[]);
    s.ingest.set_fault_for(
        Fault::Redirect {
            code: 308,
            location: "/v2/track".into(),
        },
        Some(1),
    );
    for i in 0..3 {
        http::request(s.envoy.listener, "GET", &format!("/moved/{i}"), &[], b"").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    settled(&s.ingest, 6);
    let paths: Vec<(String, u16)> = s
        .ingest
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status_answered))
        .collect();
    assert_eq!(paths.first(), Some(&("/v2.1/track".to_string(), 308)), "{paths:?}");
    assert!(
        paths
            .iter()
            .skip(1)
            .all(|(p, status)| p == "/v2/track" && *status == 200),
        "{paths:?}"
    );
    let st = envoy_stats(&s.envoy, "appinsights.main.");
    assert_every_item_accounted(&st);
    assert_eq!(exchange_items(&st, "items_accepted"), 6);
    assert_eq!(st["appinsights.main.redirects"], 1);
    assert!(
        s.envoy.log().contains("ingestion redirected to http://"),
        "{}",
        s.envoy.log()
    );
}

#[test]
fn a_redirect_to_another_host_goes_through_a_forward_proxy_cluster() {
    // The service sends everything to a second endpoint (another host:port); the logger's
    // redirect_cluster, which the renderer points at a loopback dynamic forward proxy,
    // reaches it.
    let other = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = start_with(json!({"delivery": {"flush_interval_ms": 100}}), &[], |settings| {
        settings.plugin_config["loggers"]["main"]["redirect_cluster"] = json!("appinsights_redirect");
        settings.redirect_proxy_port = proxy_port;
    });
    let location = format!("http://{}/v2.1/track", other.addr());
    s.ingest.set_fault(Fault::Redirect { code: 307, location });
    for i in 0..3 {
        http::request(s.envoy.listener, "GET", &format!("/elsewhere/{i}"), &[], b"").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(1500));
    eprintln!(
        "STATS {:?} {:?}",
        envoy_stats(&s.envoy, "appinsights.main."),
        envoy_stats(&s.envoy, "cluster.appinsights_redirect")
    );
    eprintln!(
        "DEBUG {}",
        s.envoy
            .log()
            .lines()
            .filter(|l| l.contains("appinsights[") || l.contains("forward") || l.contains("dns"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let items = settled(&other, 6);
    assert_eq!(items.len(), 6);
    assert_eq!(
        s.ingest.requests().len(),
        1,
        "only the first batch went to the old place"
    );
    let st = envoy_stats(&s.envoy, "appinsights.main.");
    assert_every_item_accounted(&st);
    assert!(
        s.envoy.log().contains("through cluster appinsights_redirect"),
        "{}",
        s.envoy.log()
    );
}

/// The issue-11 soak, run by hand (`cargo test -p harness --test delivery soak -- --ignored
/// --nocapture`): 5 minutes at ~400 requests/s, ingestion alternating 30 s up / 30 s down
/// (503), default delivery settings. Prints what was delivered against what the buffer can
/// hold: during a down window the 8 MiB buffer holds only part of what arrives.
#[test]
#[ignore]
fn soak_a_service_flapping_every_thirty_seconds_for_five_minutes() {
    let s = start(json!({"delivery": {"flush_interval_ms": 1000}}), &[]);
    let traffic: Vec<Traffic> = (0..4).map(|_| Traffic::start(s.envoy.listener, 100)).collect();
    let started = Instant::now();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_secs(30));
        s.ingest.set_fault(Fault::Status {
            code: 503,
            retry_after: None,
        });
        std::thread::sleep(Duration::from_secs(30));
        s.ingest.set_fault(Fault::None);
    }
    let sent: usize = traffic.into_iter().map(Traffic::stop).sum();
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(20));
    let st = envoy_stats(&s.envoy, "appinsights.main.");
    assert_every_item_accounted(&st);
    let (created, accepted) = (
        st["appinsights.main.items_created"],
        st["appinsights.main.items_accepted"],
    );
    let per_item = st["appinsights.main.bytes_sent"] as f64; // gzip; the buffer counts plain bytes
    let plain_item = s.ingest.requests().iter().map(|r| r.body.len()).sum::<usize>() as f64
        / s.ingest
            .requests()
            .iter()
            .map(|r| lines(&r.body).len())
            .sum::<usize>()
            .max(1) as f64;
    let rate = created as f64 / elapsed;
    // Up windows deliver everything; each down window delivers at most what the buffer holds.
    let per_down = (rate * 30.0).min(8_388_608.0 / plain_item);
    let theoretical = (rate * 30.0 * 5.0 + per_down * 5.0) / created as f64;
    println!(
        "soak: {sent} requests in {elapsed:.0} s, {created} items ({rate:.0}/s, {plain_item:.0} B each), \
         {accepted} accepted = {:.1}%, theoretical maximum {:.1}% ({per_item:.0} wire bytes); {st:?}",
        100.0 * accepted as f64 / created as f64,
        100.0 * theoretical.min(1.0)
    );
}
