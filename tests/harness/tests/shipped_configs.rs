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

/// `docker-compose config`: the file as Compose reads it (schema-checked, paths resolved),
/// as JSON. Compose comes from Debian's docker-compose package (scripts/setup.sh); `config`
/// needs no Docker daemon.
fn compose_config() -> serde_json::Value {
    let root = repo_root();
    let out = Command::new("docker-compose")
        .args(["--project-directory", ".", "-f"])
        .arg(root.join("docker-compose.yml"))
        .arg("config")
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("docker-compose: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "docker-compose config refused docker-compose.yml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = root.join(".venv/bin/python");
    let mut json = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/setup.sh installs it)", python.display()));
    std::io::Write::write_all(&mut json.stdin.take().unwrap(), &out.stdout).unwrap();
    let json = json.wait_with_output().unwrap();
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    serde_json::from_slice(&json.stdout).unwrap()
}

/// A published port as (host address, host port, container port), from either form Compose
/// prints: `{published, target, host_ip}` or `"[ip:]published:target[/proto]"`.
fn published_port(port: &serde_json::Value) -> (Option<String>, u64, u64) {
    if let Some(text) = port.as_str() {
        let spec = text.split('/').next().unwrap();
        let mut parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        parts.reverse();
        let (ip, published, target) = match parts.as_slice() {
            [ip, published, target] => (Some(ip.to_string()), *published, *target),
            [published, target] => (None, *published, *target),
            _ => panic!("unexpected port {text}"),
        };
        return (ip, published.parse().unwrap(), target.parse().unwrap());
    }
    let number = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    (
        port["host_ip"].as_str().map(str::to_owned),
        number(&port["published"]).unwrap(),
        number(&port["target"]).unwrap(),
    )
}

#[test]
fn compose_accepts_the_file_which_mounts_the_shipped_config_and_module() {
    let config = compose_config();
    let envoy = &config["services"]["envoy"];
    let root = repo_root();
    let volumes: Vec<&str> = envoy["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (host, container) in [
        ("envoy/envoy.yaml", "/etc/envoy/envoy.yaml"),
        ("dist/envoy_appinsights.wasm", "/etc/envoy/envoy_appinsights.wasm"),
    ] {
        let mount = format!("{}:{container}:ro", root.join(host).display());
        assert!(volumes.contains(&mount.as_str()), "{mount} not in {volumes:?}");
    }
    let command: Vec<&str> = envoy["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["-c", "/etc/envoy/envoy.yaml"]),
        "{command:?}"
    );
    for service in ["backend", "ingest"] {
        let build = &config["services"][service]["build"];
        let dockerfile =
            std::path::Path::new(build["context"].as_str().unwrap()).join(build["dockerfile"].as_str().unwrap());
        assert!(dockerfile.exists(), "{service}: {} is missing", dockerfile.display());
    }
}

#[test]
fn compose_publishes_envoys_admin_and_the_ingest_viewer_on_localhost_only() {
    // Envoy's admin interface can stop Envoy and change its state, and the local ingestion
    // endpoint shows every item: Docker publishes on all interfaces (past the host's firewall)
    // unless a host address is given. Inside the container admin listens on 0.0.0.0, as it
    // must for the published port to reach it.
    let config = compose_config();
    let settings = compose_settings();
    let ports = |service: &str| -> Vec<(Option<String>, u64, u64)> {
        config["services"][service]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(published_port)
            .collect()
    };
    let envoy = ports("envoy");
    let admin = envoy.iter().find(|p| p.2 == u64::from(settings.admin_port));
    assert_eq!(admin, Some(&(Some("127.0.0.1".into()), 9901, 9901)), "{envoy:?}");
    assert!(
        envoy.iter().any(|p| p.2 == u64::from(settings.listen_port)),
        "the listener is published: {envoy:?}"
    );
    assert_eq!(ports("ingest"), vec![(Some("127.0.0.1".into()), 9001, 9001)]);
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
