//! What the core asks of the host it runs in, and nothing more: read an attribute, a
//! header map or a buffer; set or remove a header; answer a request locally; read the
//! clock; start an HTTP callout; define and move a stat; read and compare-and-swap shared
//! data; a few lifecycle calls.
//!
//! The pipeline reaches Envoy only through [`Host`] (its log lines excepted: they go
//! through the `log` crate, which the proxy-wasm SDK routes to Envoy's log, and are not
//! counted as calls), so the order and number of calls per request — most of what the filter costs, each call about a microsecond of leaving the
//! VM and coming back — is decided in the core ([`crate::pipeline::stream`]) and tested
//! there: `filter/host.rs` implements the trait once with the proxy-wasm ABI, and
//! [`fake::FakeHost`] (host builds only) answers from memory and records every call.

mod counted;
#[cfg(not(target_arch = "wasm32"))]
pub mod fake;
#[cfg(not(target_arch = "wasm32"))]
pub mod shared_store;

pub use counted::Counted;

use crate::headers::HeaderMap;
use std::borrow::Cow;

/// Counter (only grows) or gauge (goes up and down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// Envoy's id for an HTTP callout the filter started (`dispatch_http_call`); its answer
/// comes back with the same id. Not to be confused with Entra ID *tokens*
/// ([`crate::managed_identity`]).
pub type CalloutId = u32;

/// The Envoy attributes the filter reads
/// (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    RequestTime,
    RequestDuration,
    RequestSize,
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    ResponseSize,
    ResponseBackendLatency,
    SourceAddress,
    UpstreamAddress,
    UpstreamRequestAttemptCount,
    UpstreamTlsVersion,
    ClusterName,
    RouteName,
    RouteMetadataApi,
    RouteMetadataOperation,
    VirtualHostMetadataApi,
    NodeCluster,
    NodeId,
    NodeRegion,
}

impl Attribute {
    /// The attribute's path as the ABI takes it: segments joined with NUL.
    pub fn path(self) -> &'static [u8] {
        match self {
            Attribute::RequestTime => b"request\0time",
            Attribute::RequestDuration => b"request\0duration",
            Attribute::RequestSize => b"request\0size",
            Attribute::ResponseCode => b"response\0code",
            Attribute::ResponseCodeDetails => b"response\0code_details",
            Attribute::ResponseFlags => b"response\0flags",
            Attribute::ResponseSize => b"response\0size",
            Attribute::ResponseBackendLatency => b"response\0backend_latency",
            Attribute::SourceAddress => b"source\0address",
            Attribute::UpstreamAddress => b"upstream\0address",
            Attribute::UpstreamRequestAttemptCount => b"upstream\0request_attempt_count",
            Attribute::UpstreamTlsVersion => b"upstream\0tls_version",
            Attribute::ClusterName => b"xds\0cluster_name",
            Attribute::RouteName => b"xds\0route_name",
            Attribute::RouteMetadataApi => b"xds\0route_metadata\0filter_metadata\0appinsights\0api",
            Attribute::RouteMetadataOperation => b"xds\0route_metadata\0filter_metadata\0appinsights\0operation",
            Attribute::VirtualHostMetadataApi => b"xds\0virtual_host_metadata\0filter_metadata\0appinsights\0api",
            Attribute::NodeCluster => b"xds\0node\0cluster",
            Attribute::NodeId => b"xds\0node\0id",
            Attribute::NodeRegion => b"xds\0node\0locality\0region",
        }
    }

    /// Envoy's dotted name (`response.code`), for people and the benchmark's floor filter.
    pub fn dotted(self) -> String {
        self.path()
            .iter()
            .map(|&b| if b == 0 { '.' } else { char::from(b) })
            .collect()
    }
}

/// The header maps the filter reads or changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderMapKind {
    /// The request (as the client sent it at request headers; as sent upstream at log time).
    Request,
    Response,
    /// The answer to a callout.
    CalloutResponse,
}

