//! Telemetry items: Application Insights envelopes written straight into a batch buffer.
//!
//! Flow: an exchange ends → [`request::write`] appends one NDJSON line (one envelope) to
//! the batch of each logger the diagnostic sends to → the batch is posted to `/v2.1/track`.
//!
//! Everything that is the same for every item of a logger (`iKey`, role tags, SDK version)
//! is escaped once per configuration in [`Identity`]; per-item work is copying bytes and
//! escaping the few values that vary. Field limits come from the official schema.

pub mod envelope;
pub mod request;

use crate::ids::{SpanId, TraceId};

/// `ai.internal.sdkVersion`: `name:version`, the name in lowercase letters only (schema rule).
pub const SDK_VERSION: &str = concat!("envoyappinsights:", env!("CARGO_PKG_VERSION"));

/// Schema limits, in characters.
pub mod limits {
    pub const NAME: usize = 1024;
    pub const URL: usize = 2048;
    pub const ID: usize = 128;
    pub const RESPONSE_CODE: usize = 1024;
    pub const OPERATION_NAME: usize = 1024;
    pub const ROLE: usize = 256;
    pub const LOCATION_IP: usize = 46;
    pub const PROPERTY_KEY: usize = 150;
    pub const PROPERTY_VALUE: usize = 8192;
    /// Largest serialized item the service accepts, in bytes.
    pub const ITEM_BYTES: usize = 64 * 1024;
}

/// What is the same for every item sent to one logger, pre-escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `"iKey":"…",`
    ikey_field: Vec<u8>,
    /// `"ai.cloud.role":"…","ai.cloud.roleInstance":"…","ai.internal.sdkVersion":"…"`
    role_tags: Vec<u8>,
    /// The role as a JSON string, for the `Service Name` property.
    service_name: Vec<u8>,
}

impl Identity {
    pub fn new(instrumentation_key: &str, role: &str, role_instance: &str) -> Self {
        use crate::json::{push_key, push_str};
        let mut ikey_field = Vec::new();
        push_key(&mut ikey_field, "iKey");
        push_str(&mut ikey_field, instrumentation_key, 40);
        ikey_field.push(b',');
        let mut role_tags = Vec::new();
        push_key(&mut role_tags, "ai.cloud.role");
        push_str(&mut role_tags, role, limits::ROLE);
        role_tags.push(b',');
        push_key(&mut role_tags, "ai.cloud.roleInstance");
        push_str(&mut role_tags, role_instance, limits::ROLE);
        role_tags.push(b',');
        push_key(&mut role_tags, "ai.internal.sdkVersion");
        push_str(&mut role_tags, SDK_VERSION, 64);
        let mut service_name = Vec::new();
        push_str(&mut service_name, role, limits::PROPERTY_VALUE);
        Identity { ikey_field, role_tags, service_name }
    }
}

/// The operation (W3C trace) an item belongs to, and this item's place in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Operation {
    /// `ai.operation.id`.
    pub trace_id: TraceId,
    /// The caller's span; `None` for a request that starts the operation.
    pub parent: Option<SpanId>,
    /// The id of the request item (the gateway's own span).
    pub span_id: SpanId,
    /// Percentage of operations kept by sampling (100 = all).
    pub sample_rate: f64,
}
