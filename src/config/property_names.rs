//! Every property name of an item is unique: custom properties (static, from headers,
//! from templates) and trace metadata may not take a name the filter writes itself, nor
//! each other's. A static property may replace one of APIM's service dimensions.

use super::diagnostic::Diagnostic;
use super::reader::Fields;
use super::{err, excerpt, ConfigError, Problem};
use crate::telemetry::SERVICE_PROPERTIES;
use serde_json::Value;

/// Property names the filter writes itself; custom properties and trace metadata may not
/// reuse them (an item would carry the same key twice).
pub const RESERVED_PROPERTIES: &[&str] = &[
    "Request Id",
    "HTTP Method",
    "API Name",
    "API Revision",
    "API Type",
    "Operation Name",
    "Service Name",
    "Service Type",
    "Service ID",
    "Region",
    "Cache",
    "tracestate",
    "Backend Address",
    "Envoy Cluster",
    "Attempts",
    "Response Code",
    "Response Flags",
    "Response Code Details",
    "Source",
    "Capture-Truncated",
];

fn is_reserved(name: &str) -> bool {
    RESERVED_PROPERTIES.contains(&name)
        || name.starts_with("Request-")
        || name.starts_with("Response-")
        || name.starts_with("_MS.")
}

/// Every property name of an item must be unique.
pub(super) fn check(d: &Diagnostic, f: &Fields<'_>) -> Result<(), ConfigError> {
    let statics: Vec<String> = static_names(&d.properties_json);
    let mut seen: Vec<&str> = Vec::new();
    let named = statics
        .iter()
        .map(|n| ("properties", n.as_str()))
        .chain(
            d.header_properties
                .iter()
                .map(|(n, _)| ("header_properties", n.as_str())),
        )
        .chain(
            d.dynamic_properties
                .iter()
                .map(|(n, _)| ("dynamic_properties", n.as_str())),
        );
    for (field, name) in named {
        // A static property may replace a service dimension (`"Region": "West Europe"`).
        let replaces_service = field == "properties" && SERVICE_PROPERTIES.contains(&name);
        if is_reserved(name) && !replaces_service {
            return Err(err(
                format!("{}.{}", f.path(field), excerpt(name)),
                Problem::Invalid(reserved_message()),
            ));
        }
        if seen.contains(&name) {
            return Err(err(
                format!("{}.{}", f.path(field), excerpt(name)),
                Problem::Invalid("is already a custom property's name".into()),
            ));
        }
        seen.push(name);
    }
    for (i, rule) in d.traces.iter().enumerate() {
        for (name, _) in &rule.metadata {
            if is_reserved(name) || seen.contains(&name.as_str()) {
                return Err(err(
                    format!("{}[{i}].metadata.{}", f.path("traces"), excerpt(name)),
                    Problem::Invalid(format!("{}, or a custom property's name", reserved_message())),
                ));
            }
        }
    }
    Ok(())
}

fn reserved_message() -> String {
    format!(
        "is a name the filter uses itself ({}, Request-*, Response-*)",
        RESERVED_PROPERTIES.join(", ")
    )
}

/// The names in a pre-rendered `"a":"1","b":"2"` fragment.
fn static_names(json: &[u8]) -> Vec<String> {
    let wrapped = [b"{".as_slice(), json, b"}"].concat();
    serde_json::from_slice::<serde_json::Map<String, Value>>(&wrapped)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
