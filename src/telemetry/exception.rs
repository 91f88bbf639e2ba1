//! The Exception item (`ExceptionData`): one per failed exchange, as APIM reports one for
//! every failed request (client disconnect, gateway failure, 4xx/5xx status).
//!
//! `typeName` is a stable kind from [`super::failure`] (`Timeout`,
//! `ClientConnectionFailure`, `BackendServerError`, …); `message` says what happened in
//! words with the status, Envoy's response code details and flags; `problemId`
//! (`<kind> at <API or route>`) groups the same failure of the same API in the portal's
//! Failures view.

use super::envelope::{self, Head, Kind, Members};
use super::failure::{self, Kind as FailureKind};
use super::{limits, Facts, Sender};
use crate::exchange::flags;
use crate::json::{push_key, push_str};
use crate::metrics::catalog::{Standard, PROCESSED_BY as MARK};

/// Longest exception message and stack the schema accepts.
const MAX_MESSAGE: usize = 32_768;

/// Appends one Exception envelope describing why the exchange failed.
pub fn write(out: &mut Vec<u8>, who: &Sender, facts: &Facts<'_>, kind: &FailureKind) {
    let oc = facts.outcome;
    let head = Head {
        kind: Kind::Exception,
        time_unix_nanos: oc.start_unix_nanos.saturating_add(oc.duration_nanos),
        parent_id: facts.child_parent(),
        sample_rate: facts.sample_rate,
    };
    let where_ = location(facts);
    let message = failure::describe(kind, &facts.request_line(), oc);
    envelope::begin(out, who, facts, &head);
    out.extend_from_slice(b",\"exceptions\":[{\"id\":1,");
    push_key(out, "typeName");
    push_str(out, kind.type_name, limits::NAME);
    out.push(b',');
    push_key(out, "message");
    push_str(out, &message, if facts.lean { 1024 } else { MAX_MESSAGE });
    out.extend_from_slice(b",\"hasFullStack\":false,");
    push_key(out, "stack");
    let stack_limit = if facts.lean { 1024 } else { MAX_MESSAGE };
    push_str(out, &format!("{}\n   at {where_}", kind.type_name), stack_limit);
    out.extend_from_slice(b"}],\"severityLevel\":\"Error\",");
    push_key(out, "problemId");
    push_str(out, &format!("{} at {where_}", kind.type_name), limits::NAME);
    let mut p = Members::new(out, "properties");
    if facts.extracted {
        p.string(MARK, Standard::Exceptions.processed_by().as_bytes());
    }
    facts.write_api(&mut p);
    let fe = facts.frontend;
    if !fe.request_id().is_empty() {
        p.string("Request Id", fe.request_id());
    }
    if !fe.method().is_empty() {
        p.string("HTTP Method", fe.method());
    }
    p.string("Response Code", oc.response_code.to_string().as_bytes());
    let flag_names = flags::short_names(oc.response_flags);
    if !flag_names.is_empty() {
        p.string("Response Flags", flag_names.as_bytes());
    }
    if let Some(details) = oc.code_details.as_deref().filter(|d| !d.is_empty()) {
        p.string("Response Code Details", details);
    }
    let mut w = crate::capture::Writer::new(&mut p, facts.masking);
    facts.write_custom(&mut w);
    w.finish();
    p.finish();
    envelope::end(out);
}

/// Where it failed, low-cardinality: the API, else the route, else the backend cluster.
fn location(facts: &Facts<'_>) -> String {
    if let Some(api) = facts.api {
        return format!("API {}", api.api);
    }
    if !facts.route_name.is_empty() {
        return format!("route {}", String::from_utf8_lossy(facts.route_name));
    }
    match facts.backend {
        Some(b) if !b.cluster.is_empty() => format!("cluster {}", String::from_utf8_lossy(&b.cluster)),
        _ => "gateway".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::Outcome;
    use crate::telemetry::request::tests::{facts, op, outcome, render, standard_frontend};
    use crate::telemetry::ApiNames;

    #[test]
    fn a_lean_exception_fits_the_service_limit_whatever_the_route_is_called() {
        // A route name of escaped quotes: 33,000 of them are 66,000 bytes of JSON each time
        // they appear (stack, problem id).
        let (fe, op) = (standard_frontend(), op());
        let oc = Outcome {
            response_code: 503,
            ..outcome()
        };
        let kind = failure::classify(&oc).unwrap();
        let route = "\"".repeat(33_000).into_bytes();
        let mut f = facts(&fe, &oc, &op, b"POST /orders");
        f.route_name = &route;
        f.lean = true;
        let mut out = Vec::new();
        write(&mut out, &crate::telemetry::Sender::new("k", "r", "i"), &f, &kind);
        assert!(out.len() <= crate::telemetry::limits::ITEM_BYTES, "{} bytes", out.len());
    }

    #[test]
    fn exception_names_the_kind_what_happened_and_where() {
        let (fe, op) = (standard_frontend(), op());
        let oc = Outcome {
            response_code: 504,
            response_flags: crate::exchange::flags::UPSTREAM_REQUEST_TIMEOUT,
            code_details: Some(b"response_timeout".to_vec()),
            ..outcome()
        };
        let kind = failure::classify(&oc).unwrap();
        let mut f = facts(&fe, &oc, &op, b"orders;rev=1 - create");
        f.api = Some(ApiNames {
            api: "orders",
            revision: "1",
            operation: Some("create"),
            kind: "http",
        });
        let v = render(|out, who| write(out, who, &f, &kind));
        assert_eq!(v["name"], "Microsoft.ApplicationInsights.Exception");
        assert_eq!(
            v["tags"]["ai.operation.parentId"],
            "0a".repeat(8),
            "parented to the request"
        );
        let d = &v["data"]["baseData"];
        assert_eq!(d["exceptions"][0]["typeName"], "Timeout");
        assert_eq!(
            d["exceptions"][0]["message"],
            "POST /orders: the backend did not answer within the route timeout (status 504, response_timeout, flags UT)"
        );
        assert_eq!(d["severityLevel"], "Error");
        assert_eq!(d["problemId"], "Timeout at API orders");
        assert_eq!(d["properties"]["Response Flags"], "UT");
        assert_eq!(d["properties"]["Response Code Details"], "response_timeout");
        assert_eq!(d["properties"]["Request Id"], "req-123");
        assert_eq!(
            (&d["properties"]["API Name"], &d["properties"]["Operation Name"]),
            (&serde_json::json!("orders"), &serde_json::json!("create")),
            "APIM's API dimensions, as on the Request"
        );
        // Stamped at the end of the exchange.
        assert_eq!(v["time"], "2023-11-14T22:13:20.135802Z");
    }
}
