//! VM memory per exchange in flight, through the real Envoy: what a gateway with many slow
//! requests pays for the filter. The VM's linear memory never shrinks, so what the filter
//! keeps per exchange while it waits for the end sets the VM's size for good.

mod common;

use common::*;
use harness::http;
use serde_json::json;
use std::time::Duration;

fn vm_memory(s: &Stack) -> i64 {
    envoy_stats(&s.envoy, "appinsights.vm_memory_bytes")["appinsights.vm_memory_bytes"]
}

#[test]
fn an_exchange_in_flight_keeps_only_what_its_items_need() {
    // 300 slow requests with 40 KB of headers each (cookies, tokens), all in flight at once.
    // The filter keeps the headers its items will use, not the whole request.
    let s = start(
        json!({"diagnostic": {"frontend": {"request": {"headers": ["user-agent"]}}}}),
        &[],
    );
    http::request(s.envoy.listener, "GET", "/warm", &[], b"").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let before = vm_memory(&s);
    let n = 300;
    let gw = s.envoy.listener;
    let clients: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let big = format!("session={}", "c".repeat(40 * 1024));
                let headers = [("cookie", big.as_str()), ("user-agent", "memory-test")];
                http::request(gw, "GET", &format!("/delay/3000?i={i}"), &headers, b"")
                    .unwrap()
                    .status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2000)); // all in flight, the stat published
    let during = vm_memory(&s);
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    let per_exchange = (during - before) / n;
    println!("VM memory {before} -> {during} bytes with {n} exchanges in flight: {per_exchange} bytes each");
    assert!(
        per_exchange <= 8 * 1024,
        "{per_exchange} bytes of VM memory per exchange in flight"
    );
    settled(&s.ingest, 2 + 2 * n as usize);
}
