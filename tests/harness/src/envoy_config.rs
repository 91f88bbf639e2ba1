//! Renders the Envoy configuration that runs the filter in front of a backend.
//!
//! One renderer for every use: `scripts/gateway.sh`, the demo, the integration tests, the
//! benchmark and the committed `envoy/envoy.yaml` used by docker-compose (a test checks
//! that file is what this renderer produces), so what is tested is what ships.
//!
//! The plugin configuration is validated with the filter's own parser before anything is
//! rendered, so a bad configuration fails here with the same message Envoy would log. Each
//! logger's Envoy cluster is derived from its ingestion endpoint: plain HTTP, or TLS with
//! SNI and certificate verification against the system CA bundle.

use envoy_appinsights::config::Config;
use envoy_appinsights::connection_string::{Endpoint, Scheme};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Where the system CA bundle is on Debian/Ubuntu and in Envoy's official image.
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Which HTTP filter the listener runs (the benchmark compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    AppInsights,
    /// A proxy-wasm filter that does nothing (the benchmark's baseline for wasm overhead).
    Noop,
    /// Plain Envoy: router only.
    None,
    /// `tests/host-call-floor`: makes the host calls its plugin configuration lists and
    /// nothing else (the benchmark's measure of Envoy's side of the filter's calls).
    HostCallFloor,
    /// No wasm filter; Envoy's own OpenTelemetry tracer at 100% sampling, exporting OTLP
    /// over HTTP to [`Settings::otlp_address`] (the benchmark's comparison). Spans are
    /// flushed every `min_flush_spans` (Envoy's default: 5).
    OpenTelemetry {
        min_flush_spans: Option<u32>,
    },
}

/// Everything the rendered configuration depends on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen_address: String,
    pub listen_port: u16,
    pub admin_address: String,
    pub admin_port: u16,
    /// `host:port` of the plain-HTTP backend.
    pub backend: String,
    /// More plain-HTTP clusters: (name, `host:port`), e.g. targets of availability tests.
    pub extra_clusters: Vec<(String, String)>,
    /// Path of the wasm module as Envoy will see it.
    pub wasm_path: String,
    pub filter: FilterKind,
    /// The plugin configuration (JSON object).
    pub plugin_config: Value,
    pub ca_bundle: String,
    /// Routes (YAML flow mappings) placed before the catch-all route to the backend.
    pub extra_routes: Vec<String>,
    /// Virtual hosts (YAML flow mappings) placed before the catch-all one.
    pub extra_virtual_hosts: Vec<String>,
    /// HTTP filters (YAML flow mappings) placed before this filter in the chain.
    pub filters_before: Vec<String>,
    /// HTTP filters (YAML flow mappings) placed after this filter, before the router.
    pub filters_after: Vec<String>,
    /// `host:port` of the instance metadata endpoint, for loggers with managed identity.
    pub imds_address: String,
    /// `host:port` of the OTLP/HTTP collector ([`FilterKind::OpenTelemetry`] only).
    pub otlp_address: String,
    /// Loopback port of the listener that follows ingestion redirects to any host (only
    /// when a logger has a `redirect_cluster`).
    pub redirect_proxy_port: u16,
    /// When set, the wasm filter comes through extension config discovery (ECDS), as Istio
    /// delivers a WasmPlugin, from this file ([`render_ecds`] writes it); Envoy watches its
    /// directory, so a new file renamed over it applies without a restart.
    pub ecds_path: Option<String>,
}

/// The default port of the redirect-following listener (127.0.0.1 only).
pub const DEFAULT_REDIRECT_PROXY_PORT: u16 = 15901;

/// Azure's instance metadata endpoint.
pub const DEFAULT_IMDS_ADDRESS: &str = "169.254.169.254:80";

