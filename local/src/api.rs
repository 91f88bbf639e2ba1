//! The JSON query API the viewer page reads (docs/local.md): `/api/summary`,
//! `/api/items`, `/api/items/{seq}`, `/api/operations/{id}`, `/api/failures`,
//! `/api/metrics`, `/api/availability`, `/api/rejected`.
//!
//! Every handler reads the [`Store`] under its lock and answers `application/json`;
//! bad parameters are a 400 with `{"error": "..."}`. Lists are newest first, with
//! `limit` (default 100, at most 1000) and `before_seq` (page back).
//!
//! Layout: this file routes and parses parameters; `query.rs` lists and filters items
//! (and the summary, one item, the rejected items); `operations.rs` builds an
//! operation's tree; `failures.rs`, `metrics.rs` and `availability.rs` aggregate.

mod availability;
mod failures;
mod metrics;
mod operations;
mod query;

use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::store::{parse_iso_ms, Store};

/// Default and largest page size.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Answers an `/api/...` request from `store`.
pub fn route(store: &Store, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::json(405, &json!({"error": "method not allowed"})).with_header("Allow", "GET");
    }
    let params = match Params::parse(req.query().unwrap_or("")) {
        Ok(params) => params,
        Err(msg) => return bad_request(&msg),
    };
    let path = req.path_only();
    let answer = match path {
        "/api/summary" => Ok(query::summary(store)),
        "/api/items" => query::items(store, &params),
        "/api/failures" => failures::failures(store, &params),
        "/api/metrics" => metrics::metrics(store, &params),
        "/api/availability" => Ok(availability::availability(store)),
        "/api/rejected" => params.limit().map(|limit| query::rejected(store, limit)),
        _ => return route_by_id(store, path),
    };
    match answer {
        Ok(value) => Response::json(200, &value),
        Err(msg) => bad_request(&msg),
    }
}

/// `/api/items/{seq}` and `/api/operations/{id}`.
fn route_by_id(store: &Store, path: &str) -> Response {
    let found = if let Some(seq) = path.strip_prefix("/api/items/") {
        match seq.parse::<u64>() {
            Ok(seq) => query::item(store, seq),
            Err(_) => return bad_request("the item's seq must be a number"),
        }
    } else if let Some(id) = path.strip_prefix("/api/operations/") {
        operations::operation(store, &percent_decode(id))
    } else {
        return not_found("no such API");
    };
    match found {
        Some(value) => Response::json(200, &value),
        None => not_found("not stored (never received, or evicted)"),
    }
}

fn bad_request(msg: &str) -> Response {
    Response::json(400, &json!({"error": msg}))
}

fn not_found(msg: &str) -> Response {
    Response::json(404, &json!({"error": msg}))
}

/// Decoded query parameters.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Splits and percent-decodes `a=1&b=x+y`.
    pub fn parse(query: &str) -> Result<Params, String> {
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Ok(Params(pairs))
    }

    /// The last value of `name`, empty values counting as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// `limit`: default 100, at most 1000.
    pub fn limit(&self) -> Result<usize, String> {
        match self.get("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => v
                .parse::<usize>()
                .map(|n| n.clamp(1, MAX_LIMIT))
                .map_err(|_| format!("limit: {v:?} is not a number")),
        }
    }

    /// A number parameter.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name)
            .map(|v| v.parse::<T>().map_err(|_| format!("{name}: {v:?} is not a number")))
            .transpose()
    }

    /// A `true`/`false` parameter.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(format!("{name}: {v:?} is neither true nor false")),
        }
    }

    /// An ISO-8601 UTC time parameter, in milliseconds since the epoch.
    pub fn time(&self, name: &str) -> Result<Option<i64>, String> {
        self.get(name)
            .map(|v| parse_iso_ms(v).ok_or_else(|| format!("{name}: {v:?} is not an ISO-8601 UTC time")))
            .transpose()
    }
}

/// Decodes `%XX` escapes and `+` (as a space); invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A summary as JSON.
fn summary_json(entry: &crate::store::Entry) -> Value {
    serde_json::to_value(entry.rec.summary(entry.seq)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
