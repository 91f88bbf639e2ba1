//! The read plan: which calls into Envoy one exchange makes, in which callback, for
//! sampled and unsampled operations. Each call leaves the VM and comes back (about a
//! microsecond, the first in a callback about two), so the plan decides first and reads
//! only what the items it will write need: at 100% sampling with captured headers, 11
//! calls per request; for an operation sampled out, 7 with the standard metrics (on by
//! default: its duration, whether and where the backend was called, the backend latency),
//! 3 without.
//!
//! - request headers: the header map (one call for all of them), the route name or
//!   metadata only if API matching needs them, then [`Pipeline::begin`]; the backend's
//!   correlation headers are set, and for a sampled operation the clock is read (the
//!   backend call's start).
//! - body chunks: the missing bytes of a captured body prefix, nothing otherwise.
//! - response headers: the map only when backend response headers are captured; under
//!   Legacy correlation, the `Request-Context` returned to the client.
//! - log: nothing for an operation that can produce no item and is not measured; else the
//!   status (from the response headers when they are wanted anyway) and flags (not for a
//!   clean success), then [`Pipeline::needs`] says what else to read before
//!   [`Pipeline::finish`]: everything the items need, or for metrics alone the duration
//!   and the backend call's cluster and latency (the clock is the tick's).
//! - response body chunks are also read whole where token metrics apply (JSON or event
//!   streams, not compressed), for the `usage` object.
//!
//! The stream never pauses: every callback lets the exchange go on — except a health
//! check (`availability.health_path`, [`super::health`]), which the filter answers itself
//! at request headers from the map it read anyway, and which then costs nothing more.

use super::plugin::Shared;
use super::{Begun, Finished, Injection, Needs, Pipeline, RouteInfo};
use crate::capture::BodyPrefix;
use crate::config::MetadataPath;
use crate::correlation::IdText;
use crate::exchange::{ip_of_address, Frontend, Outcome};
use crate::headers::HeaderMap;
use crate::host::{Attribute, BufferKind, Counted, HeaderMapKind, Host};
use crate::metrics::usage::UsageScanner;
use std::rc::Rc;

/// One HTTP exchange through the filter.
pub struct Stream {
    /// The root context's id, for log lines.
    context_id: u32,
    shared: Option<Rc<Shared>>,
    started: Option<Started>,
    /// `Request-Context` to return to the client (Legacy correlation).
    response_context: Option<IdText>,
    /// The response headers as they reached this filter (backend response capture).
    backend_response_headers: Option<HeaderMap>,
    /// Body prefixes being captured (only when the diagnostic asks for them).
    request_body: Option<BodyPrefix>,
    response_body: Option<BodyPrefix>,
    /// Token usage read from the response body as it streams by (token metrics only).
    usage: Option<Box<UsageScanner>>,
    streamed: Streamed,
    /// A health check the filter answered itself: nothing more to do.
    answered: bool,
}

/// What the filter does with a request after its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFlow {
    /// It goes on through the chain (every request but a health check).
    Continue,
    /// The filter answered it: the chain stops here.
    AnsweredLocally,
}

/// What the stream callbacks saw, so log time need not ask Envoy: body bytes each way,
/// whether the response reached its end through this filter, and (for sampled
/// operations) the clock when the request went on towards the backend.
#[derive(Default)]
struct Streamed {
    request_bytes: u64,
    response_bytes: u64,
    response_complete: bool,
    /// Unix nanoseconds; 0 when not taken.
    forwarded_at: u64,
}

/// What request headers time left for log time.
struct Started {
    frontend: Frontend,
    route_name: Vec<u8>,
    begun: Begun,
}

impl Stream {
    /// A stream of the plugin whose root context is `context_id` (`shared`: `None` when
    /// its configuration was refused; the stream then does nothing).
    pub fn new(context_id: u32, shared: Option<Rc<Shared>>) -> Stream {
        Stream {
            context_id,
            shared,
            started: None,
            response_context: None,
            backend_response_headers: None,
            request_body: None,
            response_body: None,
            usage: None,
            streamed: Streamed::default(),
            answered: false,
        }
    }

