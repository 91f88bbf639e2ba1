//! The Request item (`RequestData`): one per exchange through the gateway, as APIM sends
//! one per API call.
//!
//! - `name`: `METHOD /path` (no query: it must stay low-cardinality);
//! - `url`: the full frontend URL with scheme, host and query;
//! - `duration`: Envoy's own request duration; `responseCode`, `success` (status < 400 and
//!   delivered in full);
//! - properties `Request Id`, `HTTP Method`, `API Name` (route name), `Service Name`;
//!   measurements `Request Size` / `Response Size` (body bytes).

use super::envelope::{self, Head, Kind, Members};
use super::{limits, Identity, Operation};
use crate::exchange::{Frontend, Outcome};
use crate::json::{push_bytes, push_key, push_u64};
use crate::timefmt::push_timespan;

/// Per-diagnostic switches that change the Request item.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub log_client_ip: bool,
}

/// Appends one Request envelope (one NDJSON line) to `out`.
pub fn write(out: &mut Vec<u8>, who: &Identity, op: &Operation, fe: &Frontend, oc: &Outcome, opts: Options) {
    let mut name = Vec::with_capacity(fe.method().len() + 1 + fe.path().len());
    name.extend_from_slice(fe.method());
    name.push(b' ');
    name.extend_from_slice(fe.path());
    let client_ip = if opts.log_client_ip { oc.client_ip.as_deref() } else { None };
    let head = Head {
        kind: Kind::Request,
        time_unix_nanos: oc.start_unix_nanos,
        operation: op,
        operation_name: &name,
        client_ip,
    };
    envelope::begin(out, who, &head);
    out.extend_from_slice(b",\"id\":\"");
    out.extend_from_slice(&op.span_id.to_hex());
    out.extend_from_slice(b"\",");
    push_key(out, "name");
    push_bytes(out, &name, limits::NAME);
    out.extend_from_slice(b",\"duration\":\"");
    push_timespan(out, oc.duration_nanos);
    out.extend_from_slice(b"\",\"responseCode\":\"");
    push_u64(out, u64::from(oc.response_code));
    out.extend_from_slice(if oc.success() { b"\",\"success\":true," } else { b"\",\"success\":false," });
    push_key(out, "url");
    push_url(out, fe);
    write_properties(out, who, fe, oc);
    let mut m = Members::new(out, "measurements");
    m.number("Request Size", oc.request_body_bytes as f64);
    m.number("Response Size", oc.response_body_bytes as f64);
    m.finish();
    envelope::end(out);
}

/// `scheme://authority/path?query`, cut to the schema's 2048 characters.
fn push_url(out: &mut Vec<u8>, fe: &Frontend) {
    let mut budget = limits::URL;
    out.push(b'"');
    for part in [fe.scheme(), b"://", fe.authority(), fe.path_and_query()] {
        let (written, cut) = crate::json::push_bytes_body(out, part, budget);
        budget -= written;
        if cut {
            break;
        }
    }
    out.push(b'"');
}

