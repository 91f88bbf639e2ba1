//! The Dependency item (`RemoteDependencyData`): the gateway's call to the backend, one per
//! exchange that reached out to one (APIM sends one per forwarded request).
//!
//! - `id`: the span id the backend received in its correlation header, so the backend's
//!   own Request item names it as parent and the end-to-end view links them;
//! - `name`: `METHOD /backend-path`, the path as sent upstream (after route rewrites),
//!   ids templated like the Request's name;
//! - `target`: the host the gateway called ([`super::target`]; the Envoy cluster is the
//!   `Envoy Cluster` property); `data`: the URL as sent upstream, on that host; `type`:
//!   `HTTP`;
//! - `duration`: the backend call's latency (see [`Backend::latency_nanos`]);
//! - `resultCode`: the backend's status, or the failure kind when it never answered
//!   (`Timeout`, `BackendConnectionFailure`, …); properties `Backend Address` and,
//!   when Envoy retried, `Attempts`.

use super::envelope::{self, Head, Kind, Members};
use super::failure;
use super::request::push_url_limited;
use super::{limits, Facts, Sender};
use crate::exchange::{Backend, Outcome};
use crate::json::{push_bytes, push_key, push_u64};
use crate::metrics::catalog::{Standard, PROCESSED_BY as MARK};
use crate::timefmt::push_timespan;

/// Longest `data` the schema accepts.
const MAX_DATA: usize = 8192;

/// Appends one Dependency envelope for `backend`.
pub fn write(out: &mut Vec<u8>, who: &Sender, facts: &Facts<'_>, backend: &Backend) {
    let (start, duration) = timing(facts, backend);
    let head = Head {
        kind: Kind::Dependency,
        time_unix_nanos: start,
        parent_id: facts.child_parent(),
        sample_rate: facts.sample_rate,
    };
    envelope::begin(out, who, facts, &head);
    out.extend_from_slice(b",\"id\":\"");
    out.extend_from_slice(facts.operation.dependency_id.as_bytes());
    out.extend_from_slice(b"\",");
    write_call(out, facts, backend);
    out.extend_from_slice(b",\"duration\":\"");
    push_timespan(out, duration);
    out.extend_from_slice(b"\",\"resultCode\":\"");
    write_result(out, facts.outcome);
    write_properties(out, facts, backend);
    envelope::end(out);
}

/// When the backend call started and how long it took: its latency, within the exchange
/// (the backend call ends about when the exchange ends).
fn timing(facts: &Facts<'_>, backend: &Backend) -> (u64, u64) {
    let oc = facts.outcome;
    let duration = duration(oc, backend);
    (oc.start_unix_nanos + (oc.duration_nanos - duration), duration)
}

/// How long the backend call took: its latency, within the exchange's duration.
pub fn duration(oc: &Outcome, backend: &Backend) -> u64 {
    backend
        .latency_nanos
        .filter(|&l| l > 0)
        .unwrap_or(oc.duration_nanos)
        .min(oc.duration_nanos)
}

/// What the upstream request says, else what the client sent.
fn or_client<'a>(upstream: &'a [u8], client: &'a [u8]) -> &'a [u8] {
    if upstream.is_empty() {
        client
    } else {
        upstream
    }
}

/// `name`, `type`, `target` and `data`: the request as the backend received it (what the
/// client sent where the upstream request does not say).
fn write_call(out: &mut Vec<u8>, facts: &Facts<'_>, backend: &Backend) {
    let (fe, sent) = (facts.frontend, &backend.request);
    let path = or_client(sent.path(), fe.path());
    let name = super::naming::request_line(fe.method(), path, facts.templated_names);
    push_key(out, "name");
    push_bytes(out, &name, limits::NAME);
    out.extend_from_slice(b",\"type\":\"HTTP\",");
    push_key(out, "target");
    push_bytes(out, &backend.target, limits::NAME);
    out.push(b',');
    push_key(out, "data");
    let scheme: &[u8] = if backend.tls { b"https" } else { b"http" };
    // The URL as sent, on the host actually called.
    let authority = if backend.target.is_empty() {
        or_client(sent.authority(), fe.authority())
    } else {
        &backend.target
    };
    let path_and_query = or_client(sent.path_and_query(), fe.path_and_query());
    push_url_limited(
        out,
        scheme,
        authority,
        &facts.masking.path_and_query(path_and_query),
        MAX_DATA,
    );
}

