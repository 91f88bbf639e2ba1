//! Root context: configuration, the delivery clock, callouts, Envoy stats and drain for one
//! plugin on one worker.

use super::host;
use super::http::StreamContext;
use crate::config::Config;
use crate::pipeline::{Answer, MetricKind, Notice, Outgoing, Pipeline, Roles, Work};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Longest tick: how late a batch may be sent after it became due.
const MAX_TICK_MS: u64 = 100;
/// Largest answer read (ingestion answers and tokens are small JSON documents).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// `ai.cloud.role` when neither the configuration nor Envoy's node names one.
const DEFAULT_ROLE: &str = "envoy";

pub struct Root {
    context_id: u32,
    pipeline: Option<Rc<RefCell<Pipeline>>>,
    /// Envoy stat ids, in the order of `Pipeline::metrics`, and the values last reported.
    metrics: Vec<(u32, MetricKind, u64)>,
    memory_metric: Option<(u32, u64)>,
    /// `appinsights.host_calls` and the count last reported.
    calls_metric: Option<(u32, u64)>,
    /// Shutting down: flush everything, then tell Envoy we are done (by this time at the
    /// latest, unix nanoseconds).
    draining_until: Option<u64>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Root {
            context_id,
            pipeline: None,
            metrics: Vec::new(),
            memory_metric: None,
            calls_metric: None,
            draining_until: None,
        }
    }

    fn configure(&mut self, root: &host::RootWork) -> Result<(), String> {
        let bytes = host::buffer(BufferType::PluginConfiguration, usize::MAX).unwrap_or_default();
        let config = Config::from_json(&bytes).map_err(|e| e.to_string())?;
        let roles = resolve_roles(&config);
        let tick_ms = config.delivery.flush_interval_ms.min(MAX_TICK_MS);
        let loggers: Vec<String> = config
            .loggers
            .iter()
            .map(|l| {
                format!(
                    "{} -> {} via cluster {}",
                    l.id,
                    l.connection.ingestion_endpoint.url(),
                    l.cluster
                )
            })
            .collect();
        let pipeline = Pipeline::new(config, &roles, host::random_seed());
        self.metrics = pipeline
            .metrics()
            .into_iter()
            .filter_map(|(name, kind, _)| {
                let abi = if kind == MetricKind::Counter {
                    host::Metric::Counter
                } else {
                    host::Metric::Gauge
                };
                host::define_metric(abi, &name).map(|id| (id, kind, 0))
            })
            .collect();
        self.memory_metric = host::define_metric(host::Metric::Gauge, "appinsights.vm_memory_bytes")
            .map(|id| (id, root.exchange_calls()));
        self.calls_metric =
            host::define_metric(host::Metric::Counter, "appinsights.host_calls").map(|id| (id, root.exchange_calls()));
        self.pipeline = Some(Rc::new(RefCell::new(pipeline)));
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

    /// Starts every callout that is due: token requests, then batches.
    fn pump(&self, flush_all: bool) {
        let Some(pipeline) = &self.pipeline else { return };
        let now = host::now_nanos();
        // Bounded: each round starts a callout or stops.
        for _ in 0..1024 {
            let Ok(mut p) = pipeline.try_borrow_mut() else { return };
            let notice = match p.next_work(now, flush_all) {
                None => return,
                Some(Work::Token { sink }) => {
                    let callout = p.token_request(sink).and_then(|req| dispatch(&req).ok());
                    p.token_started(sink, callout, now)
                }
                Some(Work::Ingest { sink, batch }) => {
                    let started = p
                        .ingest_request(sink, &batch, now)
                        .map(|req| (dispatch(&req), req.body.len()));
                    match started {
                        Some((Ok(callout), wire)) => {
                            p.sent(sink, callout, batch, wire);
                            None
                        }
                        Some((Err(why), _)) => p.send_failed(sink, batch, &why, now),
                        None => None,
                    }
                }
            };
            drop(p);
            if let Some(n) = notice {
                emit(self.context_id, &n);
            }
        }
    }

    /// Reports what changed since the last tick to Envoy's stats (a few host calls per
    /// tick, none per request).
    fn publish_metrics(&mut self, root: &host::RootWork) {
        let Some(pipeline) = &self.pipeline else { return };
        let Ok(p) = pipeline.try_borrow() else { return };
        for ((id, kind, last), (_, _, value)) in self.metrics.iter_mut().zip(p.metrics()) {
            let delta = value as i64 - *last as i64;
            if delta != 0 && (*kind == MetricKind::Gauge || delta > 0) {
                host::increment_metric(*id, delta);
            }
            *last = value;
        }
        if let Some((id, last)) = &mut self.memory_metric {
            let now = host::memory_bytes();
            host::increment_metric(*id, now as i64 - *last as i64);
            *last = now;
        }
        if let Some((id, last)) = &mut self.calls_metric {
            let now = root.exchange_calls();
            host::increment_metric(*id, now.wrapping_sub(*last) as i64);
            *last = now;
        }
    }

    /// While draining: done once nothing is left or the deadline passed.
    fn drain_step(&mut self) {
        let Some(deadline) = self.draining_until else { return };
        self.pump(true);
        let idle = self
            .pipeline
            .as_ref()
            .is_none_or(|p| p.try_borrow().is_ok_and(|p| p.is_idle()));
        if idle || host::now_nanos() >= deadline {
            if !idle {
                log::warn!(
                    "appinsights[{}]: shutting down with telemetry not yet delivered (drain timeout)",
                    self.context_id
                );
            }
            self.draining_until = None;
            host::done();
        }
    }
}

