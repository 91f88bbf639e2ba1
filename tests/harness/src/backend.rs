//! A sample upstream service for the gateway under test.
//!
//! Routes (any method):
//!
//! | Route | Answer |
//! |---|---|
//! | `/status/{code}` | that status, body `{"status":code}` |
//! | `/delay/{ms}` | 200 after `ms` milliseconds (at most 10 minutes) |
//! | `/bytes/{n}` | `n` bytes (at most 64 MiB) of the pattern `abc…xyzabc…` |
//! | `/sse?events=N&interval_ms=M` | `text/event-stream`, N events `data: event i\n\n` (i from 0), M ms apart, chunked |
//! | `/echo` | JSON: method, path, headers (lower-case names), body length |
//! | `/openai/json?prompt=N&completion=M` | an OpenAI Chat Completions answer with that `usage` (`&api=responses`: the Responses API's) |
//! | `/openai/sse?events=K&interval_ms=T&prompt=N&completion=M` | its stream: K chunks with `"usage":null`, T ms apart, then the usage (`&api=responses`: in `response.completed`) |
//! | `/openai/none` | a Chat Completions answer without `usage` |
//! | anything else | 200 `{"ok":true,"path":...}` |
//!
//! Every request is logged (method, path, headers, body length — not the body, so
//! large uploads cost no memory) for tests that check what the gateway forwarded.
//! The log keeps the latest [`MAX_LOGGED_REQUESTS`] entries so that a long load
//! test cannot exhaust memory; [`Backend::request_count`] counts them all.

// Server code paths handle untrusted network input: no panics (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::http::{self, find_header, Reply, Request, Response, Server};

mod openai;

/// Longest `/delay/{ms}`.
const MAX_DELAY_MS: u64 = 600_000;
/// Largest `/bytes/{n}`.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Largest `/sse` and `/openai/sse` event count.
const MAX_EVENTS: usize = 100_000;
/// How many of the latest requests the log keeps.
pub const MAX_LOGGED_REQUESTS: usize = 100_000;

/// One request as the backend saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// Target including the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl LoggedRequest {
    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The latest requests plus a total count.
#[derive(Default)]
struct Log {
    latest: VecDeque<LoggedRequest>,
    total: u64,
}

impl Log {
    fn push(&mut self, entry: LoggedRequest) {
        if self.latest.len() >= MAX_LOGGED_REQUESTS {
            self.latest.pop_front();
        }
        self.latest.push_back(entry);
        self.total += 1;
    }
}

/// A running backend; dropping it stops it.
pub struct Backend {
    log: Arc<Mutex<Log>>,
    server: Server,
}

