//! The per-worker telemetry pipeline: everything the filter decides and does between "a
//! request arrived" and "this batch goes to that cluster", without talking to Envoy.
//!
//! One [`Pipeline`] exists per root context (one per plugin configuration per worker VM).
//!
//! 1. [`Pipeline::begin`], at request headers: find the request's API (hence its
//!    diagnostic), read the caller's trace context, decide sampling for the operation, and
//!    choose the ids, including the one the backend receives ([`Injection`]).
//! 2. [`Pipeline::needs`], at log time: what must be read from Envoy; nothing at all for an
//!    operation that can produce no item (sampled out, no error logging, no trace rule).
//! 3. [`Pipeline::finish`]: which items the exchange produces (Request, Dependency,
//!    Exception, Traces) under the diagnostic's sampling, `always_log_errors` and
//!    verbosity, written into each selected logger's batch.
//! 4. The root context's tick takes due batches ([`Pipeline::next_due`]) and reports the
//!    callouts' answers ([`Pipeline::completed`]).

use crate::capture::BodyPrefix;
use crate::config::{Config, Diagnostic, Logger, OperationNameFormat, RouteFacts, TraceRule};
use crate::correlation::{self, IdText, Incoming, Protocol};
use crate::delivery::track::{self, Verdict};
use crate::delivery::{Added, Batch, Completion, LogLimiter, Outbox, Stats};
use crate::exchange::{Backend, Frontend, Outcome};
use crate::headers::HeaderMap;
use crate::host::CalloutId;
use crate::ids::{IdGenerator, SpanId};
use crate::managed_identity::TokenSource;
use crate::sampling;
use crate::telemetry::{dependency, exception, failure, request, trace, ApiNames, Facts, Operation, Sender};

/// How often the same warning may be logged per logger.
const WARN_INTERVAL_NANOS: u64 = 10_000_000_000;

/// `ai.cloud.role` and `ai.cloud.roleInstance` after defaults were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub role: String,
    pub instance: String,
}

/// One logger's state on this worker.
#[derive(Debug)]
pub struct Sink {
    pub id: String,
    pub cluster: String,
    /// `:authority` and `:path` of every track request, prepared once.
    pub authority: String,
    pub path: String,
    sender: Sender,
    pub outbox: Outbox,
    /// Entra ID tokens, when the logger uses managed identity.
    pub token: Option<TokenSource>,
    gzip: bool,
    /// A 401/403 already made the token refresh once since the last success.
    refreshed_for_auth: bool,
    drop_warning: LogLimiter,
    failure_warning: LogLimiter,
}

impl Sink {
    fn new(logger: &Logger, roles: &Roles, config: &Config) -> Sink {
        let endpoint = &logger.connection.ingestion_endpoint;
        let token = logger
            .identity
            .as_ref()
            .map(|(identity, cluster)| TokenSource::new(identity, logger.connection.aad_audience.as_deref(), cluster));
        let outbox = Outbox::new(config.delivery);
        Sink {
            id: logger.id.clone(),
            cluster: logger.cluster.clone(),
            authority: endpoint.authority(),
            path: endpoint.track_path(),
            sender: Sender::new(&logger.connection.instrumentation_key, &roles.role, &roles.instance),
            outbox: if token.is_some() {
                outbox.with_credentials()
            } else {
                outbox
            },
            token,
            gzip: config.delivery.gzip,
            refreshed_for_auth: false,
            drop_warning: LogLimiter::default(),
            failure_warning: LogLimiter::default(),
        }
    }

    /// Whether batches can go now: without managed identity always, with it once a token
    /// is held.
    fn can_send(&self, now: u64) -> bool {
        self.token.as_ref().is_none_or(|t| t.authorization(now).is_some())
    }

    fn warn(&mut self, now: u64, problem: &str) -> Option<Notice> {
        let suppressed = self.failure_warning.allow(now, WARN_INTERVAL_NANOS)?;
        Some(Notice::Warn(format!(
            "logger {}: {problem}{}",
            self.id,
            suppressed_note(suppressed)
        )))
    }
}

/// Counter (only grows) or gauge (goes up and down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// A callout the root context should start.
#[derive(Debug)]
pub enum Work {
    /// Post a batch to the logger's ingestion endpoint.
    Ingest { sink: usize, batch: Batch },
    /// Fetch an Entra ID token for the logger.
    Token { sink: usize },
}

/// A prepared HTTP callout.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub cluster: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: std::borrow::Cow<'a, [u8]>,
    pub timeout_ms: u64,
}

/// What a token answer means for the operator (never the token itself).
fn token_answered(s: &mut Sink, answer: Answer<'_>, now: u64, random: u64) -> Option<Notice> {
    let t = s.token.as_mut()?;
    match t.answered(answer.status, answer.body, now, random) {
        Ok(()) => {
            // Batches that waited for credentials may go now.
            s.outbox.resume();
            None
        }
        Err(e) => {
            let cluster = t.cluster.clone();
            s.warn(
                now,
                &format!("no Entra ID token from the metadata endpoint (cluster {cluster}): {e}; telemetry waits"),
            )
        }
    }
}

