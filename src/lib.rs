//! Application Insights telemetry for Envoy, as a proxy-wasm filter.
//!
//! # Layout
//!
//! Read it in this order. The host-agnostic core (compiled and unit-tested on the host):
//!
//! - [`pipeline`]: everything the filter decides and does per worker, request → item →
//!   batch → callout. [`pipeline::begin`] (request headers: API, trace context, sampling,
//!   ids), [`pipeline::finish`] (log time: which items, written into batches),
//!   [`pipeline::stream`] (the read plan: which calls into Envoy each callback makes),
//!   [`pipeline::plugin`] (the root context: configuration, tick, callouts, drain),
//!   [`pipeline::callouts`] (the work queue and the answers), [`pipeline::backend`] (the
//!   backend call at log time), [`pipeline::aggregates`] (metrics into each logger's
//!   aggregates), [`pipeline::health`] (the health endpoint), [`pipeline::availability`]
//!   (built-in availability tests, run once per gateway through shared data) and
//!   [`pipeline::test_verdict`] (what a test's answer means), then [`pipeline::sink`],
//!   [`pipeline::notices`], [`pipeline::stats`], [`pipeline::cluster_tls`],
//!   [`pipeline::cluster_targets`];
//! - [`host`]: the only way the core reaches Envoy (a trait the wasm layer implements
//!   once), how its calls are counted, and a fake host for tests;
//! - [`exchange`]: what the filter learns about one HTTP exchange ([`exchange::Frontend`],
//!   [`exchange::Outcome`], [`exchange::Backend`]);
//! - [`telemetry`]: envelopes written straight into batch buffers (one module per item
//!   type, availability results in [`telemetry::availability`], kinds of failure in
//!   [`telemetry::failure`], a dependency's target in [`telemetry::target`]);
//! - [`metrics`]: standard metrics pre-aggregated before sampling, APIM's custom and token
//!   metrics: what an exchange adds, the aggregates, the MetricData item;
//! - [`delivery`]: the per-logger [`delivery::Outbox`] (batching, retry queue, memory
//!   budget, drain), the service's answers ([`delivery::track`]), redirects, backoff, gzip;
//! - [`config`]: the plugin configuration, validated once per load, errors naming the
//!   field; [`connection_string`]: connection strings and endpoints, parsed like the SDKs;
//! - [`correlation`], [`sampling`]: W3C and legacy correlation headers; the Application
//!   Insights sampling score;
//! - [`capture`], [`masking`]: header and body capture within limits; masking rules;
//! - [`managed_identity`]: Entra ID tokens from the instance metadata endpoint;
//! - [`headers`], [`json`], [`timefmt`], [`ids`]: zero-copy header maps, a JSON writer,
//!   schema time formats, trace and span ids.
//!
//! The proxy-wasm layer (`filter`, wasm32 only) forwards Envoy's callbacks to
//! [`pipeline::plugin::Plugin`] and [`pipeline::stream::Stream`], and implements
//! [`host::Host`] on the ABI. Nothing else in the crate knows it runs in Envoy.

/// The module's version: Cargo.toml's, SemVer (0.x while the configuration may change). It is in
/// the log line at load and in every item's `ai.internal.sdkVersion`
/// ([`telemetry::SDK_VERSION`]); scripts/release.sh names the release after it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod capture;
pub mod config;
pub mod connection_string;
pub mod correlation;
pub mod delivery;
pub mod exchange;
pub mod headers;
pub mod host;
pub mod ids;
pub mod json;
pub mod managed_identity;
pub mod masking;
pub mod metrics;
pub mod pipeline;
pub mod sampling;
pub mod telemetry;
pub mod timefmt;

#[cfg(target_arch = "wasm32")]
mod filter;
