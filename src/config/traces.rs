//! Trace rules: API Management's `trace` policy, as configuration.
//!
//! A rule matches finished exchanges (status, route, headers, duration, failure) and
//! emits a Trace item (`MessageData`) with a severity, a message rendered from a template
//! and metadata properties. Traces are not sampled (as APIM documents) and are emitted
//! when the rule's severity is at least the diagnostic's verbosity.
//!
//! ```json
//! {"severity": "error", "source": "orders-policy",
//!  "when": {"status": ["5xx", 429], "request_headers": [{"name": "x-tenant"}], "min_duration_ms": 500},
//!  "message": "{request.method} {request.path} -> {response.status} in {duration_ms} ms",
//!  "metadata": {"tenant": "{request.header.x-tenant}"}}
//! ```

use super::diagnostic::Severity;
use super::reader::Fields;
use super::{err, excerpt, ConfigError, Problem};
use serde_json::Value;

/// Longest trace message the schema accepts.
pub const MAX_MESSAGE_CHARS: usize = 32_768;

#[derive(Debug, Clone, PartialEq)]
pub struct TraceRule {
    pub severity: Severity,
    /// APIM's `source` attribute, sent as the `Source` property.
    pub source: Option<String>,
    pub when: Conditions,
    pub message: Template,
    pub metadata: Vec<(String, Template)>,
}

impl TraceRule {
    /// Whether rendering or matching this rule needs the response headers.
    pub fn needs_response_headers(&self) -> bool {
        !self.when.response_headers.is_empty()
            || self.message.needs_response_headers()
            || self.metadata.iter().any(|(_, t)| t.needs_response_headers())
    }
}

/// Every condition present must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Any of these statuses (empty: any status).
    pub statuses: Vec<StatusMatch>,
    /// Any of these route names (empty: any route).
    pub route_names: Vec<String>,
    pub request_headers: Vec<HeaderCondition>,
    pub response_headers: Vec<HeaderCondition>,
    pub min_duration_ms: Option<u64>,
    /// `true`: failed exchanges only; `false`: successful ones only.
    pub failed: Option<bool>,
}

impl Conditions {
    /// Whether the rule can still match, judging only by status and failure (known before
    /// anything else is read at log time).
    pub fn could_match(&self, status: u32, failed: bool) -> bool {
        (self.statuses.is_empty() || self.statuses.iter().any(|s| s.matches(status)))
            && self.failed.is_none_or(|f| f == failed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// `"4xx"` → 4.
    Class(u16),
    Code(u16),
}

impl StatusMatch {
    pub fn matches(self, status: u32) -> bool {
        match self {
            StatusMatch::Class(c) => status / 100 == u32::from(c),
            StatusMatch::Code(c) => status == u32::from(c),
        }
    }
}

/// A header that must be present, or present with exactly this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderCondition {
    /// Lowercase, as Envoy stores header names.
    pub name: String,
    pub equals: Option<String>,
}

/// A message with placeholders, parsed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    Field(Field),
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `{request.method}`
    Method,
    /// `{request.path}`: without the query string.
    Path,
    /// `{request.url}`: scheme, host, path and query.
    Url,
    /// `{request.header.<name>}`
    RequestHeader(String),
    /// `{response.header.<name>}`
    ResponseHeader(String),
    /// `{response.status}`
    Status,
    /// `{route}`: the Envoy route name.
    Route,
    /// `{api}`: the API's name.
    Api,
    /// `{operation}`: `ai.operation.name`.
    Operation,
    /// `{operation_id}`: `ai.operation.id`.
    OperationId,
    /// `{duration_ms}`
    DurationMs,
    /// `{cluster}`: the Envoy cluster the backend call went to.
    Cluster,
    /// `{metadata.<filter>/<key>/…}`: a value of Envoy's dynamic metadata (a JWT claim the
    /// `jwt_authn` filter stored, say): the filter's namespace, then the keys.
    Metadata(MetadataPath),
}

