//! Request routing: the `track` paths, and the control API that lets another
//! process (the demo script, shell tests) drive a running endpoint.
//!
//! | Route | Meaning |
//! |---|---|
//! | `POST /v2/track`, `POST /v2.1/track` | ingestion |
//! | `GET /_items` | accepted items as NDJSON |
//! | `DELETE /_items` | forget items, requests and counters |
//! | `GET /_stats` | [`IngestStats`](super::IngestStats) as JSON, plus the current fault |
//! | `GET /_requests` | received `track` requests as NDJSON (body as UTF-8 text) |
//! | `POST /_fault` | set a fault, e.g. `{"mode":"status","code":503,"retry_after":"5","count":3}` |
//! | `GET /_health` | 200 `ok` |
//! | `GET /api/...` | the query API ([`crate::api`]) |
//! | `GET /`, `GET /ui/<file>` | the viewer page ([`crate::ui`]) |

use std::thread;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::{clear, payload, record, set_fault, take_fault, Fault, ReceivedRequest, Shared};
use crate::http::{Reply, Request, Response};

/// Dispatches one request.
pub(super) fn route(shared: &Shared, req: &Request) -> Reply {
    let method = req.method.as_str();
    // Leading slashes collapse to one: the Python exporter appends `/v2.1/track` to an
    // `IngestionEndpoint` that ends in `/`, as the portal's connection strings do.
    let path = format!("/{}", req.path_only().trim_start_matches('/'));
    let resp = match (path.as_str(), method) {
        ("/v2/track" | "/v2.1/track", "POST") => return track(shared, req),
        ("/v2/track" | "/v2.1/track", _) => not_allowed("POST"),
        ("/_items", "GET") => items_ndjson(shared),
        ("/_items", "DELETE") => {
            clear(shared);
            Response::json(200, &json!({"cleared": true}))
        }
        ("/_items", _) => not_allowed("GET, DELETE"),
        ("/_stats", "GET") => stats_json(shared),
        ("/_stats", _) => not_allowed("GET"),
        ("/_requests", "GET") => requests_ndjson(shared),
        ("/_requests", _) => not_allowed("GET"),
        ("/_fault", "POST") => post_fault(shared, &req.body),
        ("/_fault", _) => not_allowed("POST"),
        ("/_health", _) => Response::text(200, "ok"),
        (path, _) if path.starts_with("/api/") => crate::api::route(&shared.store(), req),
        (path, "GET" | "HEAD") if let Some(page) = crate::ui::route(path) => page,
        _ => Response::json(404, &json!({"error": "not found", "path": req.path})),
    };
    Reply::Send(resp)
}

fn not_allowed(allow: &str) -> Response {
    Response::json(405, &json!({"error": "method not allowed"})).with_header("Allow", allow)
}

/// Ingestion: judge the items, apply the current fault, record, answer.
fn track(shared: &Shared, req: &Request) -> Reply {
    let at_ms = shared.started.elapsed().as_millis() as u64;
    if let Some(reply) = refuse_credentials(shared, req, at_ms) {
        return reply;
    }
    let fault = take_fault(shared);
    if let Fault::Slow(delay) = fault {
        thread::sleep(delay);
    }
    let decoded = payload::decode_body(req);
    let mut outcome = match &decoded {
        Ok(body) => payload::judge_tolerating(
            body,
            shared.expected_ikey.as_deref(),
            &shared.tolerated_tags,
            SystemTime::now(),
        ),
        Err(msg) => payload::Outcome {
            verdicts: Vec::new(),
            payload_error: Some(msg.clone()),
        },
    };
    fault.apply_to_items(&mut outcome);
    let reply = fault.reply(&outcome);
    let status_answered = match &reply {
        Reply::Send(resp) | Reply::SleepThen(_, resp) => resp.status,
        Reply::Drop | Reply::Stream { .. } => 0,
    };
    let body = decoded.unwrap_or_else(|_| req.body.clone());
    let received = ReceivedRequest {
        path: req.path.clone(),
        headers: req.headers.clone(),
        body,
        status_answered,
        at_ms,
    };
    record(shared, received, &outcome, fault.stores_items());
    reply
}

/// When bearer tokens are required: 401 for a request without one of them (recorded,
/// nothing stored), like the service for an Entra ID-only resource.
fn refuse_credentials(shared: &Shared, req: &Request, at_ms: u64) -> Option<Reply> {
    let accepted = shared.lock().accepted_tokens.clone()?;
    let presented = req.header("authorization").and_then(|a| a.strip_prefix("Bearer "));
    if presented.is_some_and(|t| accepted.iter().any(|a| a == t)) {
        return None;
    }
    let body = payload::decode_body(req).unwrap_or_else(|_| req.body.clone());
    let received = ReceivedRequest {
        path: req.path.clone(),
        headers: req.headers.clone(),
        body,
        status_answered: 401,
        at_ms,
    };
    let mut rec = shared.lock();
    rec.stats.requests += 1;
    rec.requests.push(received);
    drop(rec);
    let answer = serde_json::json!({"itemsReceived": 0, "itemsAccepted": 0, "errors": []});
    Some(crate::http::Response::json(401, &answer).into())
}

fn ndjson(lines: impl Iterator<Item = String>) -> Response {
    let mut body = String::new();
    for line in lines {
        body.push_str(&line);
        body.push('\n');
    }
    Response::new(200)
        .with_header("Content-Type", "application/x-ndjson")
        .with_body(body.into_bytes())
}

fn items_ndjson(shared: &Shared) -> Response {
    let items = shared.lock().items.clone();
    ndjson(items.iter().map(Value::to_string))
}

fn requests_ndjson(shared: &Shared) -> Response {
    let requests = shared.lock().requests.clone();
    ndjson(requests.iter().map(|r| {
        json!({
            "path": r.path,
            "headers": r.headers,
            "body": String::from_utf8_lossy(&r.body),
            "status_answered": r.status_answered,
        })
        .to_string()
    }))
}

fn stats_json(shared: &Shared) -> Response {
    let (stats, fault, left, stored) = {
        let rec = shared.lock();
        (rec.stats.clone(), rec.fault.describe(), rec.fault_left, rec.items.len())
    };
    let mut v = serde_json::to_value(&stats).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("items_stored".into(), json!(stored));
        obj.insert("fault".into(), json!(fault));
        obj.insert("fault_requests_left".into(), json!(left));
    }
    Response::json(200, &v)
}

fn post_fault(shared: &Shared, body: &[u8]) -> Response {
    let parsed = serde_json::from_slice::<Value>(body)
        .map_err(|e| format!("invalid JSON: {e}"))
        .and_then(|v| Fault::from_json(&v));
    match parsed {
        Ok((fault, count)) => {
            let description = fault.describe();
            set_fault(shared, fault, count);
            Response::json(200, &json!({"fault": description, "count": count}))
        }
        Err(msg) => Response::json(400, &json!({"error": msg})),
    }
}
