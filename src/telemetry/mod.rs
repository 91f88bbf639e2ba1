//! Telemetry items: Application Insights envelopes written straight into a batch buffer.
//!
//! Flow: an exchange ends → the pipeline decides which items it produces → each writer
//! ([`request`], [`dependency`], [`exception`], [`trace`]) appends one NDJSON line (one
//! envelope) to the batch of each logger the diagnostic sends to → the batch is posted to
//! `/v2.1/track`. All items of an exchange share its operation id; the Request is the
//! parent of the others. Items that no exchange produces are written the same way: the
//! metric aggregates (`crate::metrics::item`) and the availability tests' results
//! ([`availability`]).
//!
//! Everything that is the same for every item of a logger (`iKey`, role tags, SDK version)
//! is escaped once per configuration in [`Sender`]; per-item work is copying bytes and
//! escaping the few values that vary. Field limits come from the official schema.

pub mod availability;
pub mod dependency;
pub mod envelope;
pub mod exception;
pub mod failure;
pub mod naming;
pub mod request;
pub mod target;
pub mod trace;

use crate::capture::BodyPrefix;
use crate::config::{Capture, MetadataPath};
use crate::correlation::IdText;
use crate::exchange::{Backend, Frontend, Outcome};
use crate::headers::HeaderMap;
use crate::masking::Masking;

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

/// Who sends the items of one logger: what is the same for every item it gets (the
/// resource's key, the cloud role), pre-escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// `"iKey":"…",`
    pub(crate) ikey_field: Vec<u8>,
    /// `"ai.cloud.role":"…","ai.cloud.roleInstance":"…","ai.internal.sdkVersion":"…"`
    pub(crate) role_tags: Vec<u8>,
    /// The role as a JSON string (the `cloud/roleName` of standard metrics).
    pub(crate) role_name: Vec<u8>,
    /// The role instance as a JSON string (the `cloud/roleInstance` of standard metrics).
    pub(crate) instance_name: Vec<u8>,
    /// APIM's service dimensions as JSON strings, in [`SERVICE_PROPERTIES`] order (empty:
    /// not written).
    pub(crate) service: [Vec<u8>; 4],
}

/// The service dimensions APIM writes on every Request (a sender keeps their values in
/// this order).
pub const SERVICE_PROPERTIES: [&str; 4] = ["Service Name", "Service Type", "Service ID", "Region"];

/// How the gateway names itself in [`SERVICE_PROPERTIES`]; `region` may be unknown.
#[derive(Debug, Clone, Copy)]
pub struct ServiceNames<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub id: &'a str,
    pub region: Option<&'a str>,
}

impl Sender {
    /// A sender whose service dimensions are the defaults: the role names the service.
    pub fn new(instrumentation_key: &str, role: &str, role_instance: &str) -> Self {
        let service = ServiceNames {
            name: role,
            kind: crate::config::DEFAULT_SERVICE_TYPE,
            id: role,
            region: None,
        };
        Sender::with_service(instrumentation_key, role, role_instance, &service)
    }

    pub fn with_service(
        instrumentation_key: &str,
        role: &str,
        role_instance: &str,
        service: &ServiceNames<'_>,
    ) -> Self {
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
        let string = |s: &str| {
            let mut out = Vec::new();
            push_str(&mut out, s, limits::PROPERTY_VALUE);
            out
        };
        let region = service.region.map(string).unwrap_or_default();
        Sender {
            ikey_field,
            role_tags,
            role_name: string(role),
            instance_name: string(role_instance),
            service: [string(service.name), string(service.kind), string(service.id), region],
        }
    }
}

/// The ids of one exchange's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// `ai.operation.id`: the W3C trace id, or a legacy root id.
    pub operation_id: IdText,
    /// The caller's id; `None` when the request starts the operation.
    pub parent_id: Option<IdText>,
    /// The Request item's id (the gateway's span).
    pub request_id: IdText,
    /// The Dependency item's id: what the backend receives as its parent.
    pub dependency_id: IdText,
}

/// The names API Management gives a request of a configured API.
#[derive(Debug, Clone, Copy)]
pub struct ApiNames<'a> {
    pub api: &'a str,
    pub revision: &'a str,
    pub operation: Option<&'a str>,
    /// APIM's `API Type`: `http` unless configured (`soap`, `graphql`, `websocket`…).
    pub kind: &'a str,
}

