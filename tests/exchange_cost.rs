//! The filter's own work per exchange, measured deterministically on the host: heap
//! allocations, bytes allocated and telemetry bytes per item, for the configurations
//! `scripts/bench.sh` times in Envoy. This is the CI regression guard for performance:
//! a noisy machine cannot fool an allocation count. (Timings are printed for information
//! with `--nocapture`; the timing targets live in the benchmark, not here.)
//!
//! What one exchange costs the core, as the proxy-wasm layer drives it: parse the request
//! headers Envoy hands over, decide (API, ids, sampling), and at log time write the items
//! into the batch; full batches are taken, gzip-compressed and acknowledged as delivery
//! does.

// clippy.toml lets `#[test]` functions unwrap; this crate's helpers are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use envoy_appinsights::config::Config;
use envoy_appinsights::exchange::{Backend, Frontend, Outcome};
use envoy_appinsights::headers::HeaderMap;
use envoy_appinsights::pipeline::{Answer, Finished, Pipeline, Roles, RouteInfo, Work};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

/// Counts this thread's allocations (the test harness runs other tests on other threads).
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        let _ = BYTES.try_with(|b| b.set(b.get() + layout.size() as u64));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        let _ = BYTES.try_with(|b| b.set(b.get() + new_size as u64));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counters() -> (u64, u64) {
    (ALLOCS.with(Cell::get), BYTES.with(Cell::get))
}

/// The request `scripts/bench.sh` sends (wrk), as Envoy's header map hands it over.
fn request_headers() -> Vec<u8> {
    HeaderMap::serialize(vec![
        (&b":authority"[..], &b"127.0.0.1:20002"[..]),
        (b":path", b"/bytes/1024"),
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b"content-length", b"1024"),
        (b"content-type", b"application/octet-stream"),
        (b"x-forwarded-proto", b"http"),
        (b"x-request-id", b"7f1c0a55-3a4b-4f6e-9d0e-2b8f3c4d5e6f"),
    ])
}

fn response_headers() -> Vec<u8> {
    HeaderMap::serialize(vec![
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"application/octet-stream"),
        (b"content-length", b"1024"),
        (b"date", b"Tue, 24 Nov 2026 21:00:00 GMT"),
        (b"x-envoy-upstream-service-time", b"0"),
    ])
}

struct Measured {
    allocs: f64,
    bytes: f64,
    items: f64,
    wire_plain: f64,
    wire_gzip: f64,
    nanos: f64,
}

const NOW: u64 = 1_795_000_000_000_000_000;

