//! Root context: configuration, batching clock and callouts for one plugin on one worker.

use super::host;
use super::http::Exchange;
use crate::config::Config;
use crate::pipeline::{Answer, Notice, Pipeline, Roles};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Longest tick: how late a batch may be sent after it became due.
const MAX_TICK_MS: u64 = 100;
/// Largest ingestion answer read (answers are small JSON documents).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// `ai.cloud.role` when neither the configuration nor Envoy's node names one.
const DEFAULT_ROLE: &str = "envoy";

pub struct Root {
    context_id: u32,
    pipeline: Option<Rc<RefCell<Pipeline>>>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Root { context_id, pipeline: None }
    }

    fn configure(&mut self) -> Result<(), String> {
        let bytes = host::buffer(BufferType::PluginConfiguration, usize::MAX).unwrap_or_default();
        let config = Config::from_json(&bytes).map_err(|e| e.to_string())?;
        let roles = resolve_roles(&config);
        let tick_ms = config.delivery.flush_interval_ms.min(MAX_TICK_MS);
        let loggers: Vec<String> = config
            .loggers
            .iter()
            .map(|l| format!("{} -> {} via cluster {}", l.id, l.connection.ingestion_endpoint.url(), l.cluster))
            .collect();
        self.pipeline = Some(Rc::new(RefCell::new(Pipeline::new(config, &roles, host::random_seed()))));
        proxy_wasm::hostcalls::set_tick_period(Duration::from_millis(tick_ms))
            .map_err(|s| format!("could not set the tick period: {s:?}"))?;
        log::info!(
            "appinsights[{}]: configured; role {:?}, instance {:?}; loggers: {}",
            self.context_id,
            roles.role,
            roles.instance,
            loggers.join(", ")
        );
        Ok(())
    }

    /// Posts every batch that is due (bounded by each logger's in-flight limit).
    fn flush(&self, flush_all: bool) {
        let Some(pipeline) = &self.pipeline else { return };
        let now = host::now_nanos();
        loop {
            let Ok(mut p) = pipeline.try_borrow_mut() else { return };
            let Some((sink_index, batch)) = p.next_due(now, flush_all) else { return };
            let timeout = Duration::from_millis(p.config().delivery.timeout_ms);
            let Some(sink) = p.sink(sink_index) else { return };
            let result = proxy_wasm::hostcalls::dispatch_http_call(
                &sink.cluster,
                sink.request_headers().to_vec(),
                Some(&batch.body),
                Vec::new(),
                timeout,
            );
            match result {
                Ok(token) => p.sent(sink_index, token, batch),
                Err(status) => {
                    let why = format!("Envoy refused the callout ({status:?}: unknown cluster or no healthy host)");
                    if let Some(n) = p.send_failed(sink_index, batch, &why, now) {
                        emit(self.context_id, &n);
                    }
                }
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _: usize) {
        let Some(pipeline) = &self.pipeline else { return };
        let headers = if num_headers > 0 {
            host::header_map(MapType::HttpCallResponseHeaders)
        } else {
            Default::default()
        };
        let status = headers
            .get(b":status")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok());
        let retry_after = headers.get(b"retry-after").and_then(|v| std::str::from_utf8(v).ok());
        let body = if body_size > 0 {
            host::buffer(BufferType::HttpCallResponseBody, body_size.min(MAX_ANSWER_BYTES)).unwrap_or_default()
        } else {
            Vec::new()
        };
        let answer = Answer { status, retry_after, body: &body };
        let notices = match pipeline.try_borrow_mut() {
            Ok(mut p) => p.completed(token, answer, host::now_nanos()),
            Err(_) => return,
        };
        for n in &notices {
            emit(self.context_id, n);
        }
        // A slot is free again: send what waited for it.
        self.flush(false);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match self.configure() {
            Ok(()) => true,
            Err(e) => {
                log::error!("appinsights[{}]: invalid plugin configuration: {e}", self.context_id);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.flush(false);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Exchange::new(self.context_id, self.pipeline.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn emit(context_id: u32, notice: &Notice) {
    match notice {
        Notice::Warn(m) => log::warn!("appinsights[{context_id}]: {m}"),
        Notice::Debug(m) => log::debug!("appinsights[{context_id}]: {m}"),
    }
}

/// Role and instance: the configuration's, else Envoy's node cluster and id
/// (`--service-cluster`, `--service-node`; in Istio, the workload and pod), else defaults.
fn resolve_roles(config: &Config) -> Roles {
    let node = |field: &[u8]| {
        let mut path = b"xds\0node\0".to_vec();
        path.extend_from_slice(field);
        host::property(&path)
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|s| !s.trim().is_empty())
    };
    let role = config.cloud_role.clone().or_else(|| node(b"cluster")).unwrap_or_else(|| DEFAULT_ROLE.to_string());
    let instance = config
        .cloud_role_instance
        .clone()
        .or_else(|| node(b"id"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| role.clone());
    Roles { role, instance }
}
