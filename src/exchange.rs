//! What the filter learns about one HTTP exchange, in a host-agnostic form.
//!
//! [`Frontend`] is the request as the client sent it (read once, at request headers), and
//! [`Outcome`] is what Envoy reports when the exchange is over (read at log time). Telemetry
//! items are built from these two, so the item builders never talk to Envoy.

use crate::headers::{HeaderMap, Span};

/// The client's request line and the few headers the items need, kept as slices into the
/// header buffer Envoy returned (no per-field allocation).
#[derive(Debug, Clone, Default)]
pub struct Frontend {
    headers: HeaderMap,
    method: Span,
    scheme: Span,
    authority: Span,
    path: Span,
    request_id: Span,
}

impl Frontend {
    /// Picks the fields out of a request header map in a single pass.
    pub fn from_headers(headers: HeaderMap) -> Self {
        let mut f = Frontend::default();
        for (name, value) in headers.iter() {
            let slot = match name {
                b":method" => &mut f.method,
                b":scheme" => &mut f.scheme,
                b":authority" => &mut f.authority,
                b":path" => &mut f.path,
                b"x-request-id" => &mut f.request_id,
                _ => continue,
            };
            if slot.is_empty() {
                *slot = headers.span_of(value);
            }
        }
        f.headers = headers;
        f
    }

    /// The same request with only the headers `keep` wants (and the pseudo-headers and
    /// `x-request-id` the items always use): what an exchange in flight holds, instead of
    /// a map that may carry tens of kilobytes of cookies and tokens.
    pub fn keep_only(&self, keep: impl Fn(&[u8]) -> bool) -> Frontend {
        let always = |name: &[u8]| name.starts_with(b":") || name == b"x-request-id";
        let kept = self.headers.iter().filter(|(name, _)| always(name) || keep(name));
        Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(kept)))
    }

    /// Bytes of the header map held.
    pub fn held_bytes(&self) -> usize {
        self.headers.as_bytes().len()
    }

    pub fn method(&self) -> &[u8] {
        self.headers.at(self.method)
    }

    /// `METHOD /path`, the name of the request and of its operation. A request Envoy
    /// refused before parsing it (a malformed request line, headers over its limit, an
    /// HTTP version it does not speak) has no method: it is named `HTTP`, as OpenTelemetry
    /// names a request whose method is unknown.
    pub fn request_line(&self) -> Vec<u8> {
        let (method, path) = (self.method(), self.path());
        if method.is_empty() {
            return b"HTTP".to_vec();
        }
        let path: &[u8] = if path.is_empty() { b"/" } else { path };
        let mut line = Vec::with_capacity(method.len() + 1 + path.len());
        line.extend_from_slice(method);
        line.push(b' ');
        line.extend_from_slice(path);
        line
    }

    /// `:scheme`, or `http` when Envoy did not provide one.
    pub fn scheme(&self) -> &[u8] {
        match self.headers.at(self.scheme) {
            b"" => b"http",
            s => s,
        }
    }

    pub fn authority(&self) -> &[u8] {
        self.headers.at(self.authority)
    }

    /// Path with query string, as sent.
    pub fn path_and_query(&self) -> &[u8] {
        self.headers.at(self.path)
    }

    /// Path without the query string (and without a fragment, should a client send one).
    pub fn path(&self) -> &[u8] {
        let p = self.path_and_query();
        let end = p.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(p.len());
        p.get(..end).unwrap_or(p)
    }

    /// `x-request-id` (Envoy generates one unless configured otherwise).
    pub fn request_id(&self) -> &[u8] {
        self.headers.at(self.request_id)
    }

    /// The whole request header map, for later header capture.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// Envoy's response flags (`response.flags`): bit values and short names.
pub mod flags {
    pub const LOCAL_HEALTH_CHECK_FAILED: u64 = 0x1;
    pub const NO_HEALTHY_UPSTREAM: u64 = 0x2;
    pub const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;
    pub const UPSTREAM_CONNECTION_FAILURE: u64 = 0x20;
    pub const UPSTREAM_OVERFLOW: u64 = 0x80;
    pub const NO_ROUTE_FOUND: u64 = 0x100;
    pub const DELAY_INJECTED: u64 = 0x200;
    pub const FAULT_INJECTED: u64 = 0x400;
    pub const RATE_LIMITED: u64 = 0x800;
    pub const UNAUTHORIZED_EXTERNAL_SERVICE: u64 = 0x1000;
    pub const RATELIMIT_SERVICE_ERROR: u64 = 0x2000;
    pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: u64 = 0x8000;
    pub const INVALID_ENVOY_REQUEST_HEADERS: u64 = 0x2_0000;
    pub const NO_FILTER_CONFIG_FOUND: u64 = 0x20_0000;
    pub const NO_CLUSTER_FOUND: u64 = 0x100_0000;
    pub const OVERLOAD_MANAGER: u64 = 0x200_0000;
    pub const DNS_RESOLUTION_FAILED: u64 = 0x400_0000;
    pub const DROP_OVERLOAD: u64 = 0x800_0000;
    pub const LOCAL_RESET: u64 = 0x8;
    pub const UPSTREAM_REMOTE_RESET: u64 = 0x10;
    pub const UPSTREAM_CONNECTION_TERMINATION: u64 = 0x40;
    pub const STREAM_IDLE_TIMEOUT: u64 = 0x1_0000;
    pub const DOWNSTREAM_PROTOCOL_ERROR: u64 = 0x4_0000;
    pub const UPSTREAM_MAX_STREAM_DURATION: u64 = 0x8_0000;
    /// The response came from Envoy's cache filter (`RFCF`).
    pub const RESPONSE_FROM_CACHE_FILTER: u64 = 0x10_0000;
    pub const DOWNSTREAM_CONNECTION_TERMINATION: u64 = 0x4000;
    pub const DURATION_TIMEOUT: u64 = 0x40_0000;
    pub const UPSTREAM_PROTOCOL_ERROR: u64 = 0x80_0000;
    pub const DOWNSTREAM_REMOTE_RESET: u64 = 0x1000_0000;

