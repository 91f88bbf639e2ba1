//! Correlation headers: valid `traceparent`, `Request-Id` and `Request-Context` values with
//! a field replaced, bytes mutated or padded to the lengths the parsers cut at, sent once,
//! twice or not at all, read under each protocol directly and through the pipeline. Every
//! continued operation id is valid for its protocol, and what is sent upstream parses back.

use crate::configuration::LOCAL_CS;
use crate::mutate::{mutate_bytes, string};
use crate::runner::{fuzz, show, Findings, Report, Rng};
use envoy_appinsights::config::Config;
use envoy_appinsights::correlation::{self, IdText, Incoming, Protocol};
use envoy_appinsights::exchange::Frontend;
use envoy_appinsights::headers::HeaderMap;
use envoy_appinsights::pipeline::{Pipeline, Roles, RouteInfo};
use serde_json::json;
use std::sync::OnceLock;

/// Valid `traceparent` values: sampled, not sampled, a later version with more fields,
/// surrounded by optional whitespace.
const TRACEPARENTS: &[&str] = &[
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future-field",
    " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
];

/// `Request-Id` values: hierarchical (W3C-compatible and not), flat, base64 characters.
const REQUEST_IDS: &[&str] = &[
    "|4bf92f3577b34da6a3ce929d0e0e4736.00f067aa0ba902b7.",
    "|root-1.abc.",
    "|8ac1ffd3-e3a6a6e4d7f9aa5c.1.",
    "|a.b.c.d.e.f.",
    "abc123",
    "Zm9vYmFy+/=",
    "|a:b#c_d.",
];

/// `Request-Context` values: an application id, with other entries, empty, another version.
const REQUEST_CONTEXTS: &[&str] = &[
    "appId=cid-v1:1234-abcd",
    "appId=cid-v1:8ac1ffd3-e3a6-a6e4-d7f9-aa5c00000000",
    "roleName=frontend, appId = cid-v1:app ,x=y",
    "appId=cid-v1:",
    "appId=cid-v2:x",
];

/// What ids are made of, and what breaks them.
const HEX_TOKENS: &[&[u8]] = &[
    b"0", b"f", b"F", b"g", b"-", b"--", b"00", b"ff", b"|", b".", b" ", b"\t", b"\0", b",",
];

/// A header value: a valid one with a field replaced, or its bytes mutated, or padded to
/// the lengths the parsers cut at.
fn correlation_value(rng: &mut Rng, seeds: &[&str]) -> Vec<u8> {
    let seed = *rng.pick(seeds);
    let mut v = seed.as_bytes().to_vec();
    match rng.below(5) {
        0 => {}
        1 => {
            // Replace one `-` or `.` separated field.
            let sep = if seed.contains('-') { '-' } else { '.' };
            let mut fields: Vec<String> = seed.split(sep).map(str::to_string).collect();
            let i = rng.below(fields.len());
            fields[i] = match rng.below(5) {
                0 => fields[i].to_uppercase(),
                1 => "0".repeat(fields[i].len()),
                2 => fields[i][..fields[i].len() / 2].to_string(),
                3 => format!("{}0", fields[i]),
                _ => string(rng),
            };
            v = fields.join(&sep.to_string()).into_bytes();
        }
        2 => {
            let pad = *rng.pick(&[8137usize, 8138, 8192, 8193, 1024, 1025, 128, 129, 20_000]);
            let b = *rng.pick(b" a0.");
            v.extend_from_slice(&vec![b; pad.saturating_sub(v.len())]);
        }
        _ => mutate_bytes(rng, &mut v, HEX_TOKENS),
    }
    v
}