impl Backend {
    /// Starts the backend on `bind` (e.g. `127.0.0.1:0`).
    pub fn start(bind: &str) -> std::io::Result<Backend> {
        let log: Arc<Mutex<Log>> = Arc::default();
        let handler_log = log.clone();
        let handler: http::Handler = Arc::new(move |req| {
            let entry = LoggedRequest {
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                body_len: req.body.len(),
            };
            lock(&handler_log).push(entry);
            route(req)
        });
        Ok(Backend {
            log,
            server: Server::start(bind, handler)?,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The requests received (the latest [`MAX_LOGGED_REQUESTS`]), oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.log).latest.iter().cloned().collect()
    }

    /// How many requests were received since start (or the last [`Backend::clear`]).
    pub fn request_count(&self) -> u64 {
        lock(&self.log).total
    }

    /// Forgets the request log and the count.
    pub fn clear(&self) {
        *lock(&self.log) = Log::default();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Dispatches one request to its route.
pub fn route(req: &Request) -> Reply {
    let path = req.path_only();
    let (first, arg) = match path.trim_start_matches('/').split_once('/') {
        Some((first, arg)) => (first, Some(arg)),
        None => (path.trim_start_matches('/'), None),
    };
    match (first, arg) {
        ("status", Some(code)) => status(code).into(),
        ("delay", Some(ms)) => delay(ms),
        ("bytes", Some(n)) => bytes(n).into(),
        ("sse", None) => sse(req),
        ("echo", None) => echo(req).into(),
        ("cacheable", Some(_)) => Response::json(200, &json!({"ok": true, "path": req.path}))
            .with_header("Cache-Control", "public, max-age=60")
            .with_header("Date", &http_date(std::time::SystemTime::now()))
            .into(),
        ("openai", Some("json")) => openai::whole(req),
        ("openai", Some("sse")) => openai::stream(req),
        ("openai", Some("none")) => openai::none(),
        _ => Response::json(200, &json!({"ok": true, "path": req.path})).into(),
    }
}

/// `Tue, 01 Dec 2026 20:02:10 GMT` (IMF-fixdate): caches need the response's age.
pub fn http_date(t: std::time::SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let iso = crate::schema::format_time(t); // 2026-12-01T20:02:10.123Z
    let (date, time) = iso.split_once('T').unwrap_or_default();
    let mut ymd = date.split('-');
    let (year, month, day) = (
        ymd.next().unwrap_or_default(),
        ymd.next(),
        ymd.next().unwrap_or_default(),
    );
    let month = month
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
    let weekday = DAYS.get((secs / 86_400 % 7) as usize);
    let hms = time.split('.').next().unwrap_or_default();
    format!(
        "{}, {day} {} {year} {hms} GMT",
        weekday.unwrap_or(&"Thu"),
        month.unwrap_or(&"Jan")
    )
}

fn bad_request(msg: &str) -> Response {
    Response::json(400, &json!({"error": msg}))
}

fn status(code: &str) -> Response {
    match code.parse::<u16>() {
        Ok(code @ 200..=599) => Response::json(code, &json!({"status": code})),
        _ => bad_request("status must be 200..=599"),
    }
}

fn delay(ms: &str) -> Reply {
    match ms.parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Reply::SleepThen(
            Duration::from_millis(ms),
            Response::json(200, &json!({"delayed_ms": ms})),
        ),
        _ => bad_request("delay must be 0..=600000 ms").into(),
    }
}

fn bytes(n: &str) -> Response {
    match n.parse::<usize>() {
        Ok(n) if n <= MAX_BYTES => Response::new(200)
            .with_header("Content-Type", "application/octet-stream")
            .with_body(pattern(n)),
        _ => bad_request("n must be 0..=67108864"),
    }
}

/// `n` bytes of `abc…xyz` repeated: deterministic, so tests can check integrity.
pub fn pattern(n: usize) -> Vec<u8> {
    b"abcdefghijklmnopqrstuvwxyz".iter().copied().cycle().take(n).collect()
}

fn sse(req: &Request) -> Reply {
    let param = |name, default| req.query_param(name).map_or(Ok(default), str::parse::<usize>);
    let (Ok(events), Ok(interval)) = (param("events", 5), param("interval_ms", 100)) else {
        return bad_request("events and interval_ms must be non-negative integers").into();
    };
    if events > MAX_EVENTS || interval as u64 > MAX_DELAY_MS {
        return bad_request("too many events or too long an interval").into();
    }
    let gap = Duration::from_millis(interval as u64);
    let chunks = (0..events)
        .map(|i| {
            (
                if i == 0 { Duration::ZERO } else { gap },
                format!("data: event {i}\n\n").into_bytes(),
            )
        })
        .collect();
    let headers = vec![
        ("Content-Type".to_string(), "text/event-stream".to_string()),
        ("Cache-Control".to_string(), "no-cache".to_string()),
    ];
    Reply::Stream {
        status: 200,
        headers,
        chunks,
    }
}

fn echo(req: &Request) -> Response {
    let mut headers = Map::new();
    for (name, value) in &req.headers {
        let key = name.to_ascii_lowercase();
        match headers.get_mut(&key) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(value);
            }
            _ => {
                headers.insert(key, json!(value));
            }
        }
    }
    Response::json(
        200,
        &json!({
            "method": req.method,
            "path": req.path,
            "headers": Value::Object(headers),
            "body_len": req.body.len(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Reply {
        route(&Request {
            method: "GET".into(),
            path: path.into(),
            ..Request::default()
        })
    }

    fn sent(reply: Reply) -> Response {
        match reply {
            Reply::Send(r) => r,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn status_route_answers_the_code_and_rejects_nonsense() {
        assert_eq!(sent(get("/status/503")).status, 503);
        let at = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(sent(get("/status/abc")).status, 400);
        assert_eq!(sent(get("/status/99")).status, 400);
    }

    #[test]
    fn bytes_route_is_deterministic() {
        let r = sent(get("/bytes/30"));
        assert_eq!(r.body, b"abcdefghijklmnopqrstuvwxyzabcd");
        assert_eq!(sent(get("/bytes/-1")).status, 400);
    }

    #[test]
    fn delay_and_sse_routes_ask_the_server_to_wait() {
        assert!(matches!(get("/delay/250"), Reply::SleepThen(d, _) if d == Duration::from_millis(250)));
        let Reply::Stream { chunks, .. } = get("/sse?events=3&interval_ms=20") else {
            panic!("expected a stream")
        };
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], (Duration::ZERO, b"data: event 0\n\n".to_vec()));
        assert_eq!(chunks[2], (Duration::from_millis(20), b"data: event 2\n\n".to_vec()));
        assert_eq!(sent(get("/sse?events=x")).status, 400);
    }

    #[test]
    fn echo_describes_the_request_and_joins_repeated_headers() {
        let req = Request {
            method: "PUT".into(),
            path: "/echo?q=1".into(),
            headers: vec![("X-A".into(), "1".into()), ("x-a".into(), "2".into())],
            body: vec![0; 7],
            ..Request::default()
        };
        let body: Value = serde_json::from_slice(&sent(route(&req)).body).unwrap();
        assert_eq!(
            body,
            json!({"method": "PUT", "path": "/echo?q=1", "headers": {"x-a": "1, 2"}, "body_len": 7})
        );
    }

    #[test]
    fn other_paths_say_ok() {
        let body: Value = serde_json::from_slice(&sent(get("/anything/else?x")).body).unwrap();
        assert_eq!(body, json!({"ok": true, "path": "/anything/else?x"}));
    }
}