/// Where a value of Envoy's dynamic metadata is: a filter's namespace and keys under it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetadataPath {
    /// `envoy.filters.http.jwt_authn`, then `payload`, `sub`.
    pub segments: Vec<String>,
}

impl MetadataPath {
    /// At most this many keys under the namespace.
    pub const MAX_KEYS: usize = 8;

    fn parse(text: &str) -> Option<MetadataPath> {
        let segments: Vec<String> = text.split('/').map(str::to_string).collect();
        let ok = segments.len() >= 2 && segments.len() <= Self::MAX_KEYS + 1;
        (ok && segments.iter().all(|s| !s.is_empty() && !s.contains('\0'))).then_some(MetadataPath { segments })
    }

    /// The attribute path as the ABI takes it (segments joined with NUL).
    pub fn attribute_path(&self) -> Vec<u8> {
        let mut path = b"metadata\0filter_metadata".to_vec();
        for s in &self.segments {
            path.push(0);
            path.extend_from_slice(s.as_bytes());
        }
        path
    }

    /// As written in a template, without braces.
    pub fn placeholder(&self) -> String {
        format!("metadata.{}", self.segments.join("/"))
    }
}

const PLACEHOLDERS: &str = "request.method, request.path, request.url, request.header.<name>, \
response.header.<name>, response.status, route, api, operation, operation_id, duration_ms, cluster, \
metadata.<filter>/<key>[/<key>…]";

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut closed = false;
                    let name: String = chars
                        .by_ref()
                        .take_while(|&c| {
                            closed = c == '}';
                            !closed
                        })
                        .collect();
                    if !closed {
                        return Err(format!("an unterminated placeholder {{{}", excerpt(&name)));
                    }
                    let field = field_of(name.trim())
                        .ok_or_else(|| format!("unknown placeholder {{{}}}; known: {PLACEHOLDERS}", excerpt(&name)))?;
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Field(field));
                }
                '}' => return Err("a lone '}' (write '}}' for a literal brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template { segments })
    }

    /// The request headers the template prints.
    pub fn request_headers(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field(Field::RequestHeader(name)) => Some(name.as_str()),
            _ => None,
        })
    }

    pub fn needs_response_headers(&self) -> bool {
        self.uses(|f| matches!(f, Field::ResponseHeader(_)))
    }

    /// Whether any placeholder is one `is` picks.
    pub fn uses(&self, is: impl Fn(&Field) -> bool) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Field(f) if is(f)))
    }

    /// The dynamic metadata values the template prints.
    pub fn metadata(&self) -> impl Iterator<Item = &MetadataPath> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Field(Field::Metadata(path)) => Some(path),
            _ => None,
        })
    }
}

fn field_of(name: &str) -> Option<Field> {
    if let Some(h) = name.strip_prefix("request.header.").filter(|h| !h.is_empty()) {
        return Some(Field::RequestHeader(h.to_ascii_lowercase()));
    }
    if let Some(h) = name.strip_prefix("response.header.").filter(|h| !h.is_empty()) {
        return Some(Field::ResponseHeader(h.to_ascii_lowercase()));
    }
    if let Some(path) = name.strip_prefix("metadata.") {
        return MetadataPath::parse(path).map(Field::Metadata);
    }
    Some(match name {
        "request.method" => Field::Method,
        "request.path" => Field::Path,
        "request.url" => Field::Url,
        "response.status" => Field::Status,
        "route" => Field::Route,
        "api" => Field::Api,
        "operation" => Field::Operation,
        "operation_id" => Field::OperationId,
        "duration_ms" => Field::DurationMs,
        "cluster" => Field::Cluster,
        _ => return None,
    })
}

const RULE_FIELDS: &[&str] = &["severity", "source", "when", "message", "metadata"];
pub(crate) const WHEN_FIELDS: &[&str] = &[
    "status",
    "route_names",
    "request_headers",
    "response_headers",
    "min_duration_ms",
    "failed",
];
const HEADER_FIELDS: &[&str] = &["name", "equals"];

