//! Finishing an exchange, at log time: what must be read from Envoy (nothing at all for an
//! operation that can produce no item), which items the exchange produces under the
//! diagnostic's sampling, `always_log_errors`, verbosity and trace rules, their operation
//! name, and writing them into the batch of every logger the diagnostic sends to.
//!
//! The order of the questions is the order of their cost: [`Pipeline::may_emit`] needs
//! nothing from Envoy, [`Pipeline::needs`] only the status and flags, and only then is the
//! rest read ([`Needs`]) and [`Pipeline::finish`] called.

use super::sink::Sink;
use super::{Begun, Notice, Pipeline};
use crate::capture::BodyPrefix;
use crate::config::{Config, Diagnostic, MetadataPath, OperationNameFormat, Template, TraceRule};
use crate::delivery::Added;
use crate::exchange::{Backend, Frontend, Outcome};
use crate::headers::HeaderMap;
use crate::metrics::usage::Usage;
use crate::telemetry::failure::{self, Kind as FailureKind};
use crate::telemetry::{dependency, exception, naming, request, trace, ApiNames, Facts, Sender};
use std::borrow::Cow;

/// What the log-time callback must read from Envoy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Status, duration, flags…: nothing can be emitted or measured without them.
    pub outcome: bool,
    /// Items are written: the outcome as they tell it (start time, client IP). Metrics
    /// alone need only the duration.
    pub items: bool,
    /// The backend call: attempts, cluster, latency (the Dependency, or its metrics).
    pub backend: bool,
    /// The backend call as the Dependency item tells it (address, TLS, request as sent).
    pub backend_item: bool,
    /// The route name (items, or a metric rule that uses it).
    pub route: bool,
    /// Response headers (captured, or used by a trace or metric rule).
    pub response_headers: bool,
    /// The dynamic metadata values the diagnostic's templates print.
    pub metadata: bool,
}

/// What a diagnostic's metrics read at log time beyond the status and duration, decided
/// once per configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricReads {
    pub backend: bool,
    pub route: bool,
    pub response_headers: bool,
    /// A dimension prints `{operation}`: the operation name is formed for every exchange.
    pub operation: bool,
    /// A dimension prints dynamic metadata: read it for every exchange.
    pub metadata: bool,
}

impl MetricReads {
    pub fn of(d: &Diagnostic) -> MetricReads {
        use crate::config::{DefaultDimension as Default_, DimensionValue, Field, MetricValue};
        let rules = d.active_metric_rules();
        let dims = rules
            .iter()
            .flat_map(|r| r.dimensions.iter())
            .chain(d.active_token_metrics().into_iter().flat_map(|t| t.dimensions.iter()));
        let (mut route, mut backend, mut response_headers) = (false, d.standard_metrics, false);
        let (mut operation, mut metadata) = (false, false);
        for dim in dims {
            match &dim.value {
                DimensionValue::Default(Default_::ApiId | Default_::OperationId) => route = true,
                DimensionValue::Default(_) => {}
                DimensionValue::Template(t) => {
                    route |= t.uses(|f| matches!(f, Field::Route | Field::Api | Field::Operation));
                    operation |= t.uses(|f| matches!(f, Field::Operation));
                    metadata |= t.metadata().next().is_some();
                    backend |= t.uses(|f| matches!(f, Field::Cluster));
                    response_headers |= t.needs_response_headers();
                }
            }
        }
        for r in rules {
            route |= !r.when.route_names.is_empty();
            backend |= r.value == MetricValue::BackendDurationMs;
            response_headers |=
                !r.when.response_headers.is_empty() || matches!(r.value, MetricValue::ResponseHeader(_));
        }
        MetricReads {
            backend,
            route,
            response_headers,
            operation,
            metadata,
        }
    }
}

/// A finished exchange, as read from Envoy.
pub struct Finished<'a> {
    pub begun: &'a Begun,
    pub frontend: &'a Frontend,
    pub route_name: &'a [u8],
    pub outcome: &'a Outcome,
    pub backend: Option<&'a Backend>,
    pub response_headers: Option<&'a HeaderMap>,
    /// Body prefixes captured while the exchange streamed.
    pub request_body: Option<&'a BodyPrefix>,
    pub response_body: Option<&'a BodyPrefix>,
    /// Response headers as they reached the filter (for backend response capture).
    pub backend_response_headers: Option<&'a HeaderMap>,
    /// Dynamic metadata values the templates print (those found).
    pub metadata: &'a [(MetadataPath, Vec<u8>)],
    /// Token counts the response reported (token metrics).
    pub usage: Option<Usage>,
}

