//! Field tables of the envelope and of each `baseData` type (reference §2 and §3).
//!
//! Lengths are the conservative NET2-BOND values where the sources disagree
//! (reference §8): request/dependency `id` 128, availability `id` 64,
//! `ai.operation.parentId` 128.

/// What a field must hold.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// String of at most this many characters.
    Str(usize),
    Int32,
    Int64,
    Bool,
    /// Finite JSON number.
    Number,
    /// Number in (0, 100].
    SampleRate,
    /// ISO-8601 UTC time within the acceptance window.
    Time,
    /// `[d.]hh:mm:ss[.fffffff]`.
    TimeSpan,
    /// Context tags: known keys only, each with its maximum length.
    Tags,
    /// map<string, string>: key 1..=150, value ≤ 8192 characters.
    Properties,
    /// map<string, number>: key 1..=150.
    Measurements,
    Severity,
    DataPointType,
    /// `{baseType, baseData}`.
    Data,
    /// Any object (checked elsewhere).
    AnyObject,
    /// Array of objects of one table, with a length range.
    List {
        of: &'static [Field],
        min: usize,
        max: usize,
    },
}

/// One entry of a field table.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const VER: Field = req("ver", Kind::Int32);
const PROPERTIES: Field = opt("properties", Kind::Properties);
const MEASUREMENTS: Field = opt("measurements", Kind::Measurements);

pub const ENVELOPE: &[Field] = &[
    opt("ver", Kind::Int32),
    req("name", Kind::Str(1024)),
    req("time", Kind::Time),
    opt("sampleRate", Kind::SampleRate),
    opt("seq", Kind::Str(64)),
    opt("iKey", Kind::Str(40)),
    opt("flags", Kind::Int64),
    opt("tags", Kind::Tags),
    req("data", Kind::Data),
];

pub const DATA: &[Field] = &[req("baseType", Kind::Str(1024)), req("baseData", Kind::AnyObject)];

const REQUEST: &[Field] = &[
    VER,
    req("id", Kind::Str(128)),
    req("duration", Kind::TimeSpan),
    req("responseCode", Kind::Str(1024)),
    req("success", Kind::Bool),
    opt("source", Kind::Str(1024)),
    opt("name", Kind::Str(1024)),
    opt("url", Kind::Str(2048)),
    PROPERTIES,
    MEASUREMENTS,
];

const REMOTE_DEPENDENCY: &[Field] = &[
    VER,
    req("name", Kind::Str(1024)),
    opt("id", Kind::Str(128)),
    opt("resultCode", Kind::Str(1024)),
    req("duration", Kind::TimeSpan),
    opt("success", Kind::Bool),
    opt("data", Kind::Str(8192)),
    opt("type", Kind::Str(1024)),
    opt("target", Kind::Str(1024)),
    PROPERTIES,
    MEASUREMENTS,
];

const STACK_FRAME: &[Field] = &[
    req("level", Kind::Int32),
    req("method", Kind::Str(1024)),
    opt("assembly", Kind::Str(1024)),
    opt("fileName", Kind::Str(1024)),
    opt("line", Kind::Int32),
];

const EXCEPTION_DETAILS: &[Field] = &[
    opt("id", Kind::Int32),
    opt("outerId", Kind::Int32),
    req("typeName", Kind::Str(1024)),
    req("message", Kind::Str(32768)),
    opt("hasFullStack", Kind::Bool),
    opt("stack", Kind::Str(32768)),
    opt(
        "parsedStack",
        Kind::List {
            of: STACK_FRAME,
            min: 0,
            max: usize::MAX,
        },
    ),
];

const EXCEPTION: &[Field] = &[
    VER,
    req(
        "exceptions",
        Kind::List {
            of: EXCEPTION_DETAILS,
            min: 1,
            max: usize::MAX,
        },
    ),
    opt("severityLevel", Kind::Severity),
    opt("problemId", Kind::Str(1024)),
    PROPERTIES,
    MEASUREMENTS,
];

