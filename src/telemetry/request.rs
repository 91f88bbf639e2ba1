//! The Request item (`RequestData`): one per exchange through the gateway, as APIM sends
//! one per API call.
//!
//! - `name`: `METHOD /path` without query and with ids templated (`GET /orders/{id}`):
//!   it must stay low-cardinality ([`super::naming`]);
//! - `url`: the full frontend URL with scheme, host and query;
//! - `duration`: Envoy's own request duration; `responseCode`, `success` (status < 400 and
//!   delivered in full); `source`: the caller's application from `Request-Context`;
//! - properties `Request Id`, `HTTP Method`, `API Name` (the API, else the route name),
//!   `API Revision` and `Operation Name` for configured APIs, APIM's `API Type`, service
//!   dimensions (`Service Name`, `Service Type`, `Service ID`, `Region`) and `Cache`, and
//!   the caller's `tracestate`; measurements `Request Size` / `Response Size` (body bytes)
//!   and `Client Time (in ms)`.

use super::envelope::{self, Head, Kind, Members};
use super::{limits, Facts, Sender};
use crate::json::{push_bytes, push_key, push_u64};
use crate::metrics::catalog::{Standard, PROCESSED_BY as MARK};
use crate::timefmt::push_timespan;

/// Appends one Request envelope (one NDJSON line) to `out`.
pub fn write(out: &mut Vec<u8>, who: &Sender, facts: &Facts<'_>) {
    let (fe, oc, op) = (facts.frontend, facts.outcome, facts.operation);
    let parent = op.parent_id.as_ref().unwrap_or(&op.operation_id);
    let head = Head {
        kind: Kind::Request,
        time_unix_nanos: oc.start_unix_nanos,
        // A request that starts an operation has the operation as its parent, as the
        // classic SDKs report it (`operation_ParentId == operation_Id` marks a root).
        parent_id: parent.as_bytes(),
        sample_rate: facts.sample_rate,
    };
    envelope::begin(out, who, facts, &head);
    out.extend_from_slice(b",\"id\":\"");
    out.extend_from_slice(op.request_id.as_bytes());
    out.extend_from_slice(b"\",");
    push_key(out, "name");
    push_bytes(out, &facts.request_name(), limits::NAME);
    out.extend_from_slice(b",\"duration\":\"");
    push_timespan(out, oc.duration_nanos);
    out.extend_from_slice(b"\",\"responseCode\":\"");
    push_u64(out, u64::from(oc.response_code));
    out.extend_from_slice(if oc.success() {
        b"\",\"success\":true"
    } else {
        b"\",\"success\":false"
    });
    if !fe.authority().is_empty() {
        // A request Envoy refused unparsed has no URL to tell.
        out.extend_from_slice(b",\"url\":");
        push_url(out, fe.scheme(), fe.authority(), &facts.masked_path_and_query());
    }
    if let Some(source) = facts.source {
        out.extend_from_slice(b",\"source\":\"");
        out.extend_from_slice(source.as_bytes());
        out.push(b'"');
    }
    write_properties(out, who, facts);
    let mut m = Members::new(out, "measurements");
    m.number("Request Size", oc.request_body_bytes as f64);
    m.number("Response Size", oc.response_body_bytes as f64);
    // Whole milliseconds, as APIM writes it.
    m.number("Client Time (in ms)", (client_time_nanos(facts) / 1_000_000) as f64);
    m.finish();
    envelope::end(out);
}

/// APIM's `Client Time (in ms)`: the part of the exchange that was not the backend's (the
/// client sending the request, and the gateway's work on it); all of it without a backend.
fn client_time_nanos(facts: &Facts<'_>) -> u64 {
    let oc = facts.outcome;
    let backend = facts.backend.map_or(0, |b| super::dependency::duration(oc, b));
    oc.duration_nanos.saturating_sub(backend)
}

/// `scheme://authority/path?query` as a JSON string, cut to the schema's 2048 characters.
pub fn push_url(out: &mut Vec<u8>, scheme: &[u8], authority: &[u8], path_and_query: &[u8]) {
    push_url_limited(out, scheme, authority, path_and_query, limits::URL);
}

pub(crate) fn push_url_limited(out: &mut Vec<u8>, scheme: &[u8], authority: &[u8], path: &[u8], max: usize) {
    let mut budget = max;
    out.push(b'"');
    for part in [scheme, b"://", authority, path] {
        let (written, cut) = crate::json::push_bytes_body(out, part, budget);
        budget -= written;
        if cut {
            break;
        }
    }
    out.push(b'"');
}

