//! The HTTP context: forwards each callback of one exchange to the core's [`Stream`] and
//! lets the exchange go on (the filter never pauses a stream; it stops the chain only
//! after answering a health check itself).

use super::host::Envoy;
use crate::pipeline::stream::{RequestFlow, Stream};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

pub struct StreamContext(pub Stream);

impl Context for StreamContext {}

impl HttpContext for StreamContext {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        match self.0.on_request_headers(&mut Envoy, end_of_stream) {
            RequestFlow::Continue => Action::Continue,
            // Answered with a local reply: nothing goes further up the chain.
            RequestFlow::AnsweredLocally => Action::Pause,
        }
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