const MESSAGE: &[Field] = &[
    VER,
    req("message", Kind::Str(32768)),
    opt("severityLevel", Kind::Severity),
    PROPERTIES,
    MEASUREMENTS,
];

const DATA_POINT: &[Field] = &[
    opt("ns", Kind::Str(256)),
    req("name", Kind::Str(1024)),
    opt("kind", Kind::DataPointType),
    req("value", Kind::Number),
    opt("count", Kind::Int32),
    opt("min", Kind::Number),
    opt("max", Kind::Number),
    opt("stdDev", Kind::Number),
];

/// MetricData has no `measurements` (reference §3.6).
const METRIC: &[Field] = &[
    VER,
    req(
        "metrics",
        Kind::List {
            of: DATA_POINT,
            min: 1,
            max: 1,
        },
    ),
    PROPERTIES,
];

const EVENT: &[Field] = &[VER, req("name", Kind::Str(512)), PROPERTIES, MEASUREMENTS];

const AVAILABILITY: &[Field] = &[
    VER,
    req("id", Kind::Str(64)),
    req("name", Kind::Str(1024)),
    req("duration", Kind::TimeSpan),
    req("success", Kind::Bool),
    opt("runLocation", Kind::Str(1024)),
    opt("message", Kind::Str(8192)),
    PROPERTIES,
    MEASUREMENTS,
];

/// The field table for a `data.baseType`, or `None` for an unsupported type.
pub fn base_data_fields(base_type: &str) -> Option<&'static [Field]> {
    Some(match base_type {
        "RequestData" => REQUEST,
        "RemoteDependencyData" => REMOTE_DEPENDENCY,
        "ExceptionData" => EXCEPTION,
        "MessageData" => MESSAGE,
        "MetricData" => METRIC,
        "EventData" => EVENT,
        "AvailabilityData" => AVAILABILITY,
        _ => return None,
    })
}

/// SeverityLevel names in enum order (Verbose = 0 ... Critical = 4).
pub const SEVERITY_LEVELS: &[&str] = &["Verbose", "Information", "Warning", "Error", "Critical"];
/// DataPointType names in enum order (Measurement = 0, Aggregation = 1).
pub const DATA_POINT_KINDS: &[&str] = &["Measurement", "Aggregation"];

/// Every context tag of reference §2.5 with its maximum length (including the
/// HOME/SPEC21-only `ai.cloud.roleVer` and `ai.cloud.location`).
pub const TAGS: &[(&str, usize)] = &[
    ("ai.application.ver", 1024),
    ("ai.device.id", 1024),
    ("ai.device.locale", 64),
    ("ai.device.model", 256),
    ("ai.device.oemName", 256),
    ("ai.device.osVersion", 256),
    ("ai.device.type", 64),
    ("ai.location.ip", 46),
    ("ai.location.country", 256),
    ("ai.location.province", 256),
    ("ai.location.city", 256),
    ("ai.operation.id", 128),
    ("ai.operation.name", 1024),
    ("ai.operation.parentId", 128),
    ("ai.operation.syntheticSource", 1024),
    ("ai.operation.correlationVector", 64),
    ("ai.session.id", 64),
    ("ai.session.isFirst", 5),
    ("ai.user.accountId", 1024),
    ("ai.user.id", 128),
    ("ai.user.authUserId", 1024),
    ("ai.cloud.role", 256),
    ("ai.cloud.roleVer", 256),
    ("ai.cloud.roleInstance", 256),
    ("ai.cloud.location", 256),
    ("ai.internal.sdkVersion", 64),
    ("ai.internal.agentVersion", 64),
    ("ai.internal.nodeName", 256),
];

/// Maximum length of a known context tag, `None` for an unknown key.
pub fn tag_max_len(key: &str) -> Option<usize> {
    TAGS.iter().find(|(k, _)| *k == key).map(|(_, max)| *max)
}
