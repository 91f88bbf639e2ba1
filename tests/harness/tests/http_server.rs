//! The HTTP server's robustness: malformed input gets an error answer and never
//! takes the server down; limits; 100-continue; handler panics; shutdown on drop.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use harness::http::{self, Handler, Reply, Response, Server};

fn server() -> Server {
    let handler: Handler = Arc::new(|req| match req.path_only() {
        "/panic" => panic!("handler bug"),
        "/drop" => Reply::Drop,
        _ => Response::text(200, &format!("{} {} {}", req.method, req.path, req.body.len())).into(),
    });
    Server::start("127.0.0.1:0", handler).unwrap()
}

/// Sends raw bytes, half-closes, and reads everything until the server closes.
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn still_serving(addr: SocketAddr) {
    assert_eq!(http::get(addr, "/ok").unwrap().text(), "GET /ok 0");
}

#[test]
fn malformed_requests_get_400_and_the_server_survives() {
    let s = server();
    for junk in [
        &b"garbage\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"\xff\xfe\x00 / HTTP/1.1\r\n\r\n",
    ] {
        let answer = raw(s.addr(), junk);
        assert!(answer.starts_with("HTTP/1.1 400"), "{junk:?} -> {answer:?}");
        assert!(answer.contains("Connection: close"));
    }
    still_serving(s.addr());
}

#[test]
fn a_truncated_request_is_dropped_quietly() {
    let s = server();
    assert_eq!(raw(s.addr(), b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"), "");
    still_serving(s.addr());
}

#[test]
fn oversized_heads_get_431_and_oversized_bodies_413() {
    let s = server();
    let big_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70 * 1024));
    assert!(raw(s.addr(), big_header.as_bytes()).starts_with("HTTP/1.1 431"));
    let big_body = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", 65 * 1024 * 1024);
    assert!(raw(s.addr(), big_body.as_bytes()).starts_with("HTTP/1.1 413"));
    still_serving(s.addr());
}

#[test]
fn an_oversized_chunked_body_gets_413_even_while_the_client_keeps_sending() {
    let s = server();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut body = Vec::new();
    for _ in 0..65 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let resp = http::request(s.addr(), "POST", "/", &[("Transfer-Encoding", "chunked")], &body).unwrap();
    assert_eq!(resp.status, 413);
    still_serving(s.addr());
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let s = server();
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
        .write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        .unwrap();
    let mut interim = [0; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"abc").unwrap();
    let resp = http::read_response(&mut BufReader::new(stream), "POST").unwrap();
    assert_eq!(resp.text(), "POST /up 3");
}

#[test]
fn a_panicking_handler_answers_500_and_the_connection_goes_on() {
    let s = server();
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream.write_all(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(http::read_response(&mut reader, "GET").unwrap().status, 500);
    stream.write_all(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(http::read_response(&mut reader, "GET").unwrap().text(), "GET /after 0");
}

#[test]
fn head_requests_and_http_1_0_are_handled() {
    let s = server();
    let head = http::request(s.addr(), "HEAD", "/x", &[], b"").unwrap();
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some("9"), 0)
    );
    let answer = raw(s.addr(), b"GET /old HTTP/1.0\r\n\r\n");
    assert!(
        answer.contains("Connection: close") && answer.ends_with("GET /old 0"),
        "{answer}"
    );
}

#[test]
fn a_drop_reply_closes_the_connection_without_an_answer() {
    let s = server();
    assert!(http::get(s.addr(), "/drop").is_err());
    still_serving(s.addr());
}

#[test]
fn dropping_the_server_closes_idle_connections_and_stops_accepting() {
    let s = server();
    let addr = s.addr();
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    still_serving(addr);
    drop(s);
    let mut buf = [0; 1];
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "idle keep-alive connection must be closed"
    );
    let after = http::request_timeout(addr, "GET", "/", &[], b"", Duration::from_secs(2));
    assert!(after.is_err(), "no one should answer after drop: {after:?}");
}
