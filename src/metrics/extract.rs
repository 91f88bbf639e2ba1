//! What one finished exchange adds to the metrics, sampled or not: the standard metrics
//! (its request, its backend call, its exception, its traces), each active `emit_metrics`
//! rule whose conditions hold, and the token metrics of a response that reported usage.
//! Values go to a callback (metric index, dimension values, value), which records them
//! for each logger.

use super::catalog::{DiagnosticMetrics, Standard};
use super::usage::Usage;
use crate::config::{
    DefaultDimension, Diagnostic, Dimension, DimensionValue, MetricRule, MetricValue, Severity, TraceRule,
    MAX_DIMENSIONS,
};
use crate::telemetry::dependency::{self, ResultCode};
use crate::telemetry::{failure, trace, Facts};

/// Where the default dimensions `Location` and `Gateway ID` come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gateway {
    /// `service.region`, else the Envoy node's locality region (`Unknown` when none).
    pub location: Vec<u8>,
    /// `ai.cloud.roleInstance`.
    pub id: Vec<u8>,
}

/// What the callback receives: metric index, dimension values, value.
pub type Record<'r> = dyn FnMut(usize, &[&[u8]], f64) + 'r;

/// The standard metrics of one exchange: its request, its backend call (if one was
/// made), its exception (if it failed) and the traces its rules wrote.
pub fn standard(facts: &Facts<'_>, traces: &[&TraceRule], record: &mut Record<'_>) {
    let oc = facts.outcome;
    let mut digits = Digits::default();
    let success = truth(oc.success());
    let ms = |nanos: u64| nanos as f64 / 1e6;
    record(
        Standard::Requests.index(),
        &[
            digits.of(oc.response_code),
            success,
            performance_bucket(oc.duration_nanos),
            b"False",
        ],
        ms(oc.duration_nanos),
    );
    if let Some(backend) = facts.backend {
        let (code, ok) = dependency::result_code(oc);
        let result = match code {
            ResultCode::Status(status) => digits.of(status),
            ResultCode::Failure(name) => name.as_bytes(),
        };
        let duration = dependency::duration(oc, backend);
        let values: [&[u8]; 6] = [
            b"HTTP",
            truth(ok),
            &backend.target,
            result,
            performance_bucket(duration),
            b"False",
        ];
        record(Standard::Dependencies.index(), &values, ms(duration));
    }
    if failure::classify(oc).is_some() {
        record(Standard::Exceptions.index(), &[], 1.0);
    }
    for rule in traces {
        // The service stores severity levels as numbers (Verbose 0, Information 1, Error 3).
        let level: &[u8] = match rule.severity {
            Severity::Verbose => b"0",
            Severity::Information => b"1",
            Severity::Error => b"3",
        };
        record(Standard::Traces.index(), &[level, b"False"], 1.0);
    }
}

/// The custom metrics of one exchange: rules whose conditions hold and that have a value
/// for it (a header that is absent or not a number has none: counted in `missing`), and
/// the token metrics.
pub fn custom(
    d: &Diagnostic,
    ids: &DiagnosticMetrics,
    facts: &Facts<'_>,
    gateway: &Gateway,
    usage: Option<Usage>,
    missing: &mut Missing,
    record: &mut Record<'_>,
) {
    for (rule, &id) in d.active_metric_rules().iter().zip(&ids.rules) {
        if !trace::holds(&rule.when, facts) {
            continue;
        }
        let Some(value) = value_of(rule, facts) else {
            missing.values += 1;
            continue;
        };
        with_dimensions(&rule.dimensions, facts, gateway, |values| record(id, values, value));
    }
    if let (Some(tokens), Some(t)) = (ids.tokens, d.active_token_metrics()) {
        let Some(u) = usage else {
            missing.usage += 1;
            return;
        };
        with_dimensions(&t.dimensions, facts, gateway, |values| {
            for (id, n) in tokens.into_iter().zip([u.total, u.prompt, u.completion]) {
                record(id, values, n as f64);
            }
        });
    }
}

