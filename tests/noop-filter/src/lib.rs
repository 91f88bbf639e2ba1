//! A proxy-wasm HTTP filter that does nothing: every callback keeps its default (continue).
//! `scripts/bench.sh` runs it to measure what any wasm filter costs Envoy per request, so
//! the telemetry filter's own cost can be told apart from the cost of the wasm runtime.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::ContextType;

    struct Root;
    struct Exchange;

    impl Context for Root {}
    impl RootContext for Root {
        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Exchange))
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }
    impl Context for Exchange {}
    impl HttpContext for Exchange {}

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| Box::new(Root));
    }}
}
