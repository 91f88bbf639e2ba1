//! Diagnostics: what is logged, how, and to which loggers (API Management's *diagnostic*).
//!
//! The all-APIs diagnostic (`diagnostic`) overrides the defaults, and each API's
//! `diagnostic` overrides the all-APIs one field by field. Both are resolved once per
//! configuration, so a request only looks up its API's finished [`Diagnostic`].

use super::metrics::{parse_rules, parse_tokens, MetricRule, TokenMetrics};
use super::reader::Fields;
use super::traces::{parse_metadata, parse_traces, Template, TraceRule};
use super::{err, excerpt, ConfigError, Logger, Problem};
use crate::correlation::Protocol;
use crate::masking::Masking;
use crate::telemetry::SERVICE_PROPERTIES;
use serde_json::Value;

/// Largest body prefix APIM captures, and so does this filter.
pub const MAX_BODY_BYTES: u64 = 8192;

/// Severity of traces, and the diagnostic's verbosity threshold (APIM's three levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Verbose,
    Information,
    Error,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "verbose" => Some(Severity::Verbose),
            "information" => Some(Severity::Information),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }

    /// The Application Insights `severityLevel` name.
    pub fn level_name(self) -> &'static str {
        match self {
            Severity::Verbose => "Verbose",
            Severity::Information => "Information",
            Severity::Error => "Error",
        }
    }
}

/// Who decides whether an operation is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplingMode {
    /// The Application Insights score of the operation id against `sampling_percentage`
    /// (what the SDKs do, so an SDK backend keeps the same operations).
    Score,
    /// The caller's W3C `traceparent` sampled flag, when it sent one (OpenTelemetry's
    /// parent-based sampler); the score otherwise.
    ParentBased,
}

/// How `ai.operation.name` is formed for requests of a configured API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationNameFormat {
    /// `API;rev=REVISION - OPERATION` (APIM's default).
    Name,
    /// `METHOD /path`.
    Url,
}

/// A resolved diagnostic: every setting decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Indexes into [`super::Config::loggers`]; every item goes to each.
    pub loggers: Vec<usize>,
    /// Percentage of operations kept, 0–100.
    pub sampling_percentage: f64,
    pub sampling_mode: SamplingMode,
    /// Keep every failed request (and its dependency and exception) whatever the sampling.
    pub always_log_errors: bool,
    pub log_client_ip: bool,
    /// `error`: failed requests and error traces only; `information`: all requests,
    /// information and error traces; `verbose`: everything.
    pub verbosity: Severity,
    pub correlation: Protocol,
    pub operation_name_format: OperationNameFormat,
    /// Request names and operation names replace id-like path segments with `{id}`
    /// (`GET /orders/{id}`), so they stay low-cardinality.
    pub templated_names: bool,
    /// Which of the service dimensions (`Service Name`, `Service Type`, `Service ID`,
    /// `Region`: bit 0–3) a static custom property replaces.
    pub service_overrides: u8,
    pub traces: Vec<TraceRule>,
    /// Static custom properties on every item, pre-escaped: `"Region":"West Europe",…`.
    pub properties_json: Vec<u8>,
    /// Custom properties taken from request headers: (property name, lowercase header).
    pub header_properties: Vec<(String, String)>,
    /// Custom properties rendered per exchange from a template (a JWT claim in Envoy's
    /// dynamic metadata as `Subscription Name`, say); left out when they render empty.
    pub dynamic_properties: Vec<(String, Template)>,
    /// Headers and body prefixes to capture (APIM's frontend/backend settings).
    pub capture: Capture,
    /// What is masked or hidden wherever it could appear.
    pub masking: Masking,
    /// Pre-aggregate the standard metrics (`requests/duration`, …) from every exchange,
    /// before sampling, and mark the items so counted.
    pub standard_metrics: bool,
    /// Custom metrics (`emit_metrics`, `token_metrics`) are emitted (APIM's `metrics`).
    pub metrics: bool,
    pub emit_metrics: Vec<MetricRule>,
    pub token_metrics: Option<TokenMetrics>,
}

/// What to capture of one message: headers by name, and the first bytes of the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCapture {
    /// Lowercase header names.
    pub headers: Vec<String>,
    pub body_bytes: u64,
}

/// Capture settings: frontend (client ↔ gateway) on the Request item, backend
/// (gateway ↔ backend) on the Dependency item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub frontend_request: MessageCapture,
    pub frontend_response: MessageCapture,
    pub backend_request: MessageCapture,
    pub backend_response: MessageCapture,
}

impl Capture {
    /// Bytes of the request body to keep as it streams by (the larger of both uses).
    pub fn request_body_bytes(&self) -> u64 {
        self.frontend_request.body_bytes.max(self.backend_request.body_bytes)
    }

    pub fn response_body_bytes(&self) -> u64 {
        self.frontend_response.body_bytes.max(self.backend_response.body_bytes)
    }

