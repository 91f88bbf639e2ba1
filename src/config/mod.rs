//! Plugin configuration: the JSON in the Envoy `configuration` (or Istio `pluginConfig`),
//! checked field by field into a typed [`Config`] once per configuration load.
//!
//! Every error names the field it is about (`loggers.main.cluster: must not be empty`), so
//! Envoy's log says exactly what to fix when it refuses the configuration. Unknown fields
//! are errors: a misspelt option must not silently fall back to a default.

mod apis;
mod availability;
mod diagnostic;
mod echo;
mod masking;
mod metrics;
mod property_names;
mod reader;
mod service;
mod traces;

pub use apis::{Api, ApiMatch, HostPattern, OperationDef, PathTemplate, RouteFacts};
pub use availability::{
    names as test_names, Availability, AvailabilityTest, DEFAULT_EXPECTED_STATUS, DEFAULT_TEST_INTERVAL_MS,
    DEFAULT_TEST_TIMEOUT_MS,
};
pub use diagnostic::{
    Capture, Diagnostic, MessageCapture, OperationNameFormat, SamplingMode, Severity, MAX_BODY_BYTES,
};
pub use echo::excerpt;
pub use metrics::{
    templates as metric_templates, DefaultDimension, Dimension, DimensionValue, MetricRule, MetricValue,
    MetricsSettings, TokenMetrics, DEFAULT_NAMESPACE, MAX_DIMENSIONS, TOKEN_METRIC_NAMES,
};
pub use service::{Service, DEFAULT_SERVICE_TYPE};
pub use traces::{Conditions, Field, HeaderCondition, MetadataPath, Segment, StatusMatch, Template, TraceRule};

use crate::connection_string::{ConnectionString, ConnectionStringError};
use reader::Fields;
use serde_json::Value;
use std::fmt;

/// Envoy cluster the ingestion callouts go to, unless a logger names another.
pub const DEFAULT_CLUSTER: &str = "appinsights";
/// How often a partly filled batch is sent.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1_000;
/// Items per batch before it is sent early.
pub const DEFAULT_MAX_BATCH_ITEMS: u64 = 1_000;
/// Bytes per batch (uncompressed) before it is sent early.
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 512 * 1024;
/// Memory per worker and logger for telemetry waiting to be sent or in flight.
pub const DEFAULT_MAX_BUFFER_BYTES: u64 = 8 * 1024 * 1024;
/// What every logger's buffer together may hold in one VM. Envoy's V8 caps a VM's linear
/// memory near 1 GiB; telemetry waiting for the service takes at most a quarter of it, so
/// exchanges in flight, batch copies and the allocator's slack fit in the rest and an
/// outage never ends in a failed allocation (which kills the VM).
pub const VM_TELEMETRY_BUDGET_BYTES: u64 = 256 * 1024 * 1024;
/// Batches in flight at once per worker and logger.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 4;
/// Timeout of one ingestion callout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Whether batches are gzip-compressed (decided from scripts/bench.sh measurements).
pub const DEFAULT_GZIP: bool = true;
/// First wait after a failed delivery.
pub const DEFAULT_RETRY_INITIAL_MS: u64 = 1_000;
/// Longest wait between delivery attempts.
pub const DEFAULT_RETRY_MAX_MS: u64 = 60_000;
/// How long shutting down may wait for buffered telemetry to go out.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 5_000;

/// The validated configuration.
///
/// See the README's configuration reference for every field with its default.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub loggers: Vec<Logger>,
    /// The all-APIs diagnostic (requests of no configured API use it too).
    pub diagnostic: Diagnostic,
    /// Configured APIs, in matching order, each with its resolved diagnostic.
    pub apis: Vec<Api>,
    /// `ai.cloud.role`; `None` means "ask Envoy" (node cluster), then a fixed default.
    pub cloud_role: Option<String>,
    /// `ai.cloud.roleInstance`; `None` means "ask Envoy" (node id), then a fixed default.
    pub cloud_role_instance: Option<String>,
    /// APIM's service dimensions, as configured.
    pub service: Service,
    pub delivery: Delivery,
    pub metrics: MetricsSettings,
    /// The health endpoint and the built-in availability tests.
    pub availability: Availability,
}

/// Where telemetry goes: an Application Insights resource and the Envoy cluster that reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logger {
    pub id: String,
    pub connection: ConnectionString,
    pub cluster: String,
    /// Managed identity for Entra ID tokens, and the cluster that reaches the metadata
    /// endpoint.
    pub identity: Option<(crate::managed_identity::ManagedIdentity, String)>,
    /// The cluster that reaches a host the ingestion service redirects to (`None`: the
    /// logger's own cluster).
    pub redirect_cluster: Option<String>,
}

/// Batching and callout settings, per worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub flush_interval_ms: u64,
    pub max_batch_items: u64,
    pub max_batch_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_in_flight: u64,
    pub timeout_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Compress batches with gzip.
    pub gzip: bool,
    pub drain_timeout_ms: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            retry_initial_ms: DEFAULT_RETRY_INITIAL_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            gzip: DEFAULT_GZIP,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
        }
    }
}

