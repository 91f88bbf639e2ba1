//! What an item must be for the ingestion service to take it: at most 64 KB, JSON, the
//! envelope and the `baseData` fields of its type (the published schema, as
//! `tests/harness`'s validator reads it: required fields present and not empty, types,
//! lengths in characters, no unknown fields), an operation id valid for the protocol, and
//! a trace's message not empty.

use crate::correlation::{is_id, is_lower_hex};
use crate::exchanges::TRACE_MESSAGE_NOT_EMPTY;
use crate::runner::{cut, show, Findings};
use envoy_appinsights::correlation::Protocol;
use serde_json::Value;

/// What a field of an item must hold (the published schema, as `tests/harness`'s
/// validator reads it).
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A string of at most this many characters (required ones must not be empty).
    Str(usize),
    Bool,
    Int,
    SampleRate,
    Time,
    TimeSpan,
    Tags,
    Data,
    Properties,
    Measurements,
    Severity,
    Exceptions,
    /// A finite number.
    Number,
    /// MetricData's `metrics`: exactly one data point.
    DataPoints,
}

/// (name, kind, required)
type Fields = &'static [(&'static str, Kind, bool)];

/// The envelope: name, time, sampling, key, tags, data.
const ENVELOPE: Fields = &[
    ("name", Kind::Str(1024), true),
    ("time", Kind::Time, true),
    ("sampleRate", Kind::SampleRate, false),
    ("iKey", Kind::Str(40), false),
    ("tags", Kind::Tags, false),
    ("data", Kind::Data, true),
];

/// `RequestData`.
const REQUEST: Fields = &[
    ("ver", Kind::Int, true),
    ("id", Kind::Str(128), true),
    ("duration", Kind::TimeSpan, true),
    ("responseCode", Kind::Str(1024), true),
    ("success", Kind::Bool, true),
    ("source", Kind::Str(1024), false),
    ("name", Kind::Str(1024), false),
    ("url", Kind::Str(2048), false),
    ("properties", Kind::Properties, false),
    ("measurements", Kind::Measurements, false),
];

/// `MetricData`.
const METRIC: Fields = &[
    ("ver", Kind::Int, true),
    ("metrics", Kind::DataPoints, true),
    ("properties", Kind::Properties, false),
];

/// One data point of `MetricData`.
const DATA_POINT: Fields = &[
    ("name", Kind::Str(1024), true),
    ("ns", Kind::Str(256), false),
    ("kind", Kind::Str(16), false),
    ("value", Kind::Number, true),
    ("count", Kind::Int, false),
    ("min", Kind::Number, false),
    ("max", Kind::Number, false),
    ("stdDev", Kind::Number, false),
];

/// `RemoteDependencyData`.
const DEPENDENCY: Fields = &[
    ("ver", Kind::Int, true),
    ("name", Kind::Str(1024), true),
    ("id", Kind::Str(128), false),
    ("resultCode", Kind::Str(1024), false),
    ("duration", Kind::TimeSpan, true),
    ("success", Kind::Bool, false),
    ("data", Kind::Str(8192), false),
    ("type", Kind::Str(1024), false),
    ("target", Kind::Str(1024), false),
    ("properties", Kind::Properties, false),
    ("measurements", Kind::Measurements, false),
];

/// `ExceptionData`.
const EXCEPTION: Fields = &[
    ("ver", Kind::Int, true),
    ("exceptions", Kind::Exceptions, true),
    ("severityLevel", Kind::Severity, false),
    ("problemId", Kind::Str(1024), false),
    ("properties", Kind::Properties, false),
    ("measurements", Kind::Measurements, false),
];

/// One of `ExceptionData.exceptions`.
const EXCEPTION_DETAILS: Fields = &[
    ("id", Kind::Int, false),
    ("outerId", Kind::Int, false),
    ("typeName", Kind::Str(1024), true),
    ("message", Kind::Str(32_768), true),
    ("hasFullStack", Kind::Bool, false),
    ("stack", Kind::Str(32_768), false),
];