fn write_properties(out: &mut Vec<u8>, who: &Sender, facts: &Facts<'_>) {
    let fe = facts.frontend;
    let mut p = Members::new(out, "properties");
    if facts.extracted {
        p.string(MARK, Standard::Requests.processed_by().as_bytes());
    }
    if !fe.request_id().is_empty() {
        p.string_limited("Request Id", fe.request_id(), 256);
    }
    if !fe.method().is_empty() {
        p.string("HTTP Method", fe.method());
    }
    facts.write_api(&mut p);
    p.string("API Type", facts.api.map_or("http", |a| a.kind).as_bytes());
    for (i, (name, value)) in super::SERVICE_PROPERTIES.iter().zip(&who.service).enumerate() {
        // A static custom property of the same name wins (`properties: {"Region": …}`),
        // unless the item is lean (it carries no custom properties).
        if !value.is_empty() && (facts.service_overrides & (1 << i) == 0 || facts.lean) {
            p.raw_string(name, value);
        }
    }
    let cached = facts.outcome.response_flags & crate::exchange::flags::RESPONSE_FROM_CACHE_FILTER != 0;
    p.string("Cache", if cached { b"Hit" } else { b"None" });
    if let Some(state) = facts.tracestate.filter(|s| !s.is_empty() && !facts.lean) {
        // W3C: vendors keep at least 512 characters of tracestate.
        p.string_limited("tracestate", state, 512);
    }
    let mut w = crate::capture::Writer::new(&mut p, facts.masking);
    facts.write_custom(&mut w);
    if !facts.lean {
        write_capture(&mut w, facts);
    }
    w.finish();
    p.finish();
}