/// A configuration error: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NotJson(String),
    WrongType { expected: &'static str },
    UnknownField { allowed: &'static [&'static str] },
    Missing,
    Empty,
    OutOfRange { min: u64, max: u64 },
    NotWholeNumber { min: u64, max: u64 },
    TooLong { max: usize },
    InvalidName,
    ConnectionString(ConnectionStringError),
    BothCredentials,
    NoCredentials,
    NoLoggers,
    UnknownLogger,
    DuplicateLogger,
    BufferSmallerThanBatch,
    OverVmBudget { loggers: usize },
    OneOf(&'static str),
    Invalid(String),
    Duplicate,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotJson(e) => write!(f, "is not valid JSON ({e})"),
            Problem::WrongType { expected } => write!(f, "must be {expected}"),
            Problem::UnknownField { allowed } => {
                write!(f, "unknown field; allowed here: {}", allowed.join(", "))
            }
            Problem::Missing => write!(f, "is required"),
            Problem::Empty => write!(f, "must not be empty"),
            Problem::OutOfRange { min, max } => write!(f, "must be between {min} and {max}"),
            Problem::NotWholeNumber { min, max } => write!(f, "must be a whole number between {min} and {max}"),
            Problem::TooLong { max } => write!(f, "must be at most {max} characters"),
            Problem::InvalidName => {
                write!(f, "may contain only letters, digits, '_', '-', '.', '|' and ':'")
            }
            Problem::ConnectionString(e) => write!(f, "{e}"),
            Problem::BothCredentials => {
                write!(f, "set either connection_string or instrumentation_key, not both")
            }
            Problem::NoCredentials => write!(f, "needs connection_string or instrumentation_key"),
            Problem::NoLoggers => write!(f, "at least one logger is required"),
            Problem::UnknownLogger => write!(f, "names a logger that is not defined in loggers"),
            Problem::DuplicateLogger => write!(f, "lists the same logger twice"),
            Problem::BufferSmallerThanBatch => {
                write!(f, "must be at least delivery.max_batch_bytes")
            }
            Problem::OverVmBudget { loggers } => write!(
                f,
                "{loggers} loggers times this exceed the {} MiB that telemetry may use in one VM; lower it",
                VM_TELEMETRY_BUDGET_BYTES >> 20
            ),
            Problem::OneOf(choices) => write!(f, "must be one of {choices}"),
            Problem::Invalid(why) => write!(f, "{why}"),
            Problem::Duplicate => write!(f, "is used twice"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&echo::log_line(&format!("{}: {}", self.field, self.problem)))
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err(field: impl Into<String>, problem: Problem) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem,
    }
}

const TOP_FIELDS: &[&str] = &[
    "loggers",
    "diagnostic",
    "apis",
    "cloud_role",
    "cloud_role_instance",
    "service",
    "delivery",
    "metrics",
    "availability",
];
const LOGGER_FIELDS: &[&str] = &[
    "connection_string",
    "instrumentation_key",
    "cluster",
    "identity",
    "identity_cluster",
    "redirect_cluster",
];
/// Envoy cluster that reaches the instance metadata endpoint (169.254.169.254:80).
pub const DEFAULT_IDENTITY_CLUSTER: &str = "imds";
const DELIVERY_FIELDS: &[&str] = &[
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
];

/// Longest `ai.cloud.role` / `ai.cloud.roleInstance` the schema allows.
const MAX_ROLE_LEN: usize = 256;

impl Config {
    /// Parses and validates the plugin configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(err("configuration", Problem::Empty));
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| err("configuration", Problem::NotJson(e.to_string())))?;
        Config::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Config, ConfigError> {
        let top = Fields::of(value, "configuration", "", TOP_FIELDS)?;
        let loggers = parse_loggers(&top)?;
        let defaults = Diagnostic::defaults(loggers.len());
        let diagnostic = match top.object("diagnostic", diagnostic::DIAGNOSTIC_FIELDS)? {
            Some(d) => diagnostic::overlay(&defaults, &d, &loggers)?,
            None => defaults,
        };
        let apis = match top.get("apis") {
            Some(v) => apis::parse_apis(v, &diagnostic, &loggers)?,
            None => Vec::new(),
        };
        let delivery = match top.object("delivery", DELIVERY_FIELDS)? {
            Some(d) => parse_delivery(&d, loggers.len())?,
            None => Delivery::default(),
        };
        let metrics = match top.object("metrics", metrics::SETTINGS_FIELDS)? {
            Some(m) => metrics::parse_settings(&m)?,
            None => MetricsSettings::default(),
        };
        let service = match top.object("service", service::SERVICE_FIELDS)? {
            Some(s) => service::parse_service(&s)?,
            None => Service::default(),
        };
        let availability = match top.object("availability", availability::AVAILABILITY_FIELDS)? {
            Some(a) => availability::parse(&a, &loggers, &diagnostic.loggers)?,
            None => Availability {
                loggers: diagnostic.loggers.clone(),
                ..Availability::default()
            },
        };
        Ok(Config {
            service,
            availability,
            metrics,
            loggers,
            diagnostic,
            apis,
            cloud_role: top.bounded_string("cloud_role", MAX_ROLE_LEN)?,
            cloud_role_instance: top.bounded_string("cloud_role_instance", MAX_ROLE_LEN)?,
            delivery,
        })
    }
}

