//! HTTP context: one per exchange. Reads the client's request at request headers, the
//! outcome at log time, and hands both to the pipeline. It never pauses the stream.

use super::host;
use crate::exchange::{ip_of_address, Frontend, Outcome};
use crate::pipeline::{Notice, Pipeline};
use crate::telemetry::Operation;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};
use std::cell::RefCell;
use std::rc::Rc;

pub struct Exchange {
    /// The root context's id, for log lines.
    root_id: u32,
    pipeline: Option<Rc<RefCell<Pipeline>>>,
    frontend: Option<Frontend>,
    operation: Option<Operation>,
}

impl Exchange {
    pub fn new(root_id: u32, pipeline: Option<Rc<RefCell<Pipeline>>>) -> Self {
        Exchange { root_id, pipeline, frontend: None, operation: None }
    }
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(pipeline) = &self.pipeline else { return Action::Continue };
        // The request as the client sent it: later filters and the router may rewrite it.
        self.frontend = Some(Frontend::from_headers(host::header_map(MapType::HttpRequestHeaders)));
        if let Ok(mut p) = pipeline.try_borrow_mut() {
            self.operation = Some(p.start_operation());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(pipeline) = &self.pipeline else { return };
        let Ok(mut p) = pipeline.try_borrow_mut() else { return };
        // No request headers callback happened when an earlier filter answered locally:
        // read the request from the access-log view instead.
        let frontend = self
            .frontend
            .take()
            .unwrap_or_else(|| Frontend::from_headers(host::header_map(MapType::HttpRequestHeaders)));
        let operation = self.operation.take().unwrap_or_else(|| p.start_operation());
        let outcome = read_outcome(p.config().diagnostic.log_client_ip);
        for notice in p.record_request(&operation, &frontend, &outcome) {
            if let Notice::Warn(m) = notice {
                log::warn!("appinsights[{}]: {m}", self.root_id);
            }
        }
    }
}

/// What Envoy knows once the exchange is over.
fn read_outcome(with_client_ip: bool) -> Outcome {
    let start = host::property_u64(b"request\0time").unwrap_or(0);
    let duration = host::property_u64(b"request\0duration")
        .unwrap_or_else(|| host::now_nanos().saturating_sub(start));
    Outcome {
        start_unix_nanos: if start > 0 { start } else { host::now_nanos().saturating_sub(duration) },
        duration_nanos: duration,
        response_code: host::property_u64(b"response\0code").map_or(0, |c| c as u32),
        response_flags: host::property_u64(b"response\0flags").unwrap_or(0),
        request_body_bytes: host::property_u64(b"request\0size").unwrap_or(0),
        response_body_bytes: host::property_u64(b"response\0size").unwrap_or(0),
        route_name: host::property(b"xds\0route_name"),
        client_ip: if with_client_ip {
            host::property(b"source\0address").map(|a| ip_of_address(&a).to_vec())
        } else {
            None
        },
    }
}