    /// Flags meaning the response did not reach the client in full, whatever its status.
    pub const RESPONSE_CUT_SHORT: u64 = LOCAL_RESET
        | UPSTREAM_REMOTE_RESET
        | UPSTREAM_CONNECTION_TERMINATION
        | STREAM_IDLE_TIMEOUT
        | DOWNSTREAM_PROTOCOL_ERROR
        | UPSTREAM_MAX_STREAM_DURATION
        | DOWNSTREAM_CONNECTION_TERMINATION
        | DURATION_TIMEOUT
        | UPSTREAM_PROTOCOL_ERROR
        | DOWNSTREAM_REMOTE_RESET;

    /// Flags meaning the backend call itself failed.
    pub const UPSTREAM_FAILURE: u64 = NO_HEALTHY_UPSTREAM
        | UPSTREAM_REQUEST_TIMEOUT
        | UPSTREAM_REMOTE_RESET
        | UPSTREAM_CONNECTION_FAILURE
        | UPSTREAM_CONNECTION_TERMINATION
        | UPSTREAM_OVERFLOW
        | UPSTREAM_RETRY_LIMIT_EXCEEDED
        | UPSTREAM_MAX_STREAM_DURATION
        | UPSTREAM_PROTOCOL_ERROR
        | DNS_RESOLUTION_FAILED;

    /// Envoy's short names (as in access logs' `%RESPONSE_FLAGS%`), in bit order.
    pub const SHORT_NAMES: &[(u64, &str)] = &[
        (LOCAL_HEALTH_CHECK_FAILED, "LH"),
        (NO_HEALTHY_UPSTREAM, "UH"),
        (UPSTREAM_REQUEST_TIMEOUT, "UT"),
        (LOCAL_RESET, "LR"),
        (UPSTREAM_REMOTE_RESET, "UR"),
        (UPSTREAM_CONNECTION_FAILURE, "UF"),
        (UPSTREAM_CONNECTION_TERMINATION, "UC"),
        (UPSTREAM_OVERFLOW, "UO"),
        (NO_ROUTE_FOUND, "NR"),
        (DELAY_INJECTED, "DI"),
        (FAULT_INJECTED, "FI"),
        (RATE_LIMITED, "RL"),
        (UNAUTHORIZED_EXTERNAL_SERVICE, "UAEX"),
        (RATELIMIT_SERVICE_ERROR, "RLSE"),
        (DOWNSTREAM_CONNECTION_TERMINATION, "DC"),
        (UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX"),
        (STREAM_IDLE_TIMEOUT, "SI"),
        (INVALID_ENVOY_REQUEST_HEADERS, "IH"),
        (DOWNSTREAM_PROTOCOL_ERROR, "DPE"),
        (UPSTREAM_MAX_STREAM_DURATION, "UMSDR"),
        (RESPONSE_FROM_CACHE_FILTER, "RFCF"),
        (NO_FILTER_CONFIG_FOUND, "NFCF"),
        (DURATION_TIMEOUT, "DT"),
        (UPSTREAM_PROTOCOL_ERROR, "UPE"),
        (NO_CLUSTER_FOUND, "NC"),
        (OVERLOAD_MANAGER, "OM"),
        (DNS_RESOLUTION_FAILED, "DF"),
        (DROP_OVERLOAD, "DO"),
        (DOWNSTREAM_REMOTE_RESET, "DR"),
    ];

    /// `UF,URX` for the bits set (empty when none).
    pub fn short_names(bits: u64) -> String {
        let names: Vec<&str> = SHORT_NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect();
        names.join(",")
    }
}

/// What Envoy reports once the exchange is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// When the first byte of the request arrived (`request.time`), unix nanoseconds.
    pub start_unix_nanos: u64,
    /// From `request.time` to the end of the exchange (`request.duration` when the clock
    /// cannot tell).
    pub duration_nanos: u64,
    /// HTTP status sent to the client; 0 when no response was sent.
    pub response_code: u32,
    /// `response.flags`.
    pub response_flags: u64,
    /// Request body bytes (counted by the body callbacks; `request.size` when they did not
    /// run).
    pub request_body_bytes: u64,
    /// Response body bytes (as `request_body_bytes`; `response.size`).
    pub response_body_bytes: u64,
    /// Client address without the port (`source.address`), only read when it is logged.
    pub client_ip: Option<Vec<u8>>,
    /// `response.code_details` (`via_upstream`, `route_not_found`, …), read for failures.
    pub code_details: Option<Vec<u8>>,
}

