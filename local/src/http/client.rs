//! The HTTP/1.1 client: one request per connection (`Connection: close`), with a
//! timeout on every step so a test can never hang on a silent peer.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::wire::{self, BodyKind};
use super::{find_header, MAX_HEAD_BYTES};

/// Default connect/read/write timeout of [`request`].
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body the client reads.
const MAX_RESPONSE_BODY: usize = 1 << 30;

/// A response as read by the client (chunked coding already removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
    }
}

/// Sends one request and reads the whole response, with [`CLIENT_TIMEOUT`].
///
/// `Host`, `Connection: close` and `Content-Length` are added unless `headers`
/// already has them (a `Transfer-Encoding` header suppresses `Content-Length`;
/// the body is then sent as given).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<ClientResponse> {
    request_timeout(addr, method, path, headers, body, CLIENT_TIMEOUT)
}

/// `GET path` with no extra headers.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<ClientResponse> {
    request(addr, "GET", path, &[], b"")
}

/// `POST path` with the given content type and body.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> io::Result<ClientResponse> {
    request(addr, "POST", path, &[("Content-Type", content_type)], body)
}

/// [`request`] with an explicit timeout for connect, each read and each write.
pub fn request_timeout(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<ClientResponse> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let sent = write_request(&mut writer, addr, method, path, headers, body);
    // Even if sending failed (the server may have answered early, e.g. 413, and
    // closed), the response may already be readable: prefer it over the write error.
    match read_response(&mut reader, method) {
        Ok(resp) => Ok(resp),
        Err(read_err) => Err(sent.err().unwrap_or(read_err)),
    }
}

fn write_request(
    w: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    if !has("content-length") && !has("transfer-encoding") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// Reads one response from `r` (skipping `1xx` interim responses). `method` is the
/// request's method: a `HEAD` response has no body. Useful on raw keep-alive streams.
pub fn read_response<R: BufRead>(r: &mut R, method: &str) -> io::Result<ClientResponse> {
    loop {
        let mut budget = MAX_HEAD_BYTES;
        let line = wire::read_line(r, &mut budget)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"))?;
        let status = parse_status_line(&line)?;
        let headers = wire::read_headers(r, &mut budget)?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let no_body = method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status < 200;
        let kind = if no_body {
            BodyKind::None
        } else {
            wire::body_kind(&headers, false)?
        };
        let body = wire::read_body(r, &kind, MAX_RESPONSE_BODY)?;
        return Ok(ClientResponse { status, headers, body });
    }
}

fn parse_status_line(line: &[u8]) -> io::Result<u16> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    match (version.starts_with("HTTP/1."), code.parse::<u16>()) {
        (true, Ok(status)) if (100..1000).contains(&status) => Ok(status),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad status line {text:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_chunked_responses_after_an_interim_100() {
        let wire =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let resp = read_response(&mut Cursor::new(wire.to_vec()), "GET").unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, b"abc".as_slice()));
    }

    #[test]
    fn reads_until_close_without_a_length_and_nothing_for_head() {
        let wire = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(
            read_response(&mut Cursor::new(wire.to_vec()), "GET").unwrap().body,
            b"all of it"
        );
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n";
        assert!(read_response(&mut Cursor::new(wire.to_vec()), "HEAD")
            .unwrap()
            .body
            .is_empty());
    }

    #[test]
    fn rejects_a_garbage_status_line() {
        assert!(read_response(&mut Cursor::new(b"SSH-2.0-x\r\n\r\n".to_vec()), "GET").is_err());
    }
}
