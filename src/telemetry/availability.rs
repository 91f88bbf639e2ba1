//! The AvailabilityData item: the result of one run of a built-in availability test
//! ([`crate::pipeline::availability`]), as the Availability pane shows it, grouped by
//! `name` and `runLocation`, and as the `availabilityResults/*` metrics count it.
//!
//! Its id is also its operation id (`ai.operation.id`), and the probe carried it to the
//! target in a sampled `traceparent`, so a backend that records its requests shows them
//! in the result's end-to-end transaction. Field limits are the schema's; the id stays
//! within the stricter Bond limit of 64.

use super::{limits, Sender};
use crate::json::{push_key, push_str};
use crate::timefmt::{push_iso8601, push_timespan};

/// Longest `message` and `runLocation` (the schema's limits).
pub const MAX_MESSAGE: usize = 8192;
pub const MAX_RUN_LOCATION: usize = 1024;

/// One test result.
#[derive(Debug, Clone, Copy)]
pub struct TestResult<'a> {
    /// 32 lowercase hex digits: the item's `id` and its operation id.
    pub id: &'a [u8; 32],
    /// The test's name.
    pub name: &'a str,
    /// When the test started, unix nanoseconds.
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub success: bool,
    pub run_location: &'a str,
    /// Why it failed (or that it passed).
    pub message: &'a str,
    /// Custom properties (what was probed, what came back).
    pub properties: &'a [(&'a str, &'a str)],
}

/// Appends one AvailabilityData envelope (one NDJSON line).
pub fn write(out: &mut Vec<u8>, who: &Sender, r: &TestResult<'_>) {
    // The id is lowercase hex: no escaping.
    let id = r.id.as_slice();
    out.extend_from_slice(b"{\"name\":\"Microsoft.ApplicationInsights.Availability\",\"time\":\"");
    push_iso8601(out, r.start_unix_nanos);
    out.extend_from_slice(b"\",\"sampleRate\":100,");
    out.extend_from_slice(&who.ikey_field);
    out.extend_from_slice(b"\"tags\":{\"ai.operation.id\":\"");
    out.extend_from_slice(id);
    out.extend_from_slice(b"\",");
    push_key(out, "ai.operation.name");
    push_str(out, r.name, limits::OPERATION_NAME);
    out.push(b',');
    out.extend_from_slice(&who.role_tags);
    out.extend_from_slice(b"},\"data\":{\"baseType\":\"AvailabilityData\",\"baseData\":{\"ver\":2,\"id\":\"");
    out.extend_from_slice(id);
    out.extend_from_slice(b"\",");
    push_key(out, "name");
    push_str(out, r.name, limits::NAME);
    out.extend_from_slice(b",\"duration\":\"");
    push_timespan(out, r.duration_nanos);
    out.extend_from_slice(if r.success {
        b"\",\"success\":true,"
    } else {
        b"\",\"success\":false,"
    });
    push_key(out, "runLocation");
    push_str(out, r.run_location, MAX_RUN_LOCATION);
    out.push(b',');
    push_key(out, "message");
    push_str(out, r.message, MAX_MESSAGE);
    let mut p = super::envelope::Members::new(out, "properties");
    for (name, value) in r.properties {
        p.string(name, value.as_bytes());
    }
    p.finish();
    super::envelope::end(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn written(r: &TestResult<'_>) -> Value {
        let who = Sender::new("00000000-0000-0000-0000-000000000001", "edge-gw", "edge-gw-1");
        let mut out = Vec::new();
        write(&mut out, &who, r);
        assert_eq!(out.last(), Some(&b'\n'), "one NDJSON line");
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).unwrap()
    }

    const ID: &[u8; 32] = b"0af7651916cd43dd8448eb211c80319c";

    fn result<'a>(message: &'a str, properties: &'a [(&'a str, &'a str)]) -> TestResult<'a> {
        TestResult {
            id: ID,
            name: "orders health",
            start_unix_nanos: 1_795_000_000_123_456_789,
            duration_nanos: 1_234_567_800,
            success: false,
            run_location: "edge-gw-1",
            message,
            properties,
        }
    }

    #[test]
    fn a_result_is_an_availability_envelope_with_every_field() {
        let props = [("Envoy Cluster", "orders"), ("Status", "503")];
        let item = written(&result("expected status 200, got 503", &props));
        assert_eq!(item["name"], "Microsoft.ApplicationInsights.Availability");
        assert_eq!(item["time"], "2026-11-18T11:06:40.123456Z");
        assert_eq!(item["iKey"], "00000000-0000-0000-0000-000000000001");
        let tags = &item["tags"];
        assert_eq!(tags["ai.operation.id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(tags["ai.operation.name"], "orders health");
        assert_eq!(tags["ai.cloud.role"], "edge-gw");
        assert_eq!(tags["ai.cloud.roleInstance"], "edge-gw-1");
        assert_eq!(item["data"]["baseType"], "AvailabilityData");
        let d = &item["data"]["baseData"];
        assert_eq!(d["ver"], 2);
        assert_eq!(d["id"], tags["ai.operation.id"]);
        assert_eq!(d["name"], "orders health");
        assert_eq!(d["duration"], "00:00:01.2345678");
        assert_eq!(d["success"], false);
        assert_eq!(d["runLocation"], "edge-gw-1");
        assert_eq!(d["message"], "expected status 200, got 503");
        assert_eq!(d["properties"]["Envoy Cluster"], "orders");
        assert_eq!(d["properties"]["Status"], "503");
    }

    #[test]
    fn strings_are_escaped_and_cut_to_the_schema_limits() {
        let long = "m\"\n".repeat(5000);
        let location = "l".repeat(2000);
        let value = "v".repeat(9000);
        let props = [("key \"quoted\"", value.as_str())];
        let mut r = result(&long, &props);
        r.run_location = &location;
        r.success = true;
        let item = written(&r);
        let d = &item["data"]["baseData"];
        assert_eq!(d["success"], true);
        assert_eq!(d["message"].as_str().unwrap().chars().count(), MAX_MESSAGE);
        assert!(d["message"].as_str().unwrap().starts_with("m\"\nm"));
        assert_eq!(d["runLocation"].as_str().unwrap().len(), MAX_RUN_LOCATION);
        assert_eq!(d["properties"]["key \"quoted\""].as_str().unwrap().len(), 8192);
        let empty = written(&result("", &[]));
        assert!(empty["data"]["baseData"].get("properties").is_none(), "no empty map");
    }
}
