//! A host that answers from memory and records every call: the core's tests, the
//! allocation guard (`tests/exchange_cost.rs`) and the benchmark's host-call floor all
//! drive the real read plan ([`crate::pipeline::stream`]) with it, so there is one source
//! for which calls happen in which callback.
//!
//! [`FakeHost::exchange`] sets up what Envoy knows about a proxied exchange; [`drive`]
//! runs a stream through Envoy's callbacks in order and returns the calls of each.

use super::shared_store::SharedStore;
use super::{Attribute, BufferKind, Callout, CalloutId, HeaderMapKind, Host, LocalResponse, MetricKind};
use crate::headers::HeaderMap;
use crate::pipeline::plugin::Plugin;
use crate::pipeline::stream::Stream;
use std::collections::HashMap;

/// One call into the host, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Property(Attribute),
    /// A property read at a path given at run time, shown with dots.
    PropertyAt(String),
    HeaderMap(HeaderMapKind),
    SetHeader(HeaderMapKind, String),
    RemoveHeader(HeaderMapKind, String),
    /// A buffer read, with the most bytes asked for.
    Buffer(BufferKind, usize),
    Clock,
    Dispatch(String),
    DefineMetric(String),
    IncrementMetric(u32),
    SetTickPeriod(u64),
    Done,
    MemoryBytes,
    RandomSeed,
    Environment(String),
    SharedData(String),
    SetSharedData(String),
    /// A compare-and-swap write of shared data.
    SetSharedDataIf(String),
    /// A local reply, with its status.
    SendResponse(u32),
}

impl Call {
    /// The call in the vocabulary of `tests/host-call-floor` (`None`: a call the floor
    /// filter does not replay, as no exchange makes it).
    pub fn floor_name(&self) -> Option<String> {
        Some(match self {
            Call::Property(a) => format!("property:{}", a.dotted()),
            Call::HeaderMap(HeaderMapKind::Request) => "request_map".into(),
            Call::HeaderMap(HeaderMapKind::Response) => "response_map".into(),
            Call::SetHeader(HeaderMapKind::Request, name) => format!("set_request_header:{name}"),
            Call::SetHeader(HeaderMapKind::Response, name) => format!("set_response_header:{name}"),
            Call::RemoveHeader(HeaderMapKind::Request, name) => format!("remove_request_header:{name}"),
            Call::Buffer(BufferKind::RequestBody, _) => "request_body".into(),
            Call::Buffer(BufferKind::ResponseBody, _) => "response_body".into(),
            Call::Clock => "clock".into(),
            _ => return None,
        })
    }
}

/// A callout the fake host accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCallout {
    pub id: CalloutId,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A local reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentResponse {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A stat as the fake host keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub name: String,
    pub kind: MetricKind,
    pub value: i64,
}

/// Envoy, played from memory.
#[derive(Debug)]
pub struct FakeHost {
    pub properties: HashMap<Attribute, Vec<u8>>,
    /// Values of [`Host::property_at`] paths (segments joined with NUL).
    pub paths: HashMap<Vec<u8>, Vec<u8>>,
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub callout_response_headers: Vec<(String, String)>,
    pub buffers: HashMap<BufferKind, Vec<u8>>,
    pub environment: HashMap<String, String>,
    /// Envoy's shared data, with versions (clone it into another host to play two
    /// workers of one Envoy).
    /// What `random_seed` fills its bytes with (7): tests of several VMs set it apart.
    pub seed: u8,
    pub shared: SharedStore,
    /// The clock; each reading moves it on by `clock_step`.
    pub now: u64,
    pub clock_step: u64,
    /// Callouts started (answered by the test through the root context).
    pub callouts: Vec<SentCallout>,
    /// Local replies sent.
    pub responses: Vec<SentResponse>,
    pub last_callout_id: CalloutId,
    /// Clusters Envoy does not know: callouts to them are refused.
    pub unknown_clusters: Vec<String>,
    pub stats: Vec<Stat>,
    /// Stats Envoy refuses to define.
    pub refused_stats: Vec<String>,
    pub tick_period_ms: Option<u64>,
    pub done_called: bool,
    /// The VM's linear memory, as reported.
    pub memory_bytes: u64,
    /// Every call, in order (only while `recording`).
    pub calls: Vec<Call>,
    pub recording: bool,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

/// A Tuesday in November 2026, in unix nanoseconds.
pub const FAKE_NOW: u64 = 1_795_000_000_000_000_000;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn serialized(list: &[(String, String)]) -> HeaderMap {
    HeaderMap::from_serialized(HeaderMap::serialize(
        list.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    ))
}

impl FakeHost {
    /// A host that records its calls, with the clock at [`FAKE_NOW`].
    pub fn new() -> FakeHost {
        FakeHost {
            properties: HashMap::new(),
            paths: HashMap::new(),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            callout_response_headers: Vec::new(),
            buffers: HashMap::new(),
            environment: HashMap::new(),
            shared: SharedStore::default(),
            seed: 7,
            now: FAKE_NOW,
            clock_step: 1_000,
            callouts: Vec::new(),
            responses: Vec::new(),
            last_callout_id: 0,
            unknown_clusters: Vec::new(),
            stats: Vec::new(),
            refused_stats: Vec::new(),
            tick_period_ms: None,
            done_called: false,
            memory_bytes: 0,
            calls: Vec::new(),
            recording: true,
        }
    }

