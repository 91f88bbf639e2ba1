//! The Envoy configuration shipped for docker-compose is exactly what the renderer
//! produces (the same renderer the tests and scripts/gateway.sh use), and Envoy accepts it.
//! Regenerate it with `BLESS=1 cargo test -p harness --test shipped_configs`.

use harness::envoy::{envoy_binary, filter_wasm, repo_root, scratch_dir};
use harness::envoy_config::{render, FilterKind, Settings, DEFAULT_CA_BUNDLE};
use serde_json::json;
use std::process::Command;

/// What docker-compose.yml runs: Envoy's official image, the module mounted at
/// /etc/envoy/envoy_appinsights.wasm, the sample backend and the local ingestion endpoint.
fn compose_settings() -> Settings {
    Settings {
        listen_address: "0.0.0.0".into(),
        listen_port: 10000,
        admin_address: "0.0.0.0".into(),
        admin_port: 9901,
        backend: "backend:8080".into(),
        wasm_path: "/etc/envoy/envoy_appinsights.wasm".into(),
        filter: FilterKind::AppInsights,
        plugin_config: json!({
            "loggers": {"local": {
                "connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://ingest:9001/",
                "cluster": "appinsights"
            }},
            "cloud_role": "envoy-gateway"
        }),
        ca_bundle: DEFAULT_CA_BUNDLE.into(),
        extra_clusters: Vec::new(),
        extra_routes: Vec::new(),
        extra_virtual_hosts: Vec::new(),
        filters_before: Vec::new(),
        filters_after: Vec::new(),
        imds_address: harness::envoy_config::DEFAULT_IMDS_ADDRESS.into(),
        otlp_address: harness::envoy_config::DEFAULT_OTLP_ADDRESS.into(),
        redirect_proxy_port: harness::envoy_config::DEFAULT_REDIRECT_PROXY_PORT,
        ecds_path: None,
    }
}

#[test]
fn compose_envoy_config_is_the_rendered_one() {
    let path = repo_root().join("envoy/envoy.yaml");
    let rendered = render(&compose_settings()).unwrap();
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == rendered,
        "envoy/envoy.yaml is stale: run BLESS=1 cargo test -p harness --test shipped_configs"
    );
}

#[test]
fn envoy_validates_the_shipped_config() {
    // Same file, with the module path pointing at the local build (validation loads it).
    let shipped = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml")).unwrap();
    let local = shipped.replace("/etc/envoy/envoy_appinsights.wasm", filter_wasm().to_str().unwrap());
    let dir = scratch_dir("validate");
    let file = dir.join("envoy.yaml");
    std::fs::write(&file, local).unwrap();
    let out = Command::new(envoy_binary())
        .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "envoy --mode validate failed:\n{text}");
    assert!(text.contains("OK"), "{text}");
}

#[test]
fn compose_file_mounts_the_shipped_config_and_module() {
    let compose = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("./envoy/envoy.yaml:/etc/envoy/envoy.yaml"),
        "{compose}"
    );
    assert!(
        compose.contains("./dist/envoy_appinsights.wasm:/etc/envoy/envoy_appinsights.wasm"),
        "{compose}"
    );
}

#[test]
fn the_readme_configuration_example_is_accepted_by_the_filter() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("A complete example")
        .expect("the README has a complete example");
    let block = &readme[start..];
    let json_start = block.find("```json\n").unwrap() + "```json\n".len();
    let json_end = block[json_start..].find("```").unwrap();
    let example: serde_json::Value = serde_json::from_str(&block[json_start..json_start + json_end]).unwrap();
    let config =
        envoy_appinsights::config::Config::from_value(&example).unwrap_or_else(|e| panic!("README example: {e}"));
    assert_eq!(config.loggers.len(), 2);
    assert_eq!(config.apis.len(), 1);
    assert_eq!(config.diagnostic.traces.len(), 1);
}
