//! Host-side test kit for the filter (never compiled into the wasm module).
//!
//! Layout:
//! - [`http`]: a tiny std-only HTTP/1.1 server (keep-alive, chunked, fault replies) and client;
//! - [`schema`]: strict validation of one Application Insights envelope against the
//!   published schema (field types, required fields, maximum lengths);
//! - [`ingest`]: a local Application Insights ingestion endpoint (`/v2/track`,
//!   `/v2.1/track`) that validates, stores and records what the filter sends, with
//!   fault injection and an HTTP control API;
//! - [`imds`]: a double of Azure's instance metadata endpoint (managed identity tokens);
//! - [`backend`]: a sample upstream service with status/delay/bytes/SSE/echo routes, and
//!   OpenAI-compatible answers with known token usage;
//! - [`browser`]: headless Chromium for page tests (the DOM after scripts ran, screenshots);
//! - [`cli`]: the small argument parser shared by the two programs;
//! - [`envoy_config`]: renders the Envoy configuration (gateway, tests, compose, benchmark);
//! - [`envoy`]: runs the real Envoy binary for the integration tests;
//! - [`floor`]: the host-call floor filter's configuration, from the filter's read plan;
//! - [`otel_backend`]: runs `tests/otel-backend/app.py`, a backend instrumented with the
//!   official Azure Monitor OpenTelemetry distro for Python;
//! - [`oci`]: reading the OCI images `scripts/package.sh` writes, and a real registry on loopback;
//! - `src/bin/ingest.rs`, `src/bin/backend.rs`: the two servers as stand-alone programs;
//! - `src/bin/envoy-config.rs`: the renderer as a program (used by `scripts/gateway.sh`);
//! - `src/bin/host-calls.rs`: [`floor`] as a program (used by `scripts/bench.sh`).

pub mod backend;
pub mod browser;
pub mod cli;
pub mod envoy;
pub mod envoy_config;
pub mod floor;
pub mod http;
pub mod imds;
pub mod ingest;
pub mod oci;
pub mod otel_backend;
pub mod schema;