/// A log line for an answer worth one (`None` for a full success).
fn describe_verdict(verdict: &Verdict, done: &Completion, cluster: &str, now: u64) -> Option<String> {
    let items = done.items;
    let wait = |until: u64| (until.saturating_sub(now) as f64 / 1e9 * 10.0).round() / 10.0;
    Some(match verdict {
        Verdict::Accepted { errors, .. } if errors.is_empty() => return None,
        Verdict::Accepted { errors, .. } => {
            let first = errors.first().map(|e| format!(" (first: item {} status {}: {})", e.index, e.status_code, e.message));
            format!(
                "{} of {items} items accepted, {} to retry, {} refused{}",
                done.accepted,
                done.retried,
                done.dropped,
                first.unwrap_or_default()
            )
        }
        Verdict::Rejected { status } => {
            let why = match status {
                400 => "invalid data or instrumentation key",
                402 => "the resource's daily quota is exhausted",
                404 => "wrong endpoint: use the connection string's regional IngestionEndpoint",
                _ => "refused",
            };
            format!("{items} items dropped: ingestion answered {status} ({why})")
        }
        Verdict::Unauthorized { status } if done.needs_credentials => {
            format!("ingestion answered {status}: refreshing the Entra ID token; {items} items wait")
        }
        Verdict::Unauthorized { status } => format!(
            "{items} items dropped: ingestion answered {status}; the resource requires Entra ID authentication (configure identity)"
        ),
        Verdict::Transient { status, .. } => {
            format!("ingestion answered {status}: {items} items retried in {} s", wait(done.paused_until))
        }
        Verdict::NoResponse => format!(
            "no answer from cluster {cluster} (timeout, reset or no healthy upstream): {items} items retried in {} s",
            wait(done.paused_until)
        ),
    })
}

/// The ingestion service's answer to one callout, as the proxy-wasm layer read it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// HTTP status; `None` when there was no HTTP answer (reset, timeout, …).
    pub status: Option<u16>,
    pub retry_after: Option<&'a str>,
    pub body: &'a [u8],
}

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

/// What the log-time callback must read from Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Status, duration, flags…: nothing can be emitted without them.
    pub outcome: bool,
    /// The backend call (for the Dependency item).
    pub backend: bool,
    /// Response headers (a trace rule uses them).
    pub response_headers: bool,
}

/// A finished exchange, as the proxy-wasm layer read it.
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
}

fn diagnostic_of(config: &Config, api: Option<usize>) -> &Diagnostic {
    api.and_then(|i| config.apis.get(i))
        .map_or(&config.diagnostic, |a| &a.diagnostic)
}

fn api_names<'c>(config: &'c Config, begun: &'c Begun) -> Option<ApiNames<'c>> {
    let api = config.apis.get(begun.api?)?;
    Some(ApiNames {
        api: &api.name,
        revision: &api.revision,
        operation: begun.operation_name.as_deref(),
    })
}

/// `ai.operation.name`: `API;rev=N - OPERATION` for configured APIs under the `Name`
/// format (the operation: the matched one, else the route name, else `METHOD /path`),
/// otherwise `METHOD /path`.
fn operation_name(d: &Diagnostic, done: &Finished<'_>, api: Option<ApiNames<'_>>) -> Vec<u8> {
    let fe = done.frontend;
    let mut line = Vec::with_capacity(fe.method().len() + 1 + fe.path().len());
    line.extend_from_slice(fe.method());
    line.push(b' ');
    line.extend_from_slice(fe.path());
    let Some(api) = api.filter(|_| d.operation_name_format == OperationNameFormat::Name) else {
        return line;
    };
    let mut name = format!("{};rev={} - ", api.api, api.revision).into_bytes();
    match api.operation {
        Some(op) => name.extend_from_slice(op.as_bytes()),
        None if !done.route_name.is_empty() => name.extend_from_slice(done.route_name),
        None => name.extend_from_slice(&line),
    }
    name
}

/// Whether an exchange's Request (and its Dependency and Exception) is written.
fn keeps_request(d: &Diagnostic, sampled: bool, failed: bool) -> bool {
    (sampled || (failed && d.always_log_errors)) && (failed || d.logs_successful_requests())
}

/// Trace rules that pass the diagnostic's verbosity.
fn active_traces(d: &Diagnostic) -> impl Iterator<Item = &TraceRule> + '_ {
    d.traces.iter().filter(move |r| r.severity >= d.verbosity)
}

/// A log line the caller should emit (the pipeline has no logger of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Warn(String),
    Debug(String),
}

pub struct Pipeline {
    config: Config,
    sinks: Vec<Sink>,
    ids: IdGenerator,
    /// Legacy `Request-Context` values: the all-APIs diagnostic's, then each API's.
    app_contexts: Vec<Option<IdText>>,
    /// Operations dropped by sampling.
    pub sampled_out: u64,
    /// Per cluster: whether it speaks TLS to its backends, and when that was read.
    cluster_tls: Vec<(Vec<u8>, bool, u64)>,
}