/// Exchanges the custom metrics had no value for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    /// A rule's value header was absent or not a number, or no backend call was made.
    pub values: u64,
    /// Token metrics apply but the response reported no usage (or could not be read).
    pub usage: u64,
}

fn value_of(rule: &MetricRule, facts: &Facts<'_>) -> Option<f64> {
    let oc = facts.outcome;
    let number = |v: Option<&[u8]>| {
        std::str::from_utf8(v?)
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
    };
    match &rule.value {
        MetricValue::Constant(n) => Some(*n),
        MetricValue::RequestDurationMs => Some(oc.duration_nanos as f64 / 1e6),
        MetricValue::BackendDurationMs => facts.backend.map(|b| dependency::duration(oc, b) as f64 / 1e6),
        MetricValue::RequestSize => Some(oc.request_body_bytes as f64),
        MetricValue::ResponseSize => Some(oc.response_body_bytes as f64),
        MetricValue::RequestHeader(h) => number(facts.frontend.headers().get(h.as_bytes())),
        MetricValue::ResponseHeader(h) => number(facts.response_headers.and_then(|m| m.get(h.as_bytes()))),
    }
}

/// Calls `f` with the dimension values of this exchange (templates rendered, header
/// values masked as everywhere else), rendered into one buffer.
fn with_dimensions(dims: &[Dimension], facts: &Facts<'_>, gateway: &Gateway, f: impl FnOnce(&[&[u8]])) {
    let mut rendered = Vec::new();
    let mut ends = [0usize; MAX_DIMENSIONS];
    let n = dims.len().min(MAX_DIMENSIONS);
    for (d, end) in dims.iter().zip(ends.iter_mut()) {
        match &d.value {
            DimensionValue::Template(t) => trace::render_into(&mut rendered, t, facts),
            DimensionValue::Default(default) => rendered.extend_from_slice(default_value(*default, facts, gateway)),
        }
        *end = rendered.len();
    }
    let mut values: [&[u8]; MAX_DIMENSIONS] = [&[]; MAX_DIMENSIONS];
    let mut start = 0;
    for (value, &end) in values.iter_mut().zip(&ends).take(n) {
        *value = rendered.get(start..end).unwrap_or_default();
        start = end;
    }
    f(values.get(..n).unwrap_or_default());
}

fn default_value<'a>(d: DefaultDimension, facts: &Facts<'a>, gateway: &'a Gateway) -> &'a [u8] {
    match d {
        DefaultDimension::ApiId => facts.api.map_or(facts.route_name, |a| a.api.as_bytes()),
        DefaultDimension::OperationId => facts
            .api
            .and_then(|a| a.operation)
            .map_or(facts.route_name, str::as_bytes),
        DefaultDimension::Location => &gateway.location,
        DefaultDimension::GatewayId => &gateway.id,
    }
}

/// The .NET SDK's performance buckets (`DurationBucketizer`): upper bounds in ms.
const BUCKETS: [(u64, &str); 10] = [
    (250, "<250ms"),
    (500, "250ms-500ms"),
    (1_000, "500ms-1sec"),
    (3_000, "1sec-3sec"),
    (7_000, "3sec-7sec"),
    (15_000, "7sec-15sec"),
    (30_000, "15sec-30sec"),
    (60_000, "30sec-1min"),
    (120_000, "1min-2min"),
    (300_000, "2min-5min"),
];

/// `request/performanceBucket`, `dependency/performanceBucket` of a duration.
fn performance_bucket(nanos: u64) -> &'static [u8] {
    let ms = nanos / 1_000_000;
    BUCKETS
        .iter()
        .find(|(below, _)| ms < *below)
        .map_or(b">=5min", |(_, name)| name.as_bytes())
}

/// A status code's decimal digits, without allocating.
#[derive(Default)]
struct Digits([u8; 10]);

impl Digits {
    fn of(&mut self, n: u32) -> &[u8] {
        let mut i = self.0.len();
        let mut n = n;
        loop {
            i -= 1;
            if let Some(d) = self.0.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        self.0.get(i..).unwrap_or_default()
    }
}

fn truth(b: bool) -> &'static [u8] {
    if b {
        b"True"
    } else {
        b"False"
    }
}
