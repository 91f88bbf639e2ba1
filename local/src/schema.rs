//! Strict validation of one Application Insights envelope against the published schema.
//!
//! The local ingestion endpoint runs every item the filter sends through
//! [`validate_envelope`]. The rules follow the Bond/Swagger schema summarised in
//! `appinsights-ingestion.md` (§2 envelope and tags, §3 data types): required fields,
//! JSON types, maximum lengths in characters, the `time` acceptance window and the
//! TimeSpan format. It is stricter than the real service in one way on purpose:
//! unknown fields and unknown context tags are errors, so a typo in the filter fails
//! a test instead of being silently dropped by Azure.
//!
//! Layout: this file has the entry points and the generic table-driven checker;
//! `types.rs` holds the field tables per type; `formats.rs` the string formats
//! (ISO-8601 time, TimeSpan); `examples.rs` a valid envelope of each type.

// Server code paths handle untrusted network input: no panics (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

mod examples;
mod formats;
mod types;

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

pub use examples::{example_envelope, BASE_TYPES};
pub use formats::{format_time, is_timespan, parse_time};
use types::{Field, Kind};

/// Largest serialized item (one NDJSON line) the service accepts, in bytes.
pub const MAX_ITEM_BYTES: usize = 65_536;
/// Oldest accepted `time`: 48 hours before now.
pub const MAX_AGE_SECS: f64 = 48.0 * 3600.0;
/// Latest accepted `time`: 2 hours after now.
pub const MAX_FUTURE_SECS: f64 = 2.0 * 3600.0;

/// Checks one envelope; the error names the field and the reason, e.g.
/// `data.baseData.duration: "1:2" is not a TimeSpan`.
pub fn validate_envelope(v: &Value, now: SystemTime) -> Result<(), String> {
    let ctx = Ctx { now: unix_secs(now) };
    ctx.object(v, types::ENVELOPE, "")
}