    pub fn on_request_headers(&mut self, host: &mut impl Host, _end_of_stream: bool) -> RequestFlow {
        let Some(shared) = self.shared.clone() else {
            return RequestFlow::Continue;
        };
        let host = &mut Counted::new(host, &shared.host_calls);
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return RequestFlow::Continue;
        };
        // The request as the client sent it: later filters and the router may rewrite it.
        let frontend = Frontend::from_headers(host.header_map(HeaderMapKind::Request));
        if super::health::is_health_check(&p.config().availability, &frontend) {
            drop(p);
            super::health::answer(host, frontend.method() == b"HEAD");
            self.answered = true;
            return RequestFlow::AnsweredLocally;
        }
        let (mut started, injection) = start(&mut p, host, frontend);
        if let Some(kept) = p.keep_only_used(&started.begun, &started.frontend) {
            // Injection already read what it needed; log time needs far less.
            started.frontend = kept;
        }
        let (request_bytes, response_bytes) = p.body_capture(&started.begun);
        let reads_usage = p.reads_token_usage(&started.begun);
        drop(p);
        self.usage = reads_usage.then(Box::default);
        self.request_body = (request_bytes > 0).then(|| BodyPrefix::new(request_bytes));
        self.response_body = (response_bytes > 0).then(|| BodyPrefix::new(response_bytes));
        self.response_context = inject(host, &injection);
        if started.begun.sampled {
            // The backend call's timing, by the filter's clock (read only when an item is
            // certain to need it; failures of unsampled operations ask Envoy at log time).
            self.streamed.forwarded_at = host.now_nanos();
        }
        self.started = Some(started);
        RequestFlow::Continue
    }

    /// Envoy hands over the current chunk only and the stream never waits for the filter:
    /// only the missing prefix bytes are copied out.
    pub fn on_request_body(&mut self, host: &mut impl Host, body_size: usize, _end_of_stream: bool) {
        self.streamed.request_bytes += body_size as u64;
        let Some(shared) = self.shared.clone() else { return };
        let host = &mut Counted::new(host, &shared.host_calls);
        capture_chunk(host, &mut self.request_body, BufferKind::RequestBody, body_size);
    }

    pub fn on_response_headers(&mut self, host: &mut impl Host, end_of_stream: bool) {
        self.streamed.response_complete |= end_of_stream;
        let Some(shared) = self.shared.clone() else { return };
        let host = &mut Counted::new(host, &shared.host_calls);
        // Backend response headers are captured here, before later encoder filters change
        // them (the filter placed last before the router sees exactly what the backend sent).
        let wants_backend_headers = self.started.as_ref().is_some_and(|started| {
            shared
                .pipeline
                .try_borrow()
                .is_ok_and(|p| p.captures_backend_response_headers(&started.begun))
        });
        if wants_backend_headers || self.usage.is_some() {
            let headers = host.header_map(HeaderMapKind::Response);
            if !crate::metrics::usage::may_carry_usage(&headers) {
                // Compressed, or not JSON or events: no usage can be read (counted at log time).
                self.usage = None;
            }
            self.backend_response_headers = wants_backend_headers.then_some(headers);
        }
        // Legacy correlation tells the caller which application answered (as APIM does).
        if let Some(c) = self.response_context.take() {
            host.set_header(HeaderMapKind::Response, "request-context", c.as_bytes());
        }
    }

    pub fn on_response_body(&mut self, host: &mut impl Host, body_size: usize, end_of_stream: bool) {
        self.streamed.response_bytes += body_size as u64;
        self.streamed.response_complete |= end_of_stream;
        let Some(shared) = self.shared.clone() else { return };
        let host = &mut Counted::new(host, &shared.host_calls);
        capture_chunk(host, &mut self.response_body, BufferKind::ResponseBody, body_size);
        if let Some(scanner) = self.usage.as_mut().filter(|_| body_size > 0) {
            // The whole chunk, once: the stream does not wait for the filter.
            if let Some(chunk) = host.buffer(BufferKind::ResponseBody, body_size) {
                scanner.push(&chunk);
            }
        }
    }

    pub fn on_response_trailers(&mut self) {
        self.streamed.response_complete = true;
    }

    /// The exchange is over: reads what the items need and writes them.
    pub fn on_log(&mut self, host: &mut impl Host) {
        if self.answered {
            return;
        }
        let Some(shared) = self.shared.clone() else { return };
        let host = &mut Counted::new(host, &shared.host_calls);
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return;
        };
        // No request headers callback happened when an earlier filter answered locally:
        // read the request from the access-log view instead.
        let (started, streamed) = match self.started.take() {
            Some(s) => (s, Some(&self.streamed)),
            None => {
                let frontend = Frontend::from_headers(host.header_map(HeaderMapKind::Request));
                (start(&mut p, host, frontend).0, None)
            }
        };
        if !p.may_emit(&started.begun) {
            p.settled(&started.begun, false);
            return;
        }
        let Status {
            code,
            flags,
            clean,
            response_headers,
        } = read_status(&p, host, &started.begun, streamed);
        let needs = p.needs(&started.begun, code, flags);
        p.settled(&started.begun, needs.backend_item);
        if !needs.outcome {
            return;
        }
        let status = Status {
            code,
            flags,
            clean,
            response_headers,
        };
        let ran = streamed.is_some();
        self.finish(&mut p, host, started, (status, ran), needs);
    }

    /// Reads what `needs` says and hands the finished exchange to the pipeline.
    /// (`ran`: whether the stream callbacks ran, so what they counted holds.)
    fn finish(
        &self,
        p: &mut Pipeline,
        host: &mut impl Host,
        mut started: Started,
        (status, ran): (Status, bool),
        needs: Needs,
    ) {
        let streamed = ran.then_some(&self.streamed);
        if started.route_name.is_empty() && needs.route {
            started.route_name = host.property(Attribute::RouteName).unwrap_or_default();
        }
        // Metrics alone take the time from the tick's clock (at most 100 ms old).
        let now = match p.clock() {
            clock if clock > 0 && !needs.items => clock,
            _ => host.now_nanos(),
        };
        let mut outcome = read_outcome(host, &started, (status.code, status.flags), streamed, now, needs.items);
        let backend = if needs.backend {
            // The filter's clock times the backend call only when `now` was read for it
            // (the tick's clock may be older than the call's start).
            let timed_by_clock = status.clean && needs.items;
            let client_authority = started.frontend.authority();
            let how = (timed_by_clock, client_authority, needs.backend_item);
            super::backend::read(p, host, how, streamed.map(|s| s.forwarded_at), now)
        } else {
            None
        };
        if status.clean && needs.backend_item && backend.as_ref().is_none_or(|b| b.attempts == 0) {
            // A clean answer no backend gave (a cache hit, a direct response): its flags
            // say which (the Request's `Cache`); backend answers skip this call.
            // Only the cache's flag: the success the items were planned with stands.
            let flags = host.property_u64(Attribute::ResponseFlags).unwrap_or(0);
            outcome.response_flags |= flags & crate::exchange::flags::RESPONSE_FROM_CACHE_FILTER;
        }
        let response_headers = read_response_headers(host, needs, status.response_headers);
        let metadata = if needs.metadata {
            read_metadata(host, p.metadata_of(&started.begun, needs.items))
        } else {
            Vec::new()
        };
        let done = Finished {
            route_name: &started.route_name,
            backend: backend.as_ref(),
            response_headers: response_headers.as_ref(),
            request_body: self.request_body.as_ref(),
            response_body: self.response_body.as_ref(),
            backend_response_headers: self.backend_response_headers.as_ref(),
            metadata: &metadata,
            usage: self.usage.as_ref().and_then(|u| u.usage()),
            ..Finished::new(&started.begun, &started.frontend, &outcome)
        };
        for notice in p.finish(&done) {
            notice.emit(self.context_id);
        }
    }
}