fn parse_loggers(top: &Fields<'_>) -> Result<Vec<Logger>, ConfigError> {
    let Some(value) = top.get("loggers") else {
        return Err(err("loggers", Problem::NoLoggers));
    };
    let map = value.as_object().ok_or_else(|| {
        err(
            "loggers",
            Problem::WrongType {
                expected: "an object of named loggers",
            },
        )
    })?;
    if map.is_empty() {
        return Err(err("loggers", Problem::NoLoggers));
    }
    map.iter().map(|(id, v)| parse_logger(id, v)).collect()
}

fn parse_logger(id: &str, value: &Value) -> Result<Logger, ConfigError> {
    let path = format!("loggers.{}", excerpt(id));
    if !is_name(id) {
        return Err(err(path, Problem::InvalidName));
    }
    let f = Fields::of(value, &path, &path, LOGGER_FIELDS)?;
    let connection = match (f.string("connection_string")?, f.string("instrumentation_key")?) {
        (Some(_), Some(_)) => return Err(err(path, Problem::BothCredentials)),
        (None, None) => return Err(err(path, Problem::NoCredentials)),
        (Some(cs), None) => {
            ConnectionString::parse(cs).map_err(|e| err(f.path("connection_string"), Problem::ConnectionString(e)))?
        }
        (None, Some(ikey)) => ConnectionString::from_instrumentation_key(ikey)
            .map_err(|e| err(f.path("instrumentation_key"), Problem::ConnectionString(e)))?,
    };
    let cluster = cluster_name(&f, "cluster")?.unwrap_or_else(|| DEFAULT_CLUSTER.to_string());
    let redirect_cluster = cluster_name(&f, "redirect_cluster")?;
    let identity = match f.string("identity")? {
        None => None,
        Some(v) => {
            let identity = crate::managed_identity::ManagedIdentity::parse(v).ok_or_else(|| {
                err(
                    f.path("identity"),
                    Problem::Invalid("must be SystemAssigned or a managed identity's client id".into()),
                )
            })?;
            let cluster = match f.string("identity_cluster")? {
                None => DEFAULT_IDENTITY_CLUSTER.to_string(),
                Some(c) if is_name(c) => c.to_string(),
                Some(_) => return Err(err(f.path("identity_cluster"), Problem::InvalidName)),
            };
            Some((identity, cluster))
        }
    };
    if identity.is_none() && f.get("identity_cluster").is_some() {
        return Err(err(
            f.path("identity_cluster"),
            Problem::Invalid("needs identity".into()),
        ));
    }
    Ok(Logger {
        id: id.to_string(),
        connection,
        cluster,
        identity,
        redirect_cluster,
    })
}

/// An Envoy cluster's name in field `key`, if given.
fn cluster_name(f: &Fields<'_>, key: &str) -> Result<Option<String>, ConfigError> {
    match f.string(key)? {
        None => Ok(None),
        Some("") => Err(err(f.path(key), Problem::Empty)),
        Some(c) if !is_name(c) => Err(err(f.path(key), Problem::InvalidName)),
        Some(c) => Ok(Some(c.to_string())),
    }
}

fn parse_delivery(f: &Fields<'_>, loggers: usize) -> Result<Delivery, ConfigError> {
    let d = Delivery::default();
    let delivery = Delivery {
        flush_interval_ms: f.uint("flush_interval_ms", 10, 60_000)?.unwrap_or(d.flush_interval_ms),
        max_batch_items: f.uint("max_batch_items", 1, 64_000)?.unwrap_or(d.max_batch_items),
        max_batch_bytes: f.uint("max_batch_bytes", 1024, 16 << 20)?.unwrap_or(d.max_batch_bytes),
        max_buffer_bytes: f
            .uint("max_buffer_bytes", 64 * 1024, VM_TELEMETRY_BUDGET_BYTES)?
            .unwrap_or(d.max_buffer_bytes),
        max_in_flight: f.uint("max_in_flight", 1, 64)?.unwrap_or(d.max_in_flight),
        timeout_ms: f.uint("timeout_ms", 100, 300_000)?.unwrap_or(d.timeout_ms),
        retry_initial_ms: f.uint("retry_initial_ms", 10, 600_000)?.unwrap_or(d.retry_initial_ms),
        retry_max_ms: f.uint("retry_max_ms", 10, 3_600_000)?.unwrap_or(d.retry_max_ms),
        gzip: f.bool("gzip")?.unwrap_or(d.gzip),
        drain_timeout_ms: f.uint("drain_timeout_ms", 0, 60_000)?.unwrap_or(d.drain_timeout_ms),
    };
    if delivery.retry_max_ms < delivery.retry_initial_ms {
        return Err(err(
            f.path("retry_max_ms"),
            Problem::Invalid("must be at least delivery.retry_initial_ms".into()),
        ));
    }
    if delivery.max_buffer_bytes < delivery.max_batch_bytes {
        return Err(err(f.path("max_buffer_bytes"), Problem::BufferSmallerThanBatch));
    }
    if delivery.max_buffer_bytes.saturating_mul(loggers as u64) > VM_TELEMETRY_BUDGET_BYTES {
        return Err(err(f.path("max_buffer_bytes"), Problem::OverVmBudget { loggers }));
    }
    Ok(delivery)
}

