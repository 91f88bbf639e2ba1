//! The envelope around every item: name, time, sampling, iKey, context tags, then `data`.
//!
//! [`begin`] writes everything up to the opening of `baseData`; the item writer adds its
//! fields; [`end`] closes the envelope and terminates the NDJSON line.

use super::{limits, Facts, Sender};
use crate::json::{push_bytes, push_f64, push_key};
use crate::timefmt::push_iso8601;

/// Item kinds: envelope name and `baseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Dependency,
    Exception,
    Trace,
}

impl Kind {
    fn envelope_name(self) -> &'static str {
        match self {
            Kind::Request => "Microsoft.ApplicationInsights.Request",
            Kind::Dependency => "Microsoft.ApplicationInsights.RemoteDependency",
            Kind::Exception => "Microsoft.ApplicationInsights.Exception",
            Kind::Trace => "Microsoft.ApplicationInsights.Message",
        }
    }

    fn base_type(self) -> &'static str {
        match self {
            Kind::Request => "RequestData",
            Kind::Dependency => "RemoteDependencyData",
            Kind::Exception => "ExceptionData",
            Kind::Trace => "MessageData",
        }
    }
}

/// Per-item envelope values.
pub struct Head<'a> {
    pub kind: Kind,
    pub time_unix_nanos: u64,
    /// `ai.operation.parentId`.
    pub parent_id: &'a [u8],
    pub sample_rate: f64,
}

/// Writes `{"name":…,"time":…,…,"data":{"baseType":…,"baseData":{"ver":2` (no closing).
pub fn begin(out: &mut Vec<u8>, who: &Sender, facts: &Facts<'_>, head: &Head<'_>) {
    out.extend_from_slice(b"{\"name\":\"");
    out.extend_from_slice(head.kind.envelope_name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    push_iso8601(out, head.time_unix_nanos);
    out.extend_from_slice(b"\",\"sampleRate\":");
    push_f64(out, head.sample_rate);
    out.push(b',');
    out.extend_from_slice(&who.ikey_field);
    // Ids are validated IdText (printable ASCII without quotes or backslashes).
    out.extend_from_slice(b"\"tags\":{\"ai.operation.id\":\"");
    out.extend_from_slice(facts.operation.operation_id.as_bytes());
    out.extend_from_slice(b"\",\"ai.operation.parentId\":\"");
    out.extend_from_slice(head.parent_id);
    out.extend_from_slice(b"\",");
    push_key(out, "ai.operation.name");
    push_bytes(out, facts.operation_name, limits::OPERATION_NAME);
    out.push(b',');
    out.extend_from_slice(&who.role_tags);
    if let Some(ip) = facts.client_ip {
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
        self.out.push(b',');
        if !self.open {
            push_key(self.out, self.key);
            self.out.push(b'{');
            self.open = true;
        }
        crate::json::push_str(self.out, name, limits::PROPERTY_KEY);
        self.out.push(b':');
    }

    /// Where the output stands, to undo what follows with [`Members::rollback`].
    pub fn checkpoint(&self) -> (usize, bool) {
        (self.out.len(), self.open)
    }

    /// Removes everything written since `checkpoint`.
    pub fn rollback(&mut self, checkpoint: (usize, bool)) {
        self.out.truncate(checkpoint.0);
        self.open = checkpoint.1;
    }

    /// Bytes written since `checkpoint`.
    pub fn written_since(&self, checkpoint: (usize, bool)) -> usize {
        self.out.len().saturating_sub(checkpoint.0)
    }

    /// A string property with a tighter limit than the schema's.
    pub fn string_limited(&mut self, name: &str, value: &[u8], max_chars: usize) {
        self.next(name);
        push_bytes(self.out, value, max_chars.min(limits::PROPERTY_VALUE));
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

    /// Members already written as JSON (`"a":"1","b":"2"`).
    pub fn raw_members(&mut self, members: &[u8]) {
        self.out.push(b',');
        if !self.open {
            push_key(self.out, self.key);
            self.out.push(b'{');
            self.open = true;
        }
        self.out.extend_from_slice(members);
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
