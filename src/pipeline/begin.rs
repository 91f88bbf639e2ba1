//! Starting an exchange, when its request headers arrive: which API it belongs to (hence
//! which diagnostic applies), the caller's trace context, the sampling decision for the
//! whole operation, the ids of the items it may produce, and the correlation headers the
//! backend receives ([`Injection`]).
//!
//! Everything here is decided once, before the request goes on, so that log time only
//! reads what the items it will write need; an operation sampled out is known from here
//! on and costs almost nothing more.

use super::Pipeline;
use crate::config::{RouteFacts, SamplingMode};
use crate::correlation::{self, Caller, IdText, Incoming, Protocol};
use crate::exchange::Frontend;
use crate::headers::HeaderMap;
use crate::ids::{SpanId, TraceId};
use crate::sampling;
use crate::telemetry::Operation;

/// Decided at request headers, used at log time.
#[derive(Debug, Clone)]
pub struct Begun {
    /// Index into the configured APIs.
    pub api: Option<usize>,
    /// The operation within the API: a configured operation that matched, else the one the
    /// route metadata names.
    pub operation_name: Option<String>,
    pub operation: Operation,
    /// Whether sampling keeps this operation.
    pub sampled: bool,
    /// The caller's application (`Request-Context` appId).
    pub source: Option<IdText>,
    /// Whether the diagnostic logs client IPs (so log time reads the address).
    pub log_client_ip: bool,
    /// Whether a valid caller `traceparent` was continued (its `tracestate` is recorded).
    pub continued_w3c: bool,
    /// The caller's sampled flag decided (parent-based sampling): the items count once.
    pub parent_decided: bool,
}

/// What Envoy's routing says about a request (read at request headers as needed).
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteInfo<'a> {
    pub name: &'a [u8],
    /// `filter_metadata.appinsights.api` of the route, else of its virtual host.
    pub metadata_api: &'a [u8],
    /// `filter_metadata.appinsights.operation` of the route.
    pub metadata_operation: &'a [u8],
}

/// Correlation headers to set on (or remove from) the request sent upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injection {
    /// `traceparent` (W3C).
    pub traceparent: Option<[u8; 55]>,
    /// `Request-Id` (Legacy).
    pub request_id: Option<IdText>,
    /// `Request-Context: appId=cid-v1:<id>` (Legacy, when the application id is known; also
    /// returned to the client).
    pub request_context: Option<IdText>,
    /// Remove the caller's `traceparent` (Legacy: a W3C-first backend would otherwise
    /// parent itself to the caller instead of the gateway's Dependency).
    pub remove_traceparent: bool,
    /// Remove the caller's `tracestate` (it describes a trace that is not continued).
    pub remove_tracestate: bool,
}

/// The operation's ids before the sampling decision: the trace id is kept apart because
/// only W3C sends it on.
struct Ids {
    operation: Operation,
    trace_id: Option<TraceId>,
    dependency_span: SpanId,
}

impl Pipeline {
    /// Decides what can be decided when the request headers arrive.
    pub fn begin(&mut self, fe: &Frontend, route: &RouteInfo<'_>) -> (Begun, Injection) {
        let (api, operation_name) = self.api_of(fe, route);
        let d = self.diagnostic_of(api);
        let (protocol, percentage, log_client_ip) = (d.correlation, d.sampling_percentage, d.log_client_ip);
        let parent_based = d.sampling_mode == SamplingMode::ParentBased;
        let headers = fe.headers();
        let incoming = incoming(headers);
        let caller = correlation::read_caller(protocol, &incoming);
        let ids = self.choose_ids(protocol, caller.as_ref());
        // Parent-based: a caller that says whether it records the trace decides.
        let parent = caller.and_then(|c| c.sampled).filter(|_| parent_based);
        let sampled =
            parent.unwrap_or_else(|| sampling::is_sampled_in(ids.operation.operation_id.as_bytes(), percentage));
        let continued_w3c = protocol == Protocol::W3C && caller.is_some_and(|c| c.sampled.is_some());
        let injection = self.injection(protocol, api, headers, &ids, sampled, continued_w3c);
        let source = match protocol {
            Protocol::None => None,
            _ => incoming.request_context.and_then(correlation::request_context_app_id),
        };
        let operation = ids.operation;
        let begun = Begun {
            api,
            operation_name,
            operation,
            sampled,
            source,
            log_client_ip,
            continued_w3c,
            parent_decided: parent.is_some(),
        };
        (begun, injection)
    }

    /// The configured API the request belongs to, and its operation: a configured one that
    /// matches, else the one the route metadata names (for APIs matched on metadata).
    fn api_of(&self, fe: &Frontend, route: &RouteInfo<'_>) -> (Option<usize>, Option<String>) {
        let facts = RouteFacts {
            route_name: route.name,
            authority: fe.authority(),
            path: fe.path(),
            method: fe.method(),
            metadata_api: route.metadata_api,
        };
        let Some((i, api)) = self
            .config
            .apis
            .iter()
            .enumerate()
            .find(|(_, a)| a.matcher.matches(&facts))
        else {
            return (None, None);
        };
        let operation = match api.operations.iter().find(|o| o.matches(&facts)) {
            Some(op) => Some(op.name.clone()),
            None if api.matcher.metadata_name.is_some() && !route.metadata_operation.is_empty() => {
                Some(String::from_utf8_lossy(route.metadata_operation).into_owned())
            }
            None => None,
        };
        (Some(i), operation)
    }

