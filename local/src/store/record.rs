//! The fields of an envelope the query API filters and groups on, extracted once when the
//! item is stored (so a query over 100,000 items never parses JSON again).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::schema::parse_time;

/// The item types (`data.baseType`) the viewer knows; anything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Request,
    Dependency,
    Exception,
    Message,
    Metric,
    Availability,
    Event,
    PageView,
    Other,
}

/// Every known kind, in the order [`Kind::base_type`] lists them.
pub const KINDS: [Kind; 9] = [
    Kind::Request,
    Kind::Dependency,
    Kind::Exception,
    Kind::Message,
    Kind::Metric,
    Kind::Availability,
    Kind::Event,
    Kind::PageView,
    Kind::Other,
];

impl Kind {
    /// The kind of a `baseType` name.
    pub fn from_base_type(name: &str) -> Kind {
        KINDS
            .iter()
            .copied()
            .find(|k| k.base_type() == name)
            .unwrap_or(Kind::Other)
    }

    /// The `baseType` name (`Other` for unknown types).
    pub fn base_type(self) -> &'static str {
        match self {
            Kind::Request => "RequestData",
            Kind::Dependency => "RemoteDependencyData",
            Kind::Exception => "ExceptionData",
            Kind::Message => "MessageData",
            Kind::Metric => "MetricData",
            Kind::Availability => "AvailabilityData",
            Kind::Event => "EventData",
            Kind::PageView => "PageViewData",
            Kind::Other => "Other",
        }
    }
}

/// One MetricData item's first metric and its dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub namespace: String,
    pub value: f64,
    pub count: f64,
    pub min: f64,
    pub max: f64,
    /// `_MS.MetricId` of a standard (pre-aggregated) metric.
    pub metric_id: Option<String>,
    /// The properties, `_MS.*` ones left out.
    pub dimensions: BTreeMap<String, String>,
    /// `Request.Success` / `Dependency.Success` of a standard metric.
    pub success: Option<bool>,
}

/// The extracted fields of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    /// The envelope `time`, milliseconds since the epoch (0 if unparsable).
    pub time_ms: i64,
    pub name: String,
    pub operation_id: String,
    pub operation_name: String,
    pub id: String,
    pub parent_id: String,
    pub duration_ms: Option<f64>,
    pub result: Option<String>,
    pub success: Option<bool>,
    pub role: String,
    /// `sampleRate` (100 when absent).
    pub sample_rate: f64,
    pub severity: Option<String>,
    pub message: Option<String>,
    /// A dependency's target; an availability result's run location.
    pub target: Option<String>,
    pub metric: Option<Box<Metric>>,
    /// The item carries `_MS.ProcessedByMetricExtractors`: a pre-aggregated standard
    /// metric already counts it (the service does not count it again).
    pub pre_aggregated: bool,
}

impl Record {
    /// Extracts the fields of an envelope (missing fields are empty or `None`).
    pub fn of(item: &Value) -> Record {
        let data = item.pointer("/data/baseData").unwrap_or(&Value::Null);
        let kind = Kind::from_base_type(text(item.pointer("/data/baseType")));
        let tag = |name: &str| text(item.pointer("/tags").and_then(|t| t.get(name))).to_string();
        Record {
            kind,
            time_ms: parse_time(text(item.get("time"))).map_or(0, |s| (s * 1000.0).round() as i64),
            name: name_of(kind, data),
            operation_id: tag("ai.operation.id"),
            operation_name: tag("ai.operation.name"),
            id: text(data.get("id")).to_string(),
            parent_id: tag("ai.operation.parentId"),
            duration_ms: data.get("duration").and_then(Value::as_str).and_then(timespan_ms),
            result: opt_text(data.get("responseCode").or_else(|| data.get("resultCode"))),
            success: data.get("success").and_then(Value::as_bool),
            role: tag("ai.cloud.role"),
            sample_rate: item.get("sampleRate").and_then(Value::as_f64).unwrap_or(100.0),
            severity: opt_text(data.get("severityLevel")),
            message: message_of(kind, data),
            target: opt_text(data.get("target").or_else(|| data.get("runLocation"))),
            metric: metric_of(kind, data).map(Box::new),
            pre_aggregated: data
                .pointer("/properties/_MS.ProcessedByMetricExtractors")
                .is_some_and(Value::is_string),
        }
    }

    /// The sampling weight: how many items this one stands for (100 / sampleRate).
    pub fn weight(&self) -> f64 {
        if self.sample_rate > 0.0 && self.sample_rate <= 100.0 {
            100.0 / self.sample_rate
        } else {
            1.0
        }
    }
}

fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or("")
}

fn opt_text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn first_exception(data: &Value) -> Option<&Value> {
    data.get("exceptions").and_then(Value::as_array).and_then(|a| a.first())
}

fn first_metric(data: &Value) -> Option<&Value> {
    data.get("metrics").and_then(Value::as_array).and_then(|a| a.first())
}

fn name_of(kind: Kind, data: &Value) -> String {
    let v = match kind {
        Kind::Exception => first_exception(data).and_then(|e| e.get("typeName")),
        Kind::Message => data.get("message"),
        Kind::Metric => first_metric(data).and_then(|m| m.get("name")),
        _ => data.get("name"),
    };
    text(v).to_string()
}

fn message_of(kind: Kind, data: &Value) -> Option<String> {
    match kind {
        Kind::Exception => opt_text(first_exception(data).and_then(|e| e.get("message"))),
        Kind::Message | Kind::Availability => opt_text(data.get("message")),
        _ => None,
    }
}

fn metric_of(kind: Kind, data: &Value) -> Option<Metric> {
    if kind != Kind::Metric {
        return None;
    }
    let m = first_metric(data)?;
    let num = |name: &str| m.get(name).and_then(Value::as_f64);
    let value = num("value").unwrap_or(0.0);
    let props = data.get("properties").and_then(Value::as_object);
    let prop = |name: &str| props.and_then(|p| p.get(name)).and_then(Value::as_str);
    let dimensions = props
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with("_MS."))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    let success = prop("Request.Success").or_else(|| prop("Dependency.Success"));
    Some(Metric {
        name: text(m.get("name")).to_string(),
        namespace: text(m.get("ns")).to_string(),
        value,
        count: num("count").unwrap_or(1.0),
        min: num("min").unwrap_or(value),
        max: num("max").unwrap_or(value),
        metric_id: prop("_MS.MetricId").map(str::to_string),
        dimensions,
        success: success.map(|s| s.eq_ignore_ascii_case("true")),
    })
}

/// `[d.]hh:mm:ss[.fffffff]` in milliseconds.
pub fn timespan_ms(s: &str) -> Option<f64> {
    let mut parts = s.split(':');
    let (first, mm, ss) = (parts.next()?, parts.next()?, parts.next()?);
    let (days, hh) = match first.split_once('.') {
        Some((d, h)) => (d.parse::<f64>().ok()?, h),
        None => (0.0, first),
    };
    let (hh, mm, ss) = (
        hh.parse::<f64>().ok()?,
        mm.parse::<f64>().ok()?,
        ss.parse::<f64>().ok()?,
    );
    Some((((days * 24.0 + hh) * 60.0 + mm) * 60.0 + ss) * 1000.0)
}

/// An item's summary as the API lists it (`Summary` in docs/local.md).
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub seq: u64,
    pub time: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
    pub operation_id: &'a str,
    pub operation_name: &'a str,
    pub id: &'a str,
    pub parent_id: &'a str,
    pub duration_ms: Option<f64>,
    pub result: Option<&'a str>,
    pub success: Option<bool>,
    pub role: &'a str,
    pub sample_rate: f64,
    pub severity: Option<&'a str>,
    pub message: Option<&'a str>,
}

impl Record {
    /// The summary of this record stored under `seq`.
    pub fn summary(&self, seq: u64) -> Summary<'_> {
        Summary {
            seq,
            time: iso(self.time_ms),
            kind: self.kind.base_type(),
            name: &self.name,
            operation_id: &self.operation_id,
            operation_name: &self.operation_name,
            id: &self.id,
            parent_id: &self.parent_id,
            duration_ms: self.duration_ms,
            result: self.result.as_deref(),
            success: self.success,
            role: &self.role,
            sample_rate: self.sample_rate,
            severity: self.severity.as_deref(),
            message: self.message.as_deref(),
        }
    }
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso(ms: i64) -> String {
    let t = if ms >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_millis(ms.unsigned_abs())
    };
    crate::schema::format_time(t)
}

/// An ISO-8601 UTC time (as in the envelopes) in milliseconds since the epoch.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    parse_time(s).map(|secs| (secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_become_milliseconds() {
        assert_eq!(timespan_ms("00:00:01.5000000"), Some(1500.0));
        assert_eq!(timespan_ms("1.00:00:00"), Some(86_400_000.0));
        assert_eq!(timespan_ms("nope"), None);
    }

    #[test]
    fn iso_round_trips() {
        let ms = parse_iso_ms("2026-12-01T20:00:00.123Z").unwrap();
        assert_eq!(iso(ms), "2026-12-01T20:00:00.123Z");
    }
}
