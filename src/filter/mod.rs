//! The proxy-wasm layer: the only code that knows it runs inside Envoy. It forwards each
//! callback to the core and answers the core's calls into Envoy; everything it decides is
//! decided in [`crate::pipeline`].
//!
//! - [`root`]: one root context per plugin configuration per worker VM, forwarding to
//!   [`crate::pipeline::plugin::Plugin`];
//! - [`http`]: one context per HTTP exchange, forwarding to
//!   [`crate::pipeline::stream::Stream`];
//! - [`host`]: [`crate::host::Host`] on the proxy-wasm ABI, without panics.

mod host;
mod http;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root::PluginContext::new(context_id)));
}}
