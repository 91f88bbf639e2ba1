//! appinsights-local: a local Application Insights.
//!
//! A strict ingestion endpoint (the `track` protocol; every item validated against the
//! official schema), a bounded store of what it accepted, a JSON query API over that
//! store and a viewer page, in one std-only server. The test kit (`tests/harness`)
//! uses the same endpoint, with fault modes and a control API, to check what the filter sends.
//!
//! Layout:
//! - [`http`]: a tiny std-only HTTP/1.1 server (keep-alive, chunked, fault replies) and client;
//! - [`schema`]: strict validation of one Application Insights envelope against the
//!   published schema (field types, required fields, maximum lengths);
//! - [`ingest`]: the ingestion endpoint (`/v2/track`, `/v2.1/track`) that validates,
//!   stores and records what it receives, with fault injection and an HTTP control API;
//! - [`store`]: the product's bounded store of accepted and rejected items (and its file);
//! - [`api`]: the JSON query API over the store (docs/local.md);
//! - [`ui`]: the viewer page, embedded;
//! - [`sample`]: envelopes of every kind from a few fields (tests, demos);
//! - [`cli`]: the small argument parser shared by the programs;
//! - `src/bin/appinsights-local.rs`: the endpoint as a program.

// Server code paths handle untrusted network input: no panics (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod api;
pub mod cli;
pub mod http;
pub mod ingest;
pub mod sample;
pub mod schema;
pub mod store;
pub mod ui;
