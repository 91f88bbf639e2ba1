//! APIs and operations: how requests are grouped the way API Management groups them.
//!
//! An API is recognised from Envoy's own routing, evaluated in the order the APIs are
//! listed, first match wins. Every condition given in `match` must hold:
//!
//! - `route_names`: the Envoy route's `name` is one of these (Istio: the VirtualService
//!   http route's `name`);
//! - `hosts`: the request's host (`:authority` without the port) is one of these;
//!   `*.example.com` matches any subdomain;
//! - `path_prefixes`: the path starts with one of these;
//! - `route_metadata: true`: the route's metadata names this API —
//!   `filter_metadata: {appinsights: {api: <name>, operation: <name>}}` on the Envoy route,
//!   or on its virtual host (the route's wins). The `operation` key names the operation
//!   when no configured operation matches.
//!
//! Operations inside an API are matched the same way, by `method`, a `path` template
//! (`/orders/{id}`: `{…}` is one path segment, a trailing `/*` any rest) or `route_name`.
//! They name requests `API;rev=REVISION - OPERATION` (operation_name_format `Name`).

use super::diagnostic::{overlay, Diagnostic, DIAGNOSTIC_FIELDS};
use super::reader::Fields;
use super::{err, excerpt, ConfigError, Logger, Problem};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub name: String,
    pub revision: String,
    /// APIM's `API Type` (`http` unless configured).
    pub kind: String,
    pub matcher: ApiMatch,
    pub operations: Vec<OperationDef>,
    /// The all-APIs diagnostic with this API's overrides applied.
    pub diagnostic: Diagnostic,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiMatch {
    pub route_names: Vec<String>,
    pub hosts: Vec<HostPattern>,
    pub path_prefixes: Vec<String>,
    /// The API's name, when the route (or virtual host) metadata must name it.
    pub metadata_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com` → `.example.com`.
    Suffix(String),
}

impl HostPattern {
    fn parse(s: &str) -> HostPattern {
        let s = s.to_ascii_lowercase();
        match s.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => HostPattern::Suffix(suffix.to_string()),
            _ => HostPattern::Exact(s),
        }
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s.as_bytes()))
            }
        }
    }
}

/// The request facts API and operation matching look at.
#[derive(Debug, Clone, Copy)]
pub struct RouteFacts<'a> {
    pub route_name: &'a [u8],
    /// `:authority` (the port is ignored).
    pub authority: &'a [u8],
    /// Path without the query string.
    pub path: &'a [u8],
    pub method: &'a [u8],
    /// `filter_metadata.appinsights.api` of the route, else of its virtual host (empty if
    /// not read or not set).
    pub metadata_api: &'a [u8],
}

impl ApiMatch {
    pub fn matches(&self, r: &RouteFacts<'_>) -> bool {
        let host = host_of(r.authority);
        (self.route_names.is_empty() || self.route_names.iter().any(|n| n.as_bytes() == r.route_name))
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(host)))
            && (self.path_prefixes.is_empty() || self.path_prefixes.iter().any(|p| r.path.starts_with(p.as_bytes())))
            && self
                .metadata_name
                .as_ref()
                .is_none_or(|n| !r.metadata_api.is_empty() && n.as_bytes() == r.metadata_api)
    }
}

/// `host:port` or `[v6]:port` → host.
fn host_of(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        let end = authority
            .iter()
            .position(|&b| b == b']')
            .map_or(authority.len(), |e| e + 1);
        return authority.get(..end).unwrap_or(authority);
    }
    let end = authority.iter().position(|&b| b == b':').unwrap_or(authority.len());
    authority.get(..end).unwrap_or(authority)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationDef {
    pub name: String,
    pub method: Option<String>,
    pub path: Option<PathTemplate>,
    pub route_name: Option<String>,
}

impl OperationDef {
    pub fn matches(&self, r: &RouteFacts<'_>) -> bool {
        self.method.as_ref().is_none_or(|m| m.as_bytes() == r.method)
            && self.route_name.as_ref().is_none_or(|n| n.as_bytes() == r.route_name)
            && self.path.as_ref().is_none_or(|p| p.matches(r.path))
    }
}

/// `/orders/{id}/items/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Option<String>>,
    rest: bool,
}