/// Reads the route facts API matching needs and begins the exchange.
fn start(p: &mut Pipeline, host: &mut impl Host, frontend: Frontend) -> (Started, Injection) {
    // The route name is read now only if API matching needs it, else at log time if an
    // item is written.
    let route_name = if p.route_needed_early() {
        host.property(Attribute::RouteName).unwrap_or_default()
    } else {
        Vec::new()
    };
    let (metadata_api, metadata_operation) = if p.metadata_needed() {
        let api = host
            .property(Attribute::RouteMetadataApi)
            .or_else(|| host.property(Attribute::VirtualHostMetadataApi))
            .unwrap_or_default();
        (
            api,
            host.property(Attribute::RouteMetadataOperation).unwrap_or_default(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let route = RouteInfo {
        name: &route_name,
        metadata_api: &metadata_api,
        metadata_operation: &metadata_operation,
    };
    let (begun, injection) = p.begin(&frontend, &route);
    (
        Started {
            frontend,
            route_name,
            begun,
        },
        injection,
    )
}

/// Sets the backend's correlation headers; returns the `Request-Context` for the client.
fn inject(host: &mut impl Host, injection: &Injection) -> Option<IdText> {
    let request = HeaderMapKind::Request;
    if let Some(tp) = &injection.traceparent {
        host.set_header(request, "traceparent", tp);
    }
    if injection.remove_traceparent {
        host.remove_header(request, "traceparent");
    }
    if injection.remove_tracestate {
        host.remove_header(request, "tracestate");
    }
    if let Some(id) = &injection.request_id {
        host.set_header(request, "request-id", id.as_bytes());
    }
    let context = injection.request_context?;
    host.set_header(request, "request-context", context.as_bytes());
    Some(context)
}

/// What decides whether anything is written.
struct Status {
    code: u32,
    flags: u64,
    /// A response below 400 that passed through this filter to its end: its flags cannot
    /// change the verdict and are not read.
    clean: bool,
    /// The response headers, when they are wanted anyway (the status then comes with them).
    response_headers: Option<HeaderMap>,
}

/// The status and response flags, at the fewest calls.
fn read_status(p: &Pipeline, host: &mut impl Host, begun: &Begun, streamed: Option<&Streamed>) -> Status {
    let response_headers = p
        .wants_response_headers(begun)
        .then(|| host.header_map(HeaderMapKind::Response));
    let code = response_headers
        .as_ref()
        .and_then(status_of)
        .or_else(|| host.property_u64(Attribute::ResponseCode).map(|c| c as u32))
        .unwrap_or(0);
    let clean = streamed.is_some_and(|s| s.response_complete) && (1..400).contains(&code);
    let flags = if clean {
        0
    } else {
        host.property_u64(Attribute::ResponseFlags).unwrap_or(0)
    };
    Status {
        code,
        flags,
        clean,
        response_headers,
    }
}

/// `:status` of a response header map.
fn status_of(headers: &HeaderMap) -> Option<u32> {
    std::str::from_utf8(headers.get(b":status")?).ok()?.parse().ok()
}

/// The response headers, if the items need them and they were not read yet.
fn read_response_headers(host: &mut impl Host, needs: Needs, read: Option<HeaderMap>) -> Option<HeaderMap> {
    match read {
        None if needs.response_headers => Some(host.header_map(HeaderMapKind::Response)),
        read => read,
    }
}

/// Copies what is still missing of a body prefix out of the current chunk.
fn capture_chunk(host: &mut impl Host, prefix: &mut Option<BodyPrefix>, kind: BufferKind, chunk_size: usize) {
    let Some(prefix) = prefix else { return };
    let wanted = prefix.wanted().min(chunk_size);
    if wanted == 0 {
        return;
    }
    if let Some(bytes) = host.buffer(kind, wanted) {
        prefix.push(&bytes);
    }
}

/// What Envoy knows once the exchange is over (status and flags already read). What the
/// stream callbacks counted is used when they ran; Envoy is asked otherwise. For metrics
/// alone (`items` false) the duration is all that is read: the exchange ends `now`.
fn read_outcome(
    host: &mut impl Host,
    started: &Started,
    (response_code, response_flags): (u32, u64),
    streamed: Option<&Streamed>,
    now: u64,
    items: bool,
) -> Outcome {
    let start = if items {
        host.property_u64(Attribute::RequestTime).unwrap_or(0)
    } else {
        0
    };
    // The exchange ends now (the access-log callback runs when the stream completes).
    let duration = if start > 0 && now > start {
        now - start
    } else {
        host.property_u64(Attribute::RequestDuration).unwrap_or(0)
    };
    let (request_body_bytes, response_body_bytes) = match streamed {
        Some(s) => (s.request_bytes, s.response_bytes),
        None => (
            host.property_u64(Attribute::RequestSize).unwrap_or(0),
            host.property_u64(Attribute::ResponseSize).unwrap_or(0),
        ),
    };
    let mut outcome = Outcome {
        start_unix_nanos: if start > 0 { start } else { now.saturating_sub(duration) },
        duration_nanos: duration,
        response_code,
        response_flags,
        request_body_bytes,
        response_body_bytes,
        client_ip: None,
        code_details: None,
    };
    if !outcome.success() {
        // Only failures need to know who answered and why.
        outcome.code_details = host.property(Attribute::ResponseCodeDetails);
    }
    if items && started.begun.log_client_ip {
        outcome.client_ip = host
            .property(Attribute::SourceAddress)
            .map(|a| ip_of_address(&a).to_vec());
    }
    outcome
}

/// The dynamic metadata values at `paths` (those Envoy has).
fn read_metadata(host: &mut impl Host, paths: &[MetadataPath]) -> Vec<(MetadataPath, Vec<u8>)> {
    paths
        .iter()
        .filter_map(|p| Some((p.clone(), host.property_at(&p.attribute_path())?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::host::fake::{drive, Bodies, Call, ExchangeCalls, FakeHost};
    use crate::host::{Attribute, BufferKind, HeaderMapKind};
    use crate::pipeline::plugin::Plugin;
    use serde_json::{json, Value};
    use Call::{Clock, HeaderMap, Property, SetHeader};
    use HeaderMapKind::{Request, Response};

    const LOGGER: &str =
        "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/";

    /// A plugin configured with `diagnostic`, on the benchmark's exchange.
    fn configured(diagnostic: Value) -> (Plugin, FakeHost) {
        let config = json!({"loggers": {"a": {"connection_string": LOGGER}}, "diagnostic": diagnostic});
        let mut host = FakeHost::benchmark_exchange();
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        (plugin, host)
    }

    fn exchange(plugin: &Plugin, host: &mut FakeHost, bodies: Bodies) -> ExchangeCalls {
        drive(&mut plugin.stream(), host, bodies)
    }

    /// The diagnostic `tests/harness/tests/host_calls.rs` and `scripts/bench.sh` use.
    fn four_headers(sampling: u32) -> Value {
        json!({"sampling_percentage": sampling,
               "frontend": {"request": {"headers": ["user-agent", "content-type"]},
                            "response": {"headers": ["content-type", "content-length"]}}})
    }

    #[test]
    fn a_sampled_exchange_with_captured_headers_makes_eleven_calls() {
        let (plugin, mut host) = configured(four_headers(100));
        let first = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(
            calls.request_headers,
            [HeaderMap(Request), SetHeader(Request, "traceparent".into()), Clock]
        );
        assert_eq!(calls.request_body, []);
        assert_eq!(calls.response_headers, []);
        assert_eq!(calls.response_body, []);
        #[rustfmt::skip]
        let log = [
            HeaderMap(Response), // the status comes with the captured headers
            Property(Attribute::RouteName), Clock, Property(Attribute::RequestTime),
            Property(Attribute::UpstreamRequestAttemptCount), Property(Attribute::ClusterName),
            Property(Attribute::UpstreamAddress), HeaderMap(Request), // the request as sent upstream
        ];
        assert_eq!(calls.log, log);
        assert_eq!(calls.total(), 11);
        // Once per worker and cluster (then once a minute): whether the cluster uses TLS.
        assert_eq!(first.total(), 12);
        assert!(first.log.contains(&Property(Attribute::UpstreamTlsVersion)));
    }

    #[test]
    fn a_clean_answer_no_backend_gave_reads_its_flags_once_for_the_cache_dimension() {
        let (plugin, mut host) = configured(four_headers(100));
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert!(
            !calls.log.contains(&Property(Attribute::ResponseFlags)),
            "a backend answered"
        );
        let cached = crate::exchange::flags::RESPONSE_FROM_CACHE_FILTER;
        host.properties
            .insert(Attribute::UpstreamRequestAttemptCount, 0u64.to_le_bytes().to_vec());
        host.properties
            .insert(Attribute::ResponseFlags, cached.to_le_bytes().to_vec());
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let flags = calls.log.iter().filter(|c| **c == Property(Attribute::ResponseFlags));
        assert_eq!(flags.count(), 1, "{:?}", calls.log);
        host.now += 2_000_000_000;
        let mut plugin = plugin;
        plugin.tick(&mut host);
        let gz = &host.callouts[0].body;
        let body = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(body.contains("\"Cache\":\"Hit\""), "{body}");
    }

    #[test]
    fn an_unsampled_exchange_makes_three_calls_without_standard_metrics() {
        let mut diagnostic = four_headers(0);
        diagnostic["standard_metrics"] = json!(false);
        let (plugin, mut host) = configured(diagnostic);
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        // Propagation goes on when nothing is recorded; errors are always logged, so the
        // status is read.
        assert_eq!(
            calls.request_headers,
            [HeaderMap(Request), SetHeader(Request, "traceparent".into())]
        );
        assert_eq!(calls.log, [Property(Attribute::ResponseCode)]);
        assert_eq!(calls.total(), 3);
    }

    #[test]
    fn an_unsampled_exchange_makes_seven_calls_for_its_standard_metrics() {
        let (plugin, mut host) = configured(four_headers(0));
        // Once per worker and cluster (then once a minute), the address of the host that
        // served the call names the dependency's target, when no item named it.
        let first = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(first.total(), 8);
        assert!(first.log.contains(&Property(Attribute::UpstreamAddress)));
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(
            calls.request_headers,
            [HeaderMap(Request), SetHeader(Request, "traceparent".into())]
        );
        #[rustfmt::skip]
        let log = [
            Property(Attribute::ResponseCode),           // request/resultCode, Request.Success
            Property(Attribute::RequestDuration),        // requests/duration (the clock is the tick's)
            Property(Attribute::UpstreamRequestAttemptCount), // was there a backend call?
            Property(Attribute::ClusterName),            // dependency/target (per cluster)
            Property(Attribute::ResponseBackendLatency), // dependencies/duration
        ];
        assert_eq!(calls.log, log);
        assert_eq!(calls.total(), 7);
    }

    #[test]
    fn two_custom_metric_rules_read_the_route_name_only() {
        let rules = |sampling| {
            let mut d = four_headers(sampling);
            let extra = FakeHost::benchmark_metric_rules();
            d.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            d
        };
        let (plugin, mut host) = configured(rules(0));
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(calls.log.first(), Some(&Property(Attribute::ResponseCode)));
        assert_eq!(
            calls.log.get(1),
            Some(&Property(Attribute::RouteName)),
            "API ID falls back to it"
        );
        assert_eq!(calls.total(), 8);
        let (plugin, mut host) = configured(rules(100));
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES).total(), 11);
    }

    #[test]
    fn an_unsampled_exchange_reads_only_the_metadata_its_metrics_print() {
        let mut d = four_headers(0);
        d["metrics"] = json!(true);
        d["emit_metrics"] =
            json!([{"name": "Calls", "dimensions": [{"name": "Team", "value": "{metadata.teams/id}"}]}]);
        d["dynamic_properties"] =
            json!({"Subscription Name": "{metadata.jwt/sub}", "Product Name": "{metadata.jwt/product}"});
        let (plugin, mut host) = configured(d);
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let metadata: Vec<&crate::host::fake::Call> = calls
            .log
            .iter()
            .filter(|c| matches!(c, crate::host::fake::Call::PropertyAt(_)))
            .collect();
        assert_eq!(
            metadata,
            [&crate::host::fake::Call::PropertyAt(
                "metadata.filter_metadata.teams.id".into()
            )]
        );
    }

    /// Every item the plugin sent (batches are not gzip-compressed in these tests).
    fn sent_items(host: &FakeHost) -> Vec<Value> {
        host.callouts
            .iter()
            .flat_map(|c| c.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()))
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    /// Runs one exchange whose response (headers `content`) streams `chunks`; returns the
    /// calls of the response body callbacks, the MetricData items sent afterwards and the
    /// `token_usage_missing` stat.
    fn token_exchange(content: &[(&str, &str)], chunks: &[&[u8]]) -> (Vec<Call>, Vec<Value>, Option<i64>) {
        let config = json!({"loggers": {"a": {"connection_string": LOGGER}}, "delivery": {"gzip": false},
                            "diagnostic": {"sampling_percentage": 0, "standard_metrics": false, "metrics": true,
                                           "token_metrics": {"dimensions": [{"name": "API ID"}]}}});
        let mut host = FakeHost::benchmark_exchange();
        host.response_headers.retain(|(k, _)| k != "content-type");
        host.response_headers
            .extend(content.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        let mut stream = plugin.stream();
        stream.on_request_headers(&mut host, true);
        stream.on_response_headers(&mut host, false);
        host.take_calls();
        for (i, chunk) in chunks.iter().enumerate() {
            host.buffers.insert(BufferKind::ResponseBody, chunk.to_vec());
            stream.on_response_body(&mut host, chunk.len(), i + 1 == chunks.len());
        }
        let body_calls = host.take_calls();
        stream.on_log(&mut host);
        host.now += 61_000_000_000;
        plugin.tick(&mut host); // the interval ended: its aggregates are written
        host.now += 2_000_000_000;
        plugin.tick(&mut host); // and sent
        (
            body_calls,
            sent_items(&host),
            host.stat("appinsights.token_usage_missing"),
        )
    }

    #[test]
    fn token_usage_is_read_from_each_response_chunk_as_it_passes() {
        let body = br#"{"choices":[{"text":"\"usage\": {\"total_tokens\": 1}"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        let (first, rest) = body.split_at(60);
        let (calls, items, missing) = token_exchange(&[("content-type", "application/json")], &[first, rest]);
        assert_eq!(missing, Some(0));
        assert_eq!(
            calls,
            [
                Call::Buffer(BufferKind::ResponseBody, 60),
                Call::Buffer(BufferKind::ResponseBody, rest.len())
            ]
        );
        let value = |name: &str| {
            items
                .iter()
                .find(|i| i["data"]["baseData"]["metrics"][0]["name"] == name)
                .map(|i| i["data"]["baseData"]["metrics"][0]["value"].clone())
        };
        assert_eq!(value("Total Tokens"), Some(json!(7)));
        assert_eq!(value("Prompt Tokens"), Some(json!(3)));
        assert_eq!(value("Completion Tokens"), Some(json!(4)));
        assert_eq!(items[0]["data"]["baseData"]["metrics"][0]["ns"], "API Management");
    }

    #[test]
    fn bodies_that_cannot_carry_usage_are_not_read_and_count_as_missing() {
        let usage = br#"{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        for headers in [
            &[("content-type", "application/octet-stream")][..],
            &[("content-type", "application/json"), ("content-encoding", "gzip")][..],
        ] {
            let (calls, items, missing) = token_exchange(headers, &[usage]);
            assert_eq!(calls, [], "{headers:?}");
            assert!(items.is_empty(), "{headers:?}");
            assert_eq!(missing, Some(1), "{headers:?}");
        }
        let (calls, items, missing) = token_exchange(&[("content-type", "text/event-stream")], &[b"data: {}\n\n"]);
        assert_eq!(calls.len(), 1);
        assert!(items.is_empty(), "no usage, nothing emitted");
        assert_eq!(missing, Some(1));
    }

    #[test]
    fn a_sampled_exchange_that_writes_no_item_takes_its_backend_latency_from_envoy() {
        // Sampled, but verbosity `error` writes nothing for a success: its metrics use the
        // tick's clock, which may be older than the backend call's start.
        let config = json!({"loggers": {"a": {"connection_string": LOGGER}}, "delivery": {"gzip": false},
                            "diagnostic": {"verbosity": "error"}});
        let mut host = FakeHost::benchmark_exchange();
        host.properties
            .insert(Attribute::RequestDuration, 90_000_000u64.to_le_bytes().to_vec());
        host.properties
            .insert(Attribute::ResponseBackendLatency, 80_000_000u64.to_le_bytes().to_vec());
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        let mut stream = plugin.stream();
        stream.on_request_headers(&mut host, true);
        plugin.tick(&mut host);
        host.now += 80_000_000;
        stream.on_response_headers(&mut host, true);
        stream.on_log(&mut host);
        host.now += 61_000_000_000;
        plugin.tick(&mut host);
        host.now += 2_000_000_000;
        plugin.tick(&mut host);
        let items = sent_items(&host);
        let dependency = items
            .iter()
            .find(|i| i["data"]["baseData"]["metrics"][0]["name"] == "Dependency duration")
            .unwrap();
        assert_eq!(dependency["data"]["baseData"]["metrics"][0]["value"], 80.0);
        assert_eq!(
            dependency["data"]["baseData"]["properties"]["dependency/performanceBucket"],
            "<250ms"
        );
    }

    #[test]
    fn a_sampled_exchange_reads_nothing_more_for_its_standard_metrics() {
        let mut diagnostic = four_headers(100);
        diagnostic["standard_metrics"] = json!(false);
        let (plugin, mut host) = configured(diagnostic);
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let without = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let (plugin, mut host) = configured(four_headers(100));
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        let with = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(with, without);
    }

    #[test]
    fn the_host_calls_stat_counts_every_call_exchanges_make_and_only_those() {
        let (mut plugin, mut host) = configured(four_headers(100));
        let made: usize = (0..5)
            .map(|_| exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES).total())
            .sum();
        assert_eq!(made, 12 + 4 * 11);
        plugin.tick(&mut host);
        assert_eq!(
            host.stat("appinsights.host_calls"),
            Some(made as i64),
            "the tick's own calls are not counted"
        );
        assert_eq!(
            host.stat("appinsights.a.items_created"),
            Some(10),
            "a Request and a Dependency each"
        );
        host.now += 2_000_000_000; // past the flush interval
        plugin.tick(&mut host);
        assert_eq!(host.callouts.len(), 1, "one batch");
        let sent = host.callouts[0].id;
        host.callout_response_headers = vec![(":status".into(), "200".into())];
        host.buffers.insert(
            BufferKind::CalloutResponseBody,
            br#"{"itemsReceived":10,"itemsAccepted":10}"#.to_vec(),
        );
        plugin.answer(&mut host, sent, 1, 39);
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(10));
        assert_eq!(
            host.stat("appinsights.host_calls"),
            Some(made as i64),
            "still only the exchanges' calls: not the callout's, nor its answer's"
        );
    }

    #[test]
    fn a_sampled_failure_asks_envoy_for_the_backend_timing_and_tls() {
        // A clean exchange fills the cluster's TLS cache and times the backend call by the
        // filter's clock; a failed one must not trust either.
        let (plugin, mut host) = configured(four_headers(100));
        exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        host.response_headers = vec![(":status".into(), "503".into())];
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        for read in [
            Attribute::ResponseFlags,
            Attribute::ResponseBackendLatency,
            Attribute::UpstreamTlsVersion,
        ] {
            assert!(
                calls.log.contains(&Property(read)),
                "{read:?} not read: {:?}",
                calls.log
            );
        }
    }

    #[test]
    fn a_response_that_did_not_end_through_the_filter_reads_its_flags() {
        let (plugin, mut host) = configured(four_headers(100));
        let mut stream = plugin.stream();
        stream.on_request_headers(&mut host, true);
        stream.on_response_headers(&mut host, false);
        stream.on_response_body(&mut host, 100, false);
        host.take_calls();
        stream.on_log(&mut host);
        assert!(
            host.take_calls().contains(&Property(Attribute::ResponseFlags)),
            "cut short: flags decide"
        );
        let mut stream = plugin.stream();
        stream.on_request_headers(&mut host, true);
        stream.on_response_headers(&mut host, false);
        stream.on_response_body(&mut host, 100, false);
        stream.on_response_trailers();
        host.take_calls();
        stream.on_log(&mut host);
        assert!(
            !host.take_calls().contains(&Property(Attribute::ResponseFlags)),
            "trailers end it cleanly"
        );
    }

    #[test]
    fn a_local_reply_without_request_headers_reads_the_request_and_its_sizes_at_log_time() {
        let (plugin, mut host) = configured(four_headers(100));
        host.take_calls();
        let mut stream = plugin.stream();
        stream.on_log(&mut host);
        let calls = host.take_calls();
        assert_eq!(calls.first(), Some(&HeaderMap(Request)));
        for read in [
            Attribute::RequestSize,
            Attribute::ResponseSize,
            Attribute::ResponseFlags,
        ] {
            assert!(calls.contains(&Property(read)), "{read:?} not read: {calls:?}");
        }
        assert!(
            !calls.contains(&SetHeader(Request, "traceparent".into())),
            "too late to propagate"
        );
    }

    #[test]
    fn client_ips_and_backend_response_headers_are_read_only_when_configured() {
        let (plugin, mut host) = configured(json!({"log_client_ip": true,
            "backend": {"response": {"headers": ["server"]}}}));
        let calls = exchange(&plugin, &mut host, Bodies::default());
        assert_eq!(calls.response_headers, [HeaderMap(Response)]);
        assert!(calls.log.contains(&Property(Attribute::SourceAddress)));
        let (plugin, mut host) = configured(json!({}));
        let calls = exchange(&plugin, &mut host, Bodies::default());
        assert_eq!(calls.response_headers, []);
        assert!(!calls.log.contains(&Property(Attribute::SourceAddress)));
    }

    #[test]
    fn a_failed_exchange_reads_flags_and_details_and_captures_nothing_it_was_not_asked_to() {
        let (plugin, mut host) = configured(json!({"sampling_percentage": 0}));
        host.response_headers = vec![(":status".into(), "503".into())];
        host.properties
            .insert(Attribute::ResponseCode, 503u64.to_le_bytes().to_vec());
        let calls = exchange(&plugin, &mut host, Bodies::default());
        #[rustfmt::skip]
        let log = [
            Property(Attribute::ResponseCode), Property(Attribute::ResponseFlags), Property(Attribute::RouteName),
            Clock, Property(Attribute::RequestTime), Property(Attribute::ResponseCodeDetails),
            Property(Attribute::UpstreamRequestAttemptCount), Property(Attribute::ClusterName),
            // Unsampled: the backend's timing was not taken at request headers.
            Property(Attribute::ResponseBackendLatency), Property(Attribute::UpstreamTlsVersion),
            Property(Attribute::UpstreamAddress), HeaderMap(Request),
        ];
        assert_eq!(calls.log, log);
    }

    #[test]
    fn body_capture_reads_only_the_prefix_it_keeps() {
        let (plugin, mut host) =
            configured(json!({"frontend": {"request": {"body_bytes": 16}, "response": {"body_bytes": 8}}}));
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(calls.request_body, [Call::Buffer(BufferKind::RequestBody, 16)]);
        assert_eq!(calls.response_body, [Call::Buffer(BufferKind::ResponseBody, 8)]);
        let (plugin, mut host) = configured(json!({"sampling_percentage": 0, "always_log_errors": false,
                                               "frontend": {"request": {"body_bytes": 16}}}));
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(
            calls.request_body,
            [],
            "an operation that writes no Request captures nothing"
        );
    }

    #[test]
    fn legacy_correlation_replaces_the_callers_headers_and_answers_with_request_context() {
        let config = json!({"loggers": {"a": {"connection_string": format!("{LOGGER};ApplicationId=app-1")}},
                            "diagnostic": {"correlation_protocol": "Legacy"}});
        let mut host = FakeHost::benchmark_exchange();
        host.request_headers.push((
            "traceparent".into(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        ));
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        let calls = exchange(&plugin, &mut host, Bodies::default());
        let set = |name: &str| SetHeader(Request, name.into());
        let removed = Call::RemoveHeader(Request, "traceparent".into());
        assert_eq!(
            calls.request_headers,
            [
                HeaderMap(Request),
                removed,
                set("request-id"),
                set("request-context"),
                Clock
            ]
        );
        assert_eq!(calls.response_headers, [SetHeader(Response, "request-context".into())]);
    }

    #[test]
    fn apis_matched_on_route_metadata_read_it_at_request_headers() {
        let mut host = FakeHost::benchmark_exchange();
        let config = json!({"loggers": {"a": {"connection_string": LOGGER}},
                            "apis": [{"name": "orders", "match": {"route_metadata": true}}]});
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        let calls = exchange(&plugin, &mut host, Bodies::default());
        #[rustfmt::skip]
        let expected = [
            HeaderMap(Request), Property(Attribute::RouteMetadataApi), Property(Attribute::VirtualHostMetadataApi),
            Property(Attribute::RouteMetadataOperation), SetHeader(Request, "traceparent".into()), Clock,
        ];
        assert_eq!(calls.request_headers, expected);
    }

    #[test]
    fn operations_sampled_out_counts_only_operations_that_wrote_no_request() {
        let (mut plugin, mut host) = configured(four_headers(0));
        exchange(&plugin, &mut host, Bodies::default());
        host.response_headers = vec![(":status".into(), "503".into())];
        host.properties
            .insert(Attribute::ResponseCode, 503u64.to_le_bytes().to_vec());
        exchange(&plugin, &mut host, Bodies::default());
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.items_created"), Some(3), "the failure is kept");
        assert_eq!(
            host.stat("appinsights.operations_sampled_out"),
            Some(1),
            "only the success was dropped"
        );
    }

    #[test]
    fn an_exchange_in_flight_keeps_only_the_request_headers_its_items_use() {
        let (mut plugin, mut host) = configured(json!({
            "frontend": {"request": {"headers": ["user-agent"]}},
            "header_properties": {"Tenant": "x-tenant"},
            "traces": [{"severity": "information", "message": "seen {request.header.x-trace}"}]}));
        let cookie = format!("session={}", "c".repeat(40 * 1024));
        host.request_headers.push(("cookie".into(), cookie));
        for (name, value) in [("user-agent", "ua/1"), ("x-tenant", "contoso"), ("x-trace", "t-7")] {
            host.request_headers.push((name.into(), value.into()));
        }
        let mut stream = plugin.stream();
        stream.on_request_headers(&mut host, true);
        let held = stream.started.as_ref().unwrap().frontend.held_bytes();
        assert!(held < 1024, "{held} bytes held while in flight");
        stream.on_response_headers(&mut host, true);
        stream.on_log(&mut host);
        host.now += 2_000_000_000;
        plugin.tick(&mut host);
        let gz = &host.callouts[0].body;
        let body = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        for kept in [
            "\"Request-user-agent\":\"ua/1\"",
            "\"Tenant\":\"contoso\"",
            "seen t-7",
            "\"name\":\"POST /bytes/{id}\"",
            "\"url\":\"http://127.0.0.1:20002/bytes/1024\"",
        ] {
            assert!(body.contains(kept), "{kept} missing: {body}");
        }
    }

    #[test]
    fn a_refused_configuration_leaves_streams_inert() {
        let mut host = FakeHost::benchmark_exchange();
        let mut plugin = Plugin::new(1);
        assert!(!host.configure(&mut plugin, r#"{"loggers": {}}"#));
        let calls = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
        assert_eq!(calls.total(), 0);
    }

    /// A plugin configured with `diagnostic` and the health endpoint at `/healthz`.
    fn with_health_path(diagnostic: Value) -> (Plugin, FakeHost) {
        let config = json!({"loggers": {"a": {"connection_string": LOGGER}}, "diagnostic": diagnostic,
                            "availability": {"health_path": "/healthz"}});
        let mut host = FakeHost::benchmark_exchange();
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        (plugin, host)
    }

    #[test]
    fn a_health_check_is_answered_at_request_headers_and_nothing_else_happens() {
        use super::RequestFlow;
        let (mut plugin, mut host) = with_health_path(four_headers(100));
        for (method, body) in [("GET", super::super::health::BODY), ("HEAD", &b""[..])] {
            host.request_headers = vec![
                (":method".into(), method.into()),
                (":path".into(), "/healthz?from=azure".into()),
                (":authority".into(), "gw.example".into()),
            ];
            let mut stream = plugin.stream();
            host.take_calls();
            assert_eq!(stream.on_request_headers(&mut host, true), RequestFlow::AnsweredLocally);
            assert_eq!(host.take_calls(), [HeaderMap(Request), Call::SendResponse(200)]);
            let sent = host.responses.pop().unwrap();
            assert_eq!(sent.body, body, "{method}");
            assert!(sent
                .headers
                .contains(&("content-type".into(), "application/json".into())));
            // Envoy runs the local reply through the encoder callbacks, then logs it.
            stream.on_response_headers(&mut host, body.is_empty());
            stream.on_response_body(&mut host, body.len(), true);
            stream.on_log(&mut host);
            assert_eq!(host.take_calls(), [], "no telemetry, nothing read: {method}");
        }
        host.now += 2_000_000_000;
        plugin.tick(&mut host);
        assert!(host.callouts.is_empty(), "no item was written");
        assert_eq!(host.stat("appinsights.a.items_created"), Some(0));
    }

    #[test]
    fn a_health_path_costs_other_requests_no_call() {
        for diagnostic in [
            four_headers(100),
            four_headers(0),
            json!({"standard_metrics": false, "sampling_percentage": 0}),
        ] {
            let (plugin, mut host) = configured(diagnostic.clone());
            let without = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
            let (plugin, mut host) = with_health_path(diagnostic.clone());
            let with = exchange(&plugin, &mut host, FakeHost::BENCHMARK_BODIES);
            assert_eq!(with, without, "{diagnostic}");
            assert!(host.responses.is_empty());
        }
    }
}