impl<'a> Finished<'a> {
    /// An exchange known by its request and outcome only: no route name, no backend call,
    /// nothing captured (set the other fields with struct update syntax).
    pub fn new(begun: &'a Begun, frontend: &'a Frontend, outcome: &'a Outcome) -> Self {
        Finished {
            begun,
            frontend,
            route_name: b"",
            outcome,
            backend: None,
            response_headers: None,
            request_body: None,
            response_body: None,
            backend_response_headers: None,
            metadata: &[],
            usage: None,
        }
    }
}

/// Which items one finished exchange produces (the same for every logger).
struct Items<'d> {
    /// The Request, and with it the Dependency (if the backend was called) and the
    /// Exception (if it failed).
    request: bool,
    failure: Option<FailureKind>,
    traces: Vec<&'d TraceRule>,
}

/// A request header map larger than this is cut down to what the items use while the
/// exchange is in flight (smaller ones are kept as they are: copying costs more than it
/// saves).
pub const KEEP_ONLY_ABOVE_BYTES: usize = 1024;

/// Request headers an item of diagnostic `d` may read at log time, besides the
/// pseudo-headers and `x-request-id`: captured ones, header properties, those trace rules
/// test or print, and what body capture and correlation need. Lowercase, sorted.
pub fn request_headers_used(d: &Diagnostic) -> Vec<String> {
    let mut names: Vec<String> = ["tracestate", "content-type", "content-encoding"]
        .map(String::from)
        .to_vec();
    names.extend(d.capture.frontend_request.headers.iter().cloned());
    names.extend(d.header_properties.iter().map(|(_, header)| header.clone()));
    for rule in &d.traces {
        names.extend(rule.when.request_headers.iter().map(|c| c.name.clone()));
    }
    for rule in d.active_metric_rules() {
        names.extend(rule.when.request_headers.iter().map(|c| c.name.clone()));
        if let crate::config::MetricValue::RequestHeader(h) = &rule.value {
            names.push(h.clone());
        }
    }
    names.extend(templates(d).flat_map(|t| t.request_headers()).map(str::to_string));
    names.sort();
    names.dedup();
    names
}

/// Whether a dynamic property prints a response header.
fn properties_read_responses(d: &Diagnostic) -> bool {
    d.dynamic_properties.iter().any(|(_, t)| t.needs_response_headers())
}

/// Every template of diagnostic `d`: trace messages and metadata, dynamic properties,
/// metric dimensions.
fn templates(d: &Diagnostic) -> impl Iterator<Item = &Template> {
    let traces = d
        .traces
        .iter()
        .flat_map(|r| std::iter::once(&r.message).chain(r.metadata.iter().map(|(_, t)| t)));
    let properties = d.dynamic_properties.iter().map(|(_, t)| t);
    traces.chain(properties).chain(metric_templates(d))
}

/// The templates of diagnostic `d`'s metric dimensions (rendered for every exchange).
fn metric_templates(d: &Diagnostic) -> impl Iterator<Item = &Template> {
    let rules = d.active_metric_rules().iter().flat_map(|r| r.templates());
    let tokens = d
        .active_token_metrics()
        .into_iter()
        .flat_map(|t| crate::config::metric_templates(&t.dimensions));
    rules.chain(tokens)
}

/// The dynamic metadata values a diagnostic's templates print, sorted: all of them (read
/// when an item is written), and those its metrics print (read for every exchange).
#[derive(Debug, Default)]
pub struct MetadataUse {
    pub all: Vec<MetadataPath>,
    pub metrics: Vec<MetadataPath>,
}

pub fn metadata_used(d: &Diagnostic) -> MetadataUse {
    let sorted = |paths: Vec<MetadataPath>| {
        let mut paths = paths;
        paths.sort();
        paths.dedup();
        paths
    };
    MetadataUse {
        all: sorted(templates(d).flat_map(|t| t.metadata()).cloned().collect()),
        metrics: sorted(metric_templates(d).flat_map(|t| t.metadata()).cloned().collect()),
    }
}