    /// What Envoy knows about an exchange proxied by route `backend` to cluster `backend`
    /// at 127.0.0.1:8080,
    /// answered with `response` (whose `:status` is also the `response.code`), started
    /// 2 ms before the clock.
    pub fn exchange(request: &[(&str, &str)], response: &[(&str, &str)]) -> FakeHost {
        let mut host = FakeHost::new();
        host.request_headers = pairs(request);
        host.response_headers = pairs(response);
        let status = response
            .iter()
            .find(|(k, _)| *k == ":status")
            .and_then(|(_, v)| v.parse::<u64>().ok());
        let u64s = [
            (Attribute::RequestTime, FAKE_NOW - 2_000_000),
            (Attribute::RequestDuration, 2_000_000),
            (Attribute::ResponseCode, status.unwrap_or(0)),
            (Attribute::ResponseFlags, 0),
            (Attribute::ResponseBackendLatency, 1_000_000),
            (Attribute::UpstreamRequestAttemptCount, 1),
        ];
        for (attribute, value) in u64s {
            host.properties.insert(attribute, value.to_le_bytes().to_vec());
        }
        host.properties.insert(Attribute::ClusterName, b"backend".to_vec());
        host.properties.insert(Attribute::RouteName, b"backend".to_vec());
        host.properties
            .insert(Attribute::UpstreamAddress, b"127.0.0.1:8080".to_vec());
        host.properties
            .insert(Attribute::SourceAddress, b"127.0.0.1:50000".to_vec());
        host
    }

    /// The exchange `scripts/bench.sh` sends (wrk: `POST /bytes/1024`, 1 KB each way,
    /// answered 200), as Envoy's header maps hand it over.
    pub fn benchmark_exchange() -> FakeHost {
        let request = [
            (":authority", "127.0.0.1:20002"),
            (":path", "/bytes/1024"),
            (":method", "POST"),
            (":scheme", "http"),
            ("content-length", "1024"),
            ("content-type", "application/octet-stream"),
            ("x-forwarded-proto", "http"),
            ("x-request-id", "7f1c0a55-3a4b-4f6e-9d0e-2b8f3c4d5e6f"),
        ];
        let response = [
            (":status", "200"),
            ("content-type", "application/octet-stream"),
            ("content-length", "1024"),
            ("date", "Tue, 24 Nov 2026 21:00:00 GMT"),
            ("x-envoy-upstream-service-time", "0"),
        ];
        FakeHost::exchange(&request, &response)
    }

    /// Configures `plugin` with `config` (the plugin configuration's JSON text).
    pub fn configure(&mut self, plugin: &mut Plugin, config: &str) -> bool {
        self.buffers
            .insert(BufferKind::PluginConfiguration, config.as_bytes().to_vec());
        plugin.configure(self)
    }