/// A cluster's TLS setting changes only with its configuration: re-read once a minute.
pub const CLUSTER_TLS_TTL_NANOS: u64 = 60_000_000_000;
const CLUSTER_TLS_ENTRIES: usize = 32;

impl Pipeline {
    pub fn new(config: Config, roles: &Roles, seed: [u8; 32]) -> Pipeline {
        let sinks = config.loggers.iter().map(|l| Sink::new(l, roles, &config)).collect();
        let context_of = |d: &Diagnostic| {
            let app = d
                .loggers
                .iter()
                .find_map(|&i| config.loggers.get(i)?.connection.application_id.as_deref())?;
            IdText::new(format!("appId=cid-v1:{app}").as_bytes())
        };
        let app_contexts = std::iter::once(&config.diagnostic)
            .chain(config.apis.iter().map(|a| &a.diagnostic))
            .map(context_of)
            .collect();
        Pipeline {
            config,
            sinks,
            ids: IdGenerator::from_seed(seed),
            app_contexts,
            sampled_out: 0,
            cluster_tls: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// Decides what can be decided when the request headers arrive.
    pub fn begin(&mut self, fe: &Frontend, route: &RouteInfo<'_>) -> (Begun, Injection) {
        let facts = RouteFacts {
            route_name: route.name,
            authority: fe.authority(),
            path: fe.path(),
            method: fe.method(),
            metadata_api: route.metadata_api,
        };
        let api = self.config.apis.iter().position(|a| a.matcher.matches(&facts));
        let operation_name = api.and_then(|i| self.config.apis.get(i)).and_then(|a| {
            match a.operations.iter().find(|o| o.matches(&facts)) {
                Some(op) => Some(op.name.clone()),
                None if a.matcher.metadata_name.is_some() && !route.metadata_operation.is_empty() => {
                    Some(String::from_utf8_lossy(route.metadata_operation).into_owned())
                }
                None => None,
            }
        });
        let d = self.diagnostic_of(api);
        let protocol = d.correlation;
        let percentage = d.sampling_percentage;
        let log_client_ip = d.log_client_ip;
        let headers = fe.headers();
        // W3C: more than one traceparent header makes it invalid.
        let traceparent = match headers.iter().filter(|(k, _)| *k == b"traceparent").count() {
            1 => headers.get(b"traceparent"),
            _ => None,
        };
        let incoming = Incoming {
            traceparent,
            request_id: headers.get(b"request-id"),
            request_context: headers.get(b"request-context"),
        };
        let caller = correlation::read_caller(protocol, &incoming);
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
        let sampled = sampling::is_sampled_in(operation_id.as_bytes(), percentage);
        if !sampled {
            self.sampled_out += 1;
        }
        let has_tracestate = headers.get(b"tracestate").is_some();
        let continued_w3c = protocol == Protocol::W3C && caller.is_some_and(|c| c.sampled.is_some());
        let injection = match protocol {
            Protocol::W3C => Injection {
                traceparent: trace_id.map(|t| correlation::format_traceparent(&t, &dependency_span, sampled)),
                // tracestate belongs to the caller's traceparent: not kept for a new trace.
                remove_tracestate: has_tracestate && !continued_w3c,
                ..Injection::default()
            },
            Protocol::Legacy => Injection {
                request_id: Some(operation.dependency_id),
                request_context: self.app_context(api),
                remove_traceparent: incoming.traceparent.is_some() || headers.get(b"traceparent").is_some(),
                remove_tracestate: has_tracestate,
                ..Injection::default()
            },
            Protocol::None => Injection::default(),
        };
        let source = match protocol {
            Protocol::None => None,
            _ => incoming.request_context.and_then(correlation::request_context_app_id),
        };
        (
            Begun {
                api,
                operation_name,
                operation,
                sampled,
                source,
                log_client_ip,
                continued_w3c,
            },
            injection,
        )
    }

    /// `appId=cid-v1:<id>` of the first logger of the diagnostic that knows its id
    /// (prepared once per configuration).
    fn app_context(&self, api: Option<usize>) -> Option<IdText> {
        match api {
            None => self.app_contexts.first().copied().flatten(),
            Some(i) => self.app_contexts.get(i + 1).copied().flatten(),
        }
    }

    fn diagnostic_of(&self, api: Option<usize>) -> &Diagnostic {
        diagnostic_of(&self.config, api)
    }

    /// Whether the log-time callback must look at the exchange's status at all: not for an
    /// operation that can produce no item (sampled out, errors not kept, no trace rule).
    pub fn may_emit(&self, begun: &Begun) -> bool {
        let d = self.diagnostic_of(begun.api);
        begun.sampled || d.always_log_errors || active_traces(d).next().is_some()
    }

    /// Given the status and response flags, what else the log-time callback must read
    /// (nothing when no item will be written: an unsampled success, say).
    pub fn needs(&self, begun: &Begun, response_code: u32, response_flags: u64) -> Needs {
        let d = self.diagnostic_of(begun.api);
        let probe = Outcome {
            response_code,
            response_flags,
            ..Default::default()
        };
        let failed = !probe.success();
        let request = keeps_request(d, begun.sampled, failed);
        let mut traces = active_traces(d)
            .filter(|r| r.when.could_match(response_code, failed))
            .peekable();
        let any_trace = traces.peek().is_some();
        let trace_headers = traces.any(TraceRule::needs_response_headers);
        Needs {
            outcome: request || any_trace,
            backend: request,
            response_headers: (request && d.capture.needs_response_headers()) || trace_headers,
        }
    }

    /// How many bytes of the request and response bodies to capture for this exchange
    /// (0: none; the body callbacks then do nothing). Only operations that can produce a
    /// Request item capture.
    pub fn body_capture(&self, begun: &Begun) -> (u64, u64) {
        let d = self.diagnostic_of(begun.api);
        if !(begun.sampled || d.always_log_errors) {
            return (0, 0);
        }
        (d.capture.request_body_bytes(), d.capture.response_body_bytes())
    }

    /// Whether a sampled operation's Request will carry response headers: then log time
    /// reads them first and takes the status from them (one host call instead of two).
    pub fn wants_response_headers(&self, begun: &Begun) -> bool {
        let d = self.diagnostic_of(begun.api);
        begun.sampled && d.logs_successful_requests() && d.capture.needs_response_headers()
    }

    /// Whether `cluster` uses TLS to its backends, as last read within
    /// [`CLUSTER_TLS_TTL_NANOS`] (`None`: read it and [`Pipeline::remember_cluster_tls`]).
    pub fn cluster_tls(&self, cluster: &[u8], now: u64) -> Option<bool> {
        self.cluster_tls
            .iter()
            .find(|e| e.0 == cluster && now.saturating_sub(e.2) < CLUSTER_TLS_TTL_NANOS)
            .map(|e| e.1)
    }

    /// Remembers a cluster's TLS (a few dozen clusters at most: the oldest entry goes).
    pub fn remember_cluster_tls(&mut self, cluster: &[u8], tls: bool, now: u64) {
        self.cluster_tls.retain(|e| e.0 != cluster);
        if self.cluster_tls.len() >= CLUSTER_TLS_ENTRIES {
            let oldest = self
                .cluster_tls
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.2)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.cluster_tls.swap_remove(i);
            }
        }
        self.cluster_tls.push((cluster.to_vec(), tls, now));
    }

