//! The HTTP/1.1 server: an accept thread plus one thread per connection.
//!
//! Connections are persistent (Envoy keeps upstream connections open and sends many
//! requests on each). Dropping the [`Server`] stops the accept loop (woken with a
//! self-connect) and shuts down every open connection so no thread stays blocked.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::wire::{self, BodyKind, WireError};
use super::{reason_phrase, Reply, Request, Response};

/// Largest accepted request head (request line plus headers); larger gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest accepted request body; larger gets 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// How long to keep reading (and discarding) a rejected body so the client sees
/// our error response instead of a connection reset.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The request handler: called on the connection's thread, once per request.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Open connections, so that `Drop` can shut them down.
type Registry = Arc<Mutex<HashMap<u64, TcpStream>>>;

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Registry,
    accept_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `bind` (e.g. `127.0.0.1:0`) and starts serving with `handler`.
    pub fn start(bind: &str, handler: Handler) -> io::Result<Server> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Registry = Arc::default();
        let accept_thread = {
            let (stop, conns) = (stop.clone(), conns.clone());
            thread::Builder::new()
                .name(format!("http-accept-{}", addr.port()))
                .spawn(move || accept_loop(listener, handler, stop, conns))?
        };
        Ok(Server {
            addr,
            stop,
            conns,
            accept_thread: Some(accept_thread),
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let woke = TcpStream::connect_timeout(&wake_addr(self.addr), Duration::from_secs(1)).is_ok();
        if let Some(t) = self.accept_thread.take() {
            // Without a successful wake-up the accept call might never return:
            // detach the thread rather than hang the caller.
            if woke {
                let _ = t.join();
            }
        }
        for (_, conn) in lock(&self.conns).drain() {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

/// The address to self-connect to: loopback when bound to a wildcard address.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        match a {
            SocketAddr::V4(_) => a.set_ip([127, 0, 0, 1].into()),
            SocketAddr::V6(_) => a.set_ip(std::net::Ipv6Addr::LOCALHOST.into()),
        }
    }
    a
}

/// Locks a mutex even if a panicking thread poisoned it: the data here stays valid.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: TcpListener, handler: Handler, stop: Arc<AtomicBool>, conns: Registry) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    for incoming in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match incoming {
            Ok(s) => s,
            Err(_) => {
                // e.g. EMFILE under load: back off briefly instead of spinning or dying.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            lock(&conns).insert(id, clone);
        }
        let (handler, registry) = (handler.clone(), conns.clone());
        let spawned = thread::Builder::new().name("http-conn".into()).spawn(move || {
            serve_connection(stream, &handler);
            lock(&registry).remove(&id);
        });
        if spawned.is_err() {
            lock(&conns).remove(&id);
        }
    }
}

/// Serves requests on one connection until either side wants it closed.
fn serve_connection(stream: TcpStream, handler: &Handler) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let mut writer = stream;
    loop {
        let (req, keep_alive) = match read_request(&mut reader, &mut writer) {
            Ok(r) => r,
            Err(WireError::Closed) | Err(WireError::Io(_)) => return,
            Err(WireError::Bad(status, msg)) => return reject(&mut reader, &mut writer, status, &msg),
        };
        let reply = call_handler(handler, &req);
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        match send_reply(&mut writer, reply, keep_alive, head_only, &req.version) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
    }
}

/// Answers a malformed request, then drains what the client may still be sending so
/// that it can read the answer (closing with unread data would reset the connection).
fn reject(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream, status: u16, msg: &str) {
    let _ = write_response(writer, &Response::text(status, msg), false, false);
    let _ = writer.shutdown(Shutdown::Write);
    let _ = reader.get_ref().set_read_timeout(Some(DRAIN_TIMEOUT));
    let _ = io::copy(&mut reader.by_ref().take(2 * MAX_BODY_BYTES as u64), &mut io::sink());
}

/// A panicking handler must not take the connection thread down silently: answer 500.
fn call_handler(handler: &Handler, req: &Request) -> Reply {
    match catch_unwind(AssertUnwindSafe(|| handler(req))) {
        Ok(reply) => reply,
        Err(_) => Reply::Send(Response::text(500, "handler panicked")),
    }
}

/// Reads one request; returns it with the keep-alive decision.
fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Result<(Request, bool), WireError> {
    let mut budget = MAX_HEAD_BYTES;
    let (method, path, version) = read_request_line(reader, &mut budget)?;
    let headers = wire::read_headers(reader, &mut budget)?;
    let mut req = Request {
        method,
        path,
        version,
        headers,
        body: Vec::new(),
    };
    let kind = wire::body_kind(&req.headers, true)?;
    if matches!(kind, BodyKind::Length(n) if n > MAX_BODY_BYTES as u64) {
        return Err(WireError::Bad(413, "body too large".into()));
    }
    if kind != BodyKind::None && wants_continue(&req) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    req.body = wire::read_body(reader, &kind, MAX_BODY_BYTES)?;
    let keep_alive = keep_alive(&req);
    Ok((req, keep_alive))
}

