//! A tiny HTTP/1.1 server and client on std threads, for the host-side test kit.
//!
//! Envoy talks to the local ingestion endpoint and to the sample backend over plain
//! HTTP/1.1 with keep-alive, so the server here supports exactly that: persistent
//! connections, `Content-Length` and chunked request bodies, `Expect: 100-continue`,
//! and a thread per connection. Handlers return a [`Reply`], which can also ask for
//! the misbehaviour that fault-injection tests need (answer late, hang up, stream).
//!
//! Layout:
//! - this file: the message types ([`Request`], [`Response`], [`Reply`]);
//! - `wire.rs`: bounded line/header/body readers shared by both sides;
//! - `server.rs`: [`Server`] (accept loop, connection loop, reply writer);
//! - `client.rs`: [`request`] and friends, one request per connection.

// Server code paths handle untrusted network input: no panics (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

mod client;
mod server;
mod wire;

use std::time::Duration;

pub use client::{get, post, read_response, request, request_timeout, ClientResponse, CLIENT_TIMEOUT};
pub use server::{Handler, Server, MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// One parsed HTTP request, as handed to a [`Handler`].
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Method as sent (`GET`, `POST`, ...).
    pub method: String,
    /// Request target including the query string, e.g. `/sse?events=3`.
    pub path: String,
    /// Protocol version as sent, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields in arrival order; names keep the sender's case.
    pub headers: Vec<(String, String)>,
    /// Body after removing any chunked transfer coding.
    pub body: Vec<u8>,
}

impl Request {
    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, q)| q)
    }

    /// Raw (not percent-decoded) value of the query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let query = self.query()?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A complete response. The server adds `Content-Length` and `Connection` itself and
/// ignores those (and `Transfer-Encoding`) if a handler sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `application/json` response with the compact serialization of `value`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status)
            .with_header("Content-Type", "application/json")
            .with_body(value.to_string().into_bytes())
    }

    /// `text/plain; charset=utf-8` response.
    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(text.as_bytes().to_vec())
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the body (builder style).
    pub fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }

    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// What the server should do with a request: answer, or misbehave on purpose.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Send the response now.
    Send(Response),
    /// Wait, then send the response (a slow upstream).
    SleepThen(Duration, Response),
    /// Close the connection without answering (a crashed upstream).
    Drop,
    /// Send a chunked response, flushing each chunk after waiting its delay
    /// (server-sent events, slow downloads).
    Stream {
        status: u16,
        headers: Vec<(String, String)>,
        /// `(delay before this chunk, bytes)`; empty chunks only wait.
        chunks: Vec<(Duration, Vec<u8>)>,
    },
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::Send(response)
    }
}

/// Case-insensitive lookup of the first header called `name`.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Standard reason phrase for the status codes tests use; a neutral one otherwise.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        439 => "Too Many Requests Over Extended Time",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> Request {
        Request {
            path: path.to_string(),
            headers: vec![("X-Thing".into(), "a".into()), ("x-thing".into(), "b".into())],
            ..Request::default()
        }
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_returns_the_first() {
        assert_eq!(req("/").header("x-THING"), Some("a"));
        assert_eq!(req("/").header("missing"), None);
    }

    #[test]
    fn query_helpers_split_path_and_parameters() {
        let r = req("/sse?events=3&interval_ms=10&flag");
        assert_eq!(r.path_only(), "/sse");
        assert_eq!(r.query_param("events"), Some("3"));
        assert_eq!(r.query_param("interval_ms"), Some("10"));
        assert_eq!(r.query_param("flag"), Some(""));
        assert_eq!(r.query_param("nope"), None);
        assert_eq!(req("/plain").query(), None);
    }

    #[test]
    fn json_and_text_helpers_set_content_type() {
        let j = Response::json(201, &serde_json::json!({"a": 1}));
        assert_eq!(j.header("content-type"), Some("application/json"));
        assert_eq!(j.body, br#"{"a":1}"#);
        let t = Response::text(404, "nope");
        assert_eq!(t.status, 404);
        assert_eq!(t.body, b"nope");
    }
}