    /// Whether the response headers must be read when they arrive (backend capture).
    pub fn captures_backend_response_headers(&self, begun: &Begun) -> bool {
        let d = self.diagnostic_of(begun.api);
        (begun.sampled || d.always_log_errors) && !d.capture.backend_response.headers.is_empty()
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

    /// Writes the items a finished exchange produces into each selected logger's batch.
    pub fn finish(&mut self, done: &Finished<'_>) -> Vec<Notice> {
        let Pipeline { config, sinks, .. } = self;
        let d = diagnostic_of(config, done.begun.api);
        let oc = done.outcome;
        let failed = !oc.success();
        let errors_kept = failed && d.always_log_errors;
        let keep = keeps_request(d, done.begun.sampled, failed);
        let traces: Vec<&TraceRule> = active_traces(d).collect();
        if !keep && traces.is_empty() {
            return Vec::new();
        }
        let api = api_names(config, done.begun);
        let operation_name = operation_name(d, done, api);
        let facts = Facts {
            frontend: done.frontend,
            outcome: oc,
            backend: done.backend.filter(|b| b.attempts > 0),
            response_headers: done.response_headers,
            operation: &done.begun.operation,
            operation_name: &operation_name,
            api,
            route_name: done.route_name,
            client_ip: if d.log_client_ip { oc.client_ip.as_deref() } else { None },
            source: done.begun.source.as_ref(),
            // Every failed exchange is kept when errors are always logged: each counts once.
            sample_rate: if errors_kept { 100.0 } else { d.sampling_percentage },
            properties_json: &d.properties_json,
            header_properties: &d.header_properties,
            capture: &d.capture,
            masking: &d.masking,
            request_body: done.request_body,
            response_body: done.response_body,
            backend_response_headers: done.backend_response_headers.or(done.response_headers),
            tracestate: done
                .begun
                .continued_w3c
                .then(|| done.frontend.headers().get(b"tracestate"))
                .flatten(),
            request_written: keep,
            lean: false,
        };
        let lean = Facts { lean: true, ..facts };
        let traces: Vec<&TraceRule> = traces.into_iter().filter(|r| trace::matches(r, &facts)).collect();
        let failure = if keep { failure::classify(oc) } else { None };
        let now = oc.start_unix_nanos.saturating_add(oc.duration_nanos);
        let mut notices = Vec::new();
        for &i in &d.loggers {
            let Some(sink) = sinks.get_mut(i) else { continue };
            let mut add = |write: &dyn Fn(&mut Vec<u8>, &Sender, &Facts<'_>)| {
                let sender = &sink.sender;
                let added = sink
                    .outbox
                    .add_or_trim(now, |out, trim| write(out, sender, if trim { &lean } else { &facts }));
                if added != Added::Queued {
                    if let Some(n) = sink.drop_warning.allow(now, WARN_INTERVAL_NANOS) {
                        notices.push(Notice::Warn(drop_message(sink, added, n)));
                    }
                }
            };
            if keep {
                add(&|out, who, f| request::write(out, who, f));
                if let Some(backend) = facts.backend {
                    add(&|out, who, f| dependency::write(out, who, f, backend));
                }
                if let Some(kind) = &failure {
                    add(&|out, who, f| exception::write(out, who, f, kind));
                }
            }
            for rule in &traces {
                add(&|out, who, f| trace::write(out, who, f, rule));
            }
        }
        notices
    }

    /// The next callout to start: a due token request first, then a due batch of a
    /// logger that can send (`flush_all` at shutdown: every batch, ignoring backoff).
    pub fn next_work(&mut self, now: u64, flush_all: bool) -> Option<Work> {
        // Tokens are fetched when there is telemetry to send (or to keep a held one fresh),
        // so VMs that see no traffic never call the metadata endpoint.
        let wants_token = |s: &Sink| {
            s.token
                .as_ref()
                .is_some_and(|t| t.due(now) && (t.authorization(now).is_some() || !s.outbox.is_idle()))
        };
        if let Some(i) = self.sinks.iter().position(wants_token) {
            return Some(Work::Token { sink: i });
        }
        self.sinks
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.can_send(now))
            .find_map(|(i, s)| {
                s.outbox
                    .next_due(now, flush_all)
                    .map(|batch| Work::Ingest { sink: i, batch })
            })
    }