#[derive(Debug)]
pub struct CorrelationCase {
    protocol: Protocol,
    /// Request headers, possibly with duplicates.
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

/// A protocol and the caller's correlation headers: each absent, once or twice.
pub fn correlation_case(rng: &mut Rng) -> CorrelationCase {
    let protocol = *rng.pick(&[Protocol::W3C, Protocol::Legacy, Protocol::None]);
    let mut headers = Vec::new();
    for (name, seeds) in [
        ("traceparent", TRACEPARENTS),
        ("request-id", REQUEST_IDS),
        ("request-context", REQUEST_CONTEXTS),
    ] {
        let copies = match rng.below(10) {
            0..=2 => 0,
            3..=8 => 1,
            _ => 2,
        };
        for _ in 0..copies {
            headers.push((name, correlation_value(rng, seeds)));
        }
    }
    if rng.chance(30) {
        headers.push((
            "tracestate",
            correlation_value(rng, &["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"]),
        ));
    }
    CorrelationCase { protocol, headers }
}

fn show_correlation(c: &CorrelationCase) -> String {
    let headers: Vec<String> = c.headers.iter().map(|(k, v)| format!("{k}: {}", show(v))).collect();
    format!("{:?} with [{}]", c.protocol, headers.join(", "))
}

/// An id as items and headers carry it: printable ASCII without `"` or `\`, 1-128 bytes.
pub fn is_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// `len` lowercase hexadecimal digits, not all zero (W3C ids).
pub fn is_lower_hex(id: &[u8], len: usize) -> bool {
    id.len() == len
        && id.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && id.iter().any(|&b| b != b'0')
}

/// One pipeline per protocol (the Legacy one knows its application id, so it sends
/// `Request-Context`).
fn correlation_pipelines() -> [(Protocol, Config); 3] {
    let config = |protocol: &str, cs: &str| {
        Config::from_value(&json!({"loggers": {"main": {"connection_string": cs}},
                                   "diagnostic": {"correlation_protocol": protocol}}))
        .unwrap()
    };
    [
        (Protocol::W3C, config("W3C", LOCAL_CS)),
        (
            Protocol::Legacy,
            config("Legacy", &format!("{LOCAL_CS};ApplicationId=app-42")),
        ),
        (Protocol::None, config("None", LOCAL_CS)),
    ]
}

/// The caller's headers read directly, then through a pipeline of their protocol.
fn check_correlation(c: &CorrelationCase, f: &mut Findings) {
    static PIPELINES: OnceLock<[(Protocol, Config); 3]> = OnceLock::new();
    let configs = PIPELINES.get_or_init(correlation_pipelines);
    let roles = Roles {
        role: "gw".into(),
        instance: "gw-1".into(),
        location: "Unknown".into(),
        region: None,
    };
    let first = |name: &str| c.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_slice());
    let incoming = Incoming {
        traceparent: first("traceparent"),
        request_id: first("request-id"),
        request_context: first("request-context"),
    };
    if let Some(caller) = correlation::read_caller(c.protocol, &incoming) {
        f.note("continued");
        check_caller(f, c.protocol, &caller);
    }
    if let Some(app) = incoming.request_context.and_then(correlation::request_context_app_id) {
        f.check(
            "a caller's application is cid-v1:<id>",
            app.as_str().starts_with("cid-v1:") && app.as_str().len() > 7 && is_id(app.as_bytes()),
            || format!("{app:?}"),
        );
    }
    // The same headers through the pipeline, duplicates and all.
    let config = configs.iter().find(|(p, _)| *p == c.protocol).unwrap().1.clone();
    let mut pipeline = Pipeline::new(config, &roles, [7; 32]);
    let pairs = c.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_slice()));
    let frontend = Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(pairs)));
    let (begun, injection) = pipeline.begin(&frontend, &RouteInfo::default());
    let op = begun.operation;
    let valid_operation = match c.protocol {
        Protocol::W3C | Protocol::None => is_lower_hex(op.operation_id.as_bytes(), 32),
        Protocol::Legacy => is_id(op.operation_id.as_bytes()),
    };
    f.check("the operation id is valid for its protocol", valid_operation, || {
        format!("{:?}", op.operation_id)
    });
    f.check(
        "parent, request and dependency ids are valid ids",
        op.parent_id.is_none_or(|p| is_id(p.as_bytes()))
            && is_id(op.request_id.as_bytes())
            && is_id(op.dependency_id.as_bytes()),
        || format!("{op:?}"),
    );
    if let Some(tp) = injection.traceparent {
        let parsed = correlation::parse_traceparent(&tp);
        f.check(
            "the traceparent sent upstream is valid and carries the operation",
            parsed
                .is_some_and(|(t, s, _)| IdText::trace(&t) == op.operation_id && IdText::span(&s) == op.dependency_id),
            || format!("{} for {op:?}", show(&tp)),
        );
    }
    if let Some(id) = injection.request_id {
        let id = id.as_bytes();
        f.check(
            "the Request-Id sent upstream is |<operation>.<span>. within 128 bytes",
            is_id(id) && id.starts_with(b"|") && id.ends_with(b".") && id == op.dependency_id.as_bytes(),
            || format!("{} for {op:?}", show(id)),
        );
    }
    f.check(
        "None neither reads nor injects",
        c.protocol != Protocol::None || (injection == Default::default() && op.parent_id.is_none()),
        || format!("{injection:?} {op:?}"),
    );
}