/// Names of loggers and clusters: what Envoy and Istio accept in a cluster name, minus
/// anything that would need quoting in logs or YAML.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '|' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CS: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9001/";

    fn parse(v: Value) -> Result<Config, ConfigError> {
        Config::from_value(&v)
    }

    fn error_of(v: Value) -> String {
        parse(v).unwrap_err().to_string()
    }

    #[test]
    fn minimal_configuration_gets_documented_defaults() {
        let c = parse(json!({"loggers": {"main": {"connection_string": CS}}})).unwrap();
        assert_eq!(c.loggers.len(), 1);
        assert_eq!(c.loggers[0].cluster, DEFAULT_CLUSTER);
        assert_eq!(c.loggers[0].connection.ingestion_endpoint.port, 9001);
        assert_eq!(c.diagnostic, Diagnostic::defaults(1));
        assert_eq!(c.diagnostic.sampling_percentage, 100.0);
        assert!(c.diagnostic.always_log_errors);
        assert_eq!(c.diagnostic.verbosity, Severity::Information);
        assert_eq!(c.diagnostic.correlation, crate::correlation::Protocol::W3C);
        assert_eq!(c.diagnostic.operation_name_format, OperationNameFormat::Name);
        assert_eq!(c.delivery, Delivery::default());
        assert_eq!(c.cloud_role, None);
    }

    #[test]
    fn every_field_is_read() {
        let c = parse(json!({
            "loggers": {
                "a": {"connection_string": CS, "cluster": "ingest_a"},
                "b": {"instrumentation_key": "00000000-0000-0000-0000-00000000000b", "cluster": "outbound|443||dc.services.visualstudio.com"}
            },
            "diagnostic": {"loggers": ["b"], "log_client_ip": true},
            "cloud_role": "edge", "cloud_role_instance": "edge-1",
            "delivery": {"flush_interval_ms": 250, "max_batch_items": 10, "max_batch_bytes": 2048,
                         "max_buffer_bytes": 65536, "max_in_flight": 2, "timeout_ms": 500}
        }))
        .unwrap();
        assert_eq!(c.loggers[1].cluster, "outbound|443||dc.services.visualstudio.com");
        assert_eq!(c.diagnostic.loggers, vec![1]);
        assert!(c.diagnostic.log_client_ip);
        assert_eq!(c.cloud_role.as_deref(), Some("edge"));
        assert_eq!(c.delivery.flush_interval_ms, 250);
        assert_eq!(c.delivery.max_in_flight, 2);
    }

    #[test]
    fn custom_properties_may_not_take_the_sdk_properties_names() {
        let e = error_of(json!({"loggers": {"main": {"connection_string": CS}},
                                "diagnostic": {"properties": {"_MS.ProcessedByMetricExtractors": "x"}}}));
        assert!(
            e.starts_with("diagnostic.properties._MS.ProcessedByMetricExtractors: is a name the filter uses itself"),
            "{e}"
        );
    }

    #[test]
    fn service_dimensions_are_settable_and_checked() {
        let with = |service: Value| parse(json!({"loggers": {"main": {"connection_string": CS}}, "service": service}));
        let c = with(
            json!({"name": "gw.contoso.com", "type": "API Management", "id": "contoso-gw", "region": "West Europe"}),
        )
        .unwrap();
        assert_eq!(c.service.name.as_deref(), Some("gw.contoso.com"));
        assert_eq!(c.service.kind.as_deref(), Some("API Management"));
        assert_eq!(c.service.id.as_deref(), Some("contoso-gw"));
        assert_eq!(c.service.region.as_deref(), Some("West Europe"));
        assert_eq!(with(json!({})).unwrap().service, Service::default());
        let e = |v| with(v).unwrap_err().to_string();
        assert_eq!(e(json!({"region": " "})), "service.region: must not be empty");
        assert_eq!(
            e(json!({"zone": "x"})),
            "service.zone: unknown field; allowed here: name, type, id, region"
        );
        assert_eq!(e(json!({"type": 3})), "service.type: must be a string");
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error_of(json!([])), "configuration: must be an object");
        assert_eq!(error_of(json!({})), "loggers: at least one logger is required");
        assert_eq!(
            error_of(json!({"loggers": {}})),
            "loggers: at least one logger is required"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"conection_string": CS}}})),
            "loggers.main.conection_string: unknown field; allowed here: connection_string, instrumentation_key, cluster, identity, identity_cluster, redirect_cluster"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": "nonsense"}}})),
            "loggers.main.connection_string: entry 1 is not of the form key=value"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": CS, "cluster": ""}}})),
            "loggers.main.cluster: must not be empty"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {}}})),
            "loggers.main: needs connection_string or instrumentation_key"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": CS, "instrumentation_key": "k"}}})),
            "loggers.main: set either connection_string or instrumentation_key, not both"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": 5}}})),
            "loggers.main.connection_string: must be a string"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": CS}}, "sampling": 5})),
            "sampling: unknown field; allowed here: loggers, diagnostic, apis, cloud_role, cloud_role_instance, service, delivery, metrics, availability"
        );
    }

    #[test]
    fn diagnostic_and_delivery_values_are_range_checked() {
        let base = |extra: Value| {
            let mut v = json!({"loggers": {"main": {"connection_string": CS}}});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            error_of(v)
        };
        assert_eq!(
            base(json!({"diagnostic": {"loggers": ["other"]}})),
            "diagnostic.loggers[0]: names a logger that is not defined in loggers"
        );
        assert_eq!(
            base(json!({"diagnostic": {"loggers": ["main", "main"]}})),
            "diagnostic.loggers[1]: lists the same logger twice"
        );
        assert_eq!(
            base(json!({"diagnostic": {"loggers": []}})),
            "diagnostic.loggers: must not be empty"
        );
        assert_eq!(
            base(json!({"diagnostic": {"log_client_ip": "yes"}})),
            "diagnostic.log_client_ip: must be true or false"
        );
        assert_eq!(
            base(json!({"delivery": {"flush_interval_ms": 0}})),
            "delivery.flush_interval_ms: must be between 10 and 60000"
        );
        assert_eq!(
            base(json!({"delivery": {"max_batch_items": -1}})),
            "delivery.max_batch_items: must be between 1 and 64000"
        );
        assert_eq!(
            base(json!({"delivery": {"timeout_ms": 1.5}})),
            "delivery.timeout_ms: must be a whole number between 100 and 300000"
        );
        assert_eq!(
            base(json!({"delivery": {"max_batch_bytes": 1048576, "max_buffer_bytes": 65536}})),
            "delivery.max_buffer_bytes: must be at least delivery.max_batch_bytes"
        );
        assert_eq!(
            base(json!({"delivery": {"max_buffer_bytes": 1u64 << 30}})),
            "delivery.max_buffer_bytes: must be between 65536 and 268435456",
            "a VM's memory ends near 1 GiB"
        );
        let two = json!({"loggers": {"a": {"connection_string": CS}, "b": {"connection_string": CS}},
                         "delivery": {"max_buffer_bytes": 200u64 << 20}});
        assert_eq!(
            error_of(two),
            "delivery.max_buffer_bytes: 2 loggers times this exceed the 256 MiB that telemetry may use in one VM; lower it"
        );
        assert!(
            base(json!({"": 1})).starts_with("\"\": unknown field; allowed here:"),
            "an empty key is shown as such"
        );
        assert_eq!(base(json!({"cloud_role": " "})), "cloud_role: must not be empty");
        assert_eq!(
            base(json!({"cloud_role": "r".repeat(257)})),
            "cloud_role: must be at most 256 characters"
        );
    }

    #[test]
    fn a_value_of_the_wrong_json_type_is_reported_as_such() {
        let with = |path: &str, value: Value| {
            let mut v = json!({"loggers": {"main": {"connection_string": CS}},
                               "apis": [{"name": "a", "match": {"route_names": ["r"]}}],
                               "diagnostic": {"traces": [{"message": "m"}]}});
            let mut keys: Vec<&str> = path.split('.').collect();
            let last = keys.pop().unwrap();
            let mut at = &mut v;
            for k in keys {
                at = match k.strip_suffix("[0]") {
                    Some(list) => &mut at[list][0],
                    None => &mut at[k],
                };
                if at.is_null() {
                    *at = json!({});
                }
            }
            at[last] = value;
            error_of(v)
        };
        let numbers = [
            "diagnostic.sampling_percentage",
            "apis[0].diagnostic.sampling_percentage",
            "diagnostic.frontend.request.body_bytes",
            "diagnostic.backend.response.body_bytes",
            "diagnostic.traces[0].when.min_duration_ms",
            "delivery.flush_interval_ms",
            "delivery.max_batch_items",
            "delivery.max_batch_bytes",
            "delivery.max_buffer_bytes",
            "delivery.max_in_flight",
            "delivery.timeout_ms",
            "delivery.retry_initial_ms",
            "delivery.retry_max_ms",
            "delivery.drain_timeout_ms",
        ];
        for path in numbers {
            for wrong in [json!("25"), json!(true), json!([25]), json!({"value": 25})] {
                assert_eq!(
                    with(path, wrong.clone()),
                    format!("{path}: must be a number"),
                    "{wrong}"
                );
            }
        }
        let booleans = [
            "diagnostic.always_log_errors",
            "diagnostic.log_client_ip",
            "diagnostic.data_masking.defaults",
            "diagnostic.traces[0].when.failed",
            "apis[0].match.route_metadata",
            "delivery.gzip",
        ];
        for path in booleans {
            for wrong in [json!("true"), json!(1), json!([true])] {
                assert_eq!(
                    with(path, wrong.clone()),
                    format!("{path}: must be true or false"),
                    "{wrong}"
                );
            }
        }
        assert_eq!(
            with("delivery.timeout_ms", json!(150.5)),
            "delivery.timeout_ms: must be a whole number between 100 and 300000"
        );
        assert_eq!(
            with("diagnostic.sampling_percentage", json!(-0.5)),
            "diagnostic.sampling_percentage: must be between 0 and 100"
        );
    }

    #[test]
    fn invalid_json_and_names_are_reported() {
        assert_eq!(
            Config::from_json(b" ").unwrap_err().to_string(),
            "configuration: must not be empty"
        );
        let e = Config::from_json(b"{not json").unwrap_err();
        assert!(e.to_string().starts_with("configuration: is not valid JSON"), "{e}");
        assert_eq!(
            error_of(json!({"loggers": {"bad name": {"connection_string": CS}}})),
            "loggers.bad name: may contain only letters, digits, '_', '-', '.', '|' and ':'"
        );
    }

    #[test]
    fn an_instrumentation_key_that_is_not_a_guid_is_refused_in_either_field() {
        let guid = "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)";
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": "InstrumentationKey=my-key"}}})),
            format!("loggers.main.connection_string: InstrumentationKey must be a GUID {guid}")
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"instrumentation_key": "my-key"}}})),
            format!("loggers.main.instrumentation_key: InstrumentationKey must be a GUID {guid}")
        );
    }

    #[test]
    fn managed_identity_is_system_assigned_or_a_client_id() {
        let c = parse(json!({"loggers": {"main": {"connection_string": CS, "identity": "SystemAssigned"},
                                         "user": {"connection_string": CS, "identity": "1111-2222", "identity_cluster": "metadata", "cluster": "other"}}})).unwrap();
        assert_eq!(
            c.loggers[0].identity,
            Some((crate::managed_identity::ManagedIdentity::SystemAssigned, "imds".into()))
        );
        assert_eq!(
            c.loggers[1].identity,
            Some((
                crate::managed_identity::ManagedIdentity::UserAssigned {
                    client_id: "1111-2222".into()
                },
                "metadata".into()
            ))
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": CS, "identity": "not valid!"}}})),
            "loggers.main.identity: must be SystemAssigned or a managed identity's client id"
        );
        assert_eq!(
            error_of(json!({"loggers": {"main": {"connection_string": CS, "identity_cluster": "x"}}})),
            "loggers.main.identity_cluster: needs identity"
        );
    }

    #[test]
    fn null_means_absent() {
        let c = parse(json!({"loggers": {"main": {"connection_string": CS, "cluster": null}}, "diagnostic": null}))
            .unwrap();
        assert_eq!(c.loggers[0].cluster, DEFAULT_CLUSTER);
    }

    /// What every refused configuration's message must be: one short line, nothing raw.
    fn assert_fit_for_a_log_line(e: &str) {
        assert!(
            e.chars().count() < 400,
            "{} characters: {}…",
            e.chars().count(),
            e.get(..200).unwrap_or(e)
        );
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn configured_values_in_errors_are_cut_and_escaped() {
        let long = format!("bad\0name\n{}", "x".repeat(1 << 20));
        let shown = format!("bad\\0name\\n{}…", "x".repeat(64 - "bad\0name\n".chars().count()));
        let with = |extra: Value| {
            let mut v = json!({"loggers": {"main": {"connection_string": CS}}});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            error_of(v)
        };
        let cases = [
            (
                error_of(json!({"loggers": {&long: {"connection_string": CS}}})),
                format!("loggers.{shown}: may contain only"),
            ),
            (
                error_of(json!({"loggers": {"main": {"connection_string": CS, &long: 1}}})),
                format!("loggers.main.{shown}: unknown field"),
            ),
            (with(json!({&long: 1})), format!("{shown}: unknown field")),
            (
                with(json!({"diagnostic": {"properties": {format!("Request-{long}"): "v"}}})),
                format!(
                    "diagnostic.properties.Request-bad\\0name\\n{}…: property names must be 1 to 150 characters",
                    "x".repeat(64 - "Request-bad\0name\n".chars().count())
                ),
            ),
            (
                with(json!({"diagnostic": {"header_properties": {"Request-\u{1b}x": "x-h"}}})),
                "diagnostic.header_properties.Request-\\u{1b}x: is a name the filter uses itself".to_string(),
            ),
            (
                with(json!({"diagnostic": {"traces": [{"message": "m", "metadata": {&long: "v"}}]}})),
                format!("diagnostic.traces[0].metadata.{shown}: must be at most 150 characters"),
            ),
            (
                with(json!({"diagnostic": {"traces": [{"message": format!("{{{}}}", &long[..20_000])}]}})),
                format!("diagnostic.traces[0].message: unknown placeholder {{{shown}}}; known: "),
            ),
            (
                with(json!({"apis": [{"name": "a", "match": {"path_prefixes": [&long]}}]})),
                format!("apis[0].match.path_prefixes[0]: \"{shown}\" must start with '/'"),
            ),
            (
                with(json!({"apis": [{"name": "a", "match": {"route_names": ["r"]},
                                      "operations": [{"name": "o", "path": format!("/{{{long}")}]}]})),
                format!(
                    "apis[0].operations[0].path: segment \"{{bad\\0name\\n{}…\": a parameter is a whole segment",
                    "x".repeat(64 - "{bad\0name\n".chars().count())
                ),
            ),
        ];
        for (error, expected) in cases {
            assert!(
                error.starts_with(&expected),
                "{error:.300}\nexpected to start with\n{expected}"
            );
            assert_fit_for_a_log_line(&error);
        }
    }

    #[test]
    fn names_that_are_logged_or_sent_may_not_hold_control_characters() {
        let with = |extra: Value| {
            let mut v = json!({"loggers": {"main": {"connection_string": CS}}});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            error_of(v)
        };
        assert_eq!(
            with(json!({"cloud_role": "edge\ngateway"})),
            "cloud_role: must not contain control characters"
        );
        assert_eq!(
            with(json!({"cloud_role_instance": "gw-1\u{0}"})),
            "cloud_role_instance: must not contain control characters"
        );
        assert_eq!(
            with(json!({"diagnostic": {"traces": [{"message": "m", "source": "\u{1b}[2J"}]}})),
            "diagnostic.traces[0].source: must not contain control characters"
        );
    }

    #[test]
    fn errors_never_echo_an_instrumentation_key_pasted_in_the_wrong_place() {
        let key = "0123abcd-0000-4000-8000-0123456789ab";
        let cs = format!("InstrumentationKey={key};IngestionEndpoint=https://dc.example/");
        for error in [
            error_of(json!({"loggers": {&cs: {"connection_string": CS}}})),
            error_of(json!({"loggers": {"main": {"connection_string": CS, &cs: 1}}})),
            error_of(json!({"loggers": {"main": {"connection_string": format!("{cs};{cs}")}}})),
            error_of(json!({"loggers": {"main": {"connection_string": format!("{key}=1;{key}=2")}}})),
        ] {
            assert!(!error.contains(key) && !error.contains("0123456789ab"), "{error}");
            assert_fit_for_a_log_line(&error);
        }
    }

    #[test]
    fn errors_never_contain_the_instrumentation_key() {
        let key = "0123456789abcdef0123456789abcdef0123456789";
        let e = error_of(json!({"loggers": {"main": {"instrumentation_key": key}}}));
        assert!(!e.contains(key), "{e}");
    }
}