impl Settings {
    /// Defaults for a local run: listener on 127.0.0.1:10000, admin on 127.0.0.1:9901.
    pub fn local(backend: &str, wasm_path: &str, plugin_config: Value) -> Settings {
        Settings {
            listen_address: "127.0.0.1".into(),
            listen_port: 10000,
            admin_address: "127.0.0.1".into(),
            admin_port: 9901,
            backend: backend.into(),
            extra_clusters: Vec::new(),
            wasm_path: wasm_path.into(),
            filter: FilterKind::AppInsights,
            plugin_config,
            ca_bundle: DEFAULT_CA_BUNDLE.into(),
            extra_routes: Vec::new(),
            extra_virtual_hosts: Vec::new(),
            filters_before: Vec::new(),
            filters_after: Vec::new(),
            imds_address: DEFAULT_IMDS_ADDRESS.into(),
            otlp_address: DEFAULT_OTLP_ADDRESS.into(),
            redirect_proxy_port: DEFAULT_REDIRECT_PROXY_PORT,
            ecds_path: None,
        }
    }
}

/// The OpenTelemetry collector's usual OTLP/HTTP address.
pub const DEFAULT_OTLP_ADDRESS: &str = "127.0.0.1:4318";

/// Fills in the logger from a connection string when the plugin configuration has none
/// (what `scripts/gateway.sh` does with `APPLICATIONINSIGHTS_CONNECTION_STRING`).
pub fn with_connection_string(mut plugin_config: Value, connection_string: Option<&str>) -> Result<Value, String> {
    let obj = plugin_config
        .as_object_mut()
        .ok_or("the plugin configuration must be a JSON object")?;
    if obj.get("loggers").is_some_and(|l| !l.is_null()) {
        return Ok(plugin_config);
    }
    let cs = connection_string.filter(|c| !c.trim().is_empty()).ok_or(
        "no logger configured: set APPLICATIONINSIGHTS_CONNECTION_STRING or give PLUGIN_CONFIG a \"loggers\" object",
    )?;
    obj.insert("loggers".into(), json!({"default": {"connection_string": cs}}));
    Ok(plugin_config)
}

