//! What the integration tests share: a gateway stack (real Envoy with the built filter, a
//! sample backend, local ingestion endpoints) and small helpers over the received items.
#![allow(dead_code)] // each test file uses a different part

use harness::backend::Backend;
use harness::envoy::{filter_wasm, Envoy};
use harness::envoy_config::Settings;
use harness::ingest::{of_kind, IngestConfig, IngestServer};
use serde_json::{json, Value};
use std::time::Duration;

pub const IKEY: &str = "11111111-2222-3333-4444-555555555555";

pub struct Stack {
    pub ingest: IngestServer,
    pub backend: Backend,
    pub envoy: Envoy,
}

/// A logger configuration sending to `ingest` through cluster `cluster`.
pub fn logger_for(ingest: &IngestServer, cluster: &str) -> Value {
    json!({"connection_string": format!("InstrumentationKey={IKEY};IngestionEndpoint=http://{}/", ingest.addr()), "cluster": cluster})
}

/// Starts the stack. `extra_config` is merged over a one-logger configuration with a
/// 200 ms flush interval; `settings` may add routes and virtual hosts.
pub fn start_with(extra_config: Value, envoy_args: &[&str], settings: impl FnOnce(&mut Settings)) -> Stack {
    let ingest = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    // Metric intervals of an hour: a test crosses a boundary (and sees an aggregates'
    // request it did not ask for) once in a great while instead of once a minute. Tests
    // about metrics set their own.
    let mut config = json!({
        "loggers": {"main": logger_for(&ingest, "appinsights")},
        "delivery": {"flush_interval_ms": 200},
        "metrics": {"interval_ms": 3_600_000}
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra_config.as_object().unwrap().clone());
    let mut s = Settings::local(&backend.addr().to_string(), filter_wasm().to_str().unwrap(), config);
    settings(&mut s);
    let envoy = Envoy::start(&s, envoy_args).unwrap_or_else(|e| panic!("{e}"));
    Stack { ingest, backend, envoy }
}

pub fn start(extra_config: Value, envoy_args: &[&str]) -> Stack {
    start_with(extra_config, envoy_args, |_| {})
}

/// Items of one `baseType`, cloned.
pub fn kind(items: &[Value], base_type: &str) -> Vec<Value> {
    of_kind(items, base_type).into_iter().cloned().collect()
}

/// The one item of `base_type` whose `data.baseData.<field>` equals `value`.
pub fn one(items: &[Value], base_type: &str, field: &str, value: &str) -> Value {
    let found: Vec<&Value> = of_kind(items, base_type)
        .into_iter()
        .filter(|i| i["data"]["baseData"][field] == value)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one {base_type} with {field} = {value}; items: {items:#?}"
    );
    found[0].clone()
}

/// The one item of `base_type` whose URL (`url` of a Request, `data` of a Dependency)
/// has the path `path` (the query aside): names no longer tell ids apart.
pub fn one_at(items: &[Value], base_type: &str, path: &str) -> Value {
    let field = if base_type == "RemoteDependencyData" {
        "data"
    } else {
        "url"
    };
    let path_of = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let rest = rest.find('/').map_or("", |i| &rest[i..]);
        rest.split('?').next().unwrap_or("").to_string()
    };
    let found: Vec<&Value> = of_kind(items, base_type)
        .into_iter()
        .filter(|i| {
            i["data"]["baseData"][field]
                .as_str()
                .is_some_and(|u| path_of(u) == path)
        })
        .collect();
    assert_eq!(found.len(), 1, "exactly one {base_type} at {path}; items: {items:#?}");
    found[0].clone()
}

