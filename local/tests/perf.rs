//! Every API endpoint answers within a bound with 100,000 stored items of a realistic mix
//! (per operation: the gateway's request and dependency, the backend's request, a trace
//! or an exception; standard and custom metrics; availability results). The bound is
//! 200 ms in a release build (docs/local.md) and a generous 2 s in a debug build; the
//! times are printed (`cargo test -p appinsights-local --test perf -- --nocapture`).

use std::time::{Duration, Instant};

use appinsights_local::api;
use appinsights_local::http::Request;
use appinsights_local::sample;
use appinsights_local::store::{Limits, Store};

const ITEMS: usize = 100_000;
const T0: i64 = 1_790_000_000_000;

fn filled() -> Store {
    let mut store = Store::new(Limits::default());
    store.push_all(&sample::mix(ITEMS, T0), T0);
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
