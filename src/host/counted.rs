//! Counting the calls made while handling exchanges: the number behind most of the
//! filter's cost per request, published as the `appinsights.host_calls` stat and pinned
//! by tests (with [`super::fake::FakeHost`] on the host, and in the real Envoy).

use super::{Attribute, BufferKind, Callout, CalloutId, HeaderMapKind, Host, LocalResponse, MetricKind};
use crate::headers::HeaderMap;
use std::cell::Cell;

/// A host whose every call adds one to `calls`.
pub struct Counted<'h, H: Host> {
    host: &'h mut H,
    calls: &'h Cell<u64>,
}

impl<'h, H: Host> Counted<'h, H> {
    pub fn new(host: &'h mut H, calls: &'h Cell<u64>) -> Self {
        Counted { host, calls }
    }

    fn count(&self) {
        self.calls.set(self.calls.get().wrapping_add(1));
    }
}

impl<H: Host> Host for Counted<'_, H> {
    fn property(&mut self, attribute: Attribute) -> Option<Vec<u8>> {
        self.count();
        self.host.property(attribute)
    }

    fn property_at(&mut self, path: &[u8]) -> Option<Vec<u8>> {
        self.count();
        self.host.property_at(path)
    }

    fn header_map(&mut self, map: HeaderMapKind) -> HeaderMap {
        self.count();
        self.host.header_map(map)
    }

    fn set_header(&mut self, map: HeaderMapKind, name: &str, value: &[u8]) {
        self.count();
        self.host.set_header(map, name, value)
    }

    fn remove_header(&mut self, map: HeaderMapKind, name: &str) {
        self.count();
        self.host.remove_header(map, name)
    }

    fn buffer(&mut self, buffer: BufferKind, max: usize) -> Option<Vec<u8>> {
        self.count();
        self.host.buffer(buffer, max)
    }

    fn now_nanos(&mut self) -> u64 {
        self.count();
        self.host.now_nanos()
    }

    fn dispatch(&mut self, callout: &Callout<'_>) -> Result<CalloutId, String> {
        self.count();
        self.host.dispatch(callout)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.count();
        self.host.define_metric(kind, name)
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.count();
        self.host.increment_metric(id, delta)
    }

    fn set_tick_period(&mut self, millis: u64) -> Result<(), String> {
        self.count();
        self.host.set_tick_period(millis)
    }

    fn done(&mut self) {
        self.count();
        self.host.done()
    }

    fn memory_bytes(&mut self) -> u64 {
        self.count();
        self.host.memory_bytes()
    }

    fn random_seed(&mut self) -> [u8; 32] {
        self.count();
        self.host.random_seed()
    }

    fn environment(&mut self, name: &str) -> Option<String> {
        self.count();
        self.host.environment(name)
    }

    fn shared_data(&mut self, key: &str) -> Option<Vec<u8>> {
        self.count();
        self.host.shared_data(key)
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        self.count();
        self.host.set_shared_data(key, value)
    }

    fn shared_data_cas(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.count();
        self.host.shared_data_cas(key)
    }

    fn set_shared_data_if(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        self.count();
        self.host.set_shared_data_if(key, value, cas)
    }

    fn send_response(&mut self, response: &LocalResponse<'_>) {
        self.count();
        self.host.send_response(response)
    }
}