/// The frontend side of the capture settings: what the client sent and received.
fn write_capture(w: &mut crate::capture::Writer<'_, '_>, facts: &Facts<'_>) {
    let (cap, oc) = (&facts.capture, facts.outcome);
    let request_headers = facts.frontend.headers();
    w.headers("Request", &cap.frontend_request.headers, request_headers);
    if let Some(h) = facts.response_headers {
        w.headers("Response", &cap.frontend_response.headers, h);
    }
    if let Some(b) = facts.request_body {
        w.body(
            "Request",
            b,
            cap.frontend_request.body_bytes,
            oc.request_body_bytes,
            Some(request_headers),
        );
    }
    if let Some(b) = facts.response_body {
        w.body(
            "Response",
            b,
            cap.frontend_response.body_bytes,
            oc.response_body_bytes,
            facts.response_headers,
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::correlation::IdText;
    use crate::exchange::{Frontend, Outcome};
    use crate::headers::HeaderMap;
    use crate::telemetry::{ApiNames, Operation, SDK_VERSION};
    use serde_json::Value;

    pub(crate) fn frontend(pairs: &[(&str, &[u8])]) -> Frontend {
        Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(
            pairs.iter().map(|(k, v)| (k.as_bytes(), *v)),
        )))
    }

    pub(crate) fn op() -> Operation {
        Operation {
            operation_id: IdText::new(&[b'4', b'b'].repeat(16)).unwrap(),
            parent_id: None,
            request_id: IdText::new(&[b'0', b'a'].repeat(8)).unwrap(),
            dependency_id: IdText::new(&[b'0', b'd'].repeat(8)).unwrap(),
        }
    }

    pub(crate) fn outcome() -> Outcome {
        Outcome {
            start_unix_nanos: 1_700_000_000_123_456_789,
            duration_nanos: 12_345_678,
            response_code: 201,
            request_body_bytes: 17,
            response_body_bytes: 2048,
            client_ip: Some(b"10.0.0.7".to_vec()),
            ..Default::default()
        }
    }

    pub(crate) fn standard_frontend() -> Frontend {
        frontend(&[
            (":method", b"POST"),
            (":scheme", b"https"),
            (":authority", b"api.example.com"),
            (":path", b"/orders?id=7&x=%20"),
            ("x-request-id", b"req-123"),
        ])
    }

    pub(crate) fn facts<'a>(fe: &'a Frontend, oc: &'a Outcome, op: &'a Operation, name: &'a [u8]) -> Facts<'a> {
        Facts {
            frontend: fe,
            outcome: oc,
            backend: None,
            response_headers: None,
            operation: op,
            operation_name: name,
            api: None,
            route_name: b"orders",
            client_ip: None,
            source: None,
            sample_rate: 100.0,
            properties_json: b"",
            header_properties: &[],
            dynamic_properties: &[],
            capture: &NO_CAPTURE,
            masking: &DEFAULT_MASKING,
            request_body: None,
            response_body: None,
            backend_response_headers: None,
            tracestate: fe.headers().get(b"tracestate"),
            request_written: true,
            metadata: &[],
            extracted: false,
            templated_names: true,
            service_overrides: 0,
            lean: false,
        }
    }

    pub(crate) static NO_CAPTURE: crate::config::Capture = crate::config::Capture {
        frontend_request: crate::config::MessageCapture {
            headers: Vec::new(),
            body_bytes: 0,
        },
        frontend_response: crate::config::MessageCapture {
            headers: Vec::new(),
            body_bytes: 0,
        },
        backend_request: crate::config::MessageCapture {
            headers: Vec::new(),
            body_bytes: 0,
        },
        backend_response: crate::config::MessageCapture {
            headers: Vec::new(),
            body_bytes: 0,
        },
    };
    pub(crate) static DEFAULT_MASKING: std::sync::LazyLock<crate::masking::Masking> =
        std::sync::LazyLock::new(crate::masking::Masking::default);

    pub(crate) fn render(write: impl FnOnce(&mut Vec<u8>, &Sender)) -> Value {
        let who = Sender::new("ikey-1", "gateway", "gw-0");
        let mut out = Vec::new();
        write(&mut out, &who);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one NDJSON line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_request_envoy_refused_unparsed_is_named_http_and_has_no_url() {
        let fe = Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(Vec::new())));
        let (oc, op) = (outcome(), op());
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"HTTP")));
        let d = &v["data"]["baseData"];
        assert_eq!(d["name"], "HTTP");
        assert!(d.get("url").is_none(), "{d:#}");
        assert!(d["properties"].get("HTTP Method").is_none());
    }

    #[test]
    fn request_envelope_has_every_required_field() {
        let (fe, oc, op) = (standard_frontend(), outcome(), op());
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"POST /orders")));
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
        assert_eq!(tags["ai.internal.sdkVersion"], SDK_VERSION);
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
        assert!(d.get("source").is_none());
        assert_eq!(d["properties"]["Request Id"], "req-123");
        assert_eq!(d["properties"]["HTTP Method"], "POST");
        assert_eq!(
            d["properties"]["API Name"], "orders",
            "the route name when no API is configured"
        );
        assert_eq!(d["properties"]["Service Name"], "gateway");
        assert_eq!(d["measurements"]["Request Size"], 17);
        assert_eq!(d["measurements"]["Response Size"], 2048);
    }

    #[test]
    fn configured_apis_name_api_revision_and_operation() {
        let (fe, oc, op) = (standard_frontend(), outcome(), op());
        let mut f = facts(&fe, &oc, &op, b"orders;rev=2 - create-order");
        f.api = Some(ApiNames {
            api: "orders",
            revision: "2",
            operation: Some("create-order"),
            kind: "soap",
        });
        let v = render(|out, who| write(out, who, &f));
        let p = &v["data"]["baseData"]["properties"];
        assert_eq!(p["API Type"], "soap", "as the API says");
        assert_eq!(p["API Name"], "orders");
        assert_eq!(p["API Revision"], "2");
        assert_eq!(p["Operation Name"], "create-order");
        assert_eq!(v["tags"]["ai.operation.name"], "orders;rev=2 - create-order");
        assert_eq!(
            v["data"]["baseData"]["name"], "POST /orders",
            "the item name stays METHOD /path"
        );
    }

    #[test]
    fn apim_dimensions_service_cache_and_client_time() {
        let (fe, op) = (standard_frontend(), op());
        let oc = Outcome {
            response_flags: crate::exchange::flags::RESPONSE_FROM_CACHE_FILTER,
            ..outcome()
        };
        let f = facts(&fe, &oc, &op, b"POST /orders");
        let service = crate::telemetry::ServiceNames {
            name: "contoso.example.com",
            kind: "API Management",
            id: "contoso",
            region: Some("West Europe"),
        };
        let who = Sender::with_service("k", "gw", "gw-0", &service);
        let mut out = Vec::new();
        write(&mut out, &who, &f);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let (p, m) = (
            &v["data"]["baseData"]["properties"],
            &v["data"]["baseData"]["measurements"],
        );
        assert_eq!(p["API Type"], "http", "no configured API: http");
        assert_eq!(p["Service Name"], "contoso.example.com");
        assert_eq!(p["Service Type"], "API Management");
        assert_eq!(p["Service ID"], "contoso");
        assert_eq!(p["Region"], "West Europe");
        assert_eq!(p["Cache"], "Hit");
        assert_eq!(m["Client Time (in ms)"], 12.0, "no backend: all of it, whole ms");
        assert_eq!(v["tags"]["ai.cloud.role"], "gw", "the role stays the role");

        let backend = crate::exchange::Backend {
            attempts: 1,
            latency_nanos: Some(10_000_000),
            ..Default::default()
        };
        let plain = outcome();
        let f = Facts {
            backend: Some(&backend),
            service_overrides: 0b1000,
            ..facts(&fe, &plain, &op, b"POST /orders")
        };
        let v = render(|out, who| write(out, who, &f));
        let (p, m) = (
            &v["data"]["baseData"]["properties"],
            &v["data"]["baseData"]["measurements"],
        );
        assert_eq!(p["Cache"], "None");
        assert_eq!(p["Service Type"], "Envoy", "the default type");
        assert_eq!(p["Service Name"], "gateway", "the role names the service by default");
        assert!(
            p.get("Region").is_none(),
            "no region known, or a custom property has it"
        );
        assert_eq!(m["Client Time (in ms)"], 2.0, "what was not the backend's");
    }

    #[test]
    fn client_ip_source_sample_rate_and_parent() {
        let (fe, oc) = (standard_frontend(), outcome());
        let op = Operation {
            parent_id: Some(IdText::new(b"00f067aa0ba902b7").unwrap()),
            ..op()
        };
        let source = IdText::new(b"cid-v1:caller").unwrap();
        let mut f = facts(&fe, &oc, &op, b"POST /orders");
        f.client_ip = Some(b"10.0.0.7");
        f.source = Some(&source);
        f.sample_rate = 12.5;
        let v = render(|out, who| write(out, who, &f));
        assert_eq!(v["tags"]["ai.location.ip"], "10.0.0.7");
        assert_eq!(v["tags"]["ai.operation.parentId"], "00f067aa0ba902b7");
        assert_eq!(v["data"]["baseData"]["source"], "cid-v1:caller");
        assert_eq!(v["sampleRate"], 12.5);
    }

    #[test]
    fn failures_and_missing_responses_are_not_successful() {
        let (fe, op) = (standard_frontend(), op());
        for (code, text) in [(503, "503"), (0, "0")] {
            let oc = Outcome {
                response_code: code,
                ..outcome()
            };
            let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"x")));
            assert_eq!(v["data"]["baseData"]["success"], false);
            assert_eq!(v["data"]["baseData"]["responseCode"], text);
        }
    }

    #[test]
    fn long_and_hostile_values_are_cut_to_schema_limits_and_stay_valid_json() {
        let long_path = format!("/{}?q=\"\\\n", "a".repeat(5000));
        let fe = frontend(&[
            (":method", b"GET"),
            (":authority", b"h\xff\xfe"),
            (":path", long_path.as_bytes()),
            ("x-request-id", b"\"quoted\"\x01"),
            ("tracestate", b"congo=t61rcWkgMzE"),
        ]);
        let (oc, op) = (outcome(), op());
        let name = fe
            .method()
            .iter()
            .chain(b" ")
            .chain(fe.path())
            .copied()
            .collect::<Vec<u8>>();
        let mut f = facts(&fe, &oc, &op, &name);
        f.route_name = b"";
        let v = render(|out, who| write(out, who, &f));
        let d = &v["data"]["baseData"];
        assert_eq!(d["name"].as_str().unwrap().chars().count(), limits::NAME);
        assert_eq!(d["url"].as_str().unwrap().chars().count(), limits::URL);
        assert!(d["url"].as_str().unwrap().starts_with("http://h\u{FFFD}\u{FFFD}/aaa"));
        assert_eq!(d["properties"]["Request Id"], "\"quoted\"\u{1}");
        assert_eq!(d["properties"]["tracestate"], "congo=t61rcWkgMzE");
        assert!(d["properties"].get("API Name").is_none());
        assert_eq!(
            v["tags"]["ai.operation.name"].as_str().unwrap().chars().count(),
            limits::OPERATION_NAME
        );
    }
}
