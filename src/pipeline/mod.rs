//! The per-worker telemetry pipeline: everything the filter decides and does between "a
//! request arrived" and "this batch goes to that cluster". It reaches Envoy only through
//! [`crate::host::Host`].
//!
//! One [`Pipeline`] exists per root context (one per plugin configuration per worker VM).
//! Read it in this order:
//!
//! 1. [`begin`], at request headers: the request's API (hence its diagnostic), the
//!    caller's trace context, the sampling decision for the operation, and the ids,
//!    including the one the backend receives ([`Injection`]).
//! 2. [`finish`], at log time: what must be read from Envoy (nothing at all for an
//!    operation that can produce no item), which items the exchange produces (Request,
//!    Dependency, Exception, Traces), and writing them into each selected logger's batch.
//! 3. [`stream`]: the read plan — which calls into Envoy each callback of an exchange
//!    makes, around [`begin`] and [`finish`].
//! 4. [`plugin`]: the root context — configuration, a [`stream::Stream`] per exchange, and
//!    on each tick the [`callouts`] that are due (batches, token requests) and their
//!    answers; the drain when the configuration goes.
//! 5. [`sink`]: one logger's state on this worker; [`shared_pause`]: `Retry-After` for
//!    every worker; [`notices`]: rate-limited log lines; [`stats`]: the Envoy stats;
//!    [`cluster_tls`]: which clusters speak TLS.
//! 6. [`health`]: the health endpoint the stream answers itself; [`availability`]: the
//!    built-in availability tests the tick runs, once per gateway, and [`test_verdict`]:
//!    what their answers mean.

pub mod aggregates;
pub mod availability;
pub mod backend;
pub mod begin;
pub mod callouts;
pub mod cluster_targets;
pub mod cluster_tls;
pub mod finish;
pub mod handoff;
pub mod health;
pub mod notices;
pub mod plugin;
pub mod shared_pause;
pub mod sink;
pub mod stats;
pub mod stream;
pub mod test_verdict;
#[cfg(test)]
mod testing;

pub use begin::{Begun, Injection, RouteInfo};
pub use callouts::{Answer, Work};
pub use finish::{Finished, Needs};
pub use notices::Notice;

use crate::config::{Config, Diagnostic};
use crate::correlation::IdText;
use crate::ids::IdGenerator;
use cluster_tls::ClusterTls;
use sink::Sink;

/// `ai.cloud.role` and `ai.cloud.roleInstance` after defaults were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub role: String,
    pub instance: String,
    /// The configured region, else the Envoy node's locality region (APIM's `Location`
    /// dimension), `Unknown` if none.
    pub location: String,
    /// The region the Requests' `Region` names: as `location`, but none when unknown.
    pub region: Option<String>,
}

pub struct Pipeline {
    config: Config,
    sinks: Vec<Sink>,
    ids: IdGenerator,
    /// Legacy `Request-Context` values: the all-APIs diagnostic's, then each API's.
    app_contexts: Vec<Option<IdText>>,
    /// The request headers the items may use, in the same order
    /// ([`finish::request_headers_used`]).
    headers_used: Vec<Vec<String>>,
    /// Operations sampling dropped and nothing else kept.
    sampled_out: u64,
    cluster_tls: ClusterTls,
    cluster_targets: cluster_targets::ClusterTargets,
    metrics: aggregates::Metrics,
    /// The dynamic metadata values each diagnostic's templates print, in diagnostic order.
    metadata_used: Vec<finish::MetadataUse>,
    /// What each diagnostic's metric rules read at log time, in diagnostic order.
    metric_reads: Vec<finish::MetricReads>,
    /// The built-in availability tests on this worker.
    tests: availability::Tests,
    /// Undelivered telemetry handed to, or taken from, other VMs.
    handoff: handoff::Handoff,
}