impl Pipeline {
    /// The dynamic metadata values the diagnostic of `begun` may print: all of them when
    /// items are written, else those its metrics print.
    pub fn metadata_of(&self, begun: &Begun, items: bool) -> &[MetadataPath] {
        let Some(used) = self.metadata_used.get(super::diagnostic_index(begun.api)) else {
            return &[];
        };
        if items {
            &used.all
        } else {
            &used.metrics
        }
    }

    /// The request as an exchange in flight keeps it: only the headers its items may use
    /// (`None`: keep it as it is, it is small).
    pub fn keep_only_used(&self, begun: &Begun, frontend: &Frontend) -> Option<Frontend> {
        if frontend.held_bytes() <= KEEP_ONLY_ABOVE_BYTES {
            return None;
        }
        let used = self.headers_used.get(begun.api.map_or(0, |i| i + 1))?;
        let may_emit = self.may_emit(begun);
        let keep = |name: &[u8]| may_emit && used.binary_search_by(|u| u.as_bytes().cmp(name)).is_ok();
        Some(frontend.keep_only(keep))
    }

    /// Whether the log-time callback must look at the exchange's status at all: not for an
    /// operation that can produce no item (sampled out, errors not kept, no trace rule).
    pub fn may_emit(&self, begun: &Begun) -> bool {
        let d = self.diagnostic_of(begun.api);
        begun.sampled || d.always_log_errors || active_traces(d).next().is_some() || d.counts_every_exchange()
    }

    /// Given the status and response flags, what else the log-time callback must read
    /// (nothing when no item will be written: an unsampled success, say).
    pub fn needs(&self, begun: &Begun, response_code: u32, response_flags: u64) -> Needs {
        let d = self.diagnostic_of(begun.api);
        let failed = !Outcome {
            response_code,
            response_flags,
            ..Default::default()
        }
        .success();
        let request = keeps_request(d, begun.sampled, failed);
        let mut traces = active_traces(d)
            .filter(|r| r.when.could_match(response_code, failed))
            .peekable();
        let any_trace = traces.peek().is_some();
        let trace_headers = traces.any(TraceRule::needs_response_headers);
        let items = request || any_trace;
        let index = super::diagnostic_index(begun.api);
        let reads = match d.counts_every_exchange() {
            true => self.metric_reads.get(index).copied().unwrap_or_default(),
            false => MetricReads::default(),
        };
        let outcome = items || d.counts_every_exchange();
        Needs {
            outcome,
            items,
            backend: request || reads.backend,
            backend_item: request,
            route: items || reads.route,
            response_headers: (request && d.capture.needs_response_headers())
                || (items && properties_read_responses(d))
                || trace_headers
                || reads.response_headers,
            // Metadata only item templates print is read only when items are written.
            metadata: self
                .metadata_used
                .get(index)
                .is_some_and(|m| (items && !m.all.is_empty()) || (reads.metadata && !m.metrics.is_empty())),
        }
    }

    /// Notes that an exchange is settled: an operation sampling dropped and nothing else kept
    /// (`always_log_errors` keeps failures) counts as sampled out.
    pub fn settled(&mut self, begun: &Begun, request_written: bool) {
        if !begun.sampled && !request_written {
            self.sampled_out += 1;
        }
    }

    /// Whether a sampled operation's Request will carry response headers: then log time
    /// reads them first and takes the status from them (one host call instead of two).
    pub fn wants_response_headers(&self, begun: &Begun) -> bool {
        let d = self.diagnostic_of(begun.api);
        begun.sampled && d.logs_successful_requests() && d.capture.needs_response_headers()
    }

