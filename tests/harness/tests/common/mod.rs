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
    let ingest = IngestServer::start(IngestConfig { expected_ikey: Some(IKEY.into()), ..Default::default() }).unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let mut config = json!({
        "loggers": {"main": logger_for(&ingest, "appinsights")},
        "delivery": {"flush_interval_ms": 200}
    });
    config.as_object_mut().unwrap().extend(extra_config.as_object().unwrap().clone());
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
    let found: Vec<&Value> =
        of_kind(items, base_type).into_iter().filter(|i| i["data"]["baseData"][field] == value).collect();
    assert_eq!(found.len(), 1, "exactly one {base_type} with {field} = {value}; items: {items:#?}");
    found[0].clone()
}

/// All items of the operation `operation_id`.
pub fn operation(items: &[Value], operation_id: &str) -> Vec<Value> {
    items.iter().filter(|i| i["tags"]["ai.operation.id"] == operation_id).cloned().collect()
}

/// Waits for the stream of items to settle (nothing new for a while) and returns them.
pub fn settled(ingest: &IngestServer, at_least: usize) -> Vec<Value> {
    ingest.wait_for_items(at_least, Duration::from_secs(10));
    let mut last = ingest.items().len();
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = ingest.items().len();
        if now == last {
            return ingest.items();
        }
        last = now;
    }
}

pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