    /// The track request for `batch` (gzip-compressed when configured).
    pub fn ingest_request<'a>(&'a self, sink: usize, batch: &'a Batch, now: u64) -> Option<Outgoing<'a>> {
        let s = self.sinks.get(sink)?;
        let mut headers = vec![
            (":method", "POST".to_string()),
            (":path", s.path.clone()),
            (":authority", s.authority.clone()),
            ("content-type", "application/x-json-stream".to_string()),
        ];
        if let Some(auth) = s.token.as_ref().and_then(|t| t.authorization(now)) {
            headers.push(("authorization", auth.to_string()));
        }
        let body = if s.gzip {
            headers.push(("content-encoding", "gzip".to_string()));
            std::borrow::Cow::Owned(crate::delivery::gzip::compress(&batch.body))
        } else {
            std::borrow::Cow::Borrowed(batch.body.as_slice())
        };
        Some(Outgoing {
            cluster: &s.cluster,
            headers,
            body,
            timeout_ms: self.config.delivery.timeout_ms,
        })
    }

    /// The token request of `sink`'s managed identity.
    pub fn token_request(&self, sink: usize) -> Option<Outgoing<'_>> {
        let t = self.sinks.get(sink)?.token.as_ref()?;
        let headers = t.request_headers().iter().map(|(k, v)| (*k, v.to_string())).collect();
        Some(Outgoing {
            cluster: &t.cluster,
            headers,
            body: std::borrow::Cow::Borrowed(&[]),
            timeout_ms: crate::managed_identity::FETCH_TIMEOUT_MS,
        })
    }

    pub fn sink(&self, index: usize) -> Option<&Sink> {
        self.sinks.get(index)
    }

    /// The callout for `batch` started as `callout`.
    pub fn sent(&mut self, sink: usize, callout: CalloutId, batch: Batch, wire_bytes: usize) {
        if let Some(s) = self.sinks.get_mut(sink) {
            s.outbox.sent(callout, batch, wire_bytes);
        }
    }

    /// Envoy refused to start the callout (unknown cluster, no healthy host): retried
    /// with backoff.
    pub fn send_failed(&mut self, sink: usize, batch: Batch, why: &str, now: u64) -> Option<Notice> {
        let random = self.ids.next_u64();
        let s = self.sinks.get_mut(sink)?;
        let items = batch.items;
        s.outbox.send_failed(batch, now, random);
        let cluster = s.cluster.clone();
        s.warn(
            now,
            &format!("could not send {items} items to cluster {cluster}: {why}; retrying with backoff"),
        )
    }

    /// A token request started (`callout`) or could not start (`None`).
    pub fn token_started(&mut self, sink: usize, callout: Option<CalloutId>, now: u64) -> Option<Notice> {
        let random = self.ids.next_u64();
        let s = self.sinks.get_mut(sink)?;
        let t = s.token.as_mut()?;
        match callout {
            Some(c) => {
                t.started(c);
                None
            }
            None => {
                t.start_failed(now, random);
                let cluster = t.cluster.clone();
                s.warn(
                    now,
                    &format!(
                        "could not request an Entra ID token through cluster {cluster}: Envoy refused the callout"
                    ),
                )
            }
        }
    }

    /// Applies an answer: the ingestion service's to a batch, or the metadata endpoint's
    /// to a token request. `status` is `None` when the callout got no HTTP answer.
    pub fn completed(&mut self, callout: CalloutId, answer: Answer<'_>, now: u64) -> Vec<Notice> {
        let random = self.ids.next_u64();
        if let Some(s) = self
            .sinks
            .iter_mut()
            .find(|s| s.token.as_ref().is_some_and(|t| t.owns(callout)))
        {
            return token_answered(s, answer, now, random).into_iter().collect();
        }
        let Some(s) = self.sinks.iter_mut().find(|s| s.outbox.owns(callout)) else {
            return vec![Notice::Debug(format!("answer for unknown callout {callout} ignored"))];
        };
        let items = s.outbox.items_of(callout).unwrap_or(0);
        let verdict = track::classify(answer.status, answer.retry_after, answer.body, items);
        let Some(done) = s.outbox.completed(callout, &verdict, now, random) else {
            return Vec::new();
        };
        if done.needs_credentials {
            if let Some(t) = s.token.as_mut() {
                if s.refreshed_for_auth {
                    // Refreshed once already and still refused: back off before the next try.
                    s.outbox
                        .pause_for(now, crate::delivery::backoff::delay_nanos(2, 1_000, 60_000, random));
                }
                t.invalidate();
                s.refreshed_for_auth = true;
            }
        } else if matches!(verdict, Verdict::Accepted { .. }) {
            s.refreshed_for_auth = false;
        }
        let problem = describe_verdict(&verdict, &done, &s.cluster, now);
        problem.and_then(|p| s.warn(now, &p)).into_iter().collect()
    }

    /// The Envoy stats this pipeline reports, with their current values: per logger
    /// `appinsights.<logger>.<name>`, plus `appinsights.operations_sampled_out`. The list
    /// (names, kinds, order) is fixed for a configuration.
    pub fn metrics(&self) -> Vec<(String, MetricKind, u64)> {
        let mut out = vec![(
            "appinsights.operations_sampled_out".to_string(),
            MetricKind::Counter,
            self.sampled_out,
        )];
        for s in &self.sinks {
            let st = s.outbox.stats;
            let tokens = s.token.as_ref().map(|t| t.stats).unwrap_or_default();
            let counters = [
                ("items_created", st.items_queued),
                ("items_sent", st.items_sent),
                ("items_accepted", st.items_accepted),
                ("items_retried", st.items_retried),
                ("items_dropped_buffer_full", st.dropped_buffer_full),
                ("items_dropped_rejected", st.dropped_rejected),
                ("items_dropped_too_large", st.dropped_too_large),
                ("items_dropped_expired", st.dropped_expired),
                ("items_trimmed", st.items_trimmed),
                ("batches_sent", st.batches_sent),
                ("bytes_sent", st.bytes_sent),
                ("callout_failures", st.callout_failures),
                ("throttled", st.throttled),
                ("token_refreshes", tokens.refreshes),
                ("token_failures", tokens.failures),
            ];
            for (name, value) in counters {
                out.push((format!("appinsights.{}.{name}", s.id), MetricKind::Counter, value));
            }
            out.push((
                format!("appinsights.{}.buffered_items", s.id),
                MetricKind::Gauge,
                s.outbox.buffered_items(),
            ));
            out.push((
                format!("appinsights.{}.buffered_bytes", s.id),
                MetricKind::Gauge,
                s.outbox.buffered_bytes() as u64,
            ));
        }
        out
    }

    /// Whether nothing is waiting or in flight in any logger.
    pub fn is_idle(&self) -> bool {
        self.sinks.iter().all(|s| s.outbox.is_idle())
    }

    /// Counters of every sink, in logger order.
    pub fn stats(&self) -> Vec<(String, Stats)> {
        self.sinks.iter().map(|s| (s.id.clone(), s.outbox.stats)).collect()
    }
}

