//! Configuration: `Config::from_json` on configurations that start valid (the README's
//! example, the demo's, a minimal one, one using every other field) and are edited. An
//! error must be one line of at most 1025 characters, name a field, hold no control
//! characters and repeat no instrumentation key; an accepted configuration must take a
//! plugin through an exchange and a drain.

use crate::connection_strings::{connection_string, CONNECTION_STRINGS};
use crate::mutate::{edits, mutate_bytes, mutate_value, TOKENS};
use crate::runner::{cut, fuzz, show, Findings, Rng};
use envoy_appinsights::config::Config;
use envoy_appinsights::host::fake::FakeHost;
use envoy_appinsights::host::BufferKind;
use envoy_appinsights::pipeline::plugin::Plugin;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The README's complete example configuration (the first JSON block after "A complete
/// example"): what users copy is what is fuzzed.
fn readme_example() -> Value {
    let readme = include_str!("../../README.md");
    let from = readme
        .find("A complete example")
        .expect("README: \"A complete example\"");
    let block = &readme[from..];
    let open = block.find("```json\n").expect("README: the example's ```json block") + "```json\n".len();
    let close = open + block[open..].find("```").expect("README: the example block's end");
    serde_json::from_str(&block[open..close]).expect("README's example configuration is JSON")
}

/// A logger on the local ingestion endpoint (the one the test suite runs).
pub const LOCAL_CS: &str =
    "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9001/";

/// Valid configurations: the README's example, the demo's, a minimal one, and one that
/// uses every field the README's does not.
pub fn config_seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut demo: Value = serde_json::from_str(include_str!("../../scripts/demo-plugin.json")).unwrap();
        demo["loggers"] = json!({"main": {"connection_string": LOCAL_CS}});
        let seeds = vec![
            readme_example(),
            demo,
            json!({"loggers": {"main": {"instrumentation_key": "00000000-0000-0000-0000-000000000001"}}}),
            json!({
                "loggers": {
                    "a": {"connection_string": CONNECTION_STRINGS[1], "cluster": "outbound|443||westeurope-5.in.applicationinsights.azure.com"},
                    "b": {"instrumentation_key": "ABCDEF01-2345-6789-abcd-ef0123456789", "identity": "1111-2222",
                          "identity_cluster": "imds"}},
                "diagnostic": {
                    "loggers": ["a", "b"], "sampling_percentage": 12.5, "verbosity": "verbose",
                    "correlation_protocol": "Legacy", "operation_name_format": "Url",
                    "data_masking": {"defaults": false, "headers": [{"name": "x-secret", "mode": "Mask"}],
                                     "query_params": [{"name": "*", "mode": "Hide"}], "json_fields": ["token"]},
                    "traces": [
                        {"severity": "information", "when": {"status": [404, "4xx"], "route_names": ["r1"],
                          "request_headers": [{"name": "x-debug", "equals": "1"}],
                          "response_headers": [{"name": "x-cache"}], "min_duration_ms": 500, "failed": false},
                         "message": "{request.url} {{literal}} {response.header.x-cache} {route} {api} {operation} {operation_id}",
                         "metadata": {"debug": "{request.header.x-debug}"}},
                        {"message": "{request.header.x-missing}"}]},
                "apis": [
                    {"name": "users", "match": {"route_names": ["r1"], "hosts": ["*.example.com"]},
                     "operations": [{"name": "by-route", "route_name": "r1"}, {"name": "files", "path": "/files/*"}]},
                    {"name": "meta", "revision": "7", "match": {"route_metadata": true},
                     "diagnostic": {"correlation_protocol": "None", "always_log_errors": false}}],
                "delivery": {"max_batch_items": 1, "max_batch_bytes": 1024, "max_buffer_bytes": 65536,
                             "max_in_flight": 1, "retry_initial_ms": 10, "retry_max_ms": 10, "gzip": false,
                             "drain_timeout_ms": 0, "flush_interval_ms": 10, "timeout_ms": 100},
                "cloud_role": "edge", "cloud_role_instance": "edge-1"
            }),
        ];
        for s in &seeds {
            Config::from_value(s).unwrap_or_else(|e| panic!("a seed configuration is refused: {e}\n{s}"));
        }
        seeds
    })
}

