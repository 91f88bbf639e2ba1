//! The HTTP context: forwards each callback of one exchange to the core's [`Stream`] and
//! always lets the exchange go on (the filter never pauses a stream).

use super::host::Envoy;
use crate::pipeline::stream::Stream;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

pub struct StreamContext(pub Stream);

impl Context for StreamContext {}

impl HttpContext for StreamContext {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.0.on_request_headers(&mut Envoy, end_of_stream);
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.0.on_request_body(&mut Envoy, body_size, end_of_stream);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.0.on_response_headers(&mut Envoy, end_of_stream);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.0.on_response_body(&mut Envoy, body_size, end_of_stream);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.0.on_response_trailers();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.0.on_log(&mut Envoy);
    }
}