/// Starts a callout; the error says why Envoy refused it.
fn dispatch(req: &Outgoing<'_>) -> Result<u32, String> {
    let headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = if req.body.is_empty() { None } else { Some(&req.body[..]) };
    proxy_wasm::hostcalls::dispatch_http_call(
        req.cluster,
        headers,
        body,
        Vec::new(),
        Duration::from_millis(req.timeout_ms),
    )
    .map_err(|status| format!("Envoy refused the callout ({status:?}: unknown cluster or no healthy host)"))
}

impl Context for Root {
    fn on_http_call_response(&mut self, callout: u32, num_headers: usize, body_size: usize, _: usize) {
        let _root = host::RootWork::begin();
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
        let answer = Answer {
            status,
            retry_after,
            body: &body,
        };
        let notices = match pipeline.try_borrow_mut() {
            Ok(mut p) => p.completed(callout, answer, host::now_nanos()),
            Err(_) => return,
        };
        for n in &notices {
            emit(self.context_id, n);
        }
        if self.draining_until.is_some() {
            self.drain_step();
        } else {
            // A slot is free again (or a token arrived): send what waited for it.
            self.pump(false);
        }
    }

    fn on_done(&mut self) -> bool {
        let _root = host::RootWork::begin();
        // Envoy is draining or replacing this configuration: deliver what is buffered,
        // within the drain timeout, before the VM goes.
        let Some(pipeline) = &self.pipeline else { return true };
        let timeout_ms = pipeline
            .try_borrow()
            .map(|p| p.config().delivery.drain_timeout_ms)
            .unwrap_or(0);
        if timeout_ms == 0 {
            return true;
        }
        self.draining_until = Some(host::now_nanos().saturating_add(timeout_ms * 1_000_000));
        self.pump(true);
        let idle = pipeline.try_borrow().is_ok_and(|p| p.is_idle());
        if idle {
            self.draining_until = None;
        }
        idle
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let root = host::RootWork::begin();
        match self.configure(&root) {
            Ok(()) => true,
            Err(e) => {
                log::error!("appinsights[{}]: invalid plugin configuration: {e}", self.context_id);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let root = host::RootWork::begin();
        if self.draining_until.is_some() {
            self.drain_step();
        } else {
            self.pump(false);
        }
        self.publish_metrics(&root);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(StreamContext::new(self.context_id, self.pipeline.clone())))
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
/// (`--service-cluster`, `--service-node`), else `$HOSTNAME`, else defaults.
fn resolve_roles(config: &Config) -> Roles {
    let node = |field: &[u8]| {
        let mut path = b"xds\0node\0".to_vec();
        path.extend_from_slice(field);
        host::property(&path)
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|s| !s.trim().is_empty())
    };
    let role = config
        .cloud_role
        .clone()
        .or_else(|| node(b"cluster"))
        .unwrap_or_else(|| DEFAULT_ROLE.to_string());
    let instance = config
        .cloud_role_instance
        .clone()
        .or_else(|| node(b"id"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| role.clone());
    Roles { role, instance }
}