/// Every field name the configuration knows, for the mutators to add and rename.
const CONFIG_KEYS: &[&str] = &[
    "loggers",
    "diagnostic",
    "apis",
    "cloud_role",
    "cloud_role_instance",
    "service",
    "type",
    "id",
    "region",
    "delivery",
    "connection_string",
    "instrumentation_key",
    "cluster",
    "identity",
    "identity_cluster",
    "sampling_percentage",
    "always_log_errors",
    "log_client_ip",
    "verbosity",
    "correlation_protocol",
    "operation_name_format",
    "templated_names",
    "traces",
    "properties",
    "header_properties",
    "dynamic_properties",
    "frontend",
    "backend",
    "request",
    "response",
    "headers",
    "body_bytes",
    "data_masking",
    "defaults",
    "query_params",
    "json_fields",
    "name",
    "mode",
    "severity",
    "source",
    "when",
    "message",
    "metadata",
    "status",
    "route_names",
    "request_headers",
    "response_headers",
    "min_duration_ms",
    "failed",
    "equals",
    "revision",
    "match",
    "hosts",
    "path_prefixes",
    "route_metadata",
    "operations",
    "method",
    "path",
    "route_name",
    "flush_interval_ms",
    "max_batch_items",
    "max_batch_bytes",
    "max_buffer_bytes",
    "max_in_flight",
    "timeout_ms",
    "retry_initial_ms",
    "retry_max_ms",
    "gzip",
    "drain_timeout_ms",
    "main",
    "audit",
];

/// Longest error message: the README promises 1024 characters (plus `…` when cut).
const MAX_ERROR_CHARS: usize = 1025;