    /// Writes the items a finished exchange produces into each selected logger's batch,
    /// and adds it to the metrics.
    pub fn finish(&mut self, done: &Finished<'_>) -> Vec<Notice> {
        let Pipeline {
            config,
            sinks,
            metrics,
            metric_reads,
            ..
        } = self;
        let d_index = super::diagnostic_index(done.begun.api);
        let d = super::diagnostic_at(config, d_index);
        let keep = keeps_request(d, done.begun.sampled, !done.outcome.success());
        let traces: Vec<&TraceRule> = active_traces(d).collect();
        let counts = d.counts_every_exchange();
        if !keep && traces.is_empty() && !counts {
            return Vec::new();
        }
        let api = api_names(config, done.begun);
        let prints_operation = counts && metric_reads.get(d_index).is_some_and(|r| r.operation);
        let writes = keep || !traces.is_empty() || prints_operation;
        let operation_name = if writes {
            operation_name(d, done, api)
        } else {
            Vec::new()
        };
        let tracestate = done
            .begun
            .continued_w3c
            .then(|| tracestate(done.frontend.headers()))
            .flatten();
        let facts = facts(d, done, api, &operation_name, tracestate.as_deref(), keep);
        let items = Items {
            request: keep,
            failure: if keep { failure::classify(done.outcome) } else { None },
            traces: traces.into_iter().filter(|r| trace::matches(r, &facts)).collect(),
        };
        let now = done
            .outcome
            .start_unix_nanos
            .saturating_add(done.outcome.duration_nanos);
        let mut notices = Vec::new();
        for &i in &d.loggers {
            if let Some(sink) = sinks.get_mut(i) {
                write_items(sink, &items, &facts, now, &mut notices);
            }
        }
        if counts {
            let measured = super::aggregates::Measured {
                diagnostic: d,
                d_index,
                facts: &facts,
                traces: &items.traces,
                usage: done.usage,
                now,
            };
            notices.extend(super::aggregates::measure(sinks, metrics, &measured));
        }
        notices
    }
}

/// What the item writers need to know about the exchange, under diagnostic `d`.
fn facts<'a>(
    d: &'a Diagnostic,
    done: &'a Finished<'a>,
    api: Option<ApiNames<'a>>,
    operation_name: &'a [u8],
    tracestate: Option<&'a [u8]>,
    request_written: bool,
) -> Facts<'a> {
    let oc = done.outcome;
    // Every failed exchange is kept when errors are always logged: each counts once; so
    // does an operation the caller decided to record (its rate is not known here).
    let errors_kept = (!oc.success() && d.always_log_errors) || done.begun.parent_decided;
    Facts {
        frontend: done.frontend,
        outcome: oc,
        backend: done.backend.filter(|b| b.attempts > 0),
        response_headers: done.response_headers,
        operation: &done.begun.operation,
        operation_name,
        api,
        route_name: done.route_name,
        client_ip: if d.log_client_ip { oc.client_ip.as_deref() } else { None },
        source: done.begun.source.as_ref(),
        sample_rate: if errors_kept { 100.0 } else { d.sampling_percentage },
        properties_json: &d.properties_json,
        header_properties: &d.header_properties,
        dynamic_properties: &d.dynamic_properties,
        capture: &d.capture,
        masking: &d.masking,
        request_body: done.request_body,
        response_body: done.response_body,
        backend_response_headers: done.backend_response_headers.or(done.response_headers),
        tracestate,
        request_written,
        metadata: done.metadata,
        extracted: d.standard_metrics,
        templated_names: d.templated_names,
        service_overrides: d.service_overrides,
        lean: false,
    }
}

/// Writes `items` into one logger's batch; an item over the size limit is written without
/// its captured content (`lean`) before it is dropped.
fn write_items(sink: &mut Sink, items: &Items<'_>, facts: &Facts<'_>, now: u64, notices: &mut Vec<Notice>) {
    let lean = Facts { lean: true, ..*facts };
    let mut add = |write: &dyn Fn(&mut Vec<u8>, &Sender, &Facts<'_>)| {
        let sender = &sink.sender;
        let added = sink
            .outbox
            .add_or_trim(now, |out, trim| write(out, sender, if trim { &lean } else { facts }));
        if added != Added::Queued {
            notices.extend(sink.dropped(added, now));
        }
    };
    if items.request {
        add(&|out, who, f| request::write(out, who, f));
        if let Some(backend) = facts.backend {
            add(&|out, who, f| dependency::write(out, who, f, backend));
        }
        if let Some(kind) = &items.failure {
            add(&|out, who, f| exception::write(out, who, f, kind));
        }
    }
    for rule in &items.traces {
        add(&|out, who, f| trace::write(out, who, f, rule));
    }
}

