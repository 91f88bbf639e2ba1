//! Minimal valid envelopes of every supported type, for tests that need a correct
//! item to send (or to break one field at a time).

use std::time::SystemTime;

use serde_json::{json, Value};

use super::format_time;

/// The `baseType`s the schema knows.
pub const BASE_TYPES: [&str; 7] = [
    "RequestData",
    "RemoteDependencyData",
    "ExceptionData",
    "MessageData",
    "MetricData",
    "EventData",
    "AvailabilityData",
];

/// A minimal valid envelope of `base_type` stamped with `time`, or `None` for an
/// unknown type. The iKey is `00000000-0000-0000-0000-000000000000`.
pub fn example_envelope(base_type: &str, time: SystemTime) -> Option<Value> {
    let base_data = match base_type {
        "RequestData" => {
            json!({"ver": 2, "id": "b7ad6b7169203331", "duration": "00:00:00.1234567", "responseCode": "200", "success": true})
        }
        "RemoteDependencyData" => json!({"ver": 2, "name": "GET /x", "duration": "00:00:01"}),
        "ExceptionData" => json!({"ver": 2, "exceptions": [{"typeName": "Error", "message": "boom"}]}),
        "MessageData" => json!({"ver": 2, "message": "hello"}),
        "MetricData" => json!({"ver": 2, "metrics": [{"name": "m", "value": 1.5}]}),
        "EventData" => json!({"ver": 2, "name": "evt"}),
        "AvailabilityData" => {
            json!({"ver": 2, "id": "a1", "name": "ping", "duration": "0.00:00:01.000", "success": true})
        }
        _ => return None,
    };
    Some(json!({
        "name": format!("Microsoft.ApplicationInsights.{}", base_type.trim_end_matches("Data")),
        "time": format_time(time),
        "iKey": "00000000-0000-0000-0000-000000000000",
        "data": {"baseType": base_type, "baseData": base_data},
    }))
}