#[cfg(test)]
mod diagnostic_tests {
    use super::*;
    use crate::correlation::Protocol;
    use serde_json::json;

    const CS: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9001/";

    fn parse(extra: Value) -> Result<Config, ConfigError> {
        let mut v = json!({"loggers": {"main": {"connection_string": CS}, "audit": {"instrumentation_key": "00000000-0000-0000-0000-00000000000a"}}});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Config::from_value(&v)
    }

    #[test]
    fn the_all_apis_diagnostic_overrides_defaults() {
        let c = parse(json!({"diagnostic": {
            "sampling_percentage": 12.5, "always_log_errors": false, "verbosity": "Error",
            "correlation_protocol": "legacy", "operation_name_format": "Url",
            "traces": [{"message": "m"}]}}))
        .unwrap();
        let d = &c.diagnostic;
        assert_eq!(d.sampling_percentage, 12.5);
        assert!(!d.always_log_errors);
        assert_eq!(d.verbosity, Severity::Error);
        assert_eq!(d.correlation, Protocol::Legacy);
        assert_eq!(d.operation_name_format, OperationNameFormat::Url);
        assert_eq!(d.traces.len(), 1);
        assert_eq!(d.loggers.len(), 2, "every logger by default");
    }

    #[test]
    fn api_diagnostics_override_the_all_apis_one_field_by_field() {
        let c = parse(json!({
        "diagnostic": {"sampling_percentage": 10, "verbosity": "error", "loggers": ["main"]},
        "apis": [
            {"name": "orders", "revision": "3", "match": {"route_names": ["orders"]},
             "operations": [{"name": "get-order", "method": "get", "path": "/orders/{id}"}],
             "diagnostic": {"sampling_percentage": 100, "loggers": ["main", "audit"]}},
            {"name": "users", "match": {"path_prefixes": ["/users"]}}
        ]}))
        .unwrap();
        let orders = &c.apis[0];
        assert_eq!(orders.revision, "3");
        assert_eq!(orders.operations[0].method.as_deref(), Some("GET"));
        assert_eq!(orders.diagnostic.sampling_percentage, 100.0, "overridden");
        assert_eq!(orders.diagnostic.verbosity, Severity::Error, "inherited from all APIs");
        assert_eq!(
            orders.diagnostic.loggers,
            vec![1, 0],
            "multiplexed; loggers sort by name"
        );
        assert_eq!(c.apis[1].revision, "1");
        assert_eq!(
            c.apis[1].diagnostic, c.diagnostic,
            "no overrides: the all-APIs diagnostic"
        );
    }

