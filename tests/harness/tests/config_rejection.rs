//! A bad plugin configuration makes Envoy refuse to start, and its log names the field.

use harness::envoy::{ephemeral, filter_wasm, Envoy};
use harness::envoy_config::{render, Settings};
use serde_json::{json, Value};
use std::time::Duration;

const CS: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/";

/// Renders a valid configuration, then swaps in `plugin_config` verbatim: the renderer
/// itself would refuse these, and the point is to see what Envoy does with them.
fn yaml_with_plugin_config(plugin_config: &str) -> String {
    let settings = Settings::local(
        "127.0.0.1:9",
        filter_wasm().to_str().unwrap(),
        json!({"loggers": {"main": {"connection_string": CS}}}),
    );
    let yaml = render(&ephemeral(&settings)).unwrap();
    let replaced: Vec<String> = yaml
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("value: ") {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}value: {}", Value::String(plugin_config.into()))
            } else {
                l.to_string()
            }
        })
        .collect();
    replaced.join("\n") + "\n"
}

fn assert_refused(plugin_config: &str, expected_message: &str) {
    let (status, log) = Envoy::expect_refusal(&yaml_with_plugin_config(plugin_config), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!status.success(), "Envoy must not start; log:\n{log}");
    assert!(
        log.contains(&format!("invalid plugin configuration: {expected_message}")),
        "log must name the problem {expected_message:?}; log:\n{log}"
    );
}

#[test]
fn unknown_field_is_refused_by_name() {
    assert_refused(
        &json!({"loggers": {"main": {"conection_string": CS}}}).to_string(),
        "loggers.main.conection_string: unknown field",
    );
}

#[test]
fn malformed_connection_string_is_refused_without_echoing_the_key() {
    let config =
        json!({"loggers": {"main": {"connection_string": "InstrumentationKey=secret-key-123;InstrumentationKey=x"}}});
    let (status, log) =
        Envoy::expect_refusal(&yaml_with_plugin_config(&config.to_string()), Duration::from_secs(60)).unwrap();
    assert!(!status.success());
    let line = log
        .lines()
        .find(|l| l.contains("invalid plugin configuration"))
        .expect("error line");
    assert!(
        line.contains("loggers.main.connection_string: key InstrumentationKey appears more than once"),
        "{line}"
    );
    assert!(
        !line.contains("secret-key-123"),
        "the instrumentation key must not be logged: {line}"
    );
}

#[test]
fn out_of_range_values_and_broken_json_are_refused() {
    assert_refused(
        &json!({"loggers": {"main": {"connection_string": CS}}, "delivery": {"flush_interval_ms": 0}}).to_string(),
        "delivery.flush_interval_ms: must be between 10 and 60000",
    );
    assert_refused("{\"loggers\": ", "configuration: is not valid JSON");
}

/// The filter's own error line in Envoy's log, after checking that Envoy refused to start.
fn refusal_line(plugin_config: &str) -> (String, String) {
    let (status, log) = Envoy::expect_refusal(&yaml_with_plugin_config(plugin_config), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!status.success(), "Envoy must not start; log:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("invalid plugin configuration"))
        .unwrap_or_else(|| panic!("no error line; log:\n{log}"))
        .to_string();
    (line, log)
}

#[test]
fn an_ingestion_endpoint_with_a_nul_or_non_ascii_character_is_refused_and_nothing_raw_is_logged() {
    let config = json!({"loggers": {"main": {"connection_string":
        "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/v2\u{0}x/"}}});
    let (line, log) = refusal_line(&config.to_string());
    assert!(
        line.contains(
            "loggers.main.connection_string: IngestionEndpoint must be printable ASCII without spaces (found U+0000)"
        ),
        "{line}"
    );
    assert!(!log.contains('\0'), "no raw NUL in Envoy's log");
    assert_refused(
        &json!({"loggers": {"main": {"connection_string":
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://ingest.example/caf\u{e9}/"}}})
        .to_string(),
        "loggers.main.connection_string: IngestionEndpoint must be printable ASCII without spaces (found U+00E9)",
    );
}

#[test]
fn a_huge_value_with_control_characters_is_cut_and_escaped_in_the_log() {
    let name = format!("bad\u{0}field{}", "x".repeat(200_000));
    let config = json!({"loggers": {"main": {"connection_string": CS, name: 1}}});
    let (line, log) = refusal_line(&config.to_string());
    let shown = format!("loggers.main.bad\\0field{}…: unknown field", "x".repeat(55));
    assert!(line.contains(&shown), "{line}");
    assert!(line.len() < 1024, "the error line is {} bytes long", line.len());
    assert!(!log.contains('\0'), "no raw NUL in Envoy's log");
}

#[test]
fn a_number_given_as_a_string_is_refused_as_the_wrong_type() {
    assert_refused(
        &json!({"loggers": {"main": {"connection_string": CS}}, "diagnostic": {"sampling_percentage": "25"}})
            .to_string(),
        "diagnostic.sampling_percentage: must be a number",
    );
}

#[test]
fn an_instrumentation_key_that_is_not_a_guid_is_refused_without_echoing_it() {
    let (line, _) = refusal_line(
        &json!({"loggers": {"main": {"connection_string": "InstrumentationKey=my-key;IngestionEndpoint=http://127.0.0.1:9/"}}})
            .to_string(),
    );
    assert!(
        line.contains("loggers.main.connection_string: InstrumentationKey must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)"),
        "{line}"
    );
    assert!(!line.contains("my-key"), "{line}");
}

#[test]
fn a_metric_rule_with_eleven_dimensions_is_refused_naming_the_rule() {
    let dimensions: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("d{i}"), "value": "{request.method}"}))
        .collect();
    let config = json!({"loggers": {"main": {"connection_string": CS}},
                        "diagnostic": {"metrics": true, "emit_metrics": [
                            {"name": "fine", "dimensions": [{"name": "API ID"}]},
                            {"name": "too wide", "dimensions": dimensions}]}});
    assert_refused(
        &config.to_string(),
        "diagnostic.emit_metrics[1]: rule \"too wide\" has 11 dimensions; a metric has 1 to 10 (Azure Monitor's limit)",
    );
}