/// Everything an item writer may read about one finished exchange.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    pub frontend: &'a Frontend,
    pub outcome: &'a Outcome,
    /// The backend call, when one was attempted.
    pub backend: Option<&'a Backend>,
    /// Response headers, when something needs them.
    pub response_headers: Option<&'a HeaderMap>,
    pub operation: &'a Operation,
    /// `ai.operation.name`.
    pub operation_name: &'a [u8],
    pub api: Option<ApiNames<'a>>,
    /// The Envoy route name (empty when the route has none).
    pub route_name: &'a [u8],
    /// `ai.location.ip`, only when client IPs are logged.
    pub client_ip: Option<&'a [u8]>,
    /// The caller's application (`Request-Context` appId), the request's `source`.
    pub source: Option<&'a IdText>,
    /// `sampleRate` of the request, dependency and exception.
    pub sample_rate: f64,
    /// Static custom properties, pre-escaped (`"Region":"West Europe",…`).
    pub properties_json: &'a [u8],
    /// Custom properties from request headers: (property, lowercase header).
    pub header_properties: &'a [(String, String)],
    /// Custom properties rendered from templates, left out when empty.
    pub dynamic_properties: &'a [(String, crate::config::Template)],
    /// What to capture, and what to mask wherever it appears.
    pub capture: &'a Capture,
    pub masking: &'a Masking,
    /// Body prefixes captured as they streamed by.
    pub request_body: Option<&'a BodyPrefix>,
    pub response_body: Option<&'a BodyPrefix>,
    /// Response headers as they reached the filter (else the final ones).
    pub backend_response_headers: Option<&'a HeaderMap>,
    /// The caller's `tracestate`, when its trace is continued.
    pub tracestate: Option<&'a [u8]>,
    /// Whether the Request item is written (else Traces hang under the caller instead).
    pub request_written: bool,
    /// Values of Envoy's dynamic metadata the diagnostic's templates print (those found).
    pub metadata: &'a [(MetadataPath, Vec<u8>)],
    /// `_MS.ProcessedByMetricExtractors` goes on every item: the standard metrics counted it.
    pub extracted: bool,
    /// Names replace id-like path segments with `{id}` ([`naming`]).
    pub templated_names: bool,
    /// [`SERVICE_PROPERTIES`] a static custom property replaces (bit `i` for the `i`-th).
    pub service_overrides: u8,
    /// Write only what the item needs: no captured content, custom properties or
    /// `tracestate` (the retry for an item that came out over the 64 KB limit).
    pub lean: bool,
}

impl Facts<'_> {
    /// Adds the diagnostic's custom properties (static, then from request headers, masked
    /// or hidden as configured) to an item's `properties`, within the item's capture budget.
    /// Nothing in a lean item.
    pub fn write_custom(&self, w: &mut crate::capture::Writer<'_, '_>) {
        if self.lean {
            return;
        }
        if !self.properties_json.is_empty() {
            w.members.raw_members(self.properties_json);
        }
        let headers = self.frontend.headers();
        for (name, header) in self.header_properties {
            w.header_property(name, header.as_bytes(), headers);
        }
        for (name, template) in self.dynamic_properties {
            let value = trace::render(template, self);
            if !value.is_empty() {
                w.property(name, &value);
            }
        }
    }

    /// `API Name` (the API, else the route name), `API Revision` and `Operation Name`, as
    /// APIM writes them on Requests, Exceptions and Traces.
    pub fn write_api(&self, p: &mut envelope::Members<'_>) {
        match self.api {
            Some(api) => {
                p.string("API Name", api.api.as_bytes());
                p.string("API Revision", api.revision.as_bytes());
                if let Some(op) = api.operation {
                    p.string("Operation Name", op.as_bytes());
                }
            }
            None if naming::meaningful_route(self.route_name) => p.string("API Name", self.route_name),
            None => {}
        }
    }

    /// The parent of Dependency, Exception and Trace items: the Request when it is written;
    /// otherwise (a Trace of a sampled-out operation) the caller, or the operation itself.
    pub fn child_parent(&self) -> &[u8] {
        let op = self.operation;
        if self.request_written {
            op.request_id.as_bytes()
        } else {
            op.parent_id.as_ref().unwrap_or(&op.operation_id).as_bytes()
        }
    }

    /// The frontend `path?query` with masked query parameters.
    pub fn masked_path_and_query(&self) -> std::borrow::Cow<'_, [u8]> {
        self.masking.path_and_query(self.frontend.path_and_query())
    }

    /// `METHOD /path` of the frontend request ([`crate::exchange::Frontend::request_line`]).
    pub fn request_line(&self) -> Vec<u8> {
        self.frontend.request_line()
    }

    /// The Request's `name`: `METHOD /path`, ids templated unless configured otherwise.
    pub fn request_name(&self) -> Vec<u8> {
        let fe = self.frontend;
        naming::request_line(fe.method(), fe.path(), self.templated_names)
    }
}

#[cfg(test)]
mod tests {
    use super::SDK_VERSION;

    #[test]
    fn the_sdk_version_is_a_lowercase_name_and_the_module_semver() {
        let (name, version) = SDK_VERSION.split_once(':').unwrap();
        assert_eq!(name, "envoyappinsights");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
        assert_eq!(version, crate::VERSION);
        let core = version.split(['-', '+']).next().unwrap();
        let parts: Vec<&str> = core.split('.').collect();
        assert_eq!(parts.len(), 3, "SemVer major.minor.patch: {version}");
        assert!(
            parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "{version}"
        );
        assert!(SDK_VERSION.len() <= 64, "the tag is cut at 64 characters");
    }
}
