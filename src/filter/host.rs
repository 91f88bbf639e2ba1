//! [`Host`] on the proxy-wasm ABI: the filter's only calls into Envoy.
//!
//! Calls that return data are made directly on the ABI: the SDK's wrappers panic on
//! statuses they do not expect and decode header names with `String::from_utf8(..)
//! .unwrap()`, and a panic would kill the worker's VM. Here every failure reads as `None`
//! (or an empty map) and Envoy's buffers are handed back as they came (header maps are
//! parsed lazily by [`HeaderMap`]).

use crate::headers::HeaderMap;
use crate::host::{Attribute, BufferKind, Callout, CalloutId, HeaderMapKind, Host, LocalResponse, MetricKind};
use proxy_wasm::types::{BufferType, MapType};
use std::ptr::null_mut;
use std::time::Duration;

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
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
}

const STATUS_OK: u32 = 0;
/// `proxy_set_shared_data`: another worker wrote the value since it was read.
const STATUS_CAS_MISMATCH: u32 = 8;
/// `proxy_send_local_response`: not a gRPC answer.
const NO_GRPC_STATUS: i32 = -1;
/// The ABI's metric types.
const METRIC_COUNTER: u32 = 0;
const METRIC_GAUGE: u32 = 1;

/// Envoy, through the proxy-wasm ABI (no state: the contexts create one per callback).
pub struct Envoy;

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

fn map_type(map: HeaderMapKind) -> MapType {
    match map {
        HeaderMapKind::Request => MapType::HttpRequestHeaders,
        HeaderMapKind::Response => MapType::HttpResponseHeaders,
        HeaderMapKind::CalloutResponse => MapType::HttpCallResponseHeaders,
    }
}

fn buffer_type(buffer: BufferKind) -> BufferType {
    match buffer {
        BufferKind::PluginConfiguration => BufferType::PluginConfiguration,
        BufferKind::RequestBody => BufferType::HttpRequestBody,
        BufferKind::ResponseBody => BufferType::HttpResponseBody,
        BufferKind::CalloutResponseBody => BufferType::HttpCallResponseBody,
    }
}

impl Host for Envoy {
    fn property(&mut self, attribute: Attribute) -> Option<Vec<u8>> {
        self.property_at(attribute.path())
    }