/// Every substring of `text` shaped like an instrumentation key (8-4-4-4-12 hex digits),
/// lowercase.
pub fn guids_in(text: &[u8]) -> Vec<String> {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    let is_guid = |w: &[u8]| {
        w.iter().enumerate().all(|(i, b)| {
            if DASHES.contains(&i) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
    };
    let mut found = Vec::new();
    // Only runs of hex digits and `-` can hold one: one pass over the text.
    for run in text.split(|b| !(b.is_ascii_hexdigit() || *b == b'-')) {
        for w in run.windows(36).filter(|w| is_guid(w)) {
            found.push(String::from_utf8_lossy(w).to_lowercase());
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The longest run of hexadecimal digits (with `-` between them) in `s`, in digits.
fn longest_hex_run(s: &str) -> usize {
    let (mut best, mut digits) = (0, 0);
    for c in s.chars() {
        if c.is_ascii_hexdigit() {
            digits += 1;
            best = best.max(digits);
        } else if c != '-' {
            digits = 0;
        }
    }
    best
}

/// What every error shown to an operator must be: one line of at most 1025 characters,
/// without control characters, starting with the field it names, repeating no key.
pub fn check_error_message(f: &mut Findings, message: &str, input: &[u8]) {
    let chars = message.chars().count();
    f.check(
        "an error message is at most 1025 characters",
        chars <= MAX_ERROR_CHARS,
        || format!("{chars} characters: {}", cut(message, 300)),
    );
    f.check(
        "an error message is one line without control characters",
        !message.chars().any(char::is_control),
        || format!("{message:?}"),
    );
    let lower = message.to_lowercase();
    let leaked: Vec<String> = guids_in(input).into_iter().filter(|g| lower.contains(g)).collect();
    f.check(
        "an error message never repeats an instrumentation key of the input",
        leaked.is_empty(),
        || format!("{leaked:?} in {message:?}"),
    );
    f.check(
        "an error message shows no run of 16 or more hex digits (they are <redacted>)",
        longest_hex_run(message) < 16,
        || format!("{message:?}"),
    );
}

/// A configuration: a seed with its JSON edited, then now and then its text mutated.
fn config_input(rng: &mut Rng) -> Vec<u8> {
    let seeds = config_seeds();
    let mut v = rng.pick(seeds).clone();
    for _ in 0..edits(rng) {
        if rng.chance(15) {
            // A connection string from the connection string fuzzer, where one goes.
            let cs = connection_string(rng);
            if let Some(logger) = v.get_mut("loggers").and_then(Value::as_object_mut) {
                if let Some(l) = logger.values_mut().next().and_then(Value::as_object_mut) {
                    l.insert("connection_string".into(), Value::String(cs));
                    l.remove("instrumentation_key");
                }
            }
        } else {
            mutate_value(rng, &mut v, seeds, CONFIG_KEYS);
        }
    }
    let mut bytes = if rng.chance(50) {
        serde_json::to_vec(&v).unwrap()
    } else {
        serde_json::to_vec_pretty(&v).unwrap()
    };
    if rng.chance(20) {
        mutate_bytes(rng, &mut bytes, TOKENS);
    }
    if rng.chance(2) {
        bytes = rng
            .pick(&[
                &b""[..],
                b" \n\t",
                b"\xef\xbb\xbf{}",
                b"null",
                b"[]",
                b"\"loggers\"",
                b"{\"loggers\":{}}",
            ])
            .to_vec();
    }
    bytes
}

/// Configures a plugin with `bytes` on the benchmark's exchange, runs one exchange, then
/// drains it with every callout answered 200 (a token for a token request): an accepted
/// configuration must take a plugin through its whole life, and the drain must end.
fn configure_and_drain(bytes: &[u8]) -> bool {
    let mut host = FakeHost::benchmark_exchange();
    host.recording = false;
    host.buffers.insert(BufferKind::PluginConfiguration, bytes.to_vec());
    let mut plugin = Plugin::new(1);
    if !plugin.configure(&mut host) {
        return false;
    }
    envoy_appinsights::host::fake::drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
    plugin.tick(&mut host);
    if plugin.done(&mut host) {
        return true;
    }
    // The longest drain is 60 s: 20 rounds of 10 s see it end.
    for _ in 0..20 {
        for sent in std::mem::take(&mut host.callouts) {
            let token = sent
                .headers
                .iter()
                .any(|(k, v)| k == ":path" && v.starts_with("/metadata/identity"));
            let body = if token {
                br#"{"access_token":"t","expires_in":3600}"#.to_vec()
            } else {
                Vec::new()
            };
            host.callout_response_headers = vec![(":status".into(), "200".into())];
            host.buffers.insert(BufferKind::CalloutResponseBody, body.clone());
            plugin.answer(&mut host, sent.id, 1, body.len());
        }
        if host.done_called {
            return true;
        }
        host.now += 10_000_000_000;
        plugin.tick(&mut host);
    }
    host.done_called
}

#[test]
fn configuration() {
    let report = fuzz(
        "configuration",
        1000,
        config_input,
        |b| show(b),
        |bytes, f| match Config::from_json(bytes) {
            Err(e) => {
                f.note("refused");
                let message = e.to_string();
                f.check("an error names a field", !e.field.is_empty(), || message.clone());
                f.check(
                    "an error message starts with the field it names",
                    message.starts_with(&e.field),
                    || format!("field {:?}, message {message:?}", e.field),
                );
                check_error_message(f, &message, bytes);
            }
            Ok(_) => {
                f.note("accepted");
                f.check(
                    "an accepted configuration runs a plugin through an exchange and a drain that ends",
                    configure_and_drain(bytes),
                    String::new,
                );
            }
        },
    );
    report.assert_holds(|_| true);
    assert!(
        report.noted("accepted") * 20 >= report.cases && report.noted("refused") * 2 >= report.cases,
        "the mutators should produce both (accepted {}, refused {})",
        report.noted("accepted"),
        report.noted("refused")
    );
}
