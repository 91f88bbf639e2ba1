//! Metrics configuration: the aggregation settings (`metrics`), and per diagnostic APIM's
//! `emit-metric` rules (`emit_metrics`) and `llm-emit-token-metric` (`token_metrics`),
//! which emit only where the diagnostic has `"metrics": true`, as in API Management.
//!
//! ```json
//! {"metrics": {"interval_ms": 60000, "max_series": 1000},
//!  "diagnostic": {"metrics": true,
//!    "emit_metrics": [{"name": "Requests by consumer", "value": "request.duration_ms",
//!                      "when": {"status": ["2xx"]},
//!                      "dimensions": [{"name": "API ID"},
//!                                     {"name": "Consumer", "value": "{request.header.x-consumer}"}]}],
//!    "token_metrics": {"namespace": "llm", "dimensions": [{"name": "API ID"}]}}}
//! ```

use super::reader::Fields;
use super::traces::{parse_when, Conditions, Template};
use super::{err, excerpt, ConfigError, Problem};
use serde_json::Value;

/// Azure Monitor's limit of dimension keys per metric (APIM's emit-metric allows 10).
pub const MAX_DIMENSIONS: usize = 10;
/// APIM's default namespace of custom metrics.
pub const DEFAULT_NAMESPACE: &str = "API Management";
/// How long one aggregate covers (the SDKs' default: one minute).
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// Series per metric, per worker and interval, before values fold into the overflow
/// series. The .NET SDK's default series limit per metric is 1,000; Azure Monitor allows
/// 50,000 active series per subscription and region, so a metric stays well inside it.
pub const DEFAULT_MAX_SERIES: u64 = 1_000;
/// Longest metric name and namespace (the MetricData schema's limits).
const MAX_NAME: usize = 1024;
const MAX_NAMESPACE: usize = 256;

/// Aggregation settings (top-level `metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub interval_ms: u64,
    pub max_series: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            interval_ms: DEFAULT_INTERVAL_MS,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// One `emit-metric` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    pub name: String,
    pub namespace: String,
    pub value: MetricValue,
    pub when: Conditions,
    pub dimensions: Vec<Dimension>,
}

/// What a rule adds to its metric per exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    Constant(f64),
    /// The exchange's duration, in milliseconds.
    RequestDurationMs,
    /// The backend call's duration, in milliseconds (no value without a backend call).
    BackendDurationMs,
    /// Body bytes received from the client / sent to it.
    RequestSize,
    ResponseSize,
    /// A header's value, read as a number (no value when absent or not a number).
    RequestHeader(String),
    ResponseHeader(String),
}

/// A metric dimension: its name, and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub name: String,
    pub value: DimensionValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DimensionValue {
    /// One of APIM's default dimensions (`API ID`, `Operation ID`, `Location`, `Gateway ID`).
    Default(DefaultDimension),
    Template(Template),
}

/// APIM's default dimensions that have a meaning at an Envoy gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultDimension {
    /// The configured API's name, else the route name.
    ApiId,
    /// The matched operation, else the route name.
    OperationId,
    /// The Envoy node's locality region (APIM: the gateway's region).
    Location,
    /// `ai.cloud.roleInstance` (APIM: the self-hosted gateway's id).
    GatewayId,
}

impl DefaultDimension {
    fn parse(name: &str) -> Option<DefaultDimension> {
        Some(match name {
            "API ID" => DefaultDimension::ApiId,
            "Operation ID" => DefaultDimension::OperationId,
            "Location" => DefaultDimension::Location,
            "Gateway ID" => DefaultDimension::GatewayId,
            _ => return None,
        })
    }
}

/// APIM default dimensions that mean nothing at an Envoy gateway (no products, users or
/// subscriptions): a template must say where their value comes from.
const UNMAPPED_DEFAULTS: &[&str] = &["Product ID", "User ID", "Subscription ID"];

/// `token_metrics`: APIM's `llm-emit-token-metric`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMetrics {
    pub namespace: String,
    pub dimensions: Vec<Dimension>,
}

/// The names APIM gives the three token metrics.
pub const TOKEN_METRIC_NAMES: [&str; 3] = ["Total Tokens", "Prompt Tokens", "Completion Tokens"];

pub(crate) const SETTINGS_FIELDS: &[&str] = &["interval_ms", "max_series"];
const RULE_FIELDS: &[&str] = &["name", "namespace", "value", "when", "dimensions"];
const DIMENSION_FIELDS: &[&str] = &["name", "value"];
const MEASURES: &str = "a number, request.duration_ms, backend.duration_ms, request.size, response.size, \
request.header.<name> or response.header.<name>";

