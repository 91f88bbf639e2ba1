//! During an ingestion outage, with the buffer full and every item dropped or evicted, the
//! filter's live heap must not grow: every byte an exchange, a failed delivery or the
//! metrics allocate is given back. Counted exactly on the host (live bytes through a
//! counting allocator, the benchmark's exchange, a fake host answering every batch 503);
//! the real-Envoy test in `tests/harness/tests/delivery.rs` watches the VM's memory,
//! which moves in 64 KiB pages with the allocator's high-water mark.

use envoy_appinsights::host::fake::{drive, FakeHost};
use envoy_appinsights::host::BufferKind;
use envoy_appinsights::pipeline::plugin::Plugin;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

/// Live heap bytes of the whole test binary (this file has one test).
struct Live;
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

/// 20 exchanges, a tick, every batch answered 503; returns the live bytes after.
fn outage_round(plugin: &mut Plugin, host: &mut FakeHost) -> i64 {
    for _ in 0..20 {
        drive(&mut plugin.stream(), host, FakeHost::BENCHMARK_BODIES);
        host.now += 5_000_000;
    }
    host.now += 100_000_000;
    plugin.tick(host);
    for sent in std::mem::take(&mut host.callouts) {
        host.callout_response_headers = vec![(":status".into(), "503".into())];
        host.buffers.insert(BufferKind::CalloutResponseBody, Vec::new());
        plugin.answer(host, sent.id, 1, 0);
    }
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn an_outage_with_a_full_buffer_and_metrics_on_holds_the_heap_flat() {
    let config = json!({
        "loggers": {"a": {"connection_string":
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/"}},
        "delivery": {"flush_interval_ms": 200, "retry_initial_ms": 200, "retry_max_ms": 1000,
                     "max_batch_bytes": 16384, "max_buffer_bytes": 65536},
        "diagnostic": {"metrics": true, "emit_metrics": [{"name": "Calls", "dimensions": [{"name": "API ID"}]}]},
        "metrics": {"interval_ms": 1000}
    });
    let mut host = FakeHost::benchmark_exchange();
    host.recording = false;
    let mut plugin = Plugin::new(1);
    assert!(host.configure(&mut plugin, &config.to_string()));
    // Fill the buffer and let every structure reach its working size (several metric
    // intervals close on the way: 105 ms per round, 1 s intervals).
    let warm: Vec<i64> = (0..40).map(|_| outage_round(&mut plugin, &mut host)).collect();
    let later: Vec<i64> = (0..120).map(|_| outage_round(&mut plugin, &mut host)).collect();
    let (warm_max, later_max) = (warm.iter().max().unwrap(), later.iter().max().unwrap());
    // The live heap moves with the batches waiting (a few hundred bytes between peaks); a
    // leak of 2 bytes per exchange over the 2,400 later ones would show 4.8 KB.
    assert!(
        later_max - warm_max <= 4096,
        "live heap grew during the outage: at most {warm_max} bytes after warm-up, {later_max} later"
    );
    assert!(
        host.stat("appinsights.a.items_dropped_buffer_full").unwrap_or(0) > 0,
        "the buffer was full"
    );
}