fn drop_message(sink: &Sink, added: Added, suppressed: u64) -> String {
    let why = match added {
        Added::DroppedTooLarge => "an item exceeded the service's 64 KB limit".to_string(),
        _ => format!(
            "the telemetry buffer is full ({} bytes waiting or in flight)",
            sink.outbox.buffered_bytes()
        ),
    };
    let s = sink.outbox.stats;
    format!(
        "logger {}: dropping telemetry: {why}; dropped so far: {} (buffer full), {} (too large){}",
        sink.id,
        s.dropped_buffer_full,
        s.dropped_too_large,
        suppressed_note(suppressed)
    )
}

fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" [{n} similar messages suppressed]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::flags;
    use serde_json::{json, Value};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn pipeline(extra: Value) -> Pipeline {
        let mut v = json!({"loggers": {
            "a": {"connection_string": "InstrumentationKey=key-a;IngestionEndpoint=http://127.0.0.1:9001/", "cluster": "ca"},
            "b": {"instrumentation_key": "key-b", "cluster": "cb"}
        }, "diagnostic": {"loggers": ["a"]}});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let config = Config::from_value(&v).unwrap();
        Pipeline::new(
            config,
            &Roles {
                role: "gw".into(),
                instance: "gw-1".into(),
            },
            [9; 32],
        )
    }

    fn frontend(path: &str, headers: &[(&str, &str)]) -> Frontend {
        let mut pairs: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", path.as_bytes()),
            (b":authority", b"api.test"),
        ];
        pairs.extend(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(pairs)))
    }

    fn outcome(code: u32) -> Outcome {
        Outcome {
            start_unix_nanos: 1_700_000_000_000_000_000,
            duration_nanos: 5_000_000,
            response_code: code,
            ..Default::default()
        }
    }

    fn backend() -> Backend {
        Backend {
            attempts: 1,
            cluster: b"svc".to_vec(),
            request: frontend("/x", &[]),
            ..Default::default()
        }
    }

    /// Runs one exchange through the pipeline; returns the items written (all loggers).
    fn run(p: &mut Pipeline, fe: &Frontend, route: &str, oc: &Outcome) -> (Begun, Injection, Vec<Value>) {
        let (begun, injection) = p.begin(
            fe,
            &RouteInfo {
                name: route.as_bytes(),
                ..Default::default()
            },
        );
        let be = backend();
        p.finish(&Finished {
            begun: &begun,
            frontend: fe,
            route_name: route.as_bytes(),
            outcome: oc,
            backend: Some(&be),
            response_headers: None,
            request_body: None,
            response_body: None,
            backend_response_headers: None,
        });
        let mut items = Vec::new();
        while let Some(Work::Ingest { batch, .. }) = p.next_work(1_700_000_010_000_000_000, true) {
            for line in batch.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                items.push(serde_json::from_slice(line).unwrap());
            }
            // Free the in-flight slot for the next call.
        }
        (begun, injection, items)
    }

    fn kinds(items: &[Value]) -> Vec<&str> {
        items.iter().map(|i| i["data"]["baseType"].as_str().unwrap()).collect()
    }

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
    fn failed_requests_add_an_exception_and_local_replies_no_dependency() {
        let mut p = pipeline(json!({}));
        let fe = frontend("/x", &[]);
        let oc = Outcome {
            response_flags: flags::NO_ROUTE_FOUND,
            code_details: Some(b"route_not_found".to_vec()),
            ..outcome(404)
        };
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        p.finish(&Finished {
            begun: &begun,
            frontend: &fe,
            route_name: b"",
            outcome: &oc,
            backend: None,
            response_headers: None,
            request_body: None,
            response_body: None,
            backend_response_headers: None,
        });
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
            "RouteNotFound"
        );
    }

    #[test]
    fn sampling_drops_whole_operations_but_always_logs_errors_counted_once() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0}}));
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

        let mut p =
            pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 0, "always_log_errors": false}}));
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
        assert_eq!(items[2]["iKey"], "key-b");
        let (_, _, items) = run(&mut p, &frontend("/orders", &[]), "orders-list", &outcome(200));
        assert_eq!(
            items[0]["tags"]["ai.operation.name"], "orders;rev=2 - orders-list",
            "route name as operation"
        );
        let (_, _, items) = run(&mut p, &frontend("/u/1", &[]), "users-route", &outcome(200));
        assert_eq!(items[0]["tags"]["ai.operation.name"], "GET /u/1");
        let (begun, _, items) = run(&mut p, &frontend("/other", &[]), "x", &outcome(200));
        assert_eq!(begun.api, None);
        assert_eq!(items[0]["tags"]["ai.operation.name"], "GET /other");
        assert_eq!(items.len(), 2, "all-APIs diagnostic: logger a only");
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
    fn legacy_correlation_sends_request_context_when_the_application_id_is_known() {
        let mut p = pipeline(json!({
            "loggers": {"a": {"connection_string": "InstrumentationKey=k;ApplicationId=app-42;IngestionEndpoint=http://127.0.0.1:9/"}},
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
    fn oversized_items_are_sent_lean_not_dropped() {
        let mut p =
            pipeline(json!({"diagnostic": {"loggers": ["a"], "header_properties": {"H1": "x-big", "H2": "x-big2"}}}));
        // Non-UTF-8 bytes become 3-byte U+FFFD: 8 KB of them is 24 KB per property.
        let big = "\u{FFFD}".repeat(8000);
        let fe = frontend(
            "/x",
            &[
                ("x-big", &big),
                ("x-big2", &big),
                ("tracestate", &big),
                ("traceparent", TP),
            ],
        );
        let (_, _, items) = run(&mut p, &fe, "", &outcome(200));
        assert_eq!(
            kinds(&items),
            ["RequestData", "RemoteDependencyData"],
            "nothing dropped"
        );
        assert!(p.stats()[0].1.dropped_too_large == 0);
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

    #[test]
    fn track_requests_go_to_the_endpoint_path_and_authority_gzipped() {
        let p = pipeline(json!({}));
        let batch = Batch::default();
        let out = p.ingest_request(0, &batch, 0).unwrap();
        assert_eq!(out.cluster, "ca");
        assert_eq!(out.headers[1], (":path", "/v2.1/track".to_string()));
        assert_eq!(out.headers[2], (":authority", "127.0.0.1:9001".to_string()));
        assert!(out.headers.contains(&("content-encoding", "gzip".to_string())));
        assert_eq!(&out.body[..2], &[0x1f, 0x8b]);
        let out = p.ingest_request(1, &batch, 0).unwrap();
        assert_eq!(
            out.headers[2],
            (":authority", "dc.services.visualstudio.com".to_string())
        );
        let plain = pipeline(json!({"delivery": {"gzip": false}}));
        let out = plain.ingest_request(0, &batch, 0).unwrap();
        assert!(!out.headers.iter().any(|(k, _)| *k == "content-encoding"));
    }

    #[test]
    fn cluster_tls_is_remembered_for_a_minute_and_the_table_stays_small() {
        let mut p = pipeline(json!({}));
        let t0 = 1_700_000_000_000_000_000;
        assert_eq!(p.cluster_tls(b"orders", t0), None, "unknown: read it");
        p.remember_cluster_tls(b"orders", true, t0);
        p.remember_cluster_tls(b"users", false, t0);
        assert_eq!(p.cluster_tls(b"orders", t0 + 1), Some(true));
        assert_eq!(p.cluster_tls(b"users", t0 + 1), Some(false));
        assert_eq!(
            p.cluster_tls(b"orders", t0 + CLUSTER_TLS_TTL_NANOS),
            None,
            "stale after a minute"
        );
        p.remember_cluster_tls(b"orders", false, t0 + CLUSTER_TLS_TTL_NANOS);
        assert_eq!(
            p.cluster_tls(b"orders", t0 + CLUSTER_TLS_TTL_NANOS),
            Some(false),
            "re-read value replaces the old one"
        );
        for i in 0..100u64 {
            p.remember_cluster_tls(format!("c{i}").as_bytes(), true, t0 + 10 + i);
        }
        assert_eq!(p.cluster_tls.len(), CLUSTER_TLS_ENTRIES);
        assert_eq!(p.cluster_tls(b"c99", t0 + 200), Some(true), "the newest stays");
        assert_eq!(p.cluster_tls(b"c0", t0 + 200), None, "the oldest went");
    }

    #[test]
    fn managed_identity_fetches_a_token_first_and_sends_it() {
        let mut p = pipeline(
            json!({"loggers": {"a": {"connection_string": "InstrumentationKey=k;IngestionEndpoint=http://127.0.0.1:9/", "identity": "SystemAssigned"}}}),
        );
        let fe = frontend("/x", &[]);
        let (begun, _) = p.begin(&fe, &RouteInfo::default());
        p.finish(&Finished {
            begun: &begun,
            frontend: &fe,
            route_name: b"",
            outcome: &outcome(200),
            backend: None,
            response_headers: None,
            request_body: None,
            response_body: None,
            backend_response_headers: None,
        });
        let now = 1_700_000_000_000_000_000;
        let Some(Work::Token { sink }) = p.next_work(now, true) else {
            panic!("a token first")
        };
        let req = p.token_request(sink).unwrap();
        assert_eq!(req.cluster, "imds");
        assert!(p.token_started(sink, Some(5), now).is_none());
        assert!(p.next_work(now, true).is_none(), "telemetry waits for the token");
        let body = br#"{"access_token":"tok","expires_in":"3600"}"#;
        assert!(p
            .completed(
                5,
                Answer {
                    status: Some(200),
                    retry_after: None,
                    body
                },
                now
            )
            .is_empty());
        let Some(Work::Ingest { sink, batch }) = p.next_work(now, true) else {
            panic!("then the batch")
        };
        let out = p.ingest_request(sink, &batch, now).unwrap();
        assert!(out.headers.contains(&("authorization", "Bearer tok".to_string())));
        p.sent(sink, 6, batch, 10);
        // 401: the token is dropped and fetched again; the batch waits for it.
        let notes = p.completed(
            6,
            Answer {
                status: Some(401),
                ..Default::default()
            },
            now,
        );
        assert!(
            notes[0].clone()
                == Notice::Warn("logger a: ingestion answered 401: refreshing the Entra ID token; 1 items wait".into()),
            "{notes:?}"
        );
        assert!(matches!(p.next_work(now, true), Some(Work::Token { .. })));
    }

    #[test]
    fn failures_produce_rate_limited_warnings_that_name_the_logger() {
        let mut p = pipeline(json!({}));
        let fe = frontend("/x", &[]);
        for _ in 0..3 {
            let (begun, _) = p.begin(&fe, &RouteInfo::default());
            p.finish(&Finished {
                begun: &begun,
                frontend: &fe,
                route_name: b"",
                outcome: &outcome(200),
                backend: None,
                response_headers: None,
                request_body: None,
                response_body: None,
                backend_response_headers: None,
            });
        }
        let Some(Work::Ingest { sink, batch }) = p.next_work(1_700_000_010_000_000_000, true) else {
            panic!()
        };
        p.sent(sink, 11, batch, 100);
        let notes = p.completed(
            11,
            Answer {
                status: Some(400),
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            notes,
            vec![Notice::Warn(
                "logger a: 3 items dropped: ingestion answered 400 (invalid data or instrumentation key)".into()
            )]
        );
        assert_eq!(p.stats()[0].1.dropped_rejected, 3);
        let notes = p.completed(99, Answer::default(), 0);
        assert!(matches!(notes[0], Notice::Debug(_)));
    }
}