impl PathTemplate {
    pub fn parse(s: &str) -> Result<PathTemplate, String> {
        let body = s.strip_prefix('/').ok_or("must start with '/'")?;
        let (body, rest) = match body.strip_suffix("/*").or_else(|| (body == "*").then_some("")) {
            Some(b) => (b, true),
            None => (body, false),
        };
        let segments = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/')
                .map(|seg| {
                    if seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2 {
                        Ok(None)
                    } else if seg.contains(['{', '}', '*']) {
                        Err(format!(
                            "segment \"{}\": a parameter is a whole segment like {{id}}, '*' only ends a template",
                            excerpt(seg)
                        ))
                    } else {
                        Ok(Some(seg.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?
        };
        Ok(PathTemplate { segments, rest })
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        let Some(body) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut parts = body.split(|&b| b == b'/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (_, None) => return false,
                (None, Some([])) => return false,
                (None, Some(_)) => {}
                (Some(lit), Some(p)) if lit.as_bytes() == p => {}
                _ => return false,
            }
        }
        self.rest || parts.next().is_none_or(|p| p.is_empty() && parts.next().is_none())
    }
}

const API_FIELDS: &[&str] = &["name", "revision", "type", "match", "operations", "diagnostic"];
const MATCH_FIELDS: &[&str] = &["route_names", "hosts", "path_prefixes", "route_metadata"];
const OPERATION_FIELDS: &[&str] = &["name", "method", "path", "route_name"];

pub(crate) fn parse_apis(v: &Value, base: &Diagnostic, loggers: &[Logger]) -> Result<Vec<Api>, ConfigError> {
    let list = v.as_array().ok_or_else(|| {
        err(
            "apis",
            Problem::WrongType {
                expected: "a list of APIs",
            },
        )
    })?;
    let mut apis: Vec<Api> = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let path = format!("apis[{i}]");
        let api = parse_api(a, &path, base, loggers)?;
        if apis.iter().any(|x| x.name == api.name) {
            return Err(err(format!("{path}.name"), Problem::Duplicate));
        }
        apis.push(api);
    }
    Ok(apis)
}

fn parse_api(v: &Value, path: &str, base: &Diagnostic, loggers: &[Logger]) -> Result<Api, ConfigError> {
    let f = Fields::of(v, path, path, API_FIELDS)?;
    let name = label(&f, "name")?.ok_or_else(|| err(f.path("name"), Problem::Missing))?;
    let matcher = match f.object("match", MATCH_FIELDS)? {
        Some(m) => parse_match(&m, &name)?,
        None => return Err(err(f.path("match"), Problem::Missing)),
    };
    let operations = match f.get("operations") {
        None => Vec::new(),
        Some(ops) => parse_operations(ops, &f.path("operations"))?,
    };
    let diagnostic = match f.object("diagnostic", DIAGNOSTIC_FIELDS)? {
        Some(d) => overlay(base, &d, loggers)?,
        None => base.clone(),
    };
    Ok(Api {
        name,
        revision: label(&f, "revision")?.unwrap_or_else(|| "1".into()),
        kind: label(&f, "type")?.unwrap_or_else(|| "http".into()),
        matcher,
        operations,
        diagnostic,
    })
}

/// A name shown in telemetry: non-empty, at most 256 characters, no control characters.
fn label(f: &Fields<'_>, key: &str) -> Result<Option<String>, ConfigError> {
    f.bounded_string(key, 256)
}

fn parse_match(f: &Fields<'_>, name: &str) -> Result<ApiMatch, ConfigError> {
    let m = ApiMatch {
        route_names: f.strings("route_names")?,
        hosts: f.strings("hosts")?.iter().map(|h| HostPattern::parse(h)).collect(),
        path_prefixes: f.strings("path_prefixes")?,
        metadata_name: f.bool("route_metadata")?.unwrap_or(false).then(|| name.to_string()),
    };
    if let Some((i, p)) = m.path_prefixes.iter().enumerate().find(|(_, p)| !p.starts_with('/')) {
        return Err(err(
            format!("{}[{i}]", f.path("path_prefixes")),
            Problem::Invalid(format!("\"{}\" must start with '/'", excerpt(p))),
        ));
    }
    if m == ApiMatch::default() {
        return Err(err(
            f.prefix_path(),
            Problem::Invalid("needs route_names, hosts, path_prefixes or route_metadata".into()),
        ));
    }
    Ok(m)
}

fn parse_operations(v: &Value, path: &str) -> Result<Vec<OperationDef>, ConfigError> {
    let list = v.as_array().ok_or_else(|| {
        err(
            path,
            Problem::WrongType {
                expected: "a list of operations",
            },
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, o)| {
            let p = format!("{path}[{i}]");
            let f = Fields::of(o, &p, &p, OPERATION_FIELDS)?;
            let name = label(&f, "name")?.ok_or_else(|| err(f.path("name"), Problem::Missing))?;
            let path_template = f
                .string("path")?
                .map(PathTemplate::parse)
                .transpose()
                .map_err(|e| err(f.path("path"), Problem::Invalid(e)))?;
            let op = OperationDef {
                name,
                method: f.string("method")?.map(str::to_ascii_uppercase),
                path: path_template,
                route_name: f.string("route_name")?.map(str::to_string),
            };
            if op.method.is_none() && op.path.is_none() && op.route_name.is_none() {
                return Err(err(p, Problem::Invalid("needs method, path or route_name".into())));
            }
            Ok(op)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(route: &'a str, authority: &'a str, path: &'a str, method: &'a str) -> RouteFacts<'a> {
        RouteFacts {
            route_name: route.as_bytes(),
            authority: authority.as_bytes(),
            path: path.as_bytes(),
            method: method.as_bytes(),
            metadata_api: b"",
        }
    }

    #[test]
    fn path_templates_match_whole_segments() {
        let t = PathTemplate::parse("/orders/{id}").unwrap();
        assert!(t.matches(b"/orders/42"));
        assert!(t.matches(b"/orders/42/"));
        assert!(!t.matches(b"/orders/"));
        assert!(!t.matches(b"/orders/42/items"));
        assert!(!t.matches(b"/order/42"));
        let t = PathTemplate::parse("/orders/{id}/*").unwrap();
        assert!(t.matches(b"/orders/42/items/7"));
        assert!(PathTemplate::parse("/*").unwrap().matches(b"/anything/at/all"));
        assert!(PathTemplate::parse("/").unwrap().matches(b"/"));
        assert!(PathTemplate::parse("orders").is_err());
        assert!(PathTemplate::parse("/a{id}").is_err());
        assert!(PathTemplate::parse("/a/*/b").is_err());
    }

    #[test]
    fn api_match_conditions_all_hold() {
        let m = ApiMatch {
            route_names: vec![],
            hosts: vec![HostPattern::parse("*.example.com"), HostPattern::parse("API.local")],
            path_prefixes: vec!["/orders".into()],
            metadata_name: None,
        };
        assert!(m.matches(&facts("", "shop.example.com:8443", "/orders/1", "GET")));
        assert!(m.matches(&facts("", "api.local", "/orders", "GET")));
        assert!(
            !m.matches(&facts("", "example.com", "/orders", "GET")),
            "the bare domain is not a subdomain"
        );
        assert!(!m.matches(&facts("", "api.local", "/users", "GET")));
        let by_metadata = ApiMatch {
            metadata_name: Some("orders".into()),
            ..Default::default()
        };
        assert!(by_metadata.matches(&RouteFacts {
            metadata_api: b"orders",
            ..facts("", "", "/", "GET")
        }));
        assert!(!by_metadata.matches(&RouteFacts {
            metadata_api: b"users",
            ..facts("", "", "/", "GET")
        }));
        assert!(
            !by_metadata.matches(&facts("", "", "/", "GET")),
            "no metadata, no match"
        );
        let by_route = ApiMatch {
            route_names: vec!["orders".into()],
            ..Default::default()
        };
        assert!(by_route.matches(&facts("orders", "", "/", "GET")));
        assert!(!by_route.matches(&facts("order", "", "/", "GET")));
    }

    #[test]
    fn operations_match_by_method_path_and_route() {
        let op = OperationDef {
            name: "get-order".into(),
            method: Some("GET".into()),
            path: Some(PathTemplate::parse("/orders/{id}").unwrap()),
            route_name: None,
        };
        assert!(op.matches(&facts("", "", "/orders/9", "GET")));
        assert!(!op.matches(&facts("", "", "/orders/9", "DELETE")));
        assert_eq!(host_of(b"[::1]:80"), b"[::1]");
    }
}