/// Checks one raw NDJSON line: size limit, JSON syntax, then [`validate_envelope`].
pub fn validate_line(line: &[u8], now: SystemTime) -> Result<Value, String> {
    if line.len() > MAX_ITEM_BYTES {
        return Err(format!(
            "item is {} bytes, over the {MAX_ITEM_BYTES}-byte limit",
            line.len()
        ));
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    validate_envelope(&v, now)?;
    Ok(v)
}

fn unix_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Validation context: the clock used for the `time` window.
struct Ctx {
    now: f64,
}

impl Ctx {
    /// Checks an object against a field table: no unknown keys, required keys present.
    fn object(&self, v: &Value, fields: &[Field], path: &str) -> Result<(), String> {
        let map = as_object(v, path)?;
        if let Some(key) = map.keys().find(|k| !fields.iter().any(|f| f.name == k.as_str())) {
            return Err(format!("{}: unknown field", join(path, key)));
        }
        for f in fields {
            let p = join(path, f.name);
            match map.get(f.name) {
                None if f.required => return Err(format!("{p}: required field missing")),
                None => {}
                Some(value) => self.value(value, f, &p)?,
            }
        }
        Ok(())
    }

    fn value(&self, v: &Value, f: &Field, p: &str) -> Result<(), String> {
        if v.is_null() {
            return Err(format!("{p}: must not be null"));
        }
        match f.kind {
            Kind::Str(max) => string(v, max, f.required, p).map(|_| ()),
            Kind::Int32 => int(v, i32::MIN.into(), i32::MAX.into(), p),
            Kind::Int64 => int(v, i64::MIN, i64::MAX, p),
            Kind::Bool => v.as_bool().map(|_| ()).ok_or_else(|| expected(p, "a boolean", v)),
            Kind::Number => number(v, p).map(|_| ()),
            Kind::SampleRate => sample_rate(v, p),
            Kind::Time => self.time(v, p),
            Kind::TimeSpan => timespan(v, p),
            Kind::Tags => tags(v, p),
            Kind::Properties => properties(v, p),
            Kind::Measurements => measurements(v, p),
            Kind::Severity => enumeration(v, types::SEVERITY_LEVELS, p),
            Kind::DataPointType => enumeration(v, types::DATA_POINT_KINDS, p),
            Kind::Data => self.data(v, p),
            Kind::AnyObject => as_object(v, p).map(|_| ()),
            Kind::List { of, min, max } => self.list(v, of, min, max, p),
        }
    }

    fn list(&self, v: &Value, of: &[Field], min: usize, max: usize, p: &str) -> Result<(), String> {
        let items = v.as_array().ok_or_else(|| expected(p, "an array", v))?;
        if items.len() < min || items.len() > max {
            let want = if min == max {
                format!("exactly {min}")
            } else {
                format!("at least {min}")
            };
            return Err(format!("{p}: has {} elements, expected {want}", items.len()));
        }
        items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| self.object(item, of, &format!("{p}[{i}]")))
    }

    /// `data`: `{baseType, baseData}`, with baseData checked against baseType's table.
    fn data(&self, v: &Value, p: &str) -> Result<(), String> {
        self.object(v, types::DATA, p)?;
        let base_type = v.get("baseType").and_then(Value::as_str).unwrap_or_default();
        let fields = types::base_data_fields(base_type)
            .ok_or_else(|| format!("{p}.baseType: unknown baseType {}", quote(base_type)))?;
        let base_data = v.get("baseData").unwrap_or(&Value::Null);
        self.object(base_data, fields, &join(p, "baseData"))
    }

    fn time(&self, v: &Value, p: &str) -> Result<(), String> {
        let s = string(v, 64, true, p)?;
        let t = parse_time(s).ok_or_else(|| format!("{p}: {} is not an ISO-8601 UTC time ending in Z", quote(s)))?;
        if t < self.now - MAX_AGE_SECS {
            return Err(format!("{p}: {} is more than 48 hours in the past", quote(s)));
        }
        if t > self.now + MAX_FUTURE_SECS {
            return Err(format!("{p}: {} is more than 2 hours in the future", quote(s)));
        }
        Ok(())
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    let shown = if path.is_empty() { "envelope" } else { path };
    v.as_object().ok_or_else(|| expected(shown, "an object", v))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `path["key"]`, with long keys shortened so messages stay readable.
fn key_path(path: &str, key: &str) -> String {
    format!("{path}[{}]", quote(key))
}

/// A JSON-quoted string, cut after 60 characters.
fn quote(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    let suffix = if short.len() < s.len() { "…" } else { "" };
    format!("{}{suffix}", Value::String(short))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(p: &str, what: &str, v: &Value) -> String {
    format!("{p}: expected {what}, got {}", type_name(v))
}

/// A string of at most `max` characters (Unicode scalar values); non-empty if required.
fn string<'a>(v: &'a Value, max: usize, required: bool, p: &str) -> Result<&'a str, String> {
    let s = v.as_str().ok_or_else(|| expected(p, "a string", v))?;
    let len = s.chars().count();
    if len > max {
        return Err(format!("{p}: length {len} exceeds the maximum of {max} characters"));
    }
    if required && s.is_empty() {
        return Err(format!("{p}: required but empty"));
    }
    Ok(s)
}

fn int(v: &Value, min: i64, max: i64, p: &str) -> Result<(), String> {
    match v.as_i64() {
        Some(n) if n >= min && n <= max => Ok(()),
        Some(n) => Err(format!("{p}: {n} is out of range")),
        None => Err(expected(p, "an integer", v)),
    }
}

fn number(v: &Value, p: &str) -> Result<f64, String> {
    match v.as_f64() {
        Some(n) if n.is_finite() => Ok(n),
        _ => Err(expected(p, "a finite number", v)),
    }
}

fn sample_rate(v: &Value, p: &str) -> Result<(), String> {
    let n = number(v, p)?;
    if n > 0.0 && n <= 100.0 {
        Ok(())
    } else {
        Err(format!("{p}: {n} is not in (0, 100]"))
    }
}

fn timespan(v: &Value, p: &str) -> Result<(), String> {
    let s = v.as_str().ok_or_else(|| expected(p, "a TimeSpan string", v))?;
    if is_timespan(s) {
        Ok(())
    } else {
        Err(format!("{p}: {} is not a TimeSpan", quote(s)))
    }
}

fn tags(v: &Value, p: &str) -> Result<(), String> {
    for (key, value) in as_object(v, p)? {
        let kp = key_path(p, key);
        let max = types::tag_max_len(key).ok_or_else(|| format!("{kp}: unknown context tag"))?;
        string(value, max, false, &kp)?;
    }
    Ok(())
}

/// Custom dimension names: 1 to 150 characters.
fn dimension_key(key: &str, kp: &str) -> Result<(), String> {
    let len = key.chars().count();
    if (1..=150).contains(&len) {
        Ok(())
    } else {
        Err(format!("{kp}: key length {len} is not between 1 and 150 characters"))
    }
}

fn properties(v: &Value, p: &str) -> Result<(), String> {
    for (key, value) in as_object(v, p)? {
        let kp = key_path(p, key);
        dimension_key(key, &kp)?;
        string(value, 8192, false, &kp)?;
    }
    Ok(())
}

fn measurements(v: &Value, p: &str) -> Result<(), String> {
    for (key, value) in as_object(v, p)? {
        let kp = key_path(p, key);
        dimension_key(key, &kp)?;
        number(value, &kp)?;
    }
    Ok(())
}

/// An enum sent either by name (.NET) or by zero-based number (JS/Node).
fn enumeration(v: &Value, names: &[&str], p: &str) -> Result<(), String> {
    let ok = match v {
        Value::String(s) => names.contains(&s.as_str()),
        Value::Number(n) => n.as_u64().is_some_and(|i| (i as usize) < names.len()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p}: {v} is not one of {names:?} or 0..={}",
            names.len().saturating_sub(1)
        ))
    }
}

#[cfg(test)]
mod tests;