    /// The operation's ids: the caller's operation when its context is continued, else a
    /// new trace; a span for the Request and one for the Dependency (the id the backend
    /// sees as its parent).
    fn choose_ids(&mut self, protocol: Protocol, caller: Option<&Caller>) -> Ids {
        let (operation_id, trace_id) = match caller {
            Some(c) => (c.operation_id, c.trace_id),
            None => {
                let t = self.ids.trace_id();
                (IdText::trace(&t), Some(t))
            }
        };
        let (request_span, dependency_span) = (self.ids.span_id(), self.ids.span_id());
        let id = |span: &SpanId| match protocol {
            Protocol::Legacy => correlation::format_request_id(&operation_id, span),
            Protocol::W3C | Protocol::None => IdText::span(span),
        };
        let operation = Operation {
            operation_id,
            parent_id: caller.map(|c| c.parent_id),
            request_id: id(&request_span),
            dependency_id: id(&dependency_span),
        };
        Ids {
            operation,
            trace_id,
            dependency_span,
        }
    }

    /// The correlation headers the backend receives under `protocol`.
    fn injection(
        &self,
        protocol: Protocol,
        api: Option<usize>,
        headers: &HeaderMap,
        ids: &Ids,
        sampled: bool,
        continued_w3c: bool,
    ) -> Injection {
        let has_tracestate = headers.get(b"tracestate").is_some();
        match protocol {
            Protocol::W3C => Injection {
                traceparent: ids
                    .trace_id
                    .map(|t| correlation::format_traceparent(&t, &ids.dependency_span, sampled)),
                // tracestate belongs to the caller's traceparent: not kept for a new trace.
                remove_tracestate: has_tracestate && !continued_w3c,
                ..Injection::default()
            },
            Protocol::Legacy => Injection {
                request_id: Some(ids.operation.dependency_id),
                request_context: self.app_context(api),
                remove_traceparent: headers.get(b"traceparent").is_some(),
                remove_tracestate: has_tracestate,
                ..Injection::default()
            },
            Protocol::None => Injection::default(),
        }
    }

    /// `appId=cid-v1:<id>` of the first logger of the diagnostic that knows its id
    /// (prepared once per configuration).
    fn app_context(&self, api: Option<usize>) -> Option<IdText> {
        match api {
            None => self.app_contexts.first().copied().flatten(),
            Some(i) => self.app_contexts.get(i + 1).copied().flatten(),
        }
    }

    /// Whether route and virtual-host metadata must be read at request headers (an API
    /// matches on it).
    pub fn metadata_needed(&self) -> bool {
        self.config.apis.iter().any(|a| a.matcher.metadata_name.is_some())
    }

    /// Whether the route name must be read when the request headers arrive (an API or
    /// operation matches on it); otherwise it is read at log time, and only if needed.
    pub fn route_needed_early(&self) -> bool {
        self.config
            .apis
            .iter()
            .any(|a| !a.matcher.route_names.is_empty() || a.operations.iter().any(|o| o.route_name.is_some()))
    }
}

