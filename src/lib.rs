//! Application Insights telemetry for Envoy, as a proxy-wasm filter.
//!
//! # Layout
//!
//! The host-agnostic core (compiled and unit-tested on the host, no proxy-wasm):
//!
//! - [`config`]: the plugin configuration, validated once per load, errors naming the field;
//! - [`connection_string`]: connection strings and ingestion endpoints, parsed like the SDKs;
//! - [`exchange`]: what the filter learns about one HTTP exchange ([`exchange::Frontend`],
//!   [`exchange::Outcome`]);
//! - [`telemetry`]: envelopes written straight into batch buffers (one module per item type);
//! - [`delivery`]: batching, the memory budget and the ingestion service's answers;
//! - [`headers`], [`json`], [`timefmt`], [`ids`]: zero-copy header maps, a JSON writer,
//!   schema time formats, trace and span ids.
//!
//! The proxy-wasm layer (`filter`, wasm32 only) is thin: it reads what Envoy knows, hands it
//! to the core, and sends what the core has batched.
//!
//! Flow: request headers → [`exchange::Frontend`]; end of exchange → [`exchange::Outcome`]
//! → [`telemetry::request::write`] into the logger's [`delivery::Outbox`] → on the root
//! context's tick, `dispatch_http_call` to `<endpoint>/v2.1/track` → the answer is
//! classified by [`delivery::track`].

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
pub mod pipeline;
pub mod sampling;
pub mod telemetry;
pub mod timefmt;

#[cfg(target_arch = "wasm32")]
mod filter;