/// Renders the whole Envoy bootstrap configuration (YAML).
pub fn render(s: &Settings) -> Result<String, String> {
    let mut clusters = vec![cluster_yaml("backend", &backend_endpoint(&s.backend)?, None)];
    for (name, address) in &s.extra_clusters {
        clusters.push(cluster_yaml(name, &backend_endpoint(address)?, None));
    }
    let mut more_listeners = String::new();
    let filters = match s.filter {
        FilterKind::AppInsights => {
            let config = Config::from_value(&s.plugin_config).map_err(|e| format!("plugin configuration: {e}"))?;
            clusters.extend(ingestion_clusters(&config, &s.ca_bundle)?);
            clusters.extend(identity_clusters(&config, &s.imds_address)?);
            let (proxy_clusters, listener) = redirect_proxy(&config, s);
            clusters.extend(proxy_clusters);
            more_listeners = listener;
            wasm_filter_yaml(s, &s.plugin_config)
        }
        FilterKind::Noop => wasm_filter_yaml(s, &json!({})),
        FilterKind::HostCallFloor => wasm_filter_yaml(s, &s.plugin_config),
        FilterKind::None => String::new(),
        FilterKind::OpenTelemetry { .. } => {
            let endpoint = Endpoint::parse(&format!("http://{}", s.otlp_address))
                .ok()
                .filter(|e| e.base_path.is_empty() && s.otlp_address.contains(':'))
                .ok_or_else(|| format!("OTLP_ADDRESS must be host:port, got {:?}", s.otlp_address))?;
            clusters.push(cluster_yaml("otlp", &endpoint, None));
            String::new()
        }
    };
    let (tracing, runtime) = match s.filter {
        FilterKind::OpenTelemetry { min_flush_spans } => (
            format!(
                r#"          tracing:
            random_sampling: {{value: 100}}
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: envoy
                http_service:
                  http_uri: {{uri: "http://{otlp}/v1/traces", cluster: otlp, timeout: 5s}}
"#,
                otlp = s.otlp_address
            ),
            min_flush_spans
                .map(|n| {
                    format!(
                        "layered_runtime:\n  layers:\n  - name: static\n    static_layer: {{tracing.opentelemetry.min_flush_spans: {n}}}\n"
                    )
                })
                .unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"# Envoy in front of one backend, with the Application Insights filter.
# Generated by the `envoy-config` tool (tests/harness): edit the tool, not this file.
admin:
  address: {{socket_address: {{address: {admin_address}, port_value: {admin_port}}}}}
{runtime}static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: {listen_address}, port_value: {listen_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
{tracing}          route_config:
            name: local
            virtual_hosts:
{extra_virtual_hosts}            - name: backend
              domains: ["*"]
              routes:
{extra_routes}              # Unnamed: a route's name names its operations, and a catch-all's would name them all.
              - match: {{prefix: "/"}}
                route: {{cluster: backend, timeout: 30s}}
          http_filters:
{filters_before}{filters}{filters_after}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{more_listeners}  clusters:
{clusters}"#,
        admin_address = s.admin_address,
        admin_port = s.admin_port,
        listen_address = s.listen_address,
        listen_port = s.listen_port,
        clusters = clusters.concat(),
        extra_virtual_hosts = s
            .extra_virtual_hosts
            .iter()
            .map(|v| format!("            - {v}\n"))
            .collect::<String>(),
        extra_routes = s
            .extra_routes
            .iter()
            .map(|r| format!("              - {r}\n"))
            .collect::<String>(),
        filters_before = s
            .filters_before
            .iter()
            .map(|f| format!("          - {f}\n"))
            .collect::<String>(),
        filters_after = s
            .filters_after
            .iter()
            .map(|f| format!("          - {f}\n"))
            .collect::<String>(),
    );
    Ok(out)
}

/// The wasm filter's root id and vm id, which also name its ECDS resource.
fn wasm_name(kind: FilterKind) -> &'static str {
    match kind {
        FilterKind::Noop => "noop",
        FilterKind::HostCallFloor => "host_call_floor",
        _ => "appinsights",
    }
}

/// The HCM's entry for the wasm filter: inline, or through ECDS when `s.ecds_path` is set.
fn wasm_filter_yaml(s: &Settings, plugin_config: &Value) -> String {
    let name = wasm_name(s.filter);
    let Some(path) = &s.ecds_path else {
        let typed_config = indent(&wasm_typed_config(name, &s.wasm_path, &plugin_config.to_string()), 14);
        return format!("          - name: envoy.filters.http.wasm\n            typed_config:\n{typed_config}");
    };
    let dir = std::path::Path::new(path)
        .parent()
        .map(|d| d.display().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| ".".into());
    format!(
        r#"          # The filter's configuration comes through extension config discovery (ECDS), as
          # Istio delivers a WasmPlugin: from a file, replaced by renaming a new one over it.
          - name: {name}
            config_discovery:
              config_source:
                path_config_source:
                  path: {path}
                  watched_directory: {{path: {dir}}}
                resource_api_version: V3
              type_urls: [type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm]
"#,
        path = Value::String(path.clone()),
        dir = Value::String(dir),
    )
}

/// The ECDS resource file for `s.ecds_path`: a discovery response holding the wasm
/// filter's `TypedExtensionConfig`, named as the HCM's entry asks for it. The plugin
/// configuration is validated first, as [`render`] does.
pub fn render_ecds(s: &Settings) -> Result<String, String> {
    if s.filter == FilterKind::AppInsights {
        Config::from_value(&s.plugin_config).map_err(|e| format!("plugin configuration: {e}"))?;
    }
    Ok(ecds_resource_yaml(s.filter, &s.wasm_path, &s.plugin_config.to_string()))
}

/// [`render_ecds`] without validation: `plugin_config` is passed verbatim (tests use it
/// to see what Envoy does with a configuration the filter refuses).
pub fn ecds_resource_yaml(kind: FilterKind, wasm_path: &str, plugin_config: &str) -> String {
    let name = wasm_name(kind);
    let typed_config = indent(&wasm_typed_config(name, wasm_path, plugin_config), 4);
    format!(
        r#"# The wasm filter's configuration, delivered by extension config discovery (ECDS).
# Generated by the `envoy-config` tool (tests/harness): replace the file atomically
# (write a new one, then rename it over this one).
resources:
- "@type": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig
  name: {name}
  typed_config:
{typed_config}"#
    )
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// The `envoy.extensions.filters.http.wasm.v3.Wasm` message (YAML, unindented).
fn wasm_typed_config(name: &str, wasm_path: &str, plugin_config: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    let value = Value::String(plugin_config.to_string()).to_string();
    let path = Value::String(wasm_path.to_string()).to_string();
    format!(
        r#""@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
config:
  name: {name}
  root_id: {name}
  # Telemetry must never take traffic down: if the VM fails, skip the filter.
  failure_policy: FAIL_OPEN
  configuration:
    "@type": type.googleapis.com/google.protobuf.StringValue
    value: {value}
  vm_config:
    vm_id: {name}
    runtime: envoy.wasm.runtime.v8
    code: {{local: {{filename: {path}}}}}
    # The default cloud role instance when Envoy has no --service-node.
    environment_variables: {{host_env_keys: [HOSTNAME]}}
"#
    )
}

fn backend_endpoint(backend: &str) -> Result<Endpoint, String> {
    Endpoint::parse(&format!("http://{backend}"))
        .ok()
        .filter(|e| e.base_path.is_empty() && backend.contains(':'))
        .ok_or_else(|| format!("BACKEND must be host:port, got {backend:?}"))
}

/// One cluster per distinct logger cluster name; two loggers may share a cluster only if
/// they send to the same endpoint.
fn ingestion_clusters(config: &Config, ca_bundle: &str) -> Result<Vec<String>, String> {
    let mut seen: Vec<(&str, &Endpoint)> = Vec::new();
    let mut out = Vec::new();
    for logger in &config.loggers {
        let endpoint = &logger.connection.ingestion_endpoint;
        if let Some((_, other)) = seen.iter().find(|(name, _)| *name == logger.cluster) {
            if (&other.host, other.port, other.scheme) != (&endpoint.host, endpoint.port, endpoint.scheme) {
                return Err(format!(
                    "loggers.{}.cluster: cluster {} already points at {}; give this logger its own cluster",
                    logger.id,
                    logger.cluster,
                    other.url()
                ));
            }
            continue;
        }
        if logger.cluster == "backend" {
            return Err(format!(
                "loggers.{}.cluster: the name \"backend\" is taken by the backend cluster",
                logger.id
            ));
        }
        seen.push((&logger.cluster, endpoint));
        let tls = (endpoint.scheme == Scheme::Https).then_some(ca_bundle);
        out.push(cluster_yaml(&logger.cluster, endpoint, tls));
    }
    Ok(out)
}

/// One cluster per distinct identity cluster name, pointing at the metadata endpoint.
fn identity_clusters(config: &Config, imds_address: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<&str> = config
        .loggers
        .iter()
        .filter_map(|l| l.identity.as_ref().map(|(_, c)| c.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    if let Some(taken) = names
        .iter()
        .find(|n| config.loggers.iter().any(|l| l.cluster == **n) || **n == "backend")
    {
        return Err(format!("identity_cluster {taken} is already used for something else"));
    }
    let endpoint =
        Endpoint::parse(&format!("http://{imds_address}")).map_err(|e| format!("IMDS_ADDRESS {imds_address}: {e}"))?;
    Ok(names.iter().map(|n| cluster_yaml(n, &endpoint, None)).collect())
}

/// What follows a redirect to any host: each logger's `redirect_cluster` points at a
/// loopback listener whose dynamic forward proxy filter resolves the redirected request's
/// `:authority` and sends it on through a dynamic forward proxy cluster (TLS, with SNI and
/// certificate checks for that host, when the logger's endpoint is https). The filter's
/// callouts skip HTTP filters, so the forward proxy cluster alone could not resolve a new
/// host: the listener is what makes it work. Returns the clusters and the listener.
fn redirect_proxy(config: &Config, s: &Settings) -> (Vec<String>, String) {
    let mut names: Vec<&str> = config
        .loggers
        .iter()
        .filter_map(|l| l.redirect_cluster.as_deref())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return (Vec::new(), String::new());
    }
    let loopback = Endpoint::parse(&format!("http://127.0.0.1:{}", s.redirect_proxy_port))
        .unwrap_or_else(|_| default_endpoint_for_proxy());
    let mut clusters: Vec<String> = names.iter().map(|n| cluster_yaml(n, &loopback, None)).collect();
    let tls = config
        .loggers
        .iter()
        .any(|l| l.redirect_cluster.is_some() && l.connection.ingestion_endpoint.scheme == Scheme::Https);
    clusters.push(forward_proxy_cluster_yaml(tls.then_some(s.ca_bundle.as_str())));
    (clusters, redirect_listener_yaml(s.redirect_proxy_port))
}

fn default_endpoint_for_proxy() -> Endpoint {
    Endpoint {
        scheme: Scheme::Http,
        host: "127.0.0.1".into(),
        port: DEFAULT_REDIRECT_PROXY_PORT,
        base_path: String::new(),
    }
}

const REDIRECT_DNS_CACHE: &str = "{name: appinsights_redirect, dns_lookup_family: V4_PREFERRED}";

fn redirect_listener_yaml(port: u16) -> String {
    format!(
        r#"  - name: appinsights_redirect_proxy
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: appinsights_redirect
          route_config:
            virtual_hosts:
            - name: any
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: appinsights_redirect_upstream, timeout: 60s}}
          http_filters:
          - name: envoy.filters.http.dynamic_forward_proxy
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig
              dns_cache_config: {REDIRECT_DNS_CACHE}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

fn forward_proxy_cluster_yaml(tls_ca_bundle: Option<&str>) -> String {
    let mut out = format!(
        r#"  - name: appinsights_redirect_upstream
    connect_timeout: 5s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.dynamic_forward_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig
        dns_cache_config: {REDIRECT_DNS_CACHE}
"#
    );
    if let Some(ca) = tls_ca_bundle {
        let _ = write!(
            out,
            r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        upstream_http_protocol_options: {{auto_sni: true, auto_san_validation: true}}
        explicit_http_config: {{http_protocol_options: {{}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {{trusted_ca: {{filename: {ca}}}}}
"#
        );
    }
    out
}

fn cluster_yaml(name: &str, endpoint: &Endpoint, tls_ca_bundle: Option<&str>) -> String {
    let is_ip = endpoint.host.parse::<std::net::IpAddr>().is_ok();
    let kind = if is_ip { "STATIC" } else { "STRICT_DNS" };
    let mut out = format!(
        r#"  - name: {name}
    type: {kind}
    connect_timeout: 5s
    dns_lookup_family: V4_PREFERRED
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: "{host}", port_value: {port}}}}}}}
"#,
        host = endpoint.host,
        port = endpoint.port,
    );
    if let Some(ca) = tls_ca_bundle {
        let _ = write!(
            out,
            r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {host}
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: {ca}}}
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: {{exact: {host}}}
"#,
            host = endpoint.host,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/";

    #[test]
    fn https_endpoints_get_a_tls_cluster_with_sni_and_verification() {
        let cfg = json!({"loggers": {"main": {"connection_string": CS}}});
        let yaml = render(&Settings::local("127.0.0.1:8080", "/m.wasm", cfg)).unwrap();
        assert!(yaml.contains("  - name: appinsights\n    type: STRICT_DNS"));
        assert!(yaml.contains("address: \"westeurope-5.in.applicationinsights.azure.com\", port_value: 443"));
        assert!(yaml.contains("sni: westeurope-5.in.applicationinsights.azure.com"));
        assert!(yaml.contains("trusted_ca: {filename: /etc/ssl/certs/ca-certificates.crt}"));
    }

    #[test]
    fn http_endpoints_on_ip_addresses_are_static_plain_clusters() {
        let cfg = json!({"loggers": {"main": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9001", "cluster": "ingest"}}});
        let yaml = render(&Settings::local("127.0.0.1:8080", "/m.wasm", cfg)).unwrap();
        assert!(yaml.contains("  - name: ingest\n    type: STATIC"));
        assert!(!yaml.contains("transport_socket"));
    }

    #[test]
    fn invalid_plugin_configuration_fails_with_the_filters_message() {
        let cfg = json!({"loggers": {"main": {"connection_string": CS, "clustr": "x"}}});
        let e = render(&Settings::local("127.0.0.1:8080", "/m.wasm", cfg)).unwrap_err();
        assert!(e.contains("loggers.main.clustr: unknown field"), "{e}");
    }

    #[test]
    fn connection_string_fills_the_logger_only_when_none_is_configured() {
        let filled = with_connection_string(json!({}), Some(CS)).unwrap();
        assert_eq!(filled["loggers"]["default"]["connection_string"], CS);
        let kept = with_connection_string(json!({"loggers": {"x": {"instrumentation_key": "k"}}}), Some(CS)).unwrap();
        assert!(kept["loggers"].get("default").is_none());
        assert!(with_connection_string(json!({}), None).is_err());
    }

    #[test]
    fn two_loggers_cannot_share_a_cluster_to_different_endpoints() {
        let cfg = json!({"loggers": {
            "a": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9001"},
            "b": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9002"}}});
        let e = render(&Settings::local("127.0.0.1:8080", "/m.wasm", cfg)).unwrap_err();
        assert!(e.contains("loggers.b.cluster"), "{e}");
    }

    #[test]
    fn plugin_configuration_is_embedded_as_a_quoted_json_string() {
        let cfg = json!({"loggers": {"main": {"connection_string": CS}}, "cloud_role": "it's \"quoted\""});
        let yaml = render(&Settings::local("127.0.0.1:8080", "/m.wasm", cfg.clone())).unwrap();
        let line = yaml.lines().find(|l| l.trim_start().starts_with("value: ")).unwrap();
        let embedded: String = serde_json::from_str(line.trim_start().trim_start_matches("value: ")).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&embedded).unwrap(), cfg);
    }

    #[test]
    fn managed_identity_gets_a_metadata_endpoint_cluster() {
        let cfg = json!({"loggers": {"main": {"connection_string": CS, "identity": "SystemAssigned"}}});
        let yaml = render(&Settings::local("127.0.0.1:8080", "/m.wasm", cfg)).unwrap();
        assert!(yaml.contains("  - name: imds\n    type: STATIC"));
        assert!(yaml.contains("address: \"169.254.169.254\", port_value: 80"));
    }

    #[test]
    fn a_redirect_cluster_gets_a_loopback_forward_proxy() {
        let mut config = json!({"loggers": {"main": {"connection_string": CS, "redirect_cluster": "moved"}}});
        let yaml = render(&Settings::local("127.0.0.1:8080", "/f.wasm", config.clone())).unwrap();
        assert!(yaml.contains("  - name: moved\n    type: STATIC"));
        assert!(yaml.contains("address: \"127.0.0.1\", port_value: 15901"));
        assert!(yaml.contains("name: appinsights_redirect_proxy"));
        assert!(yaml.contains("envoy.filters.http.dynamic_forward_proxy"));
        assert!(
            yaml.contains("auto_sni: true"),
            "https ingestion: TLS to the redirected host"
        );
        config["loggers"]["main"]
            .as_object_mut()
            .unwrap()
            .remove("redirect_cluster");
        let yaml = render(&Settings::local("127.0.0.1:8080", "/f.wasm", config)).unwrap();
        assert!(
            !yaml.contains("appinsights_redirect"),
            "nothing without a redirect_cluster"
        );
    }

    #[test]
    fn the_benchmark_variants_render_their_own_filter_or_tracer() {
        let mut s = Settings::local(
            "127.0.0.1:8080",
            "/floor.wasm",
            json!({"request_headers": "request_map", "log": "clock"}),
        );
        s.filter = FilterKind::HostCallFloor;
        let yaml = render(&s).unwrap();
        assert!(yaml.contains("root_id: host_call_floor"));
        assert!(
            yaml.contains(r#"value: "{\"log\":\"clock\",\"request_headers\":\"request_map\"}""#),
            "{yaml}"
        );
        assert!(
            !yaml.contains("name: appinsights"),
            "a floor run needs no ingestion cluster"
        );

        s.filter = FilterKind::OpenTelemetry {
            min_flush_spans: Some(1000),
        };
        s.otlp_address = "127.0.0.1:4318".into();
        let yaml = render(&s).unwrap();
        assert!(yaml.contains("envoy.tracers.opentelemetry") && yaml.contains("cluster: otlp"));
        assert!(yaml.contains("tracing.opentelemetry.min_flush_spans: 1000"), "{yaml}");
        assert!(!yaml.contains("envoy.filters.http.wasm"));
        s.otlp_address = "no-port".into();
        assert!(render(&s).unwrap_err().contains("OTLP_ADDRESS"));
    }

    #[test]
    fn ecds_mode_asks_for_the_filter_by_name_and_the_resource_carries_the_same_wasm_config() {
        let cfg = json!({"loggers": {"main": {"connection_string": CS}}, "cloud_role": "r"});
        let mut s = Settings::local("127.0.0.1:8080", "/m.wasm", cfg.clone());
        let inline = render(&s).unwrap();
        s.ecds_path = Some("/etc/envoy/ecds/appinsights.yaml".into());
        let yaml = render(&s).unwrap();
        assert!(
            yaml.contains("          - name: appinsights\n            config_discovery:"),
            "{yaml}"
        );
        assert!(
            yaml.contains(r#"watched_directory: {path: "/etc/envoy/ecds"}"#),
            "{yaml}"
        );
        assert!(
            !yaml.contains("configuration:"),
            "the plugin configuration is in the resource"
        );
        assert!(
            yaml.contains("  - name: appinsights\n    type: STRICT_DNS"),
            "clusters stay static"
        );
        let resource = render_ecds(&s).unwrap();
        assert!(
            resource.contains("  name: appinsights\n  typed_config:\n"),
            "{resource}"
        );
        // The resource's Wasm message is the inline filter's, line for line.
        let body = |text: &str, from: &str| -> Vec<String> {
            let start = text.find(from).unwrap();
            text[start..]
                .lines()
                .take_while(|l| !l.contains("host_env_keys"))
                .map(|l| l.trim().to_string())
                .collect()
        };
        let wasm = r#""@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"#;
        assert_eq!(body(&resource, wasm), body(&inline, wasm));
        s.plugin_config = json!({"loggers": {"main": {"connection_string": CS}}, "cloud_rol": "r"});
        assert!(render_ecds(&s).unwrap_err().contains("cloud_rol: unknown field"));
        let raw = ecds_resource_yaml(FilterKind::AppInsights, "/m.wasm", r#"{"cloud_rol": 1}"#);
        assert!(raw.contains(r#"value: "{\"cloud_rol\": 1}""#), "{raw}");
    }

    #[test]
    fn backend_must_be_host_and_port() {
        assert!(render(&Settings::local("nohost", "/m.wasm", json!({}))).is_err());
        let mut s = Settings::local("backend:8080", "/m.wasm", json!({}));
        s.filter = FilterKind::None;
        let yaml = render(&s).unwrap();
        assert!(yaml.contains("  - name: backend\n    type: STRICT_DNS"));
        assert!(!yaml.contains("envoy.filters.http.wasm"));
    }
}
