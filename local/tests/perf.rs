//! Every API endpoint answers within a bound with 100,000 stored items of a realistic mix
//! (per operation: the gateway's request and dependency, the backend's request, a trace
//! or an exception; standard and custom metrics; availability results). The bound is
//! 200 ms in a release build (docs/local.md) and a generous 2 s in a debug build; the
//! times are printed (`cargo test -p appinsights-local --test perf -- --nocapture`).

use std::time::{Duration, Instant};

use appinsights_local::api;
use appinsights_local::http::Request;
use appinsights_local::sample::{self, Op};
use appinsights_local::store::{Limits, Store};
use serde_json::{json, Value};

const ITEMS: usize = 100_000;
const T0: i64 = 1_790_000_000_000;

fn operation(n: usize) -> Vec<Value> {
    let (id, gw, be) = (format!("op{n:06}"), format!("g{n}"), format!("b{n}"));
    let name = [
        "GET /api/orders",
        "POST /api/orders",
        "GET /api/users/{id}",
        "GET /health",
    ][n % 4];
    let at = |role, ms: i64| Op {
        operation_id: &id,
        operation_name: name,
        role,
        time_ms: T0 + (n as i64) * 36 + ms,
        sample_rate: if n.is_multiple_of(3) { 50.0 } else { 100.0 },
    };
    let code = if n.is_multiple_of(17) { 500 } else { 200 };
    let (g, b) = (at("gateway", 0), at("backend", 2));
    let mut items = vec![
        sample::request(&g, &gw, "", code, 20.0 + (n % 200) as f64),
        sample::dependency(&g, &format!("d{n}"), &gw, "backend:8000", code, 18.0),
        sample::request(&b, &be, &format!("d{n}"), code, 15.0),
    ];
    items.push(match code {
        500 => sample::exception(&b, &be, "ConnectionError", "database unreachable"),
        _ => sample::trace(&b, &be, &format!("served order {n}"), "Information"),
    });
    items
}

fn periodic(n: usize) -> Vec<Value> {
    let o = Op {
        operation_id: "",
        operation_name: "",
        role: "gateway",
        time_ms: T0 + (n as i64) * 36,
        sample_rate: 100.0,
    };
    let std = json!({"_MS.MetricId": "requests/duration", "_MS.IsAutocollected": "True", "Request.Success": "True"});
    vec![
        sample::metric(&o, "Server response time", "", [500.0, 20.0, 5.0, 90.0], std),
        sample::metric(
            &o,
            "tokens",
            "openai",
            [120.0, 3.0, 10.0, 80.0],
            json!({"model": "gpt"}),
        ),
        sample::availability(&o, &format!("a{n}"), "gateway health", "local", !n.is_multiple_of(40)),
    ]
}

fn filled() -> Store {
    let mut store = Store::new(Limits::default());
    let (mut n, mut stored) = (0, 0);
    while stored < ITEMS {
        let mut batch = operation(n);
        if n.is_multiple_of(20) {
            batch.extend(periodic(n));
        }
        batch.truncate(ITEMS - stored);
        stored += batch.len();
        store.push_all(&batch, T0);
        n += 1;
    }
    store
}

fn time(store: &Store, path: &str) -> Duration {
    let req = Request {
        method: "GET".into(),
        path: path.into(),
        ..Request::default()
    };
    let started = Instant::now();
    let resp = api::route(store, &req);
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{path}: {}", String::from_utf8_lossy(&resp.body));
    took
}

#[test]
fn every_endpoint_answers_quickly_with_100k_items() {
    let started = Instant::now();
    let store = filled();
    assert_eq!(store.len(), ITEMS);
    println!(
        "filled {ITEMS} items ({} MiB) in {:?}",
        store.bytes() >> 20,
        started.elapsed()
    );
    let bound = if cfg!(debug_assertions) {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(200)
    };
    let paths = [
        "/api/summary",
        "/api/items",
        "/api/items?type=ExceptionData",
        "/api/items?q=ORDER%2099",
        "/api/items?q=no-such-text-anywhere",
        "/api/items?operation_name=GET%20%2Fhealth&success=false&limit=1000",
        "/api/items?before_seq=50000&limit=1000",
        "/api/items/50000",
        "/api/operations/op012345",
        "/api/failures",
        "/api/metrics",
        "/api/metrics?bucket_s=1",
        "/api/availability",
        "/api/rejected",
    ];
    let mut slow = Vec::new();
    for path in paths {
        let took = time(&store, path);
        println!("{:>8.1} ms  {path}", took.as_secs_f64() * 1000.0);
        if took > bound {
            slow.push(path);
        }
    }
    assert!(slow.is_empty(), "over {bound:?}: {slow:?}");
}