    #[test]
    fn capture_and_masking_are_read_and_overridden_field_by_field() {
        let c = parse(json!({
            "diagnostic": {
                "frontend": {"request": {"headers": ["Content-Type"], "body_bytes": 1024}, "response": {"body_bytes": 512}},
                "backend": {"response": {"headers": ["x-backend"]}},
                "data_masking": {"headers": [{"name": "x-secret", "mode": "Hide"}], "query_params": [{"name": "q"}], "json_fields": ["password"]}},
            "apis": [{"name": "a", "match": {"route_names": ["r"]},
                      "diagnostic": {"frontend": {"request": {"body_bytes": 0}}}}]}))
        .unwrap();
        let cap = &c.diagnostic.capture;
        assert_eq!(
            cap.frontend_request,
            MessageCapture {
                headers: vec!["content-type".into()],
                body_bytes: 1024
            }
        );
        assert_eq!(cap.frontend_response.body_bytes, 512);
        assert_eq!(cap.backend_response.headers, vec!["x-backend".to_string()]);
        assert_eq!(cap.request_body_bytes(), 1024);
        assert!(cap.needs_response_headers());
        let api = &c.apis[0].diagnostic.capture;
        assert_eq!(
            api.frontend_request,
            MessageCapture {
                headers: vec!["content-type".into()],
                body_bytes: 0
            },
            "only body_bytes overridden"
        );
        assert_eq!(api.frontend_response.body_bytes, 512);
        let m = &c.diagnostic.masking;
        assert_eq!(m.header(b"x-secret"), crate::masking::Mode::Hide);
        assert_eq!(
            m.header(b"authorization"),
            crate::masking::Mode::Mask,
            "defaults stay on"
        );
        assert!(m.masks_json_fields());
        let e = |v: Value| parse(v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"diagnostic": {"frontend": {"request": {"body_bytes": 8193}}}})),
            "diagnostic.frontend.request.body_bytes: must be between 0 and 8192"
        );
        assert_eq!(
            e(json!({"diagnostic": {"backend": {"requests": {}}}})),
            "diagnostic.backend.requests: unknown field; allowed here: request, response"
        );
        assert_eq!(
            e(json!({"diagnostic": {"data_masking": {"headers": [{"name": "a", "mode": "blur"}]}}})),
            "diagnostic.data_masking.headers[0].mode: must be one of Mask, Hide, None"
        );
        assert!(!parse(json!({"diagnostic": {"data_masking": {"defaults": false}}}))
            .unwrap()
            .diagnostic
            .masking
            .masks_json_fields());
    }

    #[test]
    fn property_names_may_not_collide() {
        let e = |v: Value| parse(v).unwrap_err().to_string();
        assert!(e(json!({"diagnostic": {"properties": {"API Name": "x"}}}))
            .starts_with("diagnostic.properties.API Name: is a name the filter uses itself"));
        assert!(
            e(json!({"diagnostic": {"header_properties": {"Request-Tenant": "x-tenant"}}}))
                .starts_with("diagnostic.header_properties.Request-Tenant: is a name the filter uses itself")
        );
        assert_eq!(
            e(json!({"diagnostic": {"properties": {"Tenant": "a"}, "header_properties": {"Tenant": "x-tenant"}}})),
            "diagnostic.header_properties.Tenant: is already a custom property's name"
        );
        assert!(e(json!({"diagnostic": {"properties": {"Tenant": "a"}, "traces": [{"message": "m", "metadata": {"Tenant": "x"}}]}}))
            .starts_with("diagnostic.traces[0].metadata.Tenant: is a name the filter uses itself"));
        assert!(parse(
            json!({"diagnostic": {"properties": {"Tenant": "a"}, "header_properties": {"Client": "x-client"}}})
        )
        .is_ok());
    }

    #[test]
    fn diagnostic_and_api_errors_name_the_field() {
        let e = |v: Value| parse(v).unwrap_err().to_string();
        assert_eq!(
            e(json!({"diagnostic": {"sampling_percentage": 101}})),
            "diagnostic.sampling_percentage: must be between 0 and 100"
        );
        assert_eq!(
            e(json!({"diagnostic": {"verbosity": "debug"}})),
            "diagnostic.verbosity: must be one of verbose, information, error"
        );
        assert_eq!(
            e(json!({"diagnostic": {"correlation_protocol": "b3"}})),
            "diagnostic.correlation_protocol: must be one of None, Legacy, W3C"
        );
        assert_eq!(e(json!({"apis": {}})), "apis: must be a list of APIs");
        assert_eq!(
            e(json!({"apis": [{"match": {"route_names": ["r"]}}]})),
            "apis[0].name: is required"
        );
        assert_eq!(e(json!({"apis": [{"name": "a"}]})), "apis[0].match: is required");
        assert_eq!(
            e(json!({"apis": [{"name": "a", "match": {}}]})),
            "apis[0].match: needs route_names, hosts, path_prefixes or route_metadata"
        );
        assert_eq!(
            e(
                json!({"apis": [{"name": "a", "match": {"route_names": ["r"]}}, {"name": "a", "match": {"route_names": ["s"]}}]})
            ),
            "apis[1].name: is used twice"
        );
        assert_eq!(
            e(json!({"apis": [{"name": "a", "match": {"route_names": ["r"]}, "diagnostic": {"sampling": 5}}]})),
            "apis[0].diagnostic.sampling: unknown field; allowed here: loggers, sampling_percentage, sampling_mode, always_log_errors, log_client_ip, verbosity, correlation_protocol, operation_name_format, templated_names, traces, properties, header_properties, dynamic_properties, frontend, backend, data_masking, standard_metrics, metrics, emit_metrics, token_metrics"
        );
        assert_eq!(
            e(json!({"apis": [{"name": "a", "match": {"path_prefixes": ["x"]}}]})),
            "apis[0].match.path_prefixes[0]: \"x\" must start with '/'"
        );
        assert_eq!(
            e(json!({"apis": [{"name": "a", "match": {"route_names": ["r"]}, "operations": [{"name": "o", "path": "/a{b}"}]}]})),
            "apis[0].operations[0].path: segment \"a{b}\": a parameter is a whole segment like {id}, '*' only ends a template"
        );
        assert_eq!(
            e(json!({"apis": [{"name": "a", "match": {"route_names": ["r"]}, "diagnostic": {"loggers": ["nope"]}}]})),
            "apis[0].diagnostic.loggers[0]: names a logger that is not defined in loggers"
        );
    }
}
