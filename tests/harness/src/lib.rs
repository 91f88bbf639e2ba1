//! Host-side test kit for the filter (never compiled into the wasm module).
//!
//! Layout:
//! - [`http`], [`schema`], [`ingest`], [`cli`]: re-exported from `appinsights-local`
//!   (`local/`): the small HTTP server and client, the strict schema validator, the
//!   local Application Insights ingestion endpoint (validates, stores and records what
//!   the filter sends, with fault injection and an HTTP control API) and the argument parser;
//! - [`imds`]: a double of Azure's instance metadata endpoint (managed identity tokens);
//! - [`backend`]: a sample upstream service with status/delay/bytes/SSE/echo routes, and
//!   OpenAI-compatible answers with known token usage;
//! - [`browser`]: headless Chromium for page tests (the DOM after scripts ran, screenshots);
//! - [`envoy_config`]: renders the Envoy configuration (gateway, tests, compose, benchmark);
//! - [`envoy`]: runs the real Envoy binary for the integration tests;
//! - [`floor`]: the host-call floor filter's configuration, from the filter's read plan;
//! - [`otel_backend`]: runs `tests/otel-backend/app.py`, a backend instrumented with the
//!   official Azure Monitor OpenTelemetry distro for Python;
//! - [`oci`]: reading the OCI images `scripts/package.sh` writes, and a real registry on loopback;
//! - `src/bin/ingest.rs`, `src/bin/backend.rs`: the two servers as stand-alone programs
//!   (`ingest` is the test-oriented alias of `appinsights-local`: everything kept in memory);
//! - `src/bin/envoy-config.rs`: the renderer as a program (used by `scripts/gateway.sh`);
//! - `src/bin/host-calls.rs`: [`floor`] as a program (used by `scripts/bench.sh`).

pub use appinsights_local::{cli, http, ingest, schema};

pub mod backend;
pub mod browser;
pub mod envoy;
pub mod envoy_config;
pub mod floor;
pub mod imds;
pub mod oci;
pub mod otel_backend;