    /// The two `emit_metrics` rules of the benchmark's variant (`scripts/bench.py`), with
    /// `metrics` on: diagnostic fields to add to a diagnostic.
    pub fn benchmark_metric_rules() -> serde_json::Value {
        serde_json::json!({"metrics": true, "emit_metrics": [
            {"name": "Requests by client", "value": "request.duration_ms",
             "dimensions": [{"name": "API ID"}, {"name": "Client", "value": "{request.header.user-agent}"}]},
            {"name": "Response bytes", "value": "response.size", "when": {"status": ["2xx"]},
             "dimensions": [{"name": "Status", "value": "{response.status}"}]}]})
    }

    /// The body sizes of the benchmark's exchange.
    pub const BENCHMARK_BODIES: Bodies = Bodies {
        request: 1024,
        response: 1024,
    };

    fn record(&mut self, call: Call) {
        if self.recording {
            self.calls.push(call);
        }
    }

    /// The calls recorded so far, leaving none.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.calls)
    }

    /// A stat's value by name.
    pub fn stat(&self, name: &str) -> Option<i64> {
        self.stats.iter().find(|s| s.name == name).map(|s| s.value)
    }

    fn headers_mut(&mut self, map: HeaderMapKind) -> &mut Vec<(String, String)> {
        match map {
            HeaderMapKind::Request => &mut self.request_headers,
            HeaderMapKind::Response => &mut self.response_headers,
            HeaderMapKind::CalloutResponse => &mut self.callout_response_headers,
        }
    }
}

impl Host for FakeHost {
    fn property(&mut self, attribute: Attribute) -> Option<Vec<u8>> {
        self.record(Call::Property(attribute));
        self.properties.get(&attribute).cloned()
    }

    fn property_at(&mut self, path: &[u8]) -> Option<Vec<u8>> {
        let shown = path.iter().map(|&b| if b == 0 { '.' } else { char::from(b) }).collect();
        self.record(Call::PropertyAt(shown));
        self.paths.get(path).cloned()
    }

    fn header_map(&mut self, map: HeaderMapKind) -> HeaderMap {
        self.record(Call::HeaderMap(map));
        serialized(self.headers_mut(map))
    }

    fn set_header(&mut self, map: HeaderMapKind, name: &str, value: &[u8]) {
        self.record(Call::SetHeader(map, name.to_string()));
        let headers = self.headers_mut(map);
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_string(), String::from_utf8_lossy(value).into_owned()));
    }

    fn remove_header(&mut self, map: HeaderMapKind, name: &str) {
        self.record(Call::RemoveHeader(map, name.to_string()));
        self.headers_mut(map).retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    fn buffer(&mut self, buffer: BufferKind, max: usize) -> Option<Vec<u8>> {
        self.record(Call::Buffer(buffer, max));
        let bytes = self.buffers.get(&buffer)?;
        Some(bytes.get(..max.min(bytes.len()))?.to_vec())
    }

    fn now_nanos(&mut self) -> u64 {
        self.record(Call::Clock);
        self.now = self.now.saturating_add(self.clock_step);
        self.now
    }

    fn dispatch(&mut self, callout: &Callout<'_>) -> Result<CalloutId, String> {
        self.record(Call::Dispatch(callout.cluster.to_string()));
        if self.unknown_clusters.iter().any(|c| c == callout.cluster) {
            return Err(format!("unknown cluster {}", callout.cluster));
        }
        self.last_callout_id = self.last_callout_id.wrapping_add(1);
        let id = self.last_callout_id;
        let headers = callout
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.callouts.push(SentCallout {
            id,
            cluster: callout.cluster.to_string(),
            headers,
            body: callout.body.to_vec(),
        });
        Ok(id)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.record(Call::DefineMetric(name.to_string()));
        if self.refused_stats.iter().any(|r| r == name) {
            return None;
        }
        // As Envoy: one stat per name, whoever defines it.
        if let Some(i) = self.stats.iter().position(|s| s.name == name) {
            return Some(i as u32);
        }
        let id = self.stats.len() as u32;
        self.stats.push(Stat {
            name: name.to_string(),
            kind,
            value: 0,
        });
        Some(id)
    }

    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.record(Call::IncrementMetric(id));
        if let Some(s) = self.stats.get_mut(id as usize) {
            s.value = s.value.saturating_add(delta);
        }
    }

    fn set_tick_period(&mut self, millis: u64) -> Result<(), String> {
        self.record(Call::SetTickPeriod(millis));
        self.tick_period_ms = Some(millis);
        Ok(())
    }

    fn done(&mut self) {
        self.record(Call::Done);
        self.done_called = true;
    }

    fn memory_bytes(&mut self) -> u64 {
        self.record(Call::MemoryBytes);
        self.memory_bytes
    }

    fn random_seed(&mut self) -> [u8; 32] {
        self.record(Call::RandomSeed);
        [self.seed; 32]
    }

    fn environment(&mut self, name: &str) -> Option<String> {
        self.record(Call::Environment(name.to_string()));
        self.environment.get(name).cloned()
    }

    fn shared_data(&mut self, key: &str) -> Option<Vec<u8>> {
        self.shared_data_cas(key).map(|(value, _)| value)
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        self.record(Call::SetSharedData(key.to_string()));
        self.shared.set(key, value, 0);
    }

    fn shared_data_cas(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        // (The key is copied only when calls are recorded: allocation counts stay the
        // filter's own.)
        if self.recording {
            self.record(Call::SharedData(key.to_string()));
        }
        self.shared.get(key)
    }

    fn set_shared_data_if(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        self.record(Call::SetSharedDataIf(key.to_string()));
        self.shared.set(key, value, cas)
    }

    fn send_response(&mut self, response: &LocalResponse<'_>) {
        self.record(Call::SendResponse(response.status));
        self.responses.push(SentResponse {
            status: response.status,
            headers: pairs(response.headers),
            body: response.body.to_vec(),
        });
    }
}

