//! The Trace item (`MessageData`): what a trace rule (APIM's `trace` policy) says about an
//! exchange. Rules are matched and messages rendered here; rules come from
//! [`crate::config::TraceRule`].

use super::envelope::{self, Head, Kind, Members};
use super::{Facts, Sender};
use crate::config::{Conditions, Field, HeaderCondition, Segment, Template, TraceRule};
use crate::headers::HeaderMap;
use crate::json::{push_bytes, push_key, push_str};
use crate::metrics::catalog::{Standard, PROCESSED_BY as MARK};

/// Longest trace message and property value the schema accepts.
const MAX_MESSAGE: usize = 32_768;

/// Whether every condition of `rule` holds for this exchange.
pub fn matches(rule: &TraceRule, facts: &Facts<'_>) -> bool {
    holds(&rule.when, facts)
}

/// Whether every condition of `w` holds for this exchange (trace and metric rules).
pub fn holds(w: &Conditions, facts: &Facts<'_>) -> bool {
    let oc = facts.outcome;
    (w.statuses.is_empty() || w.statuses.iter().any(|s| s.matches(oc.response_code)))
        && (w.route_names.is_empty() || w.route_names.iter().any(|r| r.as_bytes() == facts.route_name))
        && w.failed.is_none_or(|failed| failed != oc.success())
        && w.min_duration_ms
            .is_none_or(|ms| oc.duration_nanos >= ms.saturating_mul(1_000_000))
        && headers_hold(&w.request_headers, Some(facts.frontend.headers()))
        && headers_hold(&w.response_headers, facts.response_headers)
}

fn headers_hold(conditions: &[HeaderCondition], map: Option<&HeaderMap>) -> bool {
    conditions
        .iter()
        .all(|c| match map.and_then(|m| m.get(c.name.as_bytes())) {
            None => false,
            Some(v) => c.equals.as_ref().is_none_or(|e| e.as_bytes() == v),
        })
}

/// Renders a template for this exchange (missing headers render as empty).
pub fn render(t: &Template, facts: &Facts<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    render_into(&mut out, t, facts);
    out
}

/// Appends a template rendered for this exchange to `out`.
pub fn render_into(out: &mut Vec<u8>, t: &Template, facts: &Facts<'_>) {
    for seg in &t.segments {
        match seg {
            Segment::Text(s) => out.extend_from_slice(s.as_bytes()),
            Segment::Field(f) => field(out, f, facts),
        }
    }
}

fn field(out: &mut Vec<u8>, f: &Field, facts: &Facts<'_>) {
    let (fe, oc) = (facts.frontend, facts.outcome);
    match f {
        Field::Method => out.extend_from_slice(fe.method()),
        Field::Path => out.extend_from_slice(fe.path()),
        Field::Url => {
            out.extend_from_slice(fe.scheme());
            out.extend_from_slice(b"://");
            out.extend_from_slice(fe.authority());
            out.extend_from_slice(&facts.masked_path_and_query());
        }
        Field::RequestHeader(name) => {
            let value = fe.headers().get(name.as_bytes()).unwrap_or_default();
            out.extend_from_slice(&facts.masking.header_value(name.as_bytes(), value).unwrap_or_default());
        }
        Field::ResponseHeader(name) => {
            let value = facts
                .response_headers
                .and_then(|h| h.get(name.as_bytes()))
                .unwrap_or_default();
            out.extend_from_slice(&facts.masking.header_value(name.as_bytes(), value).unwrap_or_default());
        }
        Field::Status => out.extend_from_slice(oc.response_code.to_string().as_bytes()),
        Field::Route => out.extend_from_slice(facts.route_name),
        Field::Api => out.extend_from_slice(facts.api.map(|a| a.api.as_bytes()).unwrap_or_default()),
        Field::Operation => out.extend_from_slice(facts.operation_name),
        Field::OperationId => out.extend_from_slice(facts.operation.operation_id.as_bytes()),
        Field::DurationMs => {
            let ms = (oc.duration_nanos / 1_000) as f64 / 1_000.0;
            out.extend_from_slice(ms.to_string().as_bytes());
        }
        Field::Cluster => out.extend_from_slice(facts.backend.map(|b| b.cluster.as_slice()).unwrap_or_default()),
        Field::Metadata(path) => {
            let Some((_, value)) = facts.metadata.iter().find(|(p, _)| p == path) else {
                return;
            };
            // Strings only: Envoy hands numbers and structures over as binary. A value is
            // masked by its key as a header of that name would be (`token`, `password`…).
            let text = std::str::from_utf8(value)
                .ok()
                .filter(|t| !t.chars().any(char::is_control));
            let key = path.segments.last().map_or("", String::as_str);
            if let Some(masked) = text.and_then(|t| facts.masking.header_value(key.as_bytes(), t.as_bytes())) {
                out.extend_from_slice(&masked);
            }
        }
    }
}

