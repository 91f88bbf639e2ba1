//! The sample backend over real HTTP, including a server-sent-event stream that must
//! arrive incrementally.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::backend::{pattern, Backend};
use harness::http;
use serde_json::json;

fn start() -> Backend {
    Backend::start("127.0.0.1:0").unwrap()
}

#[test]
fn status_route_answers_the_requested_code_for_any_method() {
    let b = start();
    for (method, code) in [("GET", 418), ("POST", 503), ("DELETE", 204), ("PUT", 201)] {
        let resp = http::request(b.addr(), method, &format!("/status/{code}"), &[], b"x").unwrap();
        assert_eq!(resp.status, code, "{method}");
    }
    let body = http::get(b.addr(), "/status/500").unwrap().json().unwrap();
    assert_eq!(body, json!({"status": 500}));
}

#[test]
fn delay_route_waits() {
    let b = start();
    let started = Instant::now();
    assert_eq!(http::get(b.addr(), "/delay/250").unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn bytes_route_sends_the_pattern() {
    let b = start();
    let resp = http::get(b.addr(), "/bytes/100000").unwrap();
    assert_eq!(resp.header("content-length"), Some("100000"));
    assert_eq!(resp.body, pattern(100_000));
}

#[test]
fn echo_route_describes_the_request() {
    let b = start();
    let resp = http::request(b.addr(), "POST", "/echo?a=1", &[("X-Trace", "t1")], &[7; 1234]).unwrap();
    let body = resp.json().unwrap();
    assert_eq!(
        (body["method"].as_str(), body["path"].as_str()),
        (Some("POST"), Some("/echo?a=1"))
    );
    assert_eq!(body["headers"]["x-trace"], "t1");
    assert_eq!(body["body_len"], 1234);
}

#[test]
fn other_paths_answer_ok() {
    let b = start();
    let body = http::get(b.addr(), "/api/orders/1").unwrap().json().unwrap();
    assert_eq!(body, json!({"ok": true, "path": "/api/orders/1"}));
}

#[test]
fn requests_are_logged_with_headers_and_body_length() {
    let b = start();
    http::request(
        b.addr(),
        "PUT",
        "/upload",
        &[("traceparent", "00-abc-def-01")],
        &vec![1; 50_000],
    )
    .unwrap();
    http::get(b.addr(), "/status/404").unwrap();
    let log = b.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].body_len),
        ("PUT", "/upload", 50_000)
    );
    assert_eq!(log[0].header("TraceParent"), Some("00-abc-def-01"));
    assert_eq!(log[1].path, "/status/404");
    assert_eq!(b.request_count(), 2);
    b.clear();
    assert!(b.requests().is_empty());
    assert_eq!(b.request_count(), 0);
}

/// Reads one chunk-size line and its data from a chunked body.
fn read_chunk(r: &mut impl BufRead) -> Vec<u8> {
    let mut size_line = String::new();
    r.read_line(&mut size_line).unwrap();
    let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
    let mut data = vec![0; size + 2];
    r.read_exact(&mut data).unwrap();
    data.truncate(size);
    data
}

#[test]
fn sse_events_arrive_one_chunk_at_a_time() {
    let b = start();
    let mut stream = TcpStream::connect(b.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /sse?events=3&interval_ms=400 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        reader.read_line(&mut head).unwrap();
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/event-stream"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );

    assert_eq!(read_chunk(&mut reader), b"data: event 0\n\n");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the first event must come before the second is sent"
    );
    assert_eq!(read_chunk(&mut reader), b"data: event 1\n\n");
    assert_eq!(read_chunk(&mut reader), b"data: event 2\n\n");
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(read_chunk(&mut reader).is_empty(), "then the last chunk");
}

#[test]
fn sse_through_the_client_collects_all_events() {
    let b = start();
    let resp = http::get(b.addr(), "/sse?events=4&interval_ms=10").unwrap();
    assert_eq!(
        resp.text(),
        "data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\n"
    );
}

#[test]
fn openai_routes_over_http_carry_the_usage_asked_for() {
    use envoy_appinsights::metrics::usage::{Usage, UsageScanner};
    let b = start();
    for (path, prompt, completion) in [
        ("/openai/json?prompt=3&completion=4", 3, 4),
        ("/openai/json?api=responses&prompt=5&completion=6", 5, 6),
        ("/openai/sse?events=3&interval_ms=5&prompt=7&completion=8", 7, 8),
        (
            "/openai/sse?api=responses&events=3&interval_ms=5&prompt=9&completion=10",
            9,
            10,
        ),
    ] {
        let resp = http::request(b.addr(), "POST", path, &[], b"{}").unwrap();
        assert_eq!(resp.status, 200, "{path}");
        let mut scanner = UsageScanner::new();
        scanner.push(&resp.body);
        let total = prompt + completion;
        assert_eq!(
            scanner.usage(),
            Some(Usage {
                prompt,
                completion,
                total
            }),
            "{path}"
        );
    }
    let resp = http::get(b.addr(), "/openai/none").unwrap();
    let mut scanner = UsageScanner::new();
    scanner.push(&resp.body);
    assert_eq!(scanner.usage(), None);
}