pub(crate) fn parse_traces(v: &Value, path: &str) -> Result<Vec<TraceRule>, ConfigError> {
    let list = v.as_array().ok_or_else(|| {
        err(
            path,
            Problem::WrongType {
                expected: "a list of trace rules",
            },
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, rule)| parse_rule(rule, &format!("{path}[{i}]")))
        .collect()
}

fn parse_rule(v: &Value, path: &str) -> Result<TraceRule, ConfigError> {
    let f = Fields::of(v, path, path, RULE_FIELDS)?;
    let severity = match f.string("severity")? {
        None => Severity::Verbose,
        Some(s) => {
            Severity::parse(s).ok_or_else(|| err(f.path("severity"), Problem::OneOf("verbose, information, error")))?
        }
    };
    let message = f
        .string("message")?
        .ok_or_else(|| err(f.path("message"), Problem::Missing))?;
    if message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(err(f.path("message"), Problem::TooLong { max: MAX_MESSAGE_CHARS }));
    }
    let message = Template::parse(message).map_err(|e| err(f.path("message"), Problem::Invalid(e)))?;
    let when = match f.object("when", WHEN_FIELDS)? {
        Some(w) => parse_when(&w)?,
        None => Conditions::default(),
    };
    let metadata = match f.get("metadata") {
        None => Vec::new(),
        Some(m) => parse_metadata(m, &f.path("metadata"))?,
    };
    Ok(TraceRule {
        severity,
        source: f.bounded_string("source", 150)?,
        when,
        message,
        metadata,
    })
}

pub(crate) fn parse_metadata(v: &Value, path: &str) -> Result<Vec<(String, Template)>, ConfigError> {
    let map = v.as_object().ok_or_else(|| {
        err(
            path,
            Problem::WrongType {
                expected: "an object of name: template",
            },
        )
    })?;
    let mut out = Vec::with_capacity(map.len());
    for (name, t) in map {
        let item = format!("{path}.{}", excerpt(name));
        if name.is_empty() || name.chars().count() > 150 {
            return Err(err(item, Problem::TooLong { max: 150 }));
        }
        let text = t
            .as_str()
            .ok_or_else(|| err(&item, Problem::WrongType { expected: "a string" }))?;
        out.push((
            name.clone(),
            Template::parse(text).map_err(|e| err(&item, Problem::Invalid(e)))?,
        ));
    }
    Ok(out)
}

pub(crate) fn parse_when(f: &Fields<'_>) -> Result<Conditions, ConfigError> {
    Ok(Conditions {
        statuses: match f.get("status") {
            None => Vec::new(),
            Some(v) => parse_statuses(v, &f.path("status"))?,
        },
        route_names: f.strings("route_names")?,
        request_headers: header_conditions(f, "request_headers")?,
        response_headers: header_conditions(f, "response_headers")?,
        min_duration_ms: f.uint("min_duration_ms", 0, 86_400_000)?,
        failed: f.bool("failed")?,
    })
}

fn parse_statuses(v: &Value, path: &str) -> Result<Vec<StatusMatch>, ConfigError> {
    let one = |v: &Value, p: &str| -> Result<StatusMatch, ConfigError> {
        let bad = || {
            err(
                p,
                Problem::OneOf("a status code (100-599) or a class \"1xx\" to \"5xx\""),
            )
        };
        if let Some(code) = v.as_u64() {
            return u16::try_from(code)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(StatusMatch::Code)
                .ok_or_else(bad);
        }
        match v.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some(s) if s.len() == 3 && s.ends_with("xx") => s[..1]
                .parse::<u16>()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .map(StatusMatch::Class)
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    };
    match v.as_array() {
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| one(s, &format!("{path}[{i}]")))
            .collect(),
        None => Ok(vec![one(v, path)?]),
    }
}