/// Appends one Trace envelope for `rule` (traces are never sampled: `sampleRate` 100).
/// The message of a trace whose template rendered to nothing (an absent header, say): the
/// service refuses an empty `message`.
pub const EMPTY_MESSAGE: &[u8] = b"(empty)";

pub fn write(out: &mut Vec<u8>, who: &Sender, facts: &Facts<'_>, rule: &TraceRule) {
    let oc = facts.outcome;
    let head = Head {
        kind: Kind::Trace,
        time_unix_nanos: oc.start_unix_nanos.saturating_add(oc.duration_nanos),
        parent_id: facts.child_parent(),
        sample_rate: 100.0,
    };
    envelope::begin(out, who, facts, &head);
    out.push(b',');
    push_key(out, "message");
    let mut message = render(&rule.message, facts);
    if message.iter().all(u8::is_ascii_whitespace) {
        // The service refuses an empty message; say that the template rendered to nothing.
        message = EMPTY_MESSAGE.to_vec();
    }
    push_bytes(out, &message, if facts.lean { 4096 } else { MAX_MESSAGE });
    out.push(b',');
    push_key(out, "severityLevel");
    push_str(out, rule.severity.level_name(), 16);
    let mut p = Members::new(out, "properties");
    if facts.extracted {
        p.string(MARK, Standard::Traces.processed_by().as_bytes());
    }
    facts.write_api(&mut p);
    if let Some(source) = &rule.source {
        p.string("Source", source.as_bytes());
    }
    if !facts.lean {
        for (name, template) in &rule.metadata {
            p.string(name, &render(template, facts));
        }
    }
    let mut w = crate::capture::Writer::new(&mut p, facts.masking);
    facts.write_custom(&mut w);
    w.finish();
    p.finish();
    envelope::end(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Conditions, Severity, StatusMatch};
    use crate::exchange::Outcome;
    use crate::telemetry::request::tests::{facts, frontend, op, outcome, render as render_item};

    fn rule(when: Conditions, message: &str) -> TraceRule {
        TraceRule {
            severity: Severity::Information,
            source: Some("policy".into()),
            when,
            message: Template::parse(message).unwrap(),
            metadata: vec![("tenant".into(), Template::parse("{request.header.x-tenant}").unwrap())],
        }
    }

    fn fe() -> crate::exchange::Frontend {
        frontend(&[
            (":method", b"GET"),
            (":authority", b"api.example.com"),
            (":path", b"/orders/7?x=1"),
            ("x-tenant", b"contoso"),
        ])
    }

    #[test]
    fn a_template_that_renders_to_nothing_still_makes_a_valid_message() {
        let r = rule(Conditions::default(), "{request.header.absent}");
        let (fe, oc, op) = (fe(), outcome(), op());
        let f = facts(&fe, &oc, &op, b"GET /orders/7");
        let v = crate::telemetry::request::tests::render(|out, who| write(out, who, &f, &r));
        assert_eq!(v["data"]["baseData"]["message"], "(empty)");
    }

    #[test]
    fn metadata_values_print_as_strings_masked_by_their_key() {
        let (fe, oc, op) = (fe(), outcome(), op());
        let path = |p: &str| match Template::parse(&format!("{{metadata.{p}}}")).unwrap().segments.pop() {
            Some(Segment::Field(Field::Metadata(path))) => path,
            other => panic!("{other:?}"),
        };
        let metadata = vec![
            (path("jwt/payload/sub"), b"alice".to_vec()),
            (path("ext/access_token"), b"eyJhbGciOi".to_vec()),
            (path("jwt/payload/exp"), 1.7e9f64.to_le_bytes().to_vec()),
        ];
        let f = Facts {
            metadata: &metadata,
            ..facts(&fe, &oc, &op, b"GET /orders/7")
        };
        let show = |t: &str| String::from_utf8(render(&Template::parse(t).unwrap(), &f)).unwrap();
        assert_eq!(show("{metadata.jwt/payload/sub}"), "alice");
        assert_eq!(show("{metadata.ext/access_token}"), "***", "a token, by its key");
        assert_eq!(
            show("[{metadata.jwt/payload/exp}]"),
            "[]",
            "a number comes as binary: left out"
        );
        assert_eq!(show("[{metadata.jwt/payload/absent}]"), "[]");
    }

    #[test]
    fn conditions_must_all_hold() {
        let (fe, op) = (fe(), op());
        let oc = Outcome {
            response_code: 503,
            duration_nanos: 600_000_000,
            ..outcome()
        };
        let f = facts(&fe, &oc, &op, b"GET /orders/7");
        let when = |c: Conditions| matches(&rule(c, "m"), &f);
        assert!(when(Conditions::default()));
        assert!(when(Conditions {
            statuses: vec![StatusMatch::Class(5)],
            ..Default::default()
        }));
        assert!(!when(Conditions {
            statuses: vec![StatusMatch::Class(4)],
            ..Default::default()
        }));
        assert!(when(Conditions {
            failed: Some(true),
            min_duration_ms: Some(500),
            ..Default::default()
        }));
        assert!(!when(Conditions {
            min_duration_ms: Some(700),
            ..Default::default()
        }));
        assert!(when(Conditions {
            route_names: vec!["orders".into()],
            ..Default::default()
        }));
        let header = |name: &str, equals: Option<&str>| HeaderCondition {
            name: name.into(),
            equals: equals.map(Into::into),
        };
        assert!(when(Conditions {
            request_headers: vec![header("x-tenant", Some("contoso"))],
            ..Default::default()
        }));
        assert!(!when(Conditions {
            request_headers: vec![header("x-tenant", Some("other"))],
            ..Default::default()
        }));
        assert!(!when(Conditions {
            request_headers: vec![header("x-missing", None)],
            ..Default::default()
        }));
        assert!(
            !when(Conditions {
                response_headers: vec![header("x-any", None)],
                ..Default::default()
            }),
            "no response headers read"
        );
    }

    #[test]
    fn messages_render_every_placeholder() {
        let (fe, op) = (fe(), op());
        let oc = Outcome {
            response_code: 404,
            duration_nanos: 12_345_678,
            ..outcome()
        };
        let resp = HeaderMap::from_serialized(HeaderMap::serialize([(&b"x-cache"[..], &b"MISS"[..])]));
        let mut f = facts(&fe, &oc, &op, b"GET /orders/7");
        f.response_headers = Some(&resp);
        let t = Template::parse(
            "{request.method} {request.path} {request.url} {request.header.x-tenant} {response.header.x-cache} \
             {response.status} {route} [{api}] {operation} {duration_ms} {request.header.absent}|",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(render(&t, &f)).unwrap(),
            "GET /orders/7 http://api.example.com/orders/7?x=1 contoso MISS 404 orders [] GET /orders/7 12.345 |"
        );
    }

    #[test]
    fn trace_items_carry_severity_metadata_and_are_never_sampled() {
        let (fe, oc, op) = (fe(), outcome(), op());
        let mut f = facts(&fe, &oc, &op, b"GET /orders/7");
        f.sample_rate = 10.0;
        let r = rule(Conditions::default(), "hello {request.header.x-tenant} \"quoted\"");
        let v = render_item(|out, who| write(out, who, &f, &r));
        assert_eq!(v["name"], "Microsoft.ApplicationInsights.Message");
        assert_eq!(v["sampleRate"], 100);
        assert_eq!(v["tags"]["ai.operation.parentId"], "0a".repeat(8));
        let d = &v["data"]["baseData"];
        assert_eq!(v["data"]["baseType"], "MessageData");
        assert_eq!(d["message"], "hello contoso \"quoted\"");
        assert_eq!(d["severityLevel"], "Information");
        assert_eq!(d["properties"]["tenant"], "contoso");
        assert_eq!(d["properties"]["Source"], "policy");
    }

    #[test]
    fn urls_and_credentials_in_placeholders_are_masked_by_meaning() {
        let (fe, oc, op) = (
            frontend(&[
                (":method", b"GET"),
                (":authority", b"api.example.com"),
                (":path", b"/cb??token=t1&x=1;code=c1"),
                ("referer", b"https://app.example/from?sig=s1&page=2"),
                ("x-auth-token", b"a1"),
            ]),
            outcome(),
            op(),
        );
        let resp = HeaderMap::from_serialized(HeaderMap::serialize([(
            &b"location"[..],
            &b"https://app.example/done?state=ok#access_token=t2"[..],
        )]));
        let mut f = facts(&fe, &oc, &op, b"GET /cb");
        f.response_headers = Some(&resp);
        let t = Template::parse(
            "{request.url} from {request.header.referer} to {response.header.location} with {request.header.x-auth-token}",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(render(&t, &f)).unwrap(),
            "http://api.example.com/cb??token=***&x=1;code=*** from https://app.example/from?sig=***&page=2 \
             to https://app.example/done?state=ok#access_token=*** with ***"
        );
        let r = TraceRule {
            metadata: vec![("loc".into(), Template::parse("{response.header.location}").unwrap())],
            ..rule(Conditions::default(), "{request.header.referer}")
        };
        let v = render_item(|out, who| write(out, who, &f, &r));
        let d = &v["data"]["baseData"];
        assert_eq!(d["message"], "https://app.example/from?sig=***&page=2");
        assert_eq!(
            d["properties"]["loc"],
            "https://app.example/done?state=ok#access_token=***"
        );
    }
}
