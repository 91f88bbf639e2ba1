//! A proxy-wasm HTTP filter that makes a configured sequence of host calls per request and
//! does nothing with the answers (each returned buffer is freed at once).
//!
//! `scripts/bench.sh` gives it the exact calls the telemetry filter makes per request, in
//! each callback: the harness's `host-calls` program runs the filter's read plan against
//! the core's fake host and prints them (`appinsights.host_calls` counts the same calls in
//! Envoy). The benchmark then splits the filter's cost into what Envoy spends answering
//! those calls (this filter's cost over the no-op filter's) and what the filter's own code
//! spends (the rest).
//!
//! Configuration: one key per callback — `request_headers`, `request_body`,
//! `response_headers`, `response_body`, `log` — each a space-separated list of
//! `request_map`, `response_map`, `set_request_header:<name>`,
//! `set_response_header:<name>`, `remove_request_header:<name>`, `request_body`,
//! `response_body` (the current chunk), `clock`, `header:<request header name>` (one
//! value), `property:<attribute path with dots>` (for example `property:response.code`) or
//! `cel`, which evaluates the configuration's `"cel"` expression with Envoy's
//! `expr_evaluate` (created once with `expr_create`; the first evaluation's outcome is
//! logged, so a failing expression cannot pass for a cheap one).

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType};
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
        fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
        fn proxy_get_buffer_bytes(buffer: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    }

    const REQUEST_HEADERS: u32 = 0;
    const RESPONSE_HEADERS: u32 = 2;
    const REQUEST_BODY: u32 = 0;
    const RESPONSE_BODY: u32 = 1;
    /// What a set header is set to: a traceparent's length, as the filter sets.
    const VALUE: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    enum Call {
        Map(u32),
        SetHeader(u32, Vec<u8>),
        RemoveHeader(u32, Vec<u8>),
        /// Reads the current chunk of a body (at most 8 KiB, as capture does).
        Body(u32),
        Clock,
        Property(Vec<u8>),
        Header(Vec<u8>),
        /// Evaluates the configured CEL expression (Envoy's `expr_evaluate`).
        Cel,
    }

    /// The calls of each callback.
    #[derive(Default)]
    struct Plan {
        request_headers: Vec<Call>,
        request_body: Vec<Call>,
        response_headers: Vec<Call>,
        response_body: Vec<Call>,
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

    fn call(name: &str) -> Option<Call> {
        let bytes = |s: &str| s.as_bytes().to_vec();
        Some(match name.split_once(':') {
            None => match name {
                "request_map" => Call::Map(REQUEST_HEADERS),
                "response_map" => Call::Map(RESPONSE_HEADERS),
                "request_body" => Call::Body(REQUEST_BODY),
                "response_body" => Call::Body(RESPONSE_BODY),
                "clock" => Call::Clock,
                "cel" => Call::Cel,
                _ => return None,
            },
            Some(("set_request_header", h)) => Call::SetHeader(REQUEST_HEADERS, bytes(h)),
            Some(("set_response_header", h)) => Call::SetHeader(RESPONSE_HEADERS, bytes(h)),
            Some(("remove_request_header", h)) => Call::RemoveHeader(REQUEST_HEADERS, bytes(h)),
            Some(("property", p)) => Call::Property(p.replace('.', "\0").into_bytes()),
            Some(("header", h)) => Call::Header(bytes(h)),
            Some(_) => return None,
        })
    }

    fn parse(config: &[u8]) -> Plan {
        let text = String::from_utf8_lossy(config);
        let list = |key: &str| {
            let calls = string_field(&text, key).unwrap_or_default();
            let (known, unknown): (Vec<_>, Vec<_>) = calls
                .split_whitespace()
                .map(|c| (c, call(c)))
                .partition(|c| c.1.is_some());
            for (name, _) in unknown {
                warn(&format!("host-call-floor: unknown call {name:?} in {key}"));
            }
            known.into_iter().filter_map(|c| c.1).collect()
        };
        let expr = string_field(&text, "cel");
        let cel = expr
            .and_then(|expr| foreign(b"expr_create", expr.as_bytes()))
            .and_then(|token| <[u8; 4]>::try_from(token.as_slice()).ok());
        if expr.is_some() && cel.is_none() {
            warn("host-call-floor: expr_create failed");
        }
        Plan {
            request_headers: list("request_headers"),
            request_body: list("request_body"),
            response_headers: list("response_headers"),
            response_body: list("response_body"),
            log: list("log"),
            cel,
        }
    }

    fn warn(message: &str) {
        let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Warn, message);
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
            match &result {
                Some(bytes) => warn(&format!(
                    "host-call-floor: expr_evaluate returned {} bytes",
                    bytes.len()
                )),
                None => warn("host-call-floor: expr_evaluate failed"),
            }
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
                    Call::SetHeader(map, name) => {
                        proxy_replace_header_map_value(*map, name.as_ptr(), name.len(), VALUE.as_ptr(), VALUE.len());
                    }
                    Call::RemoveHeader(map, name) => {
                        proxy_remove_header_map_value(*map, name.as_ptr(), name.len());
                    }
                    Call::Body(buffer) => {
                        proxy_get_buffer_bytes(*buffer, 0, 8192, &mut data, &mut size);
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
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            run(&self.0.request_headers, self.0.cel);
            Action::Continue
        }
        fn on_http_request_body(&mut self, _: usize, _: bool) -> Action {
            run(&self.0.request_body, self.0.cel);
            Action::Continue
        }
        fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
            run(&self.0.response_headers, self.0.cel);
            Action::Continue
        }
        fn on_http_response_body(&mut self, _: usize, _: bool) -> Action {
            run(&self.0.response_body, self.0.cel);
            Action::Continue
        }
        fn on_log(&mut self) {
            run(&self.0.log, self.0.cel);
        }
    }

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| Box::new(Root(Rc::new(Plan::default()))));
    }}
}
