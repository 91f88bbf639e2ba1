//! The filter's calls into Envoy that return data, made directly on the proxy-wasm ABI.
//!
//! The SDK's wrappers panic on statuses they do not expect and decode header names with
//! `String::from_utf8(..).unwrap()`; a panic would kill the worker's VM. These wrappers
//! return `Option` for every failure, and hand back Envoy's buffers as they came (header
//! maps are parsed lazily by [`crate::headers::HeaderMap`]).

use crate::headers::HeaderMap;
use proxy_wasm::types::{BufferType, MapType};
use std::cell::Cell;
use std::ptr::null_mut;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_done() -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
}

const STATUS_OK: u32 = 0;

thread_local! {
    /// Host calls made while handling exchanges (the root context's own are taken back
    /// out by [`RootWork`]). Per request, this number drives most of the filter's CPU
    /// cost: each call crosses out of the VM and back (about a microsecond, the first in
    /// a callback about two), so it is published as a stat and guarded by a test.
    static EXCHANGE_CALLS: Cell<u64> = const { Cell::new(0) };
}

fn counted() {
    EXCHANGE_CALLS.with(|c| c.set(c.get().wrapping_add(1)));
}

/// Host calls made for exchanges so far.
pub fn exchange_calls() -> u64 {
    EXCHANGE_CALLS.with(Cell::get)
}

/// Marks root-context work (ticks, callout answers, configuration): the host calls it
/// makes are not counted as the exchanges'.
pub struct RootWork(u64);

impl RootWork {
    pub fn begin() -> Self {
        RootWork(exchange_calls())
    }

    /// Host calls made for exchanges before this root work began.
    pub fn exchange_calls(&self) -> u64 {
        self.0
    }
}

impl Drop for RootWork {
    fn drop(&mut self) {
        let before = self.0;
        EXCHANGE_CALLS.with(|c| c.set(before));
    }
}

/// Takes ownership of a buffer Envoy allocated in our memory (through the SDK's
/// `proxy_on_memory_allocate`, which allocates exactly `size` bytes).
fn take_returned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: Envoy filled `data` with `size` bytes it allocated through
    // `proxy_on_memory_allocate`, i.e. a `Vec<u8>` of capacity `size` that was forgotten.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Reads an attribute; `path` is the segments joined with NUL (`b"response\0code"`).
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    counted();
    // SAFETY: the pointers are valid for the call; Envoy writes a buffer address and size.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    let value = take_returned(data, size);
    if status == STATUS_OK {
        value
    } else {
        None
    }
}

/// Reads an integer, timestamp or duration attribute (8 bytes, little-endian).
pub fn property_u64(path: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = property(path)?.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Reads a whole header map in one call; an unavailable map reads as empty.
pub fn header_map(map: MapType) -> HeaderMap {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    counted();
    // SAFETY: as in `property`.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    match take_returned(data, size) {
        Some(buf) if status == STATUS_OK => HeaderMap::from_serialized(buf),
        _ => HeaderMap::default(),
    }
}

/// Reads up to `max` bytes of a buffer (plugin configuration, callout response body, …).
pub fn buffer(kind: BufferType, max: usize) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    counted();
    // SAFETY: as in `property`.
    let status = unsafe { proxy_get_buffer_bytes(kind as u32, 0, max, &mut data, &mut size) };
    let value = take_returned(data, size);
    if status == STATUS_OK {
        value
    } else {
        None
    }
}

/// Sets (replaces) a request header; failures are ignored (the stream must go on).
pub fn set_request_header(name: &str, value: &[u8]) {
    replace_header(MapType::HttpRequestHeaders, name, value);
}

/// Removes a request header; failures are ignored.
pub fn remove_request_header(name: &str) {
    let map = MapType::HttpRequestHeaders as u32;
    counted();
    // SAFETY: the pointer and length describe a live slice for the duration of the call.
    let status = unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) };
    if status != STATUS_OK {
        log::debug!("appinsights: could not remove header {name} (status {status})");
    }
}

/// Sets (replaces) a response header; failures are ignored.
pub fn set_response_header(name: &str, value: &[u8]) {
    replace_header(MapType::HttpResponseHeaders, name, value);
}

fn replace_header(map: MapType, name: &str, value: &[u8]) {
    let map = map as u32;
    counted();
    // SAFETY: the pointers and lengths describe live slices for the duration of the call.
    let status = unsafe { proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
    if status != STATUS_OK {
        log::debug!("appinsights: could not set header {name} (status {status})");
    }
}

/// Metric kinds of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Counter = 0,
    Gauge = 1,
}

/// Defines (or finds) a metric; `None` if Envoy refused.
pub fn define_metric(kind: Metric, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: the name slice and the id pointer are valid for the call.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// Adds `delta` to a metric (counters only grow: callers pass positive deltas for them).
pub fn increment_metric(id: u32, delta: i64) {
    if delta != 0 {
        // SAFETY: plain values.
        let _ = unsafe { proxy_increment_metric(id, delta) };
    }
}

/// Tells Envoy a root context that deferred its teardown (on_done false) is finished.
pub fn done() {
    // SAFETY: no arguments.
    let _ = unsafe { proxy_done() };
}

/// Bytes of this VM's linear memory.
pub fn memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) as u64 * 65_536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// Wall-clock time, unix nanoseconds.
pub fn now_nanos() -> u64 {
    counted();
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// 32 bytes of entropy from the host (WASI `random_get`), mixed with the clock should
/// that fail.
pub fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        log::warn!("appinsights: no entropy from the host; ids are seeded from the clock");
    }
    for (b, t) in seed.iter_mut().zip(now_nanos().to_le_bytes().iter().cycle()) {
        *b ^= t;
    }
    seed
}