/// The calls one exchange made, per callback, in Envoy's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeCalls {
    pub request_headers: Vec<Call>,
    pub request_body: Vec<Call>,
    pub response_headers: Vec<Call>,
    pub response_body: Vec<Call>,
    pub log: Vec<Call>,
}

impl ExchangeCalls {
    /// Calls in all callbacks.
    pub fn total(&self) -> usize {
        self.callbacks().iter().map(|(_, calls)| calls.len()).sum()
    }

    /// Each callback's name (as the floor filter's configuration names it) and calls.
    pub fn callbacks(&self) -> [(&'static str, &[Call]); 5] {
        [
            ("request_headers", &self.request_headers),
            ("request_body", &self.request_body),
            ("response_headers", &self.response_headers),
            ("response_body", &self.response_body),
            ("log", &self.log),
        ]
    }
}

/// The body sizes of one exchange (each sent in one chunk; 0: no body).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bodies {
    pub request: usize,
    pub response: usize,
}

/// Runs `stream` through one exchange as Envoy calls it: request headers, request body,
/// response headers, response body (each body in one chunk, ending the stream), log. The
/// host's header maps are as they were before afterwards, ready for the next exchange.
pub fn drive(stream: &mut Stream, host: &mut FakeHost, bodies: Bodies) -> ExchangeCalls {
    let headers = (host.request_headers.clone(), host.response_headers.clone());
    host.buffers.insert(BufferKind::RequestBody, vec![b'q'; bodies.request]);
    host.buffers
        .insert(BufferKind::ResponseBody, vec![b'r'; bodies.response]);
    host.take_calls();
    stream.on_request_headers(host, bodies.request == 0);
    let request_headers = host.take_calls();
    if bodies.request > 0 {
        stream.on_request_body(host, bodies.request, true);
    }
    let request_body = host.take_calls();
    stream.on_response_headers(host, bodies.response == 0);
    let response_headers = host.take_calls();
    if bodies.response > 0 {
        stream.on_response_body(host, bodies.response, true);
    }
    let response_body = host.take_calls();
    stream.on_log(host);
    let log = host.take_calls();
    (host.request_headers, host.response_headers) = headers;
    ExchangeCalls {
        request_headers,
        request_body,
        response_headers,
        response_body,
        log,
    }
}