/// `resultCode` (inside its opened quotes) and `success`: the backend's own status when it
/// answered (even if Envoy then gave up, e.g. retries exhausted); the failure kind when it
/// never did or no response came at all.
fn write_result(out: &mut Vec<u8>, oc: &Outcome) {
    let success = push_result_code(out, oc);
    out.extend_from_slice(if success {
        b"\",\"success\":true"
    } else {
        b"\",\"success\":false"
    });
}

/// Appends the backend call's `resultCode` (unescaped: a number or a failure kind's name)
/// and says whether the call succeeded. The standard metrics use it too.
pub fn push_result_code(out: &mut Vec<u8>, oc: &Outcome) -> bool {
    let (code, success) = result_code(oc);
    match code {
        ResultCode::Status(status) => push_u64(out, u64::from(status)),
        ResultCode::Failure(name) => out.extend_from_slice(name.as_bytes()),
    }
    success
}

/// A backend call's `resultCode`: its status, or the kind of failure when it gave none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Status(u32),
    Failure(&'static str),
}

/// The backend call's `resultCode`, and whether it succeeded: the backend's own status
/// when it answered (even if Envoy then gave up, e.g. retries exhausted); the failure kind
/// when it never did or no response came at all.
pub fn result_code(oc: &Outcome) -> (ResultCode, bool) {
    let kind = failure::classify(oc);
    let failed_kind = kind.filter(|k| k.backend_failed);
    let answered = oc.via_upstream() == Some(true);
    let code = match (failed_kind, kind) {
        (Some(k), _) if !answered => ResultCode::Failure(k.type_name),
        (_, Some(k)) if oc.response_code == 0 => ResultCode::Failure(k.type_name),
        _ => ResultCode::Status(oc.response_code),
    };
    (code, failed_kind.is_none() && (1..400).contains(&oc.response_code))
}

/// `Backend Address`, `Attempts` when Envoy retried, custom properties and captured content.
fn write_properties(out: &mut Vec<u8>, facts: &Facts<'_>, backend: &Backend) {
    let mut p = Members::new(out, "properties");
    if facts.extracted {
        p.string(MARK, Standard::Dependencies.processed_by().as_bytes());
    }
    if !backend.cluster.is_empty() {
        p.string("Envoy Cluster", &backend.cluster);
    }
    if let Some(address) = backend.address.as_deref().filter(|a| !a.is_empty()) {
        p.string("Backend Address", address);
    }
    if backend.attempts > 1 {
        p.string("Attempts", backend.attempts.to_string().as_bytes());
    }
    let mut w = crate::capture::Writer::new(&mut p, facts.masking);
    facts.write_custom(&mut w);
    if !facts.lean {
        write_capture(&mut w, facts, backend);
    }
    w.finish();
    p.finish();
}

