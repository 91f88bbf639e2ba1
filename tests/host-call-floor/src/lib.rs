//! A proxy-wasm HTTP filter that makes a configured sequence of host calls per request and
//! does nothing with the answers (each returned buffer is freed at once).
//!
//! `scripts/bench.sh` gives it the exact calls the telemetry filter makes per request
//! (`appinsights.host_calls` counts them), so the benchmark can split the filter's cost
//! into what Envoy spends answering those calls (this filter's cost over the no-op
//! filter's) and what the filter's own code spends (the rest).
//!
//! Configuration: `{"calls": "<calls at request headers> | <calls at log time>"}`, each a
//! space-separated list of `request_map`, `response_map`, `set_traceparent`, `clock`,
//! `header:<request header name>` (one value), `property:<attribute path with dots>`
//! (for example `property:response.code`) or `cel`, which evaluates the configuration's
//! `"cel"` expression with Envoy's `expr_evaluate` (created once with `expr_create`; the
//! first evaluation's outcome is logged, so a failing expression cannot pass for a cheap
//! one).

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::ContextType;
    use std::ptr::null_mut;
    use std::rc::Rc;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_property(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
        fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        fn proxy_call_foreign_function(
            name: *const u8,
            name_size: usize,
            arg: *const u8,
            arg_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
    }

    const REQUEST_HEADERS: u32 = 0;
    const RESPONSE_HEADERS: u32 = 2;
    const TRACEPARENT: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    enum Call {
        Map(u32),
        SetTraceparent,
        Clock,
        Property(Vec<u8>),
        Header(Vec<u8>),
        /// Evaluates the configured CEL expression (Envoy's `expr_evaluate`).
        Cel,
    }

    #[derive(Default)]
    struct Plan {
        request_headers: Vec<Call>,
        log: Vec<Call>,
        /// The `expr_create` token of the `"cel"` expression, if any.
        cel: Option<[u8; 4]>,
    }

    /// The string value of `"key"` in the configuration's JSON object (enough for the
    /// benchmark's configurations, which hold no escaped quotes).
    fn string_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.split_once(&format!("\"{key}\""))
            .and_then(|(_, rest)| rest.split('"').nth(1))
    }

    fn parse(config: &[u8]) -> Plan {
        let text = String::from_utf8_lossy(config);
        let calls = string_field(&text, "calls").unwrap_or_default();
        let (at_request, at_log) = calls.split_once('|').unwrap_or((calls, ""));
        let list = |s: &str| {
            s.split_whitespace()
                .filter_map(|c| match c {
                    "request_map" => Some(Call::Map(REQUEST_HEADERS)),
                    "response_map" => Some(Call::Map(RESPONSE_HEADERS)),
                    "set_traceparent" => Some(Call::SetTraceparent),
                    "clock" => Some(Call::Clock),
                    "cel" => Some(Call::Cel),
                    _ => c
                        .strip_prefix("property:")
                        .map(|p| Call::Property(p.replace('.', "\0").into_bytes()))
                        .or_else(|| c.strip_prefix("header:").map(|h| Call::Header(h.as_bytes().to_vec()))),
                })
                .collect()
        };
        let expr = string_field(&text, "cel");
        let cel = expr
            .and_then(|expr| foreign(b"expr_create", expr.as_bytes()))
            .and_then(|token| <[u8; 4]>::try_from(token.as_slice()).ok());
        if expr.is_some() && cel.is_none() {
            let _ =
                proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Warn, "host-call-floor: expr_create failed");
        }
        Plan {
            request_headers: list(at_request),
            log: list(at_log),
            cel,
        }
    }

    fn foreign(name: &[u8], arg: &[u8]) -> Option<Vec<u8>> {
        let (mut data, mut size): (*mut u8, usize) = (null_mut(), 0);
        // SAFETY: every pointer is valid for the duration of the call.
        let status = unsafe {
            proxy_call_foreign_function(name.as_ptr(), name.len(), arg.as_ptr(), arg.len(), &mut data, &mut size)
        };
        take(data, size).filter(|_| status == 0)
    }

    /// Takes ownership of a buffer Envoy returned (freed when dropped).
    fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
        // SAFETY: Envoy allocated `size` bytes through the SDK's proxy_on_memory_allocate.
        (!data.is_null()).then(|| unsafe { Vec::from_raw_parts(data, size, size) })
    }

    /// Evaluates the configured expression; says once whether it evaluates, so a failing
    /// one cannot pass for a cheap one.
    fn evaluate(cel: Option<[u8; 4]>) {
        let Some(token) = cel else { return };
        let result = foreign(b"expr_evaluate", &token);
        if !REPORTED.with(|r| r.replace(true)) {
            let what = match &result {
                Some(bytes) => format!("host-call-floor: expr_evaluate returned {} bytes", bytes.len()),
                None => "host-call-floor: expr_evaluate failed".to_string(),
            };
            let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Warn, &what);
        }
    }

    thread_local! {
        static REPORTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn run(calls: &[Call], cel: Option<[u8; 4]>) {
        for call in calls {
            let (mut data, mut size): (*mut u8, usize) = (null_mut(), 0);
            // SAFETY: every pointer is valid for the duration of its call.
            unsafe {
                match call {
                    Call::Map(map) => {
                        proxy_get_header_map_pairs(*map, &mut data, &mut size);
                    }
                    Call::Property(path) => {
                        proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size);
                    }
                    Call::Header(name) => {
                        proxy_get_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len(), &mut data, &mut size);
                    }
                    Call::SetTraceparent => {
                        let key = b"traceparent";
                        proxy_replace_header_map_value(
                            REQUEST_HEADERS,
                            key.as_ptr(),
                            key.len(),
                            TRACEPARENT.as_ptr(),
                            TRACEPARENT.len(),
                        );
                    }
                    Call::Cel => evaluate(cel),
                    Call::Clock => {
                        let _ = proxy_wasm::hostcalls::get_current_time();
                    }
                }
            }
            drop(take(data, size));
        }
    }

    struct Root(Rc<Plan>);
    struct Exchange(Rc<Plan>);

    impl Context for Root {}
    impl RootContext for Root {
        fn on_configure(&mut self, _: usize) -> bool {
            let config =
                proxy_wasm::hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX);
            self.0 = Rc::new(parse(&config.ok().flatten().unwrap_or_default()));
            true
        }
        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Exchange(self.0.clone())))
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }
    impl Context for Exchange {}
    impl HttpContext for Exchange {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
            run(&self.0.request_headers, self.0.cel);
            proxy_wasm::types::Action::Continue
        }
        fn on_log(&mut self) {
            run(&self.0.log, self.0.cel);
        }
    }

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| Box::new(Root(Rc::new(Plan::default()))));
    }}
}