fn api_names<'c>(config: &'c Config, begun: &'c Begun) -> Option<ApiNames<'c>> {
    let api = config.apis.get(begun.api?)?;
    Some(ApiNames {
        api: &api.name,
        revision: &api.revision,
        kind: &api.kind,
        operation: begun.operation_name.as_deref(),
    })
}

/// `ai.operation.name`, never carrying ids (see [`naming`]): under the `Name` format,
/// `API;rev=N - OPERATION` for configured APIs (the operation: the matched one, else the
/// route name, else `METHOD /template`) and the route name when it means something for
/// others; otherwise `METHOD /template` (`METHOD /path` with `templated_names` off).
fn operation_name(d: &Diagnostic, done: &Finished<'_>, api: Option<ApiNames<'_>>) -> Vec<u8> {
    let fe = done.frontend;
    let line = || naming::request_line(fe.method(), fe.path(), d.templated_names);
    if d.operation_name_format == OperationNameFormat::Url {
        return line();
    }
    let Some(api) = api else {
        return match naming::meaningful_route(done.route_name) {
            true => done.route_name.to_vec(),
            false => line(),
        };
    };
    let mut name = format!("{};rev={} - ", api.api, api.revision).into_bytes();
    match api.operation {
        Some(op) => name.extend_from_slice(op.as_bytes()),
        None if naming::meaningful_route(done.route_name) => name.extend_from_slice(done.route_name),
        None => name.extend_from_slice(&line()),
    }
    name
}

/// The caller's `tracestate`: W3C trace context reads several headers as one list, in
/// order (joined only when there are several).
fn tracestate(headers: &HeaderMap) -> Option<Cow<'_, [u8]>> {
    let mut values = headers.iter().filter(|(k, _)| *k == b"tracestate").map(|(_, v)| v);
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = [first, second].join(&b","[..]);
    for more in values {
        joined.push(b',');
        joined.extend_from_slice(more);
    }
    Some(Cow::Owned(joined))
}

/// Whether an exchange's Request (and its Dependency and Exception) is written.
fn keeps_request(d: &Diagnostic, sampled: bool, failed: bool) -> bool {
    (sampled || (failed && d.always_log_errors)) && (failed || d.logs_successful_requests())
}

