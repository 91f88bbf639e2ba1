//! `envoy-config`: prints the Envoy configuration that runs the filter in front of a
//! backend (what `scripts/gateway.sh` runs). Driven by environment variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BACKEND` | (required) | `host:port` of the plain-HTTP backend |
//! | `APPLICATIONINSIGHTS_CONNECTION_STRING` | | fills the logger when `PLUGIN_CONFIG` has none |
//! | `PLUGIN_CONFIG` | | path to a JSON file with the filter configuration |
//! | `LISTEN_ADDRESS` / `LISTEN_PORT` | `0.0.0.0` / `10000` | where the gateway listens |
//! | `ADMIN_ADDRESS` / `ADMIN_PORT` | `127.0.0.1` / `9901` | Envoy's admin interface |
//! | `WASM` | `dist/envoy_appinsights.wasm` | the module's path as Envoy sees it |
//! | `FILTER` | `appinsights` | `appinsights`, `noop` (empty wasm filter), `floor` (the host-call floor filter, configured by `PLUGIN_CONFIG`), `none`, or Envoy's OpenTelemetry tracer at 100%: `otel` (default flush) or `otel-tuned` (flush every 1,000 spans) |
//! | `OTLP_ADDRESS` | `127.0.0.1:4318` | the OTLP/HTTP collector, for `otel` and `otel-tuned` |
//! | `CA_BUNDLE` | `/etc/ssl/certs/ca-certificates.crt` | CAs trusted for https ingestion |
//! | `IMDS_ADDRESS` | `169.254.169.254:80` | the metadata endpoint, for loggers with `identity` |
//! | `REDIRECT_PROXY_PORT` | `15901` | loopback port of the listener that follows ingestion redirects, for loggers with `redirect_cluster` |
//! | `ECDS_FILE` | | the wasm filter comes through extension config discovery (ECDS) from this file, as Istio delivers it: replace the file (rename a new one over it) and Envoy applies it without a restart |
//! | `RENDER` | `bootstrap` | `bootstrap` (Envoy's configuration) or `ecds` (the ECDS resource for `ECDS_FILE`: the filter with `PLUGIN_CONFIG` and `WASM`) |

use harness::envoy_config::{
    render, render_ecds, with_connection_string, FilterKind, Settings, DEFAULT_CA_BUNDLE, DEFAULT_IMDS_ADDRESS,
    DEFAULT_OTLP_ADDRESS, DEFAULT_REDIRECT_PROXY_PORT,
};
use std::process::ExitCode;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn port(name: &str, default: u16) -> Result<u16, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} must be a port number, got {v:?}")),
    }
}

fn settings() -> Result<Settings, String> {
    let backend = var("BACKEND").ok_or("BACKEND (host:port of the backend) is required")?;
    let plugin_config = match var("PLUGIN_CONFIG") {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("PLUGIN_CONFIG {path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("PLUGIN_CONFIG {path}: not valid JSON: {e}"))?
        }
        None => serde_json::json!({}),
    };
    let filter = match var("FILTER").as_deref() {
        None | Some("appinsights") => FilterKind::AppInsights,
        Some("noop") => FilterKind::Noop,
        Some("floor") => FilterKind::HostCallFloor,
        Some("none") => FilterKind::None,
        Some("otel") => FilterKind::OpenTelemetry { min_flush_spans: None },
        Some("otel-tuned") => FilterKind::OpenTelemetry {
            min_flush_spans: Some(1000),
        },
        Some(other) => {
            return Err(format!(
                "FILTER must be appinsights, noop, floor, none, otel or otel-tuned, got {other:?}"
            ))
        }
    };
    let plugin_config = match filter {
        FilterKind::AppInsights => {
            with_connection_string(plugin_config, var("APPLICATIONINSIGHTS_CONNECTION_STRING").as_deref())?
        }
        _ => plugin_config,
    };
    Ok(Settings {
        listen_address: var("LISTEN_ADDRESS").unwrap_or_else(|| "0.0.0.0".into()),
        listen_port: port("LISTEN_PORT", 10000)?,
        admin_address: var("ADMIN_ADDRESS").unwrap_or_else(|| "127.0.0.1".into()),
        admin_port: port("ADMIN_PORT", 9901)?,
        backend,
        wasm_path: var("WASM").unwrap_or_else(|| "dist/envoy_appinsights.wasm".into()),
        filter,
        plugin_config,
        ca_bundle: var("CA_BUNDLE").unwrap_or_else(|| DEFAULT_CA_BUNDLE.into()),
        extra_clusters: Vec::new(),
        extra_routes: Vec::new(),
        extra_virtual_hosts: Vec::new(),
        filters_before: Vec::new(),
        filters_after: Vec::new(),
        imds_address: var("IMDS_ADDRESS").unwrap_or_else(|| DEFAULT_IMDS_ADDRESS.into()),
        otlp_address: var("OTLP_ADDRESS").unwrap_or_else(|| DEFAULT_OTLP_ADDRESS.into()),
        redirect_proxy_port: port("REDIRECT_PROXY_PORT", DEFAULT_REDIRECT_PROXY_PORT)?,
        ecds_path: var("ECDS_FILE"),
    })
}

fn main() -> ExitCode {
    let output = match var("RENDER").as_deref() {
        None | Some("bootstrap") => settings().and_then(|s| render(&s)),
        Some("ecds") => settings().and_then(|s| render_ecds(&s)),
        Some(other) => Err(format!("RENDER must be bootstrap or ecds, got {other:?}")),
    };
    match output {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("envoy-config: {e}");
            ExitCode::from(2)
        }
    }
}
