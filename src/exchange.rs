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

    pub fn method(&self) -> &[u8] {
        self.headers.at(self.method)
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

/// Envoy's response flags (`response.flags`), the bits this filter interprets.
pub mod flags {
    pub const LOCAL_RESET: u64 = 0x8;
    pub const UPSTREAM_REMOTE_RESET: u64 = 0x10;
    pub const UPSTREAM_CONNECTION_TERMINATION: u64 = 0x40;
    pub const STREAM_IDLE_TIMEOUT: u64 = 0x1_0000;
    pub const DOWNSTREAM_PROTOCOL_ERROR: u64 = 0x4_0000;
    pub const UPSTREAM_MAX_STREAM_DURATION: u64 = 0x8_0000;
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
}

/// What Envoy reports once the exchange is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// When the first byte of the request arrived (`request.time`), unix nanoseconds.
    pub start_unix_nanos: u64,
    /// Envoy's own request duration (`request.duration`).
    pub duration_nanos: u64,
    /// HTTP status sent to the client; 0 when no response was sent.
    pub response_code: u32,
    /// `response.flags`.
    pub response_flags: u64,
    /// Request body bytes received (`request.size`).
    pub request_body_bytes: u64,
    /// Response body bytes sent (`response.size`).
    pub response_body_bytes: u64,
    /// `xds.route_name`, when the route has a name.
    pub route_name: Option<Vec<u8>>,
    /// Client address without the port (`source.address`), only read when it is logged.
    pub client_ip: Option<Vec<u8>>,
}

impl Outcome {
    /// Successful: a status below 400 that reached the client in full (as APIM counts it).
    pub fn success(&self) -> bool {
        (1..400).contains(&self.response_code) && self.response_flags & flags::RESPONSE_CUT_SHORT == 0
    }
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
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
        let ok = Outcome { response_code: 200, ..Default::default() };
        assert!(ok.success());
        assert!(!Outcome { response_code: 404, ..Default::default() }.success());
        assert!(!Outcome { response_code: 0, ..Default::default() }.success());
        let cut = Outcome { response_flags: flags::DOWNSTREAM_CONNECTION_TERMINATION, ..ok.clone() };
        assert!(!cut.success());
        assert!(!Outcome { response_flags: flags::UPSTREAM_REMOTE_RESET, ..ok }.success());
    }

    #[test]
    fn client_ip_drops_the_port() {
        assert_eq!(ip_of_address(b"10.1.2.3:5555"), b"10.1.2.3");
        assert_eq!(ip_of_address(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(ip_of_address(b"2001:db8::1"), b"2001:db8::1");
        assert_eq!(ip_of_address(b"10.1.2.3"), b"10.1.2.3");
    }
}