impl Pipeline {
    pub fn new(config: Config, roles: &Roles, seed: [u8; 32]) -> Pipeline {
        let sinks: Vec<Sink> = config.loggers.iter().map(|l| Sink::new(l, roles, &config)).collect();
        let diagnostics = || std::iter::once(&config.diagnostic).chain(config.apis.iter().map(|a| &a.diagnostic));
        let app_contexts = diagnostics().map(|d| app_context(&config, d)).collect();
        let headers_used = diagnostics().map(finish::request_headers_used).collect();
        let mut catalog = crate::metrics::catalog::Catalog::default();
        let per_diagnostic = diagnostics().map(|d| catalog.add_diagnostic(d)).collect();
        let metrics = aggregates::Metrics {
            catalog,
            per_diagnostic,
            gateway: crate::metrics::extract::Gateway {
                location: roles.location.clone().into_bytes(),
                id: roles.instance.clone().into_bytes(),
            },
            interval_ms: config.metrics.interval_ms,
            ..Default::default()
        };
        let metadata_used = diagnostics().map(finish::metadata_used).collect();
        let metric_reads = diagnostics().map(finish::MetricReads::of).collect();
        let tests = availability::Tests::new(&config.availability, roles);
        let mut ids = IdGenerator::from_seed(seed);
        let token = String::from_utf8_lossy(&ids.span_id().to_hex()).into_owned();
        Pipeline {
            handoff: handoff::Handoff::new(
                token,
                sinks
                    .iter()
                    .zip(&config.loggers)
                    .map(|(s, l)| (s.pause_key.as_str(), l.connection.instrumentation_key.as_str())),
            ),
            tests,
            metrics,
            metadata_used,
            metric_reads,
            config,
            sinks,
            ids,
            app_contexts,
            headers_used,
            sampled_out: 0,
            cluster_tls: ClusterTls::default(),
            cluster_targets: Default::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn diagnostic_of(&self, api: Option<usize>) -> &Diagnostic {
        diagnostic_of(&self.config, api)
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

    /// Whether the response headers must be read when they arrive (backend capture).
    pub fn captures_backend_response_headers(&self, begun: &Begun) -> bool {
        let d = self.diagnostic_of(begun.api);
        (begun.sampled || d.always_log_errors) && !d.capture.backend_response.headers.is_empty()
    }

    /// Whether nothing is waiting or in flight in any logger, metric aggregates and
    /// availability tests included.
    pub fn is_idle(&self) -> bool {
        self.sinks.iter().all(|s| s.outbox.is_idle() && s.aggregator.is_empty()) && !self.tests.in_flight()
    }

    /// Whether a drain ending at `deadline` may still deliver something: a logger with
    /// telemetry has a callout in flight, or may send before then; or an availability test
    /// waits for its answer.
    pub fn can_deliver_by(&self, deadline: u64) -> bool {
        let may = |o: &crate::delivery::Outbox| o.in_flight() > 0 || o.paused_until() < deadline;
        self.sinks.iter().any(|s| !s.outbox.is_idle() && may(&s.outbox)) || self.tests.in_flight()
    }

    /// Drops what every logger still holds, counted as `items_dropped_shutdown`; returns
    /// how many items.
    pub fn abandon(&mut self) -> u64 {
        self.sinks.iter_mut().map(|s| s.outbox.abandon()).sum()
    }
}

/// The diagnostic at `index` in diagnostic order (0: the all-APIs one, then each API's).
fn diagnostic_at(config: &Config, index: usize) -> &Diagnostic {
    index
        .checked_sub(1)
        .and_then(|i| config.apis.get(i))
        .map_or(&config.diagnostic, |a| &a.diagnostic)
}

/// The index in diagnostic order of the diagnostic of `api`.
fn diagnostic_index(api: Option<usize>) -> usize {
    api.map_or(0, |i| i + 1)
}

/// The diagnostic that applies to an exchange of `api` (`None`: the all-APIs one).
fn diagnostic_of(config: &Config, api: Option<usize>) -> &Diagnostic {
    api.and_then(|i| config.apis.get(i))
        .map_or(&config.diagnostic, |a| &a.diagnostic)
}

/// `appId=cid-v1:<id>` of the first logger of `d` whose application id is known (Legacy
/// correlation's `Request-Context`).
fn app_context(config: &Config, d: &Diagnostic) -> Option<IdText> {
    let app = d
        .loggers
        .iter()
        .find_map(|&i| config.loggers.get(i)?.connection.application_id.as_deref())?;
    IdText::new(format!("appId=cid-v1:{app}").as_bytes())
}