/// `message` is required; that it is not empty is checked on its own
/// ([`TRACE_MESSAGE_NOT_EMPTY`]), so that property has its own test.
const MESSAGE: Fields = &[
    ("ver", Kind::Int, true),
    ("message", Kind::Str(32_768), false),
    ("severityLevel", Kind::Severity, false),
    ("properties", Kind::Properties, false),
    ("measurements", Kind::Measurements, false),
];

/// The context tags the filter writes, with their maximum lengths.
const TAGS: &[(&str, usize)] = &[
    ("ai.operation.id", 128),
    ("ai.operation.name", 1024),
    ("ai.operation.parentId", 128),
    ("ai.cloud.role", 256),
    ("ai.cloud.roleInstance", 256),
    ("ai.internal.sdkVersion", 64),
    ("ai.location.ip", 46),
];

/// Exactly `n` ASCII digits.
pub fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DDTHH:MM:SS[.fffffff]Z`
fn is_time(s: &str) -> bool {
    let Some(s) = s.strip_suffix('Z') else { return false };
    let (whole, fraction) = s.split_once('.').unwrap_or((s, "1"));
    let b = whole.as_bytes();
    whole.len() == 19
        && (b[4], b[7], b[10], b[13], b[16]) == (b'-', b'-', b'T', b':', b':')
        && [
            &whole[..4],
            &whole[5..7],
            &whole[8..10],
            &whole[11..13],
            &whole[14..16],
            &whole[17..],
        ]
        .iter()
        .all(|p| p.bytes().all(|c| c.is_ascii_digit()))
        && (1..=7).contains(&fraction.len())
        && fraction.bytes().all(|c| c.is_ascii_digit())
}

/// `[d.]hh:mm:ss[.fffffff]`
fn is_timespan(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts[..] else { return false };
    let h = h.rsplit_once('.').map_or(h, |(days, h)| {
        if days.bytes().all(|b| b.is_ascii_digit()) && !days.is_empty() {
            h
        } else {
            "x"
        }
    });
    let (sec, fraction) = sec.split_once('.').unwrap_or((sec, "0"));
    let below = |p: &str, n: u32| digits(p, 2) && p.parse::<u32>().is_ok_and(|v| v < n);
    below(h, 24)
        && below(m, 60)
        && below(sec, 60)
        && (1..=7).contains(&fraction.len())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// Checks an object against a field table; problems are `path: what`.
fn check_fields(v: &Value, fields: Fields, path: &str, problems: &mut Vec<String>) {
    let Some(map) = v.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    for key in map.keys().filter(|k| !fields.iter().any(|(name, _, _)| name == k)) {
        problems.push(format!("{path}.{key}: unknown field"));
    }
    for &(name, kind, required) in fields {
        let p = format!("{path}.{name}");
        match map.get(name) {
            None if required => problems.push(format!("{p}: required field missing")),
            None => {}
            Some(v) => check_kind(v, kind, required, &p, problems),
        }
    }
}

/// Checks one field's value against its kind; problems are `path: what`.
fn check_kind(v: &Value, kind: Kind, required: bool, p: &str, problems: &mut Vec<String>) {
    let string_within = |max: usize| v.as_str().is_some_and(|s| s.chars().count() <= max);
    let ok = match kind {
        Kind::Str(max) => {
            if required && v.as_str() == Some("") {
                problems.push(format!("{p}: required but empty"));
            }
            string_within(max)
        }
        Kind::Bool => v.is_boolean(),
        Kind::Int => v.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        Kind::SampleRate => v.as_f64().is_some_and(|r| r > 0.0 && r <= 100.0),
        Kind::Time => v.as_str().is_some_and(is_time),
        Kind::TimeSpan => v.as_str().is_some_and(is_timespan),
        Kind::Severity => v
            .as_str()
            .is_some_and(|s| ["Verbose", "Information", "Warning", "Error", "Critical"].contains(&s)),
        Kind::Tags => v.as_object().is_some_and(|m| {
            m.iter().all(|(k, v)| {
                let max = TAGS.iter().find(|(t, _)| t == k).map(|(_, max)| *max);
                max.is_some_and(|max| v.as_str().is_some_and(|s| s.chars().count() <= max))
            })
        }),
        Kind::Data => {
            let base = v["baseType"].as_str().unwrap_or_default();
            let table = match base {
                "RequestData" => REQUEST,
                "RemoteDependencyData" => DEPENDENCY,
                "ExceptionData" => EXCEPTION,
                "MessageData" => MESSAGE,
                "MetricData" => METRIC,
                _ => return problems.push(format!("{p}.baseType: {base:?} is not a type the filter sends")),
            };
            check_fields(&v["baseData"], table, &format!("{p}.baseData"), problems);
            v.as_object().is_some_and(|m| m.len() == 2)
        }
        Kind::Properties => v.as_object().is_some_and(|m| {
            m.iter().all(|(k, v)| {
                (1..=150).contains(&k.chars().count()) && v.as_str().is_some_and(|s| s.chars().count() <= 8192)
            })
        }),
        Kind::Measurements => v.as_object().is_some_and(|m| {
            m.iter()
                .all(|(k, v)| (1..=150).contains(&k.chars().count()) && v.as_f64().is_some_and(f64::is_finite))
        }),
        Kind::Number => v.as_f64().is_some_and(f64::is_finite),
        Kind::DataPoints => {
            let list = v.as_array().map(Vec::as_slice).unwrap_or_default();
            for (i, point) in list.iter().enumerate() {
                check_fields(point, DATA_POINT, &format!("{p}[{i}]"), problems);
            }
            list.len() == 1
        }
        Kind::Exceptions => {
            let list = v.as_array().map(Vec::as_slice).unwrap_or_default();
            for (i, e) in list.iter().enumerate() {
                check_fields(e, EXCEPTION_DETAILS, &format!("{p}[{i}]"), problems);
            }
            !list.is_empty()
        }
    };
    if !ok {
        problems.push(format!("{p}: {} is not {kind:?}", cut(&v.to_string(), 200)));
    }
}

/// One NDJSON line: within 64 KB, JSON, the schema's fields, ids valid for the protocol,
/// a trace's message not empty.
pub fn check_item(f: &mut Findings, line: &[u8], protocol: Protocol) {
    f.check("an item is at most 64 KB", line.len() <= 65_536, || {
        format!("{} bytes: {}", line.len(), show(&line[..line.len().min(2000)]))
    });
    let v: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return f.check("an item is JSON", false, || format!("{e}: {}", show(line))),
    };
    let mut problems = Vec::new();
    check_fields(&v, ENVELOPE, "", &mut problems);
    f.check(
        "an item has the fields its baseType requires, within their limits",
        problems.is_empty(),
        || format!("{problems:?} in {}", cut(&v.to_string(), 2000)),
    );
    if v["data"]["baseType"] == "MetricData" {
        // Aggregates belong to no operation.
        f.note("metrics");
        return;
    }
    let op = v["tags"]["ai.operation.id"].as_str().unwrap_or_default().as_bytes();
    let valid = match protocol {
        Protocol::W3C | Protocol::None => is_lower_hex(op, 32),
        Protocol::Legacy => is_id(op),
    };
    f.check("an item's operation id is valid for the protocol", valid, || show(op));
    if v["data"]["baseType"] == "MessageData" {
        f.note("traces");
        let message = v["data"]["baseData"]["message"].as_str();
        // Broken on main as of 3f2f3f8 (see `exchanges_never_write_an_empty_trace_message`):
        // checked on its own so that every other property keeps guarding CI meanwhile.
        f.check(TRACE_MESSAGE_NOT_EMPTY, message.is_some_and(|m| !m.is_empty()), || {
            cut(&v.to_string(), 2000)
        });
    }
}