fn read_request_line(
    reader: &mut BufReader<TcpStream>,
    budget: &mut usize,
) -> Result<(String, String, String), WireError> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let line = loop {
        match wire::read_line(reader, budget)? {
            None => return Err(WireError::Closed),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let text = String::from_utf8_lossy(&line);
    let parts: Vec<&str> = text.split(' ').collect();
    let bad = || WireError::Bad(400, "malformed request line".into());
    let [method, target, version] = parts.as_slice() else {
        return Err(bad());
    };
    let ok = !method.is_empty()
        && method.bytes().all(wire::is_token_byte)
        && !target.is_empty()
        && version.starts_with("HTTP/1.");
    if !ok {
        return Err(bad());
    }
    Ok((method.to_string(), target.to_string(), version.to_string()))
}

fn wants_continue(req: &Request) -> bool {
    req.version == "HTTP/1.1"
        && req
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn keep_alive(req: &Request) -> bool {
    let conn = req.header("connection");
    if req.version == "HTTP/1.0" {
        has_token(conn, "keep-alive")
    } else {
        !has_token(conn, "close")
    }
}

/// Writes the reply; `Ok(true)` if the connection may serve another request.
fn send_reply(w: &mut TcpStream, reply: Reply, keep_alive: bool, head_only: bool, version: &str) -> io::Result<bool> {
    match reply {
        Reply::Send(resp) => write_response(w, &resp, keep_alive, head_only).map(|_| keep_alive),
        Reply::SleepThen(delay, resp) => {
            thread::sleep(delay);
            write_response(w, &resp, keep_alive, head_only).map(|_| keep_alive)
        }
        Reply::Drop => {
            let _ = w.shutdown(Shutdown::Both);
            Ok(false)
        }
        Reply::Stream {
            status,
            headers,
            chunks,
        } => {
            // HTTP/1.0 has no chunked coding: send raw bytes and close instead.
            let chunked = version != "HTTP/1.0";
            write_stream(w, status, &headers, chunks, keep_alive && chunked, chunked).map(|_| keep_alive && chunked)
        }
    }
}

/// Headers the server owns: a handler's values for these are ignored.
fn is_framing_header(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

fn write_head(status: u16, headers: &[(String, String)], framing: &str, keep_alive: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    for (k, v) in headers.iter().filter(|(k, _)| !is_framing_header(k)) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(framing);
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// 1xx, 204 and 304 responses never carry a body or a length.
fn body_allowed(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

pub(crate) fn write_response(w: &mut impl Write, resp: &Response, keep_alive: bool, head_only: bool) -> io::Result<()> {
    let allowed = body_allowed(resp.status);
    let framing = if allowed {
        format!("Content-Length: {}\r\n", resp.body.len())
    } else {
        String::new()
    };
    let mut out = write_head(resp.status, &resp.headers, &framing, keep_alive);
    if allowed && !head_only {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()
}

fn write_stream(
    w: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    chunks: Vec<(Duration, Vec<u8>)>,
    keep_alive: bool,
    chunked: bool,
) -> io::Result<()> {
    let framing = if chunked { "Transfer-Encoding: chunked\r\n" } else { "" };
    w.write_all(&write_head(status, headers, framing, keep_alive))?;
    w.flush()?;
    for (delay, data) in chunks {
        thread::sleep(delay);
        if data.is_empty() {
            continue; // a zero-size chunk would end the body early
        }
        if chunked {
            w.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
            w.write_all(&data)?;
            w.write_all(b"\r\n")?;
        } else {
            w.write_all(&data)?;
        }
        w.flush()?;
    }
    if chunked {
        w.write_all(b"0\r\n\r\n")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_status_line_headers_and_close() {
        let headers = vec![
            ("X-A".to_string(), "1".to_string()),
            ("content-length".to_string(), "99".to_string()),
        ];
        let head = String::from_utf8(write_head(503, &headers, "Content-Length: 0\r\n", false)).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 503 Service Unavailable\r\nX-A: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn no_content_responses_have_no_length_or_body() {
        let mut out = Vec::new();
        let resp = Response::text(204, "ignored");
        assert!(write_response(&mut out, &resp, true, false).is_ok());
        assert_eq!(
            out,
            b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        );
    }

    #[test]
    fn streams_are_chunk_encoded() {
        let mut out = Vec::new();
        let chunks = vec![
            (Duration::ZERO, b"ab".to_vec()),
            (Duration::ZERO, Vec::new()),
            (Duration::ZERO, b"c".to_vec()),
        ];
        assert!(write_stream(&mut out, 200, &[], chunks, true, true).is_ok());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with("Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"),
            "{text}"
        );
    }

    #[test]
    fn wildcard_binds_are_woken_through_loopback() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(wake_addr(addr).to_string(), "127.0.0.1:8080");
    }
}
