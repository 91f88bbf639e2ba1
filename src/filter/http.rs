//! HTTP context: one per exchange. At request headers it asks the pipeline for the
//! exchange's API, ids and sampling decision and sets the backend's correlation header; at
//! log time it reads what the pipeline needs (nothing for a dropped operation) and hands
//! the finished exchange over. It never pauses the stream.

use super::host;
use crate::capture::BodyPrefix;
use crate::correlation::IdText;
use crate::exchange::{ip_of_address, Backend, Frontend, Outcome};
use crate::pipeline::{Begun, Finished, Injection, Notice, Pipeline, RouteInfo};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::cell::RefCell;
use std::rc::Rc;

pub struct StreamContext {
    /// The root context's id, for log lines.
    root_id: u32,
    pipeline: Option<Rc<RefCell<Pipeline>>>,
    started: Option<Started>,
    /// `Request-Context` to return to the client (Legacy correlation).
    response_context: Option<IdText>,
    /// The response headers as they reached this filter (backend response capture).
    backend_response_headers: Option<crate::headers::HeaderMap>,
    /// Body prefixes being captured (only when the diagnostic asks for them).
    request_body: Option<BodyPrefix>,
    response_body: Option<BodyPrefix>,
    /// What the stream callbacks saw, so log time need not ask Envoy (each host call costs
    /// about a microsecond, the first in a callback about two): body bytes each way,
    /// whether the response reached its end through this filter, and (for sampled
    /// operations) the clock when the request went on towards the backend.
    streamed: Streamed,
}

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

impl StreamContext {
    pub fn new(root_id: u32, pipeline: Option<Rc<RefCell<Pipeline>>>) -> Self {
        StreamContext {
            root_id,
            pipeline,
            started: None,
            response_context: None,
            request_body: None,
            response_body: None,
            backend_response_headers: None,
            streamed: Streamed::default(),
        }
    }
}

impl Context for StreamContext {}

impl HttpContext for StreamContext {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(pipeline) = &self.pipeline else {
            return Action::Continue;
        };
        let Ok(mut p) = pipeline.try_borrow_mut() else {
            return Action::Continue;
        };
        // The request as the client sent it: later filters and the router may rewrite it.
        let started = start(&mut p, host::header_map(MapType::HttpRequestHeaders));
        let (request_bytes, response_bytes) = p.body_capture(&started.0.begun);
        drop(p);
        self.request_body = (request_bytes > 0).then(|| BodyPrefix::new(request_bytes));
        self.response_body = (response_bytes > 0).then(|| BodyPrefix::new(response_bytes));
        let injection = &started.1;
        if let Some(tp) = &injection.traceparent {
            host::set_request_header("traceparent", tp);
        }
        if injection.remove_traceparent {
            host::remove_request_header("traceparent");
        }
        if injection.remove_tracestate {
            host::remove_request_header("tracestate");
        }
        if let Some(id) = &injection.request_id {
            host::set_request_header("request-id", id.as_bytes());
        }
        if let Some(c) = injection.request_context {
            host::set_request_header("request-context", c.as_bytes());
            self.response_context = Some(c);
        }
        if started.0.begun.sampled {
            // The backend call's timing, by the filter's clock (read only when an item is
            // certain to need it; failures of unsampled operations ask Envoy at log time).
            self.streamed.forwarded_at = host::now_nanos();
        }
        self.started = Some(started.0);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        // Continue, always: Envoy hands over the current chunk only and the stream never
        // waits for the filter. Only the missing prefix bytes are copied out.
        self.streamed.request_bytes += body_size as u64;
        capture_chunk(&mut self.request_body, BufferType::HttpRequestBody, body_size);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.streamed.response_bytes += body_size as u64;
        capture_chunk(&mut self.response_body, BufferType::HttpResponseBody, body_size);
        self.streamed.response_complete |= end_of_stream;
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.streamed.response_complete = true;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.streamed.response_complete |= end_of_stream;
        // Backend response headers are captured here, before later encoder filters change
        // them (the filter placed last before the router sees exactly what the backend sent).
        let wants_backend_headers = match (&self.pipeline, &self.started) {
            (Some(p), Some(started)) => p
                .try_borrow()
                .is_ok_and(|p| p.captures_backend_response_headers(&started.begun)),
            _ => false,
        };
        if wants_backend_headers {
            self.backend_response_headers = Some(host::header_map(MapType::HttpResponseHeaders));
        }
        // Legacy correlation tells the caller which application answered (as APIM does).
        if let Some(c) = self.response_context.take() {
            host::set_response_header("request-context", c.as_bytes());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(pipeline) = &self.pipeline else { return };
        let Ok(mut p) = pipeline.try_borrow_mut() else { return };
        // No request headers callback happened when an earlier filter answered locally:
        // read the request from the access-log view instead.
        let (mut started, streamed) = match self.started.take() {
            Some(s) => (s, Some(&self.streamed)),
            None => (start(&mut p, host::header_map(MapType::HttpRequestHeaders)).0, None),
        };
        if !p.may_emit(&started.begun) {
            return;
        }
        // The status decides whether anything is written; the rest is read only if so. When
        // the response headers are wanted anyway, the status comes with them.
        let mut response_headers = p
            .wants_response_headers(&started.begun)
            .then(|| host::header_map(MapType::HttpResponseHeaders));
        let code = response_headers
            .as_ref()
            .and_then(status_of)
            .or_else(|| host::property_u64(b"response\0code").map(|c| c as u32))
            .unwrap_or(0);
        // A response below 400 that passed through this filter to its end was not cut short:
        // its flags cannot change the verdict and are not read.
        let clean = streamed.is_some_and(|s| s.response_complete) && (1..400).contains(&code);
        let flags = if clean {
            0
        } else {
            host::property_u64(b"response\0flags").unwrap_or(0)
        };
        let needs = p.needs(&started.begun, code, flags);
        if !needs.outcome {
            return;
        }
        if started.route_name.is_empty() {
            started.route_name = host::property(b"xds\0route_name").unwrap_or_default();
        }
        let now = host::now_nanos();
        let outcome = read_outcome(&started, code, flags, streamed, now);
        let backend = if needs.backend {
            read_backend(&mut p, clean, streamed, now)
        } else {
            None
        };
        if needs.response_headers && response_headers.is_none() {
            response_headers = Some(host::header_map(MapType::HttpResponseHeaders));
        }
        let done = Finished {
            begun: &started.begun,
            frontend: &started.frontend,
            route_name: &started.route_name,
            outcome: &outcome,
            backend: backend.as_ref(),
            response_headers: response_headers.as_ref(),
            request_body: self.request_body.as_ref(),
            response_body: self.response_body.as_ref(),
            backend_response_headers: self.backend_response_headers.as_ref(),
        };
        for notice in p.finish(&done) {
            if let Notice::Warn(m) = notice {
                log::warn!("appinsights[{}]: {m}", self.root_id);
            }
        }
    }
}