/// The backend side of the capture settings: what was sent upstream and what came back.
fn write_capture(w: &mut crate::capture::Writer<'_, '_>, facts: &Facts<'_>, backend: &Backend) {
    let (cap, oc) = (&facts.capture, facts.outcome);
    let sent = backend.request.headers();
    w.headers("Request", &cap.backend_request.headers, sent);
    if let Some(h) = facts.backend_response_headers {
        w.headers("Response", &cap.backend_response.headers, h);
    }
    if let Some(b) = facts.request_body {
        w.body(
            "Request",
            b,
            cap.backend_request.body_bytes,
            oc.request_body_bytes,
            Some(sent),
        );
    }
    if let Some(b) = facts.response_body {
        w.body(
            "Response",
            b,
            cap.backend_response.body_bytes,
            oc.response_body_bytes,
            facts.backend_response_headers,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{flags, Backend, Outcome};
    use crate::telemetry::request::tests::{facts, frontend, op, outcome, render, standard_frontend};

    fn backend() -> Backend {
        Backend {
            attempts: 1,
            cluster: b"orders_service".to_vec(),
            address: Some(b"10.1.0.5:8080".to_vec()),
            latency_nanos: Some(10_000_000),
            tls: false,
            request: frontend(&[(":path", b"/v2/orders?id=7"), (":authority", b"orders.internal")]),
            // The route rewrote the host (the client asked the gateway's own).
            target: b"orders.internal".as_slice().into(),
        }
    }

    #[test]
    fn dependency_describes_the_call_as_the_backend_saw_it() {
        let (fe, oc, op, be) = (standard_frontend(), outcome(), op(), backend());
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"POST /orders"), &be));
        assert_eq!(v["name"], "Microsoft.ApplicationInsights.RemoteDependency");
        assert_eq!(
            v["tags"]["ai.operation.parentId"],
            "0a".repeat(8),
            "parented to the request"
        );
        assert_eq!(v["tags"]["ai.operation.id"], "4b".repeat(16));
        let d = &v["data"]["baseData"];
        assert_eq!(v["data"]["baseType"], "RemoteDependencyData");
        assert_eq!(d["id"], "0d".repeat(8));
        assert_eq!(d["name"], "POST /v2/orders");
        assert_eq!(d["type"], "HTTP");
        assert_eq!(d["target"], "orders.internal", "the host called");
        assert_eq!(d["data"], "http://orders.internal/v2/orders?id=7");
        assert_eq!(d["properties"]["Envoy Cluster"], "orders_service");
        assert_eq!(d["duration"], "00:00:00.0100000");
        assert_eq!(d["resultCode"], "201");
        assert_eq!(d["success"], true);
        assert_eq!(d["properties"]["Backend Address"], "10.1.0.5:8080");
        assert!(d["properties"].get("Attempts").is_none());
        // Starts 2.3 ms after the request (12.3 ms total, 10 ms backend).
        assert_eq!(v["time"], "2023-11-14T22:13:20.125802Z");
    }

    #[test]
    fn a_backend_that_never_answered_reports_the_failure_kind() {
        let (fe, op) = (standard_frontend(), op());
        let oc = Outcome {
            response_code: 504,
            response_flags: flags::UPSTREAM_REQUEST_TIMEOUT,
            ..outcome()
        };
        let be = Backend {
            latency_nanos: None,
            attempts: 3,
            tls: true,
            ..backend()
        };
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"x"), &be));
        let d = &v["data"]["baseData"];
        assert_eq!(d["resultCode"], "Timeout");
        assert_eq!(d["success"], false);
        assert_eq!(
            d["duration"], "00:00:00.0123456",
            "no backend latency: the whole exchange"
        );
        assert_eq!(d["properties"]["Attempts"], "3");
        assert!(d["data"].as_str().unwrap().starts_with("https://"));
    }

    #[test]
    fn exhausted_retries_keep_the_backends_last_status() {
        let (fe, op, be) = (standard_frontend(), op(), backend());
        let oc = Outcome {
            response_code: 503,
            response_flags: flags::UPSTREAM_RETRY_LIMIT_EXCEEDED,
            code_details: Some(b"via_upstream".to_vec()),
            ..outcome()
        };
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"x"), &be));
        assert_eq!(v["data"]["baseData"]["resultCode"], "503");
        assert_eq!(v["data"]["baseData"]["success"], false);
    }

    #[test]
    fn backend_errors_fail_the_dependency_and_client_hangups_do_not() {
        let (fe, op, be) = (standard_frontend(), op(), backend());
        let oc = Outcome {
            response_code: 500,
            code_details: Some(b"via_upstream".to_vec()),
            ..outcome()
        };
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"x"), &be));
        assert_eq!(
            (
                v["data"]["baseData"]["resultCode"].as_str(),
                v["data"]["baseData"]["success"].as_bool()
            ),
            (Some("500"), Some(false))
        );
        let oc = Outcome {
            response_code: 200,
            response_flags: flags::DOWNSTREAM_CONNECTION_TERMINATION,
            ..outcome()
        };
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"x"), &be));
        assert_eq!(
            v["data"]["baseData"]["success"], true,
            "the backend answered; the client left"
        );
        let oc = Outcome {
            response_code: 0,
            response_flags: flags::DOWNSTREAM_CONNECTION_TERMINATION,
            ..outcome()
        };
        let v = render(|out, who| write(out, who, &facts(&fe, &oc, &op, b"x"), &be));
        assert_eq!(
            v["data"]["baseData"]["resultCode"], "ClientConnectionFailure",
            "no response at all"
        );
        assert_eq!(v["data"]["baseData"]["success"], false);
    }
}
