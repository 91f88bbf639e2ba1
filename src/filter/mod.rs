//! The proxy-wasm layer: the only code that knows it runs inside Envoy.
//!
//! - [`root`]: one root context per plugin configuration per worker VM. Validates the
//!   configuration, owns the [`crate::pipeline::Pipeline`], sends due batches on its tick
//!   and receives the ingestion service's answers.
//! - [`http`]: one context per HTTP exchange. Reads the request at request headers and the
//!   outcome at log time, and hands both to the pipeline.
//! - [`host`]: panic-free calls into Envoy.

mod host;
mod http;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root::Root::new(context_id)));
}}
