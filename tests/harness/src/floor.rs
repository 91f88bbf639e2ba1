//! The host-call floor's configuration, from the filter's own read plan: which calls the
//! filter makes into Envoy in each callback of the benchmark's exchange, for a given
//! plugin configuration. `tests/host-call-floor` replays them and nothing else, so
//! `scripts/bench.sh` can tell what Envoy spends answering them from what the filter's
//! code spends. The calls come from running the real read plan
//! (`envoy_appinsights::pipeline::stream`) against the core's fake host: there is one
//! source for the call sequence, and the floor cannot drift from the filter.

use envoy_appinsights::host::fake::{drive, ExchangeCalls, FakeHost};
use envoy_appinsights::pipeline::plugin::Plugin;
use serde_json::{json, Map, Value};

/// A logger for configurations that name none (the floor sends nothing anywhere).
const LOGGER: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/";

/// The calls of one steady-state exchange (the cluster-TLS cache already warm, as it is
/// after the first exchange of each worker) under `plugin_config`.
pub fn exchange_calls(plugin_config: &Value) -> Result<ExchangeCalls, String> {
    let mut config = plugin_config.clone();
    let object = config
        .as_object_mut()
        .ok_or("the plugin configuration must be a JSON object")?;
    object
        .entry("loggers")
        .or_insert_with(|| json!({"bench": {"connection_string": LOGGER}}));
    let mut host = FakeHost::benchmark_exchange();
    let mut plugin = Plugin::new(1);
    if !host.configure(&mut plugin, &config.to_string()) {
        let why = envoy_appinsights::config::Config::from_value(&config)
            .err()
            .map(|e| e.to_string());
        return Err(format!(
            "the filter refuses this configuration: {}",
            why.unwrap_or_default()
        ));
    }
    drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
    Ok(drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES))
}

/// The floor filter's configuration for `plugin_config`: one key per callback, plus
/// `calls_per_request` (for the benchmark's report; the floor ignores it).
pub fn floor_config(plugin_config: &Value) -> Result<Value, String> {
    let calls = exchange_calls(plugin_config)?;
    let mut out = Map::new();
    for (callback, list) in calls.callbacks() {
        let names: Option<Vec<String>> = list.iter().map(|c| c.floor_name()).collect();
        let names = names.ok_or_else(|| format!("a call in {callback} the floor cannot replay: {list:?}"))?;
        out.insert(callback.to_string(), Value::String(names.join(" ")));
    }
    out.insert("calls_per_request".into(), json!(calls.total()));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four_headers(sampling: u32) -> Value {
        json!({"diagnostic": {"sampling_percentage": sampling,
               "frontend": {"request": {"headers": ["user-agent", "content-type"]},
                            "response": {"headers": ["content-type", "content-length"]}}}})
    }

    #[test]
    fn the_floor_replays_the_filters_calls_per_callback() {
        let floor = floor_config(&four_headers(100)).unwrap();
        assert_eq!(
            floor["request_headers"],
            "request_map set_request_header:traceparent clock"
        );
        assert_eq!(
            floor["log"],
            "response_map property:xds.route_name clock property:request.time property:upstream.request_attempt_count \
             property:xds.cluster_name property:upstream.address request_map"
        );
        assert_eq!(floor["request_body"], "");
        assert_eq!(floor["calls_per_request"], 11);
        let floor = floor_config(&four_headers(0)).unwrap();
        assert_eq!(floor["request_headers"], "request_map set_request_header:traceparent");
        assert_eq!(
            floor["log"],
            "property:response.code property:request.duration property:upstream.request_attempt_count \
             property:xds.cluster_name property:response.backend_latency"
        );
        assert_eq!(
            floor["calls_per_request"], 7,
            "the standard metrics of an unsampled exchange"
        );
        let mut config = four_headers(0);
        config["diagnostic"]["standard_metrics"] = json!(false);
        let floor = floor_config(&config).unwrap();
        assert_eq!(floor["log"], "property:response.code");
        assert_eq!(floor["calls_per_request"], 3);
    }

    #[test]
    fn body_capture_reads_body_chunks() {
        let config =
            json!({"diagnostic": {"frontend": {"request": {"body_bytes": 1024}, "response": {"body_bytes": 1024}}}});
        let floor = floor_config(&config).unwrap();
        assert_eq!(floor["request_body"], "request_body");
        assert_eq!(floor["response_body"], "response_body");
    }

    #[test]
    fn a_refused_configuration_says_why() {
        let err = floor_config(&json!({"diagnostic": {"sampling_percentage": 101}})).unwrap_err();
        assert!(err.contains("sampling_percentage"), "{err}");
    }
}