/// `:status` of a response header map.
fn status_of(headers: &crate::headers::HeaderMap) -> Option<u32> {
    std::str::from_utf8(headers.get(b":status")?).ok()?.parse().ok()
}

/// Copies what is still missing of a body prefix out of the current chunk.
fn capture_chunk(prefix: &mut Option<BodyPrefix>, kind: BufferType, chunk_size: usize) {
    let Some(prefix) = prefix else { return };
    let wanted = prefix.wanted().min(chunk_size);
    if wanted == 0 {
        return;
    }
    if let Some(bytes) = host::buffer(kind, wanted) {
        prefix.push(&bytes);
    }
}

fn start(p: &mut Pipeline, headers: crate::headers::HeaderMap) -> (Started, Injection) {
    let frontend = Frontend::from_headers(headers);
    // Each host call costs microseconds: the route name is read now only if API matching
    // needs it, else at log time if an item is written.
    let route_name = if p.route_needed_early() {
        host::property(b"xds\0route_name").unwrap_or_default()
    } else {
        Vec::new()
    };
    let (metadata_api, metadata_operation) = if p.metadata_needed() {
        let api = host::property(b"xds\0route_metadata\0filter_metadata\0appinsights\0api")
            .or_else(|| host::property(b"xds\0virtual_host_metadata\0filter_metadata\0appinsights\0api"))
            .unwrap_or_default();
        let operation = host::property(b"xds\0route_metadata\0filter_metadata\0appinsights\0operation");
        (api, operation.unwrap_or_default())
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

/// What Envoy knows once the exchange is over (status and flags already read). What the
/// stream callbacks counted is used when they ran; Envoy is asked otherwise.
fn read_outcome(
    started: &Started,
    response_code: u32,
    response_flags: u64,
    streamed: Option<&Streamed>,
    now: u64,
) -> Outcome {
    let start = host::property_u64(b"request\0time").unwrap_or(0);
    // The exchange ends now (the access-log callback runs when the stream completes).
    let duration = if start > 0 && now > start {
        now - start
    } else {
        host::property_u64(b"request\0duration").unwrap_or(0)
    };
    let (request_body_bytes, response_body_bytes) = match streamed {
        Some(s) => (s.request_bytes, s.response_bytes),
        None => (
            host::property_u64(b"request\0size").unwrap_or(0),
            host::property_u64(b"response\0size").unwrap_or(0),
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
        outcome.code_details = host::property(b"response\0code_details");
    }
    if started.begun.log_client_ip {
        outcome.client_ip = host::property(b"source\0address").map(|a| ip_of_address(&a).to_vec());
    }
    outcome
}

/// The backend call, if one was attempted. On a clean exchange the timing comes from the
/// filter's clock (from forwarding the request to the end of the exchange, which the
/// access-log callback marks) and the cluster's TLS from a per-cluster cache.
fn read_backend(p: &mut Pipeline, clean: bool, streamed: Option<&Streamed>, now: u64) -> Option<Backend> {
    let attempts = host::property_u64(b"upstream\0request_attempt_count").unwrap_or(0);
    if attempts == 0 {
        return None;
    }
    let cluster = host::property(b"xds\0cluster_name").unwrap_or_default();
    let timed = streamed.filter(|s| clean && s.forwarded_at > 0 && now >= s.forwarded_at);
    let latency_nanos = match timed {
        Some(s) => Some(now - s.forwarded_at),
        None => host::property_u64(b"response\0backend_latency"),
    };
    let tls = match p.cluster_tls.get(&cluster, now).filter(|_| clean) {
        Some(tls) => tls,
        None => {
            let tls = host::property(b"upstream\0tls_version").is_some_and(|v| !v.is_empty());
            p.cluster_tls.remember(&cluster, tls, now);
            tls
        }
    };
    Some(Backend {
        attempts: attempts.min(u64::from(u32::MAX)) as u32,
        cluster,
        address: host::property(b"upstream\0address"),
        latency_nanos,
        tls,
        // At log time the request headers are the ones sent upstream (after rewrites).
        request: Frontend::from_headers(host::header_map(MapType::HttpRequestHeaders)),
    })
}