/// The buffers the filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferKind {
    PluginConfiguration,
    /// The current chunk of the request body.
    RequestBody,
    /// The current chunk of the response body.
    ResponseBody,
    CalloutResponseBody,
}

/// An HTTP callout to start.
#[derive(Debug)]
pub struct Callout<'a> {
    pub cluster: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Cow<'a, [u8]>,
    pub timeout_ms: u64,
}

/// A response the filter gives itself, instead of passing the request on (Envoy's local
/// reply).
#[derive(Debug, Clone, Copy)]
pub struct LocalResponse<'a> {
    pub status: u32,
    /// Envoy's `response_code_details` for it (access logs): one token, no spaces.
    pub details: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Envoy, as the core sees it. Every call may fail without harm: reads return `None` or
/// an empty map, writes are best effort (the stream must go on).
pub trait Host {
    /// An attribute's value (`None`: not available for this exchange).
    fn property(&mut self, attribute: Attribute) -> Option<Vec<u8>>;
    /// A whole header map in one call; an unavailable map reads as empty.
    fn header_map(&mut self, map: HeaderMapKind) -> HeaderMap;
    /// Sets (replaces) a header.
    fn set_header(&mut self, map: HeaderMapKind, name: &str, value: &[u8]);
    fn remove_header(&mut self, map: HeaderMapKind, name: &str);
    /// Up to `max` bytes of a buffer.
    fn buffer(&mut self, buffer: BufferKind, max: usize) -> Option<Vec<u8>>;
    /// Wall-clock time, unix nanoseconds (0 if unavailable).
    fn now_nanos(&mut self) -> u64;
    /// Starts a callout; the error says why Envoy refused it.
    fn dispatch(&mut self, callout: &Callout<'_>) -> Result<CalloutId, String>;
    /// Defines (or finds) a stat; `None` if Envoy refused.
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    /// Moves a stat by `delta` (counters only grow: callers pass positive deltas for them).
    fn increment_metric(&mut self, id: u32, delta: i64);
    /// How often the root context's tick runs.
    fn set_tick_period(&mut self, millis: u64) -> Result<(), String>;
    /// Tells Envoy that a root context which deferred its teardown is finished.
    fn done(&mut self);
    /// Bytes of this VM's linear memory.
    fn memory_bytes(&mut self) -> u64;
    /// 32 bytes of entropy.
    fn random_seed(&mut self) -> [u8; 32];
    /// An environment variable the VM was given.
    fn environment(&mut self, name: &str) -> Option<String>;
    /// A value every worker of the plugin's VM sees (Envoy's shared data).
    fn shared_data(&mut self, key: &str) -> Option<Vec<u8>>;
    /// Sets a shared value (best effort: a failure is not an error for telemetry).
    fn set_shared_data(&mut self, key: &str, value: &[u8]);
    /// A shared value with its version (Envoy's `cas`), for [`Host::set_shared_data_if`].
    fn shared_data_cas(&mut self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Sets a shared value only if it still has version `cas` (Envoy's compare-and-swap):
    /// `false` when another worker wrote it since it was read, or Envoy refused. As in
    /// Envoy, `cas` 0 writes whatever the key holds, and a key that does not exist yet is
    /// written whatever `cas` says: creating a key cannot be compare-and-swapped.
    fn set_shared_data_if(&mut self, key: &str, value: &[u8], cas: u32) -> bool;
    /// Answers the current request (request headers only) with `response`: the request
    /// goes no further; the caller stops the filter chain.
    fn send_response(&mut self, response: &LocalResponse<'_>);

    /// The value at an attribute path given at run time (segments joined with NUL), such
    /// as a value of the dynamic metadata. Hosts that have none answer `None`.
    fn property_at(&mut self, _path: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// An integer, timestamp or duration attribute (8 bytes, little-endian).
    fn property_u64(&mut self, attribute: Attribute) -> Option<u64> {
        let bytes: [u8; 8] = self.property(attribute)?.as_slice().try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }
}
