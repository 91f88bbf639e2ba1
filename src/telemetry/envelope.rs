//! The envelope around every item: name, time, sampling, iKey, context tags, then `data`.
//!
//! [`begin`] writes everything up to the opening of `baseData`; the item writer adds its
//! fields; [`end`] closes the envelope and terminates the NDJSON line.

use super::{limits, Identity, Operation};
use crate::json::{push_bytes, push_f64, push_key};
use crate::timefmt::push_iso8601;

/// Item kinds: envelope name suffix and `baseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
}

impl Kind {
    fn envelope_name(self) -> &'static str {
        match self {
            Kind::Request => "Microsoft.ApplicationInsights.Request",
        }
    }

    fn base_type(self) -> &'static str {
        match self {
            Kind::Request => "RequestData",
        }
    }
}

/// Per-item values of the envelope that are not in [`Identity`].
pub struct Head<'a> {
    pub kind: Kind,
    pub time_unix_nanos: u64,
    pub operation: &'a Operation,
    /// `ai.operation.name`.
    pub operation_name: &'a [u8],
    /// `ai.location.ip`, only when client IPs are logged.
    pub client_ip: Option<&'a [u8]>,
}

/// Writes `{"name":…,"time":…,…,"data":{"baseType":…,"baseData":{"ver":2` (no closing).
pub fn begin(out: &mut Vec<u8>, who: &Identity, head: &Head<'_>) {
    out.extend_from_slice(b"{\"name\":\"");
    out.extend_from_slice(head.kind.envelope_name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    push_iso8601(out, head.time_unix_nanos);
    out.extend_from_slice(b"\",\"sampleRate\":");
    push_f64(out, head.operation.sample_rate);
    out.push(b',');
    out.extend_from_slice(&who.ikey_field);
    out.extend_from_slice(b"\"tags\":{\"ai.operation.id\":\"");
    let trace_hex = head.operation.trace_id.to_hex();
    out.extend_from_slice(&trace_hex);
    out.extend_from_slice(b"\",\"ai.operation.parentId\":\"");
    match head.operation.parent {
        Some(parent) => out.extend_from_slice(&parent.to_hex()),
        // A request that starts an operation has the operation as its parent, as the
        // classic SDKs report it (`operation_ParentId == operation_Id` marks a root).
        None => out.extend_from_slice(&trace_hex),
    }
    out.extend_from_slice(b"\",");
    push_key(out, "ai.operation.name");
    push_bytes(out, head.operation_name, limits::OPERATION_NAME);
    out.push(b',');
    out.extend_from_slice(&who.role_tags);
    if let Some(ip) = head.client_ip {
        out.push(b',');
        push_key(out, "ai.location.ip");
        push_bytes(out, ip, limits::LOCATION_IP);
    }
    out.extend_from_slice(b"},\"data\":{\"baseType\":\"");
    out.extend_from_slice(head.kind.base_type().as_bytes());
    out.extend_from_slice(b"\",\"baseData\":{\"ver\":2");
}

/// Closes `baseData`, `data` and the envelope, and ends the NDJSON line.
pub fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"}}}\n");
}

/// Writes a `"properties"` or `"measurements"` object member by member, with commas.
pub struct Members<'a> {
    out: &'a mut Vec<u8>,
    open: bool,
    key: &'static str,
}

impl<'a> Members<'a> {
    /// Nothing is written until the first member, so an empty map costs nothing.
    pub fn new(out: &'a mut Vec<u8>, key: &'static str) -> Self {
        Members { out, open: false, key }
    }

    fn next(&mut self, name: &str) {
        if self.open {
            self.out.push(b',');
        } else {
            self.out.push(b',');
            push_key(self.out, self.key);
            self.out.push(b'{');
            self.open = true;
        }
        crate::json::push_str(self.out, name, limits::PROPERTY_KEY);
        self.out.push(b':');
    }

    /// A string property (value lossily decoded and cut to the schema limit).
    pub fn string(&mut self, name: &str, value: &[u8]) {
        self.next(name);
        push_bytes(self.out, value, limits::PROPERTY_VALUE);
    }

    /// A property whose value is already a JSON string.
    pub fn raw_string(&mut self, name: &str, json_string: &[u8]) {
        self.next(name);
        self.out.extend_from_slice(json_string);
    }

    /// A measurement.
    pub fn number(&mut self, name: &str, value: f64) {
        self.next(name);
        push_f64(self.out, value);
    }

    pub fn finish(self) {
        if self.open {
            self.out.push(b'}');
        }
    }
}