/// The caller's correlation headers. W3C: more than one `traceparent` makes it invalid.
fn incoming(headers: &HeaderMap) -> Incoming<'_> {
    let traceparent = match headers.iter().filter(|(k, _)| *k == b"traceparent").count() {
        1 => headers.get(b"traceparent"),
        _ => None,
    };
    Incoming {
        traceparent,
        request_id: headers.get(b"request-id"),
        request_context: headers.get(b"request-context"),
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;

    #[test]
    fn a_forwarded_request_yields_request_and_dependency_correlated() {
        let mut p = pipeline(json!({}));
        let (begun, injection, items) = run(&mut p, &frontend("/x", &[("traceparent", TP)]), "", &outcome(200));
        assert_eq!(kinds(&items), ["RequestData", "RemoteDependencyData"]);
        let (req, dep) = (&items[0], &items[1]);
        assert_eq!(req["tags"]["ai.operation.id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            req["tags"]["ai.operation.parentId"], "00f067aa0ba902b7",
            "the caller's span"
        );
        assert_eq!(dep["tags"]["ai.operation.parentId"], req["data"]["baseData"]["id"]);
        let tp = injection.traceparent.expect("a traceparent for the backend");
        let tp = std::str::from_utf8(&tp).unwrap();
        assert_eq!(
            tp,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                dep["data"]["baseData"]["id"].as_str().unwrap()
            )
        );
        assert!(begun.sampled);
    }

    #[test]
    fn parent_based_sampling_follows_the_callers_flag_and_passes_it_on() {
        let flagged = |flag: &str| TP.replace("-01", &format!("-{flag}"));
        for (percentage, flag, kept) in [(0, "01", true), (100, "00", false), (0, "03", true)] {
            let mut p = pipeline(
                json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": percentage,
                                                        "sampling_mode": "parent", "standard_metrics": false}}),
            );
            let fe = frontend("/x", &[("traceparent", &flagged(flag))]);
            let (begun, injection, items) = run(&mut p, &fe, "", &outcome(200));
            assert_eq!(begun.sampled, kept, "{percentage}% with flag {flag}");
            assert_eq!(items.len(), if kept { 2 } else { 0 });
            assert!(
                items.iter().all(|i| i["sampleRate"] == 100),
                "the caller's choice counts once"
            );
            let sent = injection.traceparent.unwrap();
            assert!(
                sent.ends_with(if kept { b"-01" } else { b"-00" }),
                "what is recorded, told truly"
            );
        }
        // No traceparent: the score decides.
        let mut p =
            pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0, "sampling_mode": "parent"}}));
        assert!(!p.begin(&frontend("/x", &[]), &RouteInfo::default()).0.sampled);
        let e = crate::config::Config::from_value(&json!({"loggers": {"a": {"instrumentation_key":
            "00000000-0000-0000-0000-00000000000a"}}, "diagnostic": {"sampling_mode": "parents"}}))
        .unwrap_err();
        assert_eq!(e.to_string(), "diagnostic.sampling_mode: must be one of score, parent");
    }

    #[test]
    fn route_metadata_names_apis_and_operations() {
        let mut p = pipeline(json!({"apis": [{"name": "orders", "revision": "4", "match": {"route_metadata": true}}]}));
        assert!(p.metadata_needed());
        let fe = frontend("/v1/o/7", &[]);
        let route = RouteInfo {
            name: b"r1",
            metadata_api: b"orders",
            metadata_operation: b"get-order",
        };
        let (begun, _) = p.begin(&fe, &route);
        assert_eq!(begun.api, Some(0));
        assert_eq!(begun.operation_name.as_deref(), Some("get-order"));
        let other = RouteInfo {
            name: b"r2",
            metadata_api: b"users",
            metadata_operation: b"x",
        };
        assert_eq!(p.begin(&fe, &other).0.api, None);
    }

    #[test]
    fn legacy_correlation_reads_and_writes_request_id() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "correlation_protocol": "Legacy"}}));
        let fe = frontend(
            "/x",
            &[
                ("request-id", "|root-1.abc."),
                ("request-context", "appId=cid-v1:caller"),
                ("traceparent", TP),
            ],
        );
        let (_, injection, items) = run(&mut p, &fe, "", &outcome(200));
        let req = &items[0];
        assert_eq!(req["tags"]["ai.operation.id"], "root-1");
        assert_eq!(req["tags"]["ai.operation.parentId"], "|root-1.abc.");
        assert_eq!(req["data"]["baseData"]["source"], "cid-v1:caller");
        let dep_id = items[1]["data"]["baseData"]["id"].as_str().unwrap();
        assert!(dep_id.starts_with("|root-1.") && dep_id.ends_with('.'), "{dep_id}");
        assert_eq!(injection.request_id, Some(IdText::new(dep_id.as_bytes()).unwrap()));
        assert_eq!(injection.request_context, None);
        assert!(
            injection.remove_traceparent,
            "the caller's traceparent would bypass the gateway"
        );
        assert_eq!(injection.traceparent, None);
    }

    #[test]
    fn legacy_correlation_sends_request_context_when_the_application_id_is_known() {
        let mut p = pipeline(json!({
            "loggers": {"a": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000001;ApplicationId=app-42;IngestionEndpoint=http://127.0.0.1:9/"}},
            "diagnostic": {"correlation_protocol": "Legacy"}}));
        let (_, injection) = p.begin(&frontend("/x", &[]), &RouteInfo::default());
        assert_eq!(injection.request_context.unwrap().as_str(), "appId=cid-v1:app-42");
    }

    #[test]
    fn duplicate_or_invalid_traceparents_restart_the_trace_and_drop_tracestate() {
        let mut p = pipeline(json!({}));
        let two = frontend("/x", &[("traceparent", TP), ("traceparent", TP), ("tracestate", "a=1")]);
        let (begun, injection) = p.begin(&two, &RouteInfo::default());
        assert_ne!(
            begun.operation.operation_id.as_str(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(injection.remove_tracestate);
        let one_valid = frontend("/x", &[("traceparent", TP), ("tracestate", "a=1")]);
        let (begun, injection) = p.begin(&one_valid, &RouteInfo::default());
        assert!(begun.continued_w3c && !injection.remove_tracestate);
    }

    #[test]
    fn correlation_none_neither_reads_nor_injects() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "correlation_protocol": "None"}}));
        let (_, injection, items) = run(&mut p, &frontend("/x", &[("traceparent", TP)]), "", &outcome(200));
        assert_eq!(injection, Injection::default());
        assert_ne!(items[0]["tags"]["ai.operation.id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            items[0]["tags"]["ai.operation.parentId"],
            items[0]["tags"]["ai.operation.id"]
        );
    }
}