impl Outcome {
    /// Successful: a status below 400 that reached the client in full (as APIM counts it).
    pub fn success(&self) -> bool {
        (1..400).contains(&self.response_code) && self.response_flags & flags::RESPONSE_CUT_SHORT == 0
    }
}

impl Outcome {
    /// Whether the status came from the backend (`via_upstream`); `None` when not read.
    pub fn via_upstream(&self) -> Option<bool> {
        self.code_details.as_deref().map(|d| d == b"via_upstream")
    }
}

/// The call to the backend, as Envoy reports it at the end of the exchange.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    /// Attempts made (`upstream.request_attempt_count`); more than one means retries.
    pub attempts: u32,
    /// The Envoy cluster (`xds.cluster_name`).
    pub cluster: Vec<u8>,
    /// The host that served the last attempt (`upstream.address`).
    pub address: Option<Vec<u8>>,
    /// The backend call's latency: on a clean exchange, from the filter passing the request
    /// on to the end of the exchange (the filter's clock); otherwise Envoy's
    /// `response.backend_latency` (first byte sent to last byte received).
    pub latency_nanos: Option<u64>,
    /// Whether the connection to the backend used TLS (`upstream.tls_version` present;
    /// remembered per cluster for a minute).
    pub tls: bool,
    /// The request as sent upstream (after route rewrites): `:path`, `:authority`.
    pub request: Frontend,
    /// The host the gateway called, as the Dependency's `target` names it
    /// ([`crate::telemetry::target`]).
    /// Shared with the per-cluster cache: an exchange counted only in the metrics copies
    /// nothing.
    pub target: std::rc::Rc<[u8]>,
}

/// Strips the port from `ip:port` or `[v6]:port` (Envoy's `source.address`).
pub fn ip_of_address(address: &[u8]) -> &[u8] {
    if let Some(rest) = address.strip_prefix(b"[") {
        let end = rest.iter().position(|&b| b == b']').unwrap_or(rest.len());
        return rest.get(..end).unwrap_or(rest);
    }
    let colons = address.iter().filter(|&&b| b == b':').count();
    if colons == 1 {
        let end = address.iter().position(|&b| b == b':').unwrap_or(address.len());
        return address.get(..end).unwrap_or(address);
    }
    address
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontend(pairs: &[(&str, &str)]) -> Frontend {
        Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        )))
    }

    #[test]
    fn picks_request_line_fields_from_headers() {
        let f = frontend(&[
            (":authority", "api.example.com"),
            (":path", "/orders/7?expand=items#frag"),
            (":method", "PATCH"),
            (":scheme", "https"),
            ("x-request-id", "abc"),
        ]);
        assert_eq!(f.method(), b"PATCH");
        assert_eq!(f.scheme(), b"https");
        assert_eq!(f.authority(), b"api.example.com");
        assert_eq!(f.path(), b"/orders/7");
        assert_eq!(f.path_and_query(), b"/orders/7?expand=items#frag");
        assert_eq!(f.request_id(), b"abc");
    }

    #[test]
    fn missing_fields_are_empty_and_scheme_defaults_to_http() {
        let f = frontend(&[]);
        assert_eq!(f.method(), b"");
        assert_eq!(f.scheme(), b"http");
        assert_eq!(f.path(), b"");
    }

    #[test]
    fn success_needs_a_status_below_400_delivered_in_full() {
        let ok = Outcome {
            response_code: 200,
            ..Default::default()
        };
        assert!(ok.success());
        assert!(!Outcome {
            response_code: 404,
            ..Default::default()
        }
        .success());
        assert!(!Outcome {
            response_code: 0,
            ..Default::default()
        }
        .success());
        let cut = Outcome {
            response_flags: flags::DOWNSTREAM_CONNECTION_TERMINATION,
            ..ok.clone()
        };
        assert!(!cut.success());
        assert!(!Outcome {
            response_flags: flags::UPSTREAM_REMOTE_RESET,
            ..ok
        }
        .success());
    }

    #[test]
    fn flag_names_follow_envoy() {
        assert_eq!(flags::short_names(0), "");
        assert_eq!(
            flags::short_names(flags::UPSTREAM_CONNECTION_FAILURE | flags::UPSTREAM_RETRY_LIMIT_EXCEEDED),
            "UF,URX"
        );
        assert_eq!(flags::short_names(flags::DOWNSTREAM_REMOTE_RESET), "DR");
    }

    #[test]
    fn client_ip_drops_the_port() {
        assert_eq!(ip_of_address(b"10.1.2.3:5555"), b"10.1.2.3");
        assert_eq!(ip_of_address(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(ip_of_address(b"2001:db8::1"), b"2001:db8::1");
        assert_eq!(ip_of_address(b"10.1.2.3"), b"10.1.2.3");
    }
}