    fn property_at(&mut self, path: &[u8]) -> Option<Vec<u8>> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: the pointers are valid for the call; Envoy writes a buffer address and size.
        let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
        let value = take_returned(data, size);
        value.filter(|_| status == STATUS_OK)
    }

    fn header_map(&mut self, map: HeaderMapKind) -> HeaderMap {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: as in `property`.
        let status = unsafe { proxy_get_header_map_pairs(map_type(map) as u32, &mut data, &mut size) };
        match take_returned(data, size) {
            Some(buf) if status == STATUS_OK => HeaderMap::from_serialized(buf),
            _ => HeaderMap::default(),
        }
    }

    fn set_header(&mut self, map: HeaderMapKind, name: &str, value: &[u8]) {
        let map = map_type(map) as u32;
        // SAFETY: the pointers and lengths describe live slices for the duration of the call.
        let status =
            unsafe { proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
        if status != STATUS_OK {
            log::debug!("appinsights: could not set header {name} (status {status})");
        }
    }

    fn remove_header(&mut self, map: HeaderMapKind, name: &str) {
        let map = map_type(map) as u32;
        // SAFETY: the pointer and length describe a live slice for the duration of the call.
        let status = unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) };
        if status != STATUS_OK {
            log::debug!("appinsights: could not remove header {name} (status {status})");
        }
    }

    fn buffer(&mut self, buffer: BufferKind, max: usize) -> Option<Vec<u8>> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: as in `property`.
        let status = unsafe { proxy_get_buffer_bytes(buffer_type(buffer) as u32, 0, max, &mut data, &mut size) };
        let value = take_returned(data, size);
        value.filter(|_| status == STATUS_OK)
    }

    fn now_nanos(&mut self) -> u64 {
        let mut nanos: u64 = 0;
        // SAFETY: the pointer is valid for the call. (The SDK's wrapper panics on a status it
        // does not expect.)
        let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
        if status == STATUS_OK {
            nanos
        } else {
            0
        }
    }

    fn dispatch(&mut self, callout: &Callout<'_>) -> Result<CalloutId, String> {
        // Through the SDK, which must register the callout to route its answer here (its
        // wrapper panics only on a status the ABI does not define for this call).
        let headers: Vec<(&str, &str)> = callout.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = if callout.body.is_empty() {
            None
        } else {
            Some(&callout.body[..])
        };
        let timeout = Duration::from_millis(callout.timeout_ms);
        let cluster = callout.cluster;
        proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, body, Vec::new(), timeout).map_err(|status| {
            match status {
                // What Envoy 1.40 answers for a cluster it does not have (seen in the tests:
                // InternalFailure for a batch, BadArgument for a test's GET without body).
                // Ingestion and availability tests both call out: the caller says which.
                proxy_wasm::types::Status::InternalFailure | proxy_wasm::types::Status::BadArgument => format!(
                    "Envoy has no cluster named {cluster}, or none of its hosts is up (define the cluster, \
                     or name one Envoy has)"
                ),
                other => format!("Envoy refused the callout ({other:?})"),
            }
        })
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => METRIC_COUNTER,
            MetricKind::Gauge => METRIC_GAUGE,
        };
        let mut id = 0u32;
        // SAFETY: the name slice and the id pointer are valid for the call.
        let status = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
        (status == STATUS_OK).then_some(id)
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        // SAFETY: plain values.
        let _ = unsafe { proxy_increment_metric(id, delta) };
    }

    fn set_tick_period(&mut self, millis: u64) -> Result<(), String> {
        let millis = u32::try_from(millis).unwrap_or(u32::MAX);
        // SAFETY: a plain value.
        match unsafe { proxy_set_tick_period_milliseconds(millis) } {
            STATUS_OK => Ok(()),
            status => Err(format!("status {status}")),
        }
    }

    fn done(&mut self) {
        // SAFETY: no arguments.
        let _ = unsafe { proxy_done() };
    }

    fn memory_bytes(&mut self) -> u64 {
        core::arch::wasm32::memory_size(0) as u64 * 65_536
    }

    /// 32 bytes of entropy from the host (WASI `random_get`), mixed with the clock should
    /// that fail.
    fn random_seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        if getrandom::fill(&mut seed).is_err() {
            log::warn!("appinsights: no entropy from the host; ids are seeded from the clock");
        }
        for (b, t) in seed.iter_mut().zip(self.now_nanos().to_le_bytes().iter().cycle()) {
            *b ^= t;
        }
        seed
    }

    fn environment(&mut self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn shared_data(&mut self, key: &str) -> Option<Vec<u8>> {
        self.shared_data_cas(key).map(|(value, _)| value)
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        self.set_shared_data_if(key, value, 0);
    }

    fn shared_data_cas(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        let mut cas: u32 = 0;
        // SAFETY: as in `property`; the SDK's wrapper panics on statuses it does not expect.
        let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
        let value = take_returned(data, size);
        // Envoy returns no buffer for an empty value.
        (status == STATUS_OK).then(|| (value.unwrap_or_default(), cas))
    }

    fn set_shared_data_if(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        // SAFETY: the pointers and lengths describe live slices for the duration of the call.
        let status = unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) };
        if status != STATUS_OK && status != STATUS_CAS_MISMATCH {
            log::debug!("appinsights: could not set shared data {key} (status {status})");
        }
        status == STATUS_OK
    }

    fn send_response(&mut self, response: &LocalResponse<'_>) {
        let headers = HeaderMap::serialize(response.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        let (details, body) = (response.details, response.body);
        // SAFETY: the pointers and lengths describe live slices for the duration of the
        // call. (The SDK's wrapper panics on a status it does not expect.)
        let status = unsafe {
            proxy_send_local_response(
                response.status,
                details.as_ptr(),
                details.len(),
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                NO_GRPC_STATUS,
            )
        };
        if status != STATUS_OK {
            log::warn!("appinsights: Envoy refused the local reply (status {status})");
        }
    }
}
