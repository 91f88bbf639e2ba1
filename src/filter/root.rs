//! The root context: forwards configuration, ticks, callout answers and shutdown to the
//! core's [`Plugin`], and creates a [`StreamContext`] per exchange.

use super::host::Envoy;
use super::http::StreamContext;
use crate::pipeline::plugin::Plugin;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

pub struct PluginContext(Plugin);

impl PluginContext {
    pub fn new(context_id: u32) -> Self {
        PluginContext(Plugin::new(context_id))
    }
}

impl Context for PluginContext {
    fn on_http_call_response(&mut self, callout: u32, num_headers: usize, body_size: usize, _: usize) {
        self.0.answer(&mut Envoy, callout, num_headers, body_size);
    }

    fn on_done(&mut self) -> bool {
        self.0.done(&mut Envoy)
    }
}

impl RootContext for PluginContext {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.0.configure(&mut Envoy)
    }

    fn on_tick(&mut self) {
        self.0.tick(&mut Envoy);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(StreamContext(self.0.stream())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