pub(crate) fn parse_settings(f: &Fields<'_>) -> Result<MetricsSettings, ConfigError> {
    let d = MetricsSettings::default();
    Ok(MetricsSettings {
        interval_ms: f.uint("interval_ms", 100, 3_600_000)?.unwrap_or(d.interval_ms),
        max_series: f.uint("max_series", 1, 50_000)?.unwrap_or(d.max_series),
    })
}

pub(crate) fn parse_rules(v: &Value, path: &str) -> Result<Vec<MetricRule>, ConfigError> {
    let list = v.as_array().ok_or_else(|| {
        err(
            path,
            Problem::WrongType {
                expected: "a list of metric rules",
            },
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, rule)| parse_rule(rule, &format!("{path}[{i}]")))
        .collect()
}

fn parse_rule(v: &Value, path: &str) -> Result<MetricRule, ConfigError> {
    let f = Fields::of(v, path, path, RULE_FIELDS)?;
    let name = f
        .bounded_string("name", MAX_NAME)?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| err(f.path("name"), Problem::Missing))?;
    let when = match f.object("when", super::traces::WHEN_FIELDS)? {
        Some(w) => parse_when(&w)?,
        None => Conditions::default(),
    };
    let dimensions = parse_dimensions(&f, 1, &format!("rule \"{}\" ", excerpt(&name)))?;
    Ok(MetricRule {
        name,
        dimensions,
        namespace: namespace(&f)?,
        value: match f.get("value") {
            None => MetricValue::Constant(1.0),
            Some(v) => parse_value(v, &f.path("value"))?,
        },
        when,
    })
}

pub(crate) fn parse_tokens(f: &Fields<'_>) -> Result<TokenMetrics, ConfigError> {
    Ok(TokenMetrics {
        namespace: namespace(f)?,
        dimensions: parse_dimensions(f, 0, "")?,
    })
}

fn namespace(f: &Fields<'_>) -> Result<String, ConfigError> {
    Ok(f.bounded_string("namespace", MAX_NAMESPACE)?
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()))
}

fn parse_value(v: &Value, path: &str) -> Result<MetricValue, ConfigError> {
    if let Some(n) = v.as_f64().filter(|n| n.is_finite()) {
        return Ok(MetricValue::Constant(n));
    }
    let bad = || err(path, Problem::OneOf(MEASURES));
    let s = v.as_str().ok_or_else(bad)?;
    let header = |prefix: &str| {
        s.strip_prefix(prefix)
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
    };
    if let Some(h) = header("request.header.") {
        return Ok(MetricValue::RequestHeader(h));
    }
    if let Some(h) = header("response.header.") {
        return Ok(MetricValue::ResponseHeader(h));
    }
    Ok(match s {
        "request.duration_ms" => MetricValue::RequestDurationMs,
        "backend.duration_ms" => MetricValue::BackendDurationMs,
        "request.size" => MetricValue::RequestSize,
        "response.size" => MetricValue::ResponseSize,
        _ => return Err(bad()),
    })
}

/// `min`–10 dimensions, names unique, each a default dimension or a template (`who`: the
/// rule, for the error).
fn parse_dimensions(f: &Fields<'_>, min: usize, who: &str) -> Result<Vec<Dimension>, ConfigError> {
    let (list, path) = match f.list("dimensions", "a list of {name, value}")? {
        Some(found) => found,
        None if min == 0 => return Ok(Vec::new()),
        None => return Err(err(f.path("dimensions"), Problem::Missing)),
    };
    if list.len() < min || list.len() > MAX_DIMENSIONS {
        return Err(err(
            f.prefix_path(),
            Problem::Invalid(format!(
                "{who}has {} dimensions; a metric has {min} to {MAX_DIMENSIONS} (Azure Monitor's limit)",
                list.len()
            )),
        ));
    }
    let mut out: Vec<Dimension> = Vec::with_capacity(list.len());
    for (i, d) in list.iter().enumerate() {
        let dimension = parse_dimension(d, &format!("{path}[{i}]"))?;
        if out.iter().any(|o| o.name == dimension.name) {
            return Err(err(format!("{path}[{i}].name"), Problem::Duplicate));
        }
        out.push(dimension);
    }
    Ok(out)
}