fn write_properties(out: &mut Vec<u8>, who: &Identity, fe: &Frontend, oc: &Outcome) {
    let mut p = Members::new(out, "properties");
    if !fe.request_id().is_empty() {
        p.string("Request Id", fe.request_id());
    }
    p.string("HTTP Method", fe.method());
    if let Some(route) = oc.route_name.as_deref().filter(|r| !r.is_empty()) {
        p.string("API Name", route);
    }
    p.raw_string("Service Name", &who.service_name);
    p.finish();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::headers::HeaderMap;
    use crate::ids::{SpanId, TraceId};
    use serde_json::Value;

    fn frontend(pairs: &[(&str, &[u8])]) -> Frontend {
        Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(
            pairs.iter().map(|(k, v)| (k.as_bytes(), *v)),
        )))
    }

    fn op() -> Operation {
        Operation {
            trace_id: TraceId([0x4b; 16]),
            parent: None,
            span_id: SpanId([0x0a; 8]),
            sample_rate: 100.0,
        }
    }

    fn outcome() -> Outcome {
        Outcome {
            start_unix_nanos: 1_700_000_000_123_456_789,
            duration_nanos: 12_345_678,
            response_code: 201,
            request_body_bytes: 17,
            response_body_bytes: 2048,
            route_name: Some(b"orders".to_vec()),
            client_ip: Some(b"10.0.0.7".to_vec()),
            ..Default::default()
        }
    }

    fn render(fe: &Frontend, oc: &Outcome, opts: Options) -> (Vec<u8>, Value) {
        let who = Identity::new("ikey-1", "gateway", "gw-0");
        let mut out = Vec::new();
        write(&mut out, &who, &op(), fe, oc, opts);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one NDJSON line");
        let v: Value = serde_json::from_slice(&out).unwrap();
        (out, v)
    }

    fn standard_frontend() -> Frontend {
        frontend(&[
            (":method", b"POST"),
            (":scheme", b"https"),
            (":authority", b"api.example.com"),
            (":path", b"/orders?id=7&x=%20"),
            ("x-request-id", b"req-123"),
        ])
    }

    #[test]
    fn request_envelope_has_every_required_field() {
        let (_, v) = render(&standard_frontend(), &outcome(), Options::default());
        assert_eq!(v["name"], "Microsoft.ApplicationInsights.Request");
        assert_eq!(v["time"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["sampleRate"], 100);
        assert_eq!(v["iKey"], "ikey-1");
        let tags = &v["tags"];
        assert_eq!(tags["ai.operation.id"], "4b".repeat(16));
        assert_eq!(tags["ai.operation.parentId"], "4b".repeat(16));
        assert_eq!(tags["ai.operation.name"], "POST /orders");
        assert_eq!(tags["ai.cloud.role"], "gateway");
        assert_eq!(tags["ai.cloud.roleInstance"], "gw-0");
        assert_eq!(tags["ai.internal.sdkVersion"], SDK_VERSION_FOR_TEST);
        assert!(tags.get("ai.location.ip").is_none(), "client IP is off by default");
        assert_eq!(v["data"]["baseType"], "RequestData");
        let d = &v["data"]["baseData"];
        assert_eq!(d["ver"], 2);
        assert_eq!(d["id"], "0a".repeat(8));
        assert_eq!(d["name"], "POST /orders");
        assert_eq!(d["url"], "https://api.example.com/orders?id=7&x=%20");
        assert_eq!(d["duration"], "00:00:00.0123456");
        assert_eq!(d["responseCode"], "201");
        assert_eq!(d["success"], true);
        assert_eq!(d["properties"]["Request Id"], "req-123");
        assert_eq!(d["properties"]["HTTP Method"], "POST");
        assert_eq!(d["properties"]["API Name"], "orders");
        assert_eq!(d["properties"]["Service Name"], "gateway");
        assert_eq!(d["measurements"]["Request Size"], 17);
        assert_eq!(d["measurements"]["Response Size"], 2048);
    }

    const SDK_VERSION_FOR_TEST: &str = super::super::SDK_VERSION;

    #[test]
    fn client_ip_appears_only_when_enabled() {
        let (_, v) = render(&standard_frontend(), &outcome(), Options { log_client_ip: true });
        assert_eq!(v["tags"]["ai.location.ip"], "10.0.0.7");
    }

    #[test]
    fn failures_and_missing_responses_are_not_successful() {
        let (_, v) = render(&standard_frontend(), &Outcome { response_code: 503, ..outcome() }, Options::default());
        assert_eq!(v["data"]["baseData"]["success"], false);
        assert_eq!(v["data"]["baseData"]["responseCode"], "503");
        let (_, v) = render(&standard_frontend(), &Outcome { response_code: 0, ..outcome() }, Options::default());
        assert_eq!(v["data"]["baseData"]["responseCode"], "0");
        assert_eq!(v["data"]["baseData"]["success"], false);
    }

    #[test]
    fn long_and_hostile_values_are_cut_to_schema_limits_and_stay_valid_json() {
        let long_path = format!("/{}?q=\"\\\n", "a".repeat(5000));
        let fe = frontend(&[
            (":method", b"GET"),
            (":authority", b"h\xff\xfe"),
            (":path", long_path.as_bytes()),
            ("x-request-id", b"\"quoted\"\x01"),
        ]);
        let oc = Outcome { route_name: None, ..outcome() };
        let (_, v) = render(&fe, &oc, Options::default());
        let d = &v["data"]["baseData"];
        assert_eq!(d["name"].as_str().unwrap().chars().count(), limits::NAME);
        assert_eq!(d["url"].as_str().unwrap().chars().count(), limits::URL);
        assert!(d["url"].as_str().unwrap().starts_with("http://h\u{FFFD}\u{FFFD}/aaa"));
        assert_eq!(d["properties"]["Request Id"], "\"quoted\"\u{1}");
        assert!(d["properties"].get("API Name").is_none());
        assert_eq!(v["tags"]["ai.operation.name"].as_str().unwrap().chars().count(), limits::OPERATION_NAME);
    }

    #[test]
    fn a_continued_operation_points_at_the_callers_span() {
        let who = Identity::new("k", "r", "i");
        let mut out = Vec::new();
        let op = Operation { parent: Some(SpanId([0xcd; 8])), ..op() };
        write(&mut out, &who, &op, &standard_frontend(), &outcome(), Options::default());
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["tags"]["ai.operation.parentId"], "cd".repeat(8));
    }
}