/// Runs `n` exchanges (after a warm-up) through a pipeline configured with `extra`.
fn measure(extra: Value, n: u64) -> Measured {
    let mut v = json!({"loggers": {"bench": {"connection_string":
        "InstrumentationKey=00000000-0000-0000-0000-0000000bench;IngestionEndpoint=http://127.0.0.1:20901/"}}});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let config = Config::from_value(&v).unwrap();
    let mut p = Pipeline::new(
        config,
        &Roles {
            role: "envoy".into(),
            instance: "envoy".into(),
        },
        [7; 32],
    );
    let (req, resp) = (request_headers(), response_headers());
    let (mut items, mut plain, mut gzip, mut callout) = (0u64, 0u64, 0u64, 0u32);
    let mut one = |p: &mut Pipeline, i: u64, last: u64, items: &mut u64, plain: &mut u64, gzip: &mut u64| {
        let frontend = Frontend::from_headers(HeaderMap::from_serialized(req.clone()));
        let (begun, _injection) = p.begin(&frontend, &RouteInfo::default());
        if p.may_emit(&begun) {
            let needs = p.needs(&begun, 200, 0);
            if needs.outcome {
                let outcome = Outcome {
                    start_unix_nanos: NOW + i * 100_000,
                    duration_nanos: 1_234_567,
                    response_code: 200,
                    request_body_bytes: 1024,
                    response_body_bytes: 1024,
                    ..Default::default()
                };
                let backend = needs.backend.then(|| Backend {
                    attempts: 1,
                    cluster: b"backend".to_vec(),
                    address: Some(b"127.0.0.1:20900".to_vec()),
                    latency_nanos: Some(1_000_000),
                    tls: false,
                    request: Frontend::from_headers(HeaderMap::from_serialized(req.clone())),
                });
                let response = needs.response_headers.then(|| HeaderMap::from_serialized(resp.clone()));
                p.finish(&Finished {
                    begun: &begun,
                    frontend: &frontend,
                    route_name: b"",
                    outcome: &outcome,
                    backend: backend.as_ref(),
                    response_headers: response.as_ref(),
                    request_body: None,
                    response_body: None,
                    backend_response_headers: None,
                });
            }
        }
        // The root context's pump, at 10,000 exchanges a second: batches go out when full
        // or when the flush interval passes, as in the filter.
        let now = NOW + i * 100_000;
        if i % 16 == 15 || i == last {
            while let Some(Work::Ingest { sink, batch }) = p.next_work(now, i == last) {
                let wire = p.ingest_request(sink, &batch, now).unwrap().body.len();
                *items += u64::from(batch.items);
                *plain += batch.body.len() as u64;
                *gzip += wire as u64;
                callout += 1;
                let n = batch.items;
                p.sent(sink, callout, batch, wire);
                let body = format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#);
                p.completed(
                    callout,
                    Answer {
                        status: Some(200),
                        retry_after: None,
                        body: body.as_bytes(),
                    },
                    now,
                );
            }
        }
    };
    for i in 0..256 {
        one(&mut p, i, 255, &mut 0, &mut 0, &mut 0);
    }
    let (a0, b0) = counters();
    let t0 = Instant::now();
    for i in 0..n {
        one(&mut p, i, n - 1, &mut items, &mut plain, &mut gzip);
    }
    let nanos = t0.elapsed().as_nanos() as f64 / n as f64;
    let (a1, b1) = counters();
    let per = |x: u64| x as f64 / n as f64;
    let per_item = |x: u64| if items == 0 { 0.0 } else { x as f64 / items as f64 };
    Measured {
        allocs: per(a1 - a0),
        bytes: per(b1 - b0),
        items: per(items),
        wire_plain: per_item(plain),
        wire_gzip: per_item(gzip),
        nanos,
    }
}

/// Exchanges per measurement (`EXCHANGE_COST_N` raises it for profiling).
fn exchanges() -> u64 {
    std::env::var("EXCHANGE_COST_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4096)
}

fn headers4() -> Value {
    json!({"request": {"headers": ["user-agent", "content-type"]}, "response": {"headers": ["content-type", "content-length"]}})
}

fn report(name: &str, m: &Measured) {
    println!(
        "{name}: {:.1} allocations, {:.0} bytes allocated, {:.2} items, {:.0} B/item plain, {:.0} B/item gzip, {:.2} µs on this host ({} build)",
        m.allocs,
        m.bytes,
        m.items,
        m.wire_plain,
        m.wire_gzip,
        m.nanos / 1000.0,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}

// The bounds are today's numbers plus a little: raising one must be a decision, made with
// the benchmark's numbers (docs/performance.md).

#[test]
fn a_sampled_exchange_allocates_little_and_writes_compact_items() {
    let m = measure(json!({"diagnostic": {"frontend": headers4()}}), exchanges());
    report("100% + 4 headers", &m);
    assert!((m.items - 2.0).abs() < 1e-9, "a Request and a Dependency per exchange");
    // Three of these are the header buffers Envoy hands over (request, request as sent
    // upstream, response); the rest is the exchange's own bookkeeping and the batch's growth.
    assert!(m.allocs <= 20.0, "{:.1} allocations per exchange", m.allocs);
    assert!(m.bytes <= 8_500.0, "{:.0} bytes allocated per exchange", m.bytes);
    assert!(m.wire_plain <= 850.0, "{:.0} bytes per item before gzip", m.wire_plain);
    assert!(m.wire_gzip <= 60.0, "{:.0} bytes per item on the wire", m.wire_gzip);
}

#[test]
fn an_unsampled_exchange_allocates_only_the_header_buffer() {
    let m = measure(
        json!({"diagnostic": {"sampling_percentage": 0, "frontend": headers4()}}),
        exchanges(),
    );
    report("0% + 4 headers", &m);
    assert_eq!(m.items, 0.0);
    assert!(m.allocs <= 1.0, "{:.1} allocations per exchange", m.allocs);
    assert!(m.bytes <= 300.0, "{:.0} bytes allocated per exchange", m.bytes);
}