    /// Whether any response header must be read at log time.
    pub fn needs_response_headers(&self) -> bool {
        !self.frontend_response.headers.is_empty()
            || !self.backend_response.headers.is_empty()
            || self.response_body_bytes() > 0
    }
}

impl Diagnostic {
    /// The defaults, sending to every logger.
    pub fn defaults(loggers: usize) -> Diagnostic {
        Diagnostic {
            loggers: (0..loggers).collect(),
            sampling_percentage: 100.0,
            sampling_mode: SamplingMode::Score,
            always_log_errors: true,
            log_client_ip: false,
            verbosity: Severity::Information,
            correlation: Protocol::W3C,
            operation_name_format: OperationNameFormat::Name,
            templated_names: true,
            service_overrides: 0,
            traces: Vec::new(),
            properties_json: Vec::new(),
            header_properties: Vec::new(),
            dynamic_properties: Vec::new(),
            capture: Capture::default(),
            masking: Masking::default(),
            standard_metrics: true,
            metrics: false,
            emit_metrics: Vec::new(),
            token_metrics: None,
        }
    }

    /// The custom metric rules that emit (none unless `metrics` is on).
    pub fn active_metric_rules(&self) -> &[MetricRule] {
        if self.metrics {
            &self.emit_metrics
        } else {
            &[]
        }
    }

    /// Token metrics, when they emit.
    pub fn active_token_metrics(&self) -> Option<&TokenMetrics> {
        self.token_metrics.as_ref().filter(|_| self.metrics)
    }

    /// Whether every exchange is looked at for metrics, sampled or not.
    pub fn counts_every_exchange(&self) -> bool {
        self.standard_metrics || !self.active_metric_rules().is_empty() || self.active_token_metrics().is_some()
    }

    /// Whether requests are logged at all when they succeed.
    pub fn logs_successful_requests(&self) -> bool {
        self.verbosity != Severity::Error
    }
}

pub(crate) const DIAGNOSTIC_FIELDS: &[&str] = &[
    "loggers",
    "sampling_percentage",
    "sampling_mode",
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
    "data_masking",
    "standard_metrics",
    "metrics",
    "emit_metrics",
    "token_metrics",
];

const TOKEN_FIELDS: &[&str] = &["namespace", "dimensions"];
const SIDE_FIELDS: &[&str] = &["request", "response"];
const MESSAGE_FIELDS: &[&str] = &["headers", "body_bytes"];

/// Applies the fields present in `f` on top of `base`.
pub(crate) fn overlay(base: &Diagnostic, f: &Fields<'_>, loggers: &[Logger]) -> Result<Diagnostic, ConfigError> {
    let mut d = base.clone();
    overlay_decisions(&mut d, f, loggers)?;
    overlay_content(&mut d, f)?;
    super::property_names::check(&d, f)?;
    Ok(d)
}

/// Where items go and which are written: loggers, sampling, error logging, verbosity,
/// correlation, operation names.
fn overlay_decisions(d: &mut Diagnostic, f: &Fields<'_>, loggers: &[Logger]) -> Result<(), ConfigError> {
    if let Some(v) = f.get("loggers") {
        d.loggers = select_loggers(v, &f.path("loggers"), loggers)?;
    }
    if let Some(p) = f.number("sampling_percentage")? {
        d.sampling_percentage = p
            .as_f64()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| err(f.path("sampling_percentage"), Problem::OutOfRange { min: 0, max: 100 }))?;
    }
    if let Some(s) = f.string("sampling_mode")? {
        d.sampling_mode = match s.to_ascii_lowercase().as_str() {
            "score" => SamplingMode::Score,
            "parent" => SamplingMode::ParentBased,
            _ => return Err(err(f.path("sampling_mode"), Problem::OneOf("score, parent"))),
        };
    }
    if let Some(b) = f.bool("always_log_errors")? {
        d.always_log_errors = b;
    }
    if let Some(b) = f.bool("log_client_ip")? {
        d.log_client_ip = b;
    }
    if let Some(s) = f.string("verbosity")? {
        d.verbosity = Severity::parse(s)
            .ok_or_else(|| err(f.path("verbosity"), Problem::OneOf("verbose, information, error")))?;
    }
    if let Some(s) = f.string("correlation_protocol")? {
        d.correlation = match s.to_ascii_lowercase().as_str() {
            "none" => Protocol::None,
            "legacy" => Protocol::Legacy,
            "w3c" => Protocol::W3C,
            _ => return Err(err(f.path("correlation_protocol"), Problem::OneOf("None, Legacy, W3C"))),
        };
    }
    if let Some(s) = f.string("operation_name_format")? {
        d.operation_name_format = match s.to_ascii_lowercase().as_str() {
            "name" => OperationNameFormat::Name,
            "url" => OperationNameFormat::Url,
            _ => return Err(err(f.path("operation_name_format"), Problem::OneOf("Name, Url"))),
        };
    }
    if let Some(b) = f.bool("templated_names")? {
        d.templated_names = b;
    }
    Ok(())
}