fn header_conditions(f: &Fields<'_>, key: &str) -> Result<Vec<HeaderCondition>, ConfigError> {
    f.objects(key, "a list of {name, equals}", HEADER_FIELDS, |h| {
        let name = match h.string("name")? {
            Some(n) if !n.is_empty() => n.to_ascii_lowercase(),
            _ => return Err(err(h.path("name"), Problem::Missing)),
        };
        Ok(HeaderCondition {
            name,
            equals: h.string("equals")?.map(str::to_string),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_unterminated_placeholder_is_an_error() {
        assert_eq!(
            Template::parse("{request.method").unwrap_err(),
            "an unterminated placeholder {request.method"
        );
        assert!(Template::parse("{request.method}").is_ok());
    }

    #[test]
    fn templates_split_into_text_and_fields() {
        let t = Template::parse("{request.method} {{x}} {request.header.X-Tenant} took {duration_ms}ms").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Field(Field::Method),
                Segment::Text(" {x} ".into()),
                Segment::Field(Field::RequestHeader("x-tenant".into())),
                Segment::Text(" took ".into()),
                Segment::Field(Field::DurationMs),
                Segment::Text("ms".into()),
            ]
        );
        assert!(Template::parse("{nope}")
            .unwrap_err()
            .contains("unknown placeholder {nope}"));
        assert!(Template::parse("a } b").is_err());
        assert!(Template::parse("{response.header.x}").unwrap().needs_response_headers());
    }

    #[test]
    fn a_full_rule_is_read() {
        let rules = parse_traces(
            &json!([{"severity": "error", "source": "s",
                     "when": {"status": ["5xx", 404], "route_names": ["r"], "request_headers": [{"name": "X-A", "equals": "1"}],
                              "response_headers": [{"name": "x-b"}], "min_duration_ms": 5, "failed": true},
                     "message": "m {response.status}", "metadata": {"k": "{route}"}}]),
            "diagnostic.traces",
        )
        .unwrap();
        let r = &rules[0];
        assert_eq!(r.severity, Severity::Error);
        assert_eq!(r.when.statuses, vec![StatusMatch::Class(5), StatusMatch::Code(404)]);
        assert_eq!(
            r.when.request_headers[0],
            HeaderCondition {
                name: "x-a".into(),
                equals: Some("1".into())
            }
        );
        assert!(r.needs_response_headers());
        assert!(StatusMatch::Class(5).matches(503) && !StatusMatch::Class(5).matches(404));
    }

    #[test]
    fn rule_errors_name_the_field() {
        let e = |v: Value| parse_traces(&v, "diagnostic.traces").unwrap_err().to_string();
        assert_eq!(e(json!([{}])), "diagnostic.traces[0].message: is required");
        assert_eq!(
            e(json!([{"message": "x", "severity": "warning"}])),
            "diagnostic.traces[0].severity: must be one of verbose, information, error"
        );
        assert!(e(json!([{"message": "{x}"}])).starts_with("diagnostic.traces[0].message: unknown placeholder {x}"));
        assert_eq!(
            e(json!([{"message": "x", "when": {"status": ["6xx"]}}])),
            "diagnostic.traces[0].when.status[0]: must be one of a status code (100-599) or a class \"1xx\" to \"5xx\""
        );
        assert_eq!(
            e(json!([{"message": "x", "when": {"statuss": 1}}])),
            "diagnostic.traces[0].when.statuss: unknown field; allowed here: status, route_names, request_headers, response_headers, min_duration_ms, failed"
        );
        assert_eq!(
            e(json!([{"message": "x", "when": {"request_headers": [{}]}}])),
            "diagnostic.traces[0].when.request_headers[0].name: is required"
        );
    }

    #[test]
    fn severity_defaults_to_verbose_as_in_apim() {
        let rules = parse_traces(&json!([{"message": "hi"}]), "t").unwrap();
        assert_eq!(rules[0].severity, Severity::Verbose);
    }
}