fn parse_dimension(v: &Value, path: &str) -> Result<Dimension, ConfigError> {
    let d = Fields::of(v, path, path, DIMENSION_FIELDS)?;
    let name = d
        .bounded_string("name", 150)?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| err(d.path("name"), Problem::Missing))?;
    if name.starts_with("_MS.") {
        return Err(err(
            d.path("name"),
            Problem::Invalid("_MS.* names belong to Application Insights".into()),
        ));
    }
    let value = match d.string("value")? {
        Some(t) => DimensionValue::Template(Template::parse(t).map_err(|e| err(d.path("value"), Problem::Invalid(e)))?),
        None => {
            match DefaultDimension::parse(&name) {
                Some(default) => DimensionValue::Default(default),
                None if UNMAPPED_DEFAULTS.contains(&name.as_str()) => {
                    return Err(err(
                        d.path("value"),
                        Problem::Invalid(format!(
                            "is required: APIM's default dimension {} has no meaning at an Envoy gateway; \
                         give a template such as {{metadata.envoy.filters.http.jwt_authn/payload/sub}}",
                            excerpt(&name)
                        )),
                    ))
                }
                None => return Err(err(
                    d.path("value"),
                    Problem::Invalid(
                        "is required, except for the default dimensions API ID, Operation ID, Location and Gateway ID"
                            .into(),
                    ),
                )),
            }
        }
    };
    Ok(Dimension { name, value })
}

impl MetricRule {
    /// Templates of the rule's dimensions.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        templates(&self.dimensions)
    }
}

/// The templates among `dimensions`.
pub fn templates(dimensions: &[Dimension]) -> impl Iterator<Item = &Template> {
    dimensions.iter().filter_map(|d| match &d.value {
        DimensionValue::Template(t) => Some(t),
        DimensionValue::Default(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> Result<Vec<MetricRule>, String> {
        parse_rules(&v, "diagnostic.emit_metrics").map_err(|e| e.to_string())
    }

    #[test]
    fn a_rule_reads_its_value_conditions_and_dimensions() {
        let r = rules(json!([{"name": "m", "value": "response.header.X-Cost", "when": {"status": ["5xx"]},
                              "dimensions": [{"name": "API ID"}, {"name": "Tenant", "value": "{request.header.x-tenant}"}]}]))
        .unwrap();
        assert_eq!(r[0].namespace, DEFAULT_NAMESPACE);
        assert_eq!(r[0].value, MetricValue::ResponseHeader("x-cost".into()));
        assert_eq!(
            r[0].dimensions[0].value,
            DimensionValue::Default(DefaultDimension::ApiId)
        );
        assert_eq!(r[0].when.statuses.len(), 1);
        let constant = rules(json!([{"name": "m", "dimensions": [{"name": "Gateway ID"}]}])).unwrap();
        assert_eq!(
            constant[0].value,
            MetricValue::Constant(1.0),
            "APIM's default value is 1"
        );
    }

    #[test]
    fn eleven_dimensions_are_refused_naming_the_rule() {
        let dims: Vec<Value> = (0..11)
            .map(|i| json!({"name": format!("d{i}"), "value": "x"}))
            .collect();
        assert_eq!(
            rules(json!([{"name": "m", "dimensions": [{"name": "API ID"}]}, {"name": "n", "dimensions": dims}]))
                .unwrap_err(),
            "diagnostic.emit_metrics[1]: rule \"n\" has 11 dimensions; a metric has 1 to 10 (Azure Monitor's limit)"
        );
        let ten: Vec<Value> = (0..10)
            .map(|i| json!({"name": format!("d{i}"), "value": "x"}))
            .collect();
        assert!(rules(json!([{"name": "n", "dimensions": ten}])).is_ok());
    }

    #[test]
    fn rule_errors_name_the_field() {
        let e = |v: Value| rules(v).unwrap_err();
        assert_eq!(
            e(json!([{"dimensions": [{"name": "API ID"}]}])),
            "diagnostic.emit_metrics[0].name: is required"
        );
        assert_eq!(
            e(json!([{"name": "m"}])),
            "diagnostic.emit_metrics[0].dimensions: is required"
        );
        assert!(
            e(json!([{"name": "m", "value": "latency", "dimensions": [{"name": "API ID"}]}]))
                .starts_with("diagnostic.emit_metrics[0].value: must be one of a number")
        );
        assert!(e(json!([{"name": "m", "dimensions": [{"name": "User ID"}]}]))
            .starts_with("diagnostic.emit_metrics[0].dimensions[0].value: is required: APIM's default dimension"));
        assert_eq!(
            e(json!([{"name": "m", "dimensions": [{"name": "API ID"}, {"name": "API ID"}]}])),
            "diagnostic.emit_metrics[0].dimensions[1].name: is used twice"
        );
        assert!(
            e(json!([{"name": "m", "dimensions": [{"name": "x", "value": "{nope}"}]}]))
                .starts_with("diagnostic.emit_metrics[0].dimensions[0].value: unknown placeholder")
        );
    }
}