/// The correlation cases are run once for both tests below.
fn correlation_report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        fuzz(
            "correlation_headers",
            3000,
            correlation_case,
            show_correlation,
            check_correlation,
        )
    })
}

#[test]
fn correlation_headers() {
    let report = correlation_report();
    report.assert_holds(|p| p != REQUEST_ID_ROOT);
    assert!(
        report.noted("continued") * 10 >= report.cases,
        "too few continued: {:?}",
        report.notes
    );
}

/// What the backend reads as the operation in the `Request-Id` the filter sends must be
/// the operation the filter's own items carry.
const REQUEST_ID_ROOT: &str =
    "the Request-Id sent upstream has the operation as its root (as .NET's Activity reads it)";

/// Broken on main as of 3f2f3f8: a flat `Request-Id` (no leading `|`) that contains a `.`,
/// like `abc.def`, is taken whole as the operation (`correlation.rs`, `parse_request_id`:
/// "flat ids are their own root"), while .NET's `Activity` (and the Application Insights
/// docs' `GetOperationId`) take the root up to the first `.`, with or without `|`. The
/// filter then sends the backend `|abc.def.<span>.`, whose root is `abc`: the backend's
/// telemetry lands in another operation than the gateway's (and a second gateway running
/// this filter would split it the same way).
#[test]
fn correlation_request_ids_keep_their_root() {
    correlation_report().assert_holds(|p| p == REQUEST_ID_ROOT);
}

/// A caller's context is valid for its protocol: W3C ids are lowercase hex (and not
/// zero), Legacy ids are ids; the formatted headers parse back.
fn check_caller(f: &mut Findings, protocol: Protocol, caller: &correlation::Caller) {
    let (op, parent) = (caller.operation_id.as_bytes(), caller.parent_id.as_bytes());
    match protocol {
        Protocol::W3C => f.check(
            "a continued W3C operation is 32 lowercase hex digits with its trace id",
            is_lower_hex(op, 32)
                && caller.trace_id.is_some_and(|t| IdText::trace(&t).as_bytes() == op)
                && is_id(parent),
            || format!("{caller:?}"),
        ),
        _ => f.check(
            "a continued Legacy operation is a valid id of at most 128 bytes",
            is_id(op) && is_id(parent),
            || format!("{caller:?}"),
        ),
    }
    if let Some(t) = caller.trace_id {
        let span = envoy_appinsights::ids::SpanId([0x0a; 8]);
        let tp = correlation::format_traceparent(&t, &span, true);
        f.check(
            "a formatted traceparent parses back",
            correlation::parse_traceparent(&tp) == Some((t, span, 1)),
            || show(&tp),
        );
    }
    let span = envoy_appinsights::ids::SpanId([0x0b; 8]);
    let rid = correlation::format_request_id(&caller.operation_id, &span);
    f.check("a formatted Request-Id is a valid id", is_id(rid.as_bytes()), || {
        format!("{rid:?} from {caller:?}")
    });
    f.check(
        REQUEST_ID_ROOT,
        correlation::parse_request_id(rid.as_bytes())
            .is_some_and(|c| c.operation_id.as_bytes() == &op[..op.len().min(109)]),
        || format!("the operation {:?} is sent as {rid:?}", caller.operation_id),
    );
}
