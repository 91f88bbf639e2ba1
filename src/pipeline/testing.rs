//! Helpers for the pipeline's unit tests: a pipeline with two loggers, requests, outcomes,
//! and one exchange run from request headers to the items in the batch.

pub use super::*;
pub use crate::delivery::Batch;
pub use crate::exchange::{flags, Backend, Frontend, Outcome};
pub use crate::headers::HeaderMap;
pub use serde_json::{json, Value};

pub const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

pub fn pipeline(extra: Value) -> Pipeline {
    let mut v = json!({"loggers": {
        "a": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-00000000000a;IngestionEndpoint=http://127.0.0.1:9001/", "cluster": "ca"},
        "b": {"instrumentation_key": "00000000-0000-0000-0000-00000000000b", "cluster": "cb"}
    }, "diagnostic": {"loggers": ["a"]}});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let config = Config::from_value(&v).unwrap();
    Pipeline::new(
        config,
        &Roles {
            role: "gw".into(),
            instance: "gw-1".into(),
            location: "westeurope".into(),
            region: Some("westeurope".into()),
        },
        [9; 32],
    )
}

pub fn frontend(path: &str, headers: &[(&str, &str)]) -> Frontend {
    let mut pairs: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":path", path.as_bytes()),
        (b":authority", b"api.test"),
    ];
    pairs.extend(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(pairs)))
}

pub fn outcome(code: u32) -> Outcome {
    Outcome {
        start_unix_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 5_000_000,
        response_code: code,
        ..Default::default()
    }
}

pub fn backend() -> Backend {
    Backend {
        attempts: 1,
        cluster: b"svc".to_vec(),
        target: b"svc.internal".as_slice().into(),
        request: frontend("/x", &[]),
        ..Default::default()
    }
}

/// Runs one exchange through the pipeline; returns the items written (all loggers).
pub fn run(p: &mut Pipeline, fe: &Frontend, route: &str, oc: &Outcome) -> (Begun, Injection, Vec<Value>) {
    let (begun, injection) = p.begin(
        fe,
        &RouteInfo {
            name: route.as_bytes(),
            ..Default::default()
        },
    );
    let be = backend();
    p.finish(&Finished {
        route_name: route.as_bytes(),
        backend: Some(&be),
        ..Finished::new(&begun, fe, oc)
    });
    let mut items = Vec::new();
    while let Some(Work::Ingest { batch, .. }) = p.next_work(1_700_000_010_000_000_000, true) {
        for line in batch.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            items.push(serde_json::from_slice(line).unwrap());
        }
    }
    (begun, injection, items)
}

pub fn kinds(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["data"]["baseType"].as_str().unwrap()).collect()
}

/// Every item logger `a` created ended accepted or in one `items_dropped_*` counter (by the
/// Envoy stats `host` was given).
pub fn created_is_accepted_plus_dropped(host: &crate::host::fake::FakeHost) {
    let stat = |name: &str| host.stat(&format!("appinsights.a.{name}")).unwrap_or(0);
    let dropped: i64 = ["buffer_full", "rejected", "too_large", "expired", "shutdown"]
        .iter()
        .map(|r| stat(&format!("items_dropped_{r}")))
        .sum();
    assert_eq!(
        stat("items_created"),
        stat("items_accepted") + dropped,
        "{:?}",
        host.stats
    );
}