/// Parses `[d.]hh:mm:ss.fffffff` into seconds.
pub fn timespan_secs(s: &str) -> f64 {
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if !d.contains(':') => (d.parse::<f64>().unwrap(), r),
        _ => (0.0, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let h: f64 = parts[0].parse().unwrap();
    let m: f64 = parts[1].parse().unwrap();
    let sec: f64 = parts[2].parse().unwrap();
    days * 86400.0 + h * 3600.0 + m * 60.0 + sec
}

/// All items of the operation `operation_id`.
pub fn operation(items: &[Value], operation_id: &str) -> Vec<Value> {
    items
        .iter()
        .filter(|i| i["tags"]["ai.operation.id"] == operation_id)
        .cloned()
        .collect()
}

/// Waits for the stream of items to settle (nothing new for a while) and returns them,
/// after checking that the endpoint found every item schema-valid, that at least
/// `at_least` items arrived and that the items of each operation are linked correctly.
/// `at_least` is the number of items the test expects to arrive (where that number is
/// only known afterwards, a lower bound, and the test checks the exact count itself).
pub fn settled(ingest: &IngestServer, at_least: usize) -> Vec<Value> {
    ingest.wait_for_items(at_least, Duration::from_secs(10));
    let mut last = ingest.items().len();
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = ingest.items().len();
        if now == last {
            let stats = ingest.stats();
            assert_eq!(stats.items_rejected, 0, "schema rejections: {:?}", stats.rejections);
            let items = ingest.items();
            assert!(
                items.len() >= at_least,
                "expected at least {at_least} items, got {}: {items:#?}",
                items.len()
            );
            assert_linked(&items);
            return items;
        }
        last = now;
    }
}

/// Within each operation that has a Request item: exactly one Request, and every other
/// item (dependency, exception, trace) is its child; item ids are unique.
pub fn assert_linked(items: &[Value]) {
    let mut ops: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
    for i in items {
        let op = i["tags"]["ai.operation.id"]
            .as_str()
            .expect("every item has an operation id")
            .to_string();
        assert!(i["tags"]["ai.operation.name"].is_string(), "{i:#}");
        ops.entry(format!("{}|{}", i["iKey"], op)).or_default().push(i);
    }
    for (op, members) in ops {
        let requests: Vec<&&Value> = members
            .iter()
            .filter(|i| i["data"]["baseType"] == "RequestData")
            .collect();
        if requests.is_empty() {
            continue; // traces of an unsampled operation
        }
        assert_eq!(requests.len(), 1, "operation {op}: one Request; {members:#?}");
        let request_id = &requests[0]["data"]["baseData"]["id"];
        let name = &requests[0]["tags"]["ai.operation.name"];
        for m in &members {
            assert_eq!(&m["tags"]["ai.operation.name"], name, "operation {op}: one name");
            if m["data"]["baseType"] != "RequestData" {
                assert_eq!(
                    &m["tags"]["ai.operation.parentId"], request_id,
                    "operation {op}: child of the Request: {m:#}"
                );
            }
        }
        let deps: Vec<&&Value> = members
            .iter()
            .filter(|i| i["data"]["baseType"] == "RemoteDependencyData")
            .collect();
        assert!(deps.len() <= 1, "operation {op}: at most one Dependency");
        if let Some(d) = deps.first() {
            assert_ne!(&d["data"]["baseData"]["id"], request_id);
        }
    }
}

pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The filter's Envoy stats whose names start with `prefix` (e.g. `appinsights.`), as
/// numbers. Envoy lists them with its `wasmcustom.` namespace, which is stripped here.
pub fn envoy_stats(envoy: &harness::envoy::Envoy, prefix: &str) -> std::collections::BTreeMap<String, i64> {
    let text = envoy.admin_get("/stats?filter=appinsights").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.strip_prefix("wasmcustom.").unwrap_or(k), v))
        .filter(|(k, _)| k.starts_with(prefix))
        .filter_map(|(k, v)| v.trim().parse::<i64>().ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Unique items by type and id (traces and exceptions have no id: by type and time).
pub fn item_keys(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| {
            let id = i["data"]["baseData"]["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| i["time"].to_string());
            format!("{}|{}|{}", i["data"]["baseType"], i["tags"]["ai.operation.id"], id)
        })
        .collect()
}

/// The MetricData items whose data point is named `name`.
pub fn metric_items<'i>(items: &'i [Value], name: &str) -> Vec<&'i Value> {
    items
        .iter()
        .filter(|i| i["data"]["baseType"] == "MetricData" && i["data"]["baseData"]["metrics"][0]["name"] == name)
        .collect()
}

/// Values counted into metric `name`, over every series, interval and worker.
pub fn total_count(items: &[Value], name: &str) -> u64 {
    metric_items(items, name)
        .iter()
        .map(|m| m["data"]["baseData"]["metrics"][0]["count"].as_u64().unwrap())
        .sum()
}