/// Trace rules that pass the diagnostic's verbosity.
pub(super) fn active_traces(d: &Diagnostic) -> impl Iterator<Item = &TraceRule> + '_ {
    d.traces.iter().filter(move |r| r.severity >= d.verbosity)
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;

    #[test]
    fn failed_requests_add_an_exception_and_local_replies_no_dependency() {
        let mut p = pipeline(json!({}));
        let fe = frontend("/x", &[]);
        let oc = Outcome {
            response_flags: flags::NO_ROUTE_FOUND,
            code_details: Some(b"route_not_found".to_vec()),
            ..outcome(404)
        };
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        p.finish(&Finished::new(&begun, &fe, &oc));
        let Some(Work::Ingest { batch, .. }) = p.next_work(1_700_000_010_000_000_000, true) else {
            panic!()
        };
        let items: Vec<Value> = batch
            .body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(kinds(&items), ["RequestData", "ExceptionData"]);
        assert_eq!(
            items[1]["data"]["baseData"]["exceptions"][0]["typeName"],
            "OperationNotFound"
        );
    }

    #[test]
    fn sampling_drops_whole_operations_but_always_logs_errors_counted_once() {
        // Without standard metrics, which look at every exchange.
        let mut p =
            pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0, "standard_metrics": false}}));
        let fe = frontend("/x", &[]);
        let (begun, injection, items) = run(&mut p, &fe, "", &outcome(200));
        assert!(!begun.sampled);
        assert!(items.is_empty());
        assert!(
            injection.traceparent.is_some_and(|tp| tp.ends_with(b"-00")),
            "the backend learns it was not sampled"
        );
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        assert!(
            p.may_emit(&begun),
            "errors are always logged: the status must be looked at"
        );
        assert!(
            !p.needs(&begun, 200, 0).outcome,
            "an unsampled success: nothing more to read"
        );
        assert!(p.needs(&begun, 500, 0).backend, "an unsampled failure is kept");
        let (_, _, items) = run(&mut p, &fe, "", &outcome(500));
        assert_eq!(kinds(&items), ["RequestData", "RemoteDependencyData", "ExceptionData"]);
        assert!(
            items.iter().all(|i| i["sampleRate"] == 100),
            "kept errors represent themselves"
        );

        let mut p = pipeline(
            json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0, "always_log_errors": false,
                                           "standard_metrics": false}}),
        );
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        assert!(!p.may_emit(&begun), "nothing to read for a dropped operation");
        assert!(run(&mut p, &fe, "", &outcome(500)).2.is_empty());
    }

    #[test]
    fn sampled_items_carry_the_percentage() {
        // 4bf92f…: score 33.46.
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 50}}));
        let (_, _, items) = run(&mut p, &frontend("/x", &[("traceparent", TP)]), "", &outcome(200));
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i["sampleRate"] == 50));
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 33}}));
        assert!(run(&mut p, &frontend("/x", &[("traceparent", TP)]), "", &outcome(200))
            .2
            .is_empty());
    }

    #[test]
    fn verbosity_error_logs_only_failures_and_error_traces() {
        let mut p = pipeline(
            json!({"diagnostic": {"loggers": ["a"], "verbosity": "error", "traces": [
            {"severity": "information", "message": "info"}, {"severity": "error", "message": "err"}]}}),
        );
        let fe = frontend("/x", &[]);
        let (_, _, items) = run(&mut p, &fe, "", &outcome(200));
        assert_eq!(kinds(&items), ["MessageData"]);
        assert_eq!(items[0]["data"]["baseData"]["message"], "err");
        let (_, _, items) = run(&mut p, &fe, "", &outcome(503));
        assert_eq!(
            kinds(&items),
            ["RequestData", "RemoteDependencyData", "ExceptionData", "MessageData"]
        );
    }

    #[test]
    fn trace_rules_ruled_out_by_status_need_nothing_more_read() {
        let p = pipeline(
            json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0, "always_log_errors": false,
            "standard_metrics": false,
            "traces": [{"severity": "error", "when": {"status": ["5xx"]}, "message": "m"}]}}),
        );
        let (begun, _) = pipeline(json!({})).begin(&frontend("/x", &[]), &RouteInfo::default());
        let begun = Begun {
            sampled: false,
            ..begun
        };
        assert!(p.may_emit(&begun));
        assert!(!p.needs(&begun, 200, 0).outcome, "a 200 cannot match a 5xx rule");
        assert!(p.needs(&begun, 503, 0).outcome);
    }

    #[test]
    fn traces_are_not_sampled() {
        let mut p = pipeline(
            json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0, "always_log_errors": false,
            "traces": [{"severity": "information", "message": "seen {request.path}"}]}}),
        );
        let (begun, _, items) = run(&mut p, &frontend("/x", &[]), "", &outcome(200));
        assert!(!begun.sampled);
        assert_eq!(kinds(&items), ["MessageData"]);
        assert_eq!(items[0]["sampleRate"], 100);
        assert_eq!(
            items[0]["tags"]["ai.operation.parentId"], items[0]["tags"]["ai.operation.id"],
            "no Request was sent: parented to the operation"
        );
    }

    #[test]
    fn apis_are_identified_and_named_and_their_diagnostic_applies() {
        let mut p = pipeline(json!({"apis": [
            {"name": "orders", "revision": "2", "match": {"path_prefixes": ["/orders"]},
             "operations": [{"name": "get-order", "method": "GET", "path": "/orders/{id}"}],
             "diagnostic": {"loggers": ["a", "b"]}},
            {"name": "users", "match": {"route_names": ["users-route"]}, "diagnostic": {"operation_name_format": "Url"}}
        ]}));
        let (begun, _, items) = run(&mut p, &frontend("/orders/7", &[]), "r", &outcome(200));
        assert_eq!(begun.api, Some(0));
        assert_eq!(items.len(), 4, "multiplexed to both loggers");
        assert_eq!(items[0]["tags"]["ai.operation.name"], "orders;rev=2 - get-order");
        assert_eq!(items[0]["data"]["baseData"]["properties"]["API Name"], "orders");
        assert_eq!(items[2]["iKey"], "00000000-0000-0000-0000-00000000000b");
        let (_, _, items) = run(&mut p, &frontend("/orders", &[]), "orders-list", &outcome(200));
        assert_eq!(
            items[0]["tags"]["ai.operation.name"], "orders;rev=2 - orders-list",
            "route name as operation"
        );
        let (_, _, items) = run(&mut p, &frontend("/u/1", &[]), "users-route", &outcome(200));
        assert_eq!(
            items[0]["tags"]["ai.operation.name"], "GET /u/{id}",
            "Url format, templated"
        );
        let (begun, _, items) = run(&mut p, &frontend("/other", &[]), "x", &outcome(200));
        assert_eq!(begun.api, None);
        assert_eq!(
            items[0]["tags"]["ai.operation.name"], "x",
            "the route names the operation"
        );
        assert_eq!(items.len(), 2, "all-APIs diagnostic: logger a only");
        let (_, _, items) = run(&mut p, &frontend("/other/42", &[]), "default", &outcome(200));
        assert_eq!(
            items[0]["tags"]["ai.operation.name"], "GET /other/{id}",
            "generic route names do not"
        );
    }

    #[test]
    fn names_keep_ids_only_when_templating_is_off_and_the_url_always_does() {
        for (templated, want) in [(true, "GET /orders/{id}"), (false, "GET /orders/42")] {
            let mut p = pipeline(json!({"diagnostic": {"templated_names": templated}}));
            let (_, _, items) = run(&mut p, &frontend("/orders/42?x=1", &[]), "", &outcome(200));
            let request = &items[0]["data"]["baseData"];
            assert_eq!(items[0]["tags"]["ai.operation.name"], want);
            assert_eq!(request["name"], want);
            assert!(
                request["url"].as_str().unwrap().ends_with("/orders/42?x=1"),
                "{request}"
            );
        }
    }

    #[test]
    fn a_static_property_replaces_a_service_dimension_and_is_written_once() {
        let mut p = pipeline(json!({"service": {"type": "API Management", "region": "North Europe"},
                                    "diagnostic": {"properties": {"Region": "West Europe"}}}));
        let fe = frontend("/x", &[]);
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        p.finish(&Finished::new(&begun, &fe, &outcome(200)));
        let Some(Work::Ingest { batch, .. }) = p.next_work(1_700_000_010_000_000_000, true) else {
            panic!()
        };
        let body = String::from_utf8_lossy(&batch.body);
        assert_eq!(body.matches("\"Region\":").count(), 1, "{body}");
        assert!(body.contains("\"Region\":\"West Europe\""), "{body}");
        assert!(body.contains("\"Service Type\":\"API Management\""), "{body}");
    }

    #[test]
    fn custom_properties_are_static_or_from_headers_and_secrets_are_masked() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"],
            "properties": {"Region": "West Europe", "Environment": "prod \"eu\""},
            "header_properties": {"Tenant": "X-Tenant", "Caller": "authorization", "Missing": "x-none"}}}));
        let fe = frontend(
            "/x",
            &[("x-tenant", "contoso"), ("authorization", "Bearer secret-token")],
        );
        let (_, _, items) = run(&mut p, &fe, "", &outcome(500));
        assert_eq!(items.len(), 3);
        for item in &items {
            let props = &item["data"]["baseData"]["properties"];
            assert_eq!(props["Region"], "West Europe", "{item:#}");
            assert_eq!(props["Environment"], "prod \"eu\"");
            assert_eq!(props["Tenant"], "contoso");
            assert_eq!(props["Caller"], "***", "secret headers never reach telemetry");
            assert!(props.get("Missing").is_none());
        }
        assert!(!serde_json::to_string(&items).unwrap().contains("secret-token"));
    }

    #[test]
    fn dynamic_properties_come_from_metadata_and_headers_masked_and_absent_when_empty() {
        let sub = "envoy.filters.http.jwt_authn/jwt_payload/sub";
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "dynamic_properties": {
            "Subscription Name": format!("{{metadata.{sub}}}"),
            "Product Name": "{request.header.x-product}",
            "Caller": "key {request.header.authorization}",
            "User": "{metadata.jwt/user}"}}}));
        let fe = frontend(
            "/x",
            &[("x-product", "starter"), ("authorization", "Bearer secret-token")],
        );
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        assert_eq!(p.metadata_of(&begun, true).len(), 2, "both metadata values are read");
        assert!(p.metadata_of(&begun, false).is_empty(), "none without an item");
        let metadata = [(p.metadata_of(&begun, true)[0].clone(), b"contoso-sub".to_vec())];
        let oc = outcome(200);
        p.finish(&Finished {
            metadata: &metadata,
            ..Finished::new(&begun, &fe, &oc)
        });
        let Some(Work::Ingest { batch, .. }) = p.next_work(1_700_000_010_000_000_000, true) else {
            panic!()
        };
        let body = String::from_utf8_lossy(&batch.body).into_owned();
        let request: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        let props = &request["data"]["baseData"]["properties"];
        assert_eq!(props["Subscription Name"], "contoso-sub", "{props:#}");
        assert_eq!(props["Product Name"], "starter");
        assert_eq!(props["Caller"], "key ***", "a secret header is masked");
        assert!(props.get("User").is_none(), "rendered empty: left out");
        assert!(!body.contains("secret-token"));
    }

    #[test]
    fn every_tracestate_header_of_a_continued_trace_is_recorded() {
        // W3C trace context: several tracestate headers are one list, in order.
        let mut p = pipeline(json!({}));
        let headers = [("traceparent", TP), ("tracestate", "a=1"), ("tracestate", "b=2,c=3")];
        let (_, _, items) = run(&mut p, &frontend("/x", &headers), "", &outcome(200));
        assert_eq!(items[0]["data"]["baseData"]["properties"]["tracestate"], "a=1,b=2,c=3");
    }

    #[test]
    fn captured_content_stays_within_the_item_budget() {
        let mut p =
            pipeline(json!({"diagnostic": {"loggers": ["a"], "header_properties": {"H1": "x-big", "H2": "x-big2"}}}));
        // Non-UTF-8 bytes become 3-byte U+FFFD: 8 KB of them is 24 KB per property.
        let big = "\u{FFFD}".repeat(8000);
        let headers = [
            ("x-big", big.as_str()),
            ("x-big2", &big),
            ("tracestate", &big),
            ("traceparent", TP),
        ];
        let (_, _, items) = run(&mut p, &frontend("/x", &headers), "", &outcome(200));
        assert_eq!(
            kinds(&items),
            ["RequestData", "RemoteDependencyData"],
            "nothing dropped"
        );
        let stats = p.sinks[0].outbox.stats;
        assert_eq!(
            (stats.dropped_too_large, stats.items_trimmed),
            (0, 0),
            "the capture budget kept them small"
        );
        for item in &items {
            let props = &item["data"]["baseData"]["properties"];
            assert!(props.get("H1").is_some() && props.get("H2").is_none(), "{props:#}");
            assert_eq!(props["Capture-Truncated"], "true");
        }
    }

    #[test]
    fn oversized_items_are_sent_lean_not_dropped() {
        // Static properties are not part of the capture budget: escaped control characters
        // (6 bytes each) put both items over the service's 64 KB.
        let huge = "\u{1}".repeat(8000);
        let props = json!({"Region": "West Europe", "P1": huge, "P2": huge});
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "properties": props}}));
        let (_, _, items) = run(&mut p, &frontend("/x", &[("traceparent", TP)]), "", &outcome(200));
        assert_eq!(
            kinds(&items),
            ["RequestData", "RemoteDependencyData"],
            "nothing dropped"
        );
        let stats = p.sinks[0].outbox.stats;
        assert_eq!((stats.dropped_too_large, stats.items_trimmed), (0, 2), "both trimmed");
        for item in &items {
            assert!(item.to_string().len() <= 64 * 1024);
            let props = &item["data"]["baseData"]["properties"];
            assert!(
                props.get("P1").is_none() && props.get("Region") != Some(&json!("West Europe")),
                "lean: no custom properties (the Request's Region is the service's again)"
            );
            assert_eq!(
                item["tags"]["ai.operation.id"], "4bf92f3577b34da6a3ce929d0e0e4736",
                "still correlated"
            );
        }
    }
}