/// What items carry: trace rules, custom properties, captured content and its masking.
fn overlay_content(d: &mut Diagnostic, f: &Fields<'_>) -> Result<(), ConfigError> {
    if let Some(v) = f.get("traces") {
        d.traces = parse_traces(v, &f.path("traces"))?;
    }
    if let Some(v) = f.get("properties") {
        let props = string_map(v, &f.path("properties"), 8192)?;
        d.service_overrides = SERVICE_PROPERTIES
            .iter()
            .enumerate()
            .filter(|(_, s)| props.iter().any(|(name, _)| name == *s))
            .fold(0, |bits, (i, _)| bits | 1 << i);
        d.properties_json = properties_json(&props);
    }
    if let Some(side) = f.object("frontend", SIDE_FIELDS)? {
        overlay_message(&mut d.capture.frontend_request, &side, "request")?;
        overlay_message(&mut d.capture.frontend_response, &side, "response")?;
    }
    if let Some(side) = f.object("backend", SIDE_FIELDS)? {
        overlay_message(&mut d.capture.backend_request, &side, "request")?;
        overlay_message(&mut d.capture.backend_response, &side, "response")?;
    }
    if let Some(m) = f.object("data_masking", super::masking::MASKING_FIELDS)? {
        d.masking = super::masking::parse_masking(&m)?;
    }
    if let Some(b) = f.bool("standard_metrics")? {
        d.standard_metrics = b;
    }
    if let Some(b) = f.bool("metrics")? {
        d.metrics = b;
    }
    if let Some(v) = f.get("emit_metrics") {
        d.emit_metrics = parse_rules(v, &f.path("emit_metrics"))?;
    }
    if let Some(t) = f.object("token_metrics", TOKEN_FIELDS)? {
        d.token_metrics = Some(parse_tokens(&t)?);
    }
    if let Some(v) = f.get("dynamic_properties") {
        d.dynamic_properties = parse_metadata(v, &f.path("dynamic_properties"))?;
    }
    if let Some(v) = f.get("header_properties") {
        d.header_properties = string_map(v, &f.path("header_properties"), 256)?
            .into_iter()
            .map(|(name, header)| (name, header.to_ascii_lowercase()))
            .collect();
    }
    Ok(())
}

fn overlay_message(target: &mut MessageCapture, side: &Fields<'_>, key: &str) -> Result<(), ConfigError> {
    let Some(m) = side.object(key, MESSAGE_FIELDS)? else {
        return Ok(());
    };
    if m.get("headers").is_some() {
        target.headers = m.strings("headers")?.iter().map(|h| h.to_ascii_lowercase()).collect();
    }
    if let Some(n) = m.uint("body_bytes", 0, MAX_BODY_BYTES)? {
        target.body_bytes = n;
    }
    Ok(())
}

/// A JSON object of property name → string: names 1–150 characters, values at most `max`.
fn string_map(v: &Value, path: &str, max: usize) -> Result<Vec<(String, String)>, ConfigError> {
    let map = v.as_object().ok_or_else(|| {
        err(
            path,
            Problem::WrongType {
                expected: "an object of name: string",
            },
        )
    })?;
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let item = format!("{path}.{}", excerpt(name));
        if name.is_empty() || name.chars().count() > 150 {
            return Err(err(
                item,
                Problem::Invalid("property names must be 1 to 150 characters".into()),
            ));
        }
        let value = value
            .as_str()
            .ok_or_else(|| err(&item, Problem::WrongType { expected: "a string" }))?;
        if value.chars().count() > max {
            return Err(err(item, Problem::TooLong { max }));
        }
        out.push((name.clone(), value.to_string()));
    }
    Ok(out)
}

/// `"a":"1","b":"2"`: escaped once, copied into every item.
fn properties_json(props: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in props.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        crate::json::push_str(&mut out, name, 150);
        out.push(b':');
        crate::json::push_str(&mut out, value, 8192);
    }
    out
}

pub(crate) fn select_loggers(v: &Value, path: &str, loggers: &[Logger]) -> Result<Vec<usize>, ConfigError> {
    let names = v.as_array().ok_or_else(|| {
        err(
            path,
            Problem::WrongType {
                expected: "a list of logger names",
            },
        )
    })?;
    if names.is_empty() {
        return Err(err(path, Problem::Empty));
    }
    let mut selected = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let name = name
            .as_str()
            .ok_or_else(|| err(&item, Problem::WrongType { expected: "a string" }))?;
        let index = loggers
            .iter()
            .position(|l| l.id == name)
            .ok_or_else(|| err(&item, Problem::UnknownLogger))?;
        if selected.contains(&index) {
            return Err(err(item, Problem::DuplicateLogger));
        }
        selected.push(index);
    }
    Ok(selected)
}
