//! Bounded readers for HTTP/1.1 framing, shared by the server and the client.
//!
//! Every read has a byte budget so that a malformed or hostile peer produces an
//! error value (mapped to 400/413/431 by the server) instead of unbounded memory
//! use or a panic.

use std::io::{self, BufRead, Read};

/// Why reading a message failed.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed the connection cleanly before the first byte of a message.
    Closed,
    /// Transport error or EOF in the middle of a message.
    Io(io::Error),
    /// The message is malformed or too large: answer `status` and close.
    Bad(u16, String),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> WireError {
        WireError::Io(e)
    }
}

impl From<WireError> for io::Error {
    fn from(e: WireError) -> io::Error {
        match e {
            WireError::Closed => io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
            WireError::Io(e) => e,
            WireError::Bad(status, msg) => io::Error::new(io::ErrorKind::InvalidData, format!("{status}: {msg}")),
        }
    }
}

fn bad(status: u16, msg: impl Into<String>) -> WireError {
    WireError::Bad(status, msg.into())
}

/// Reads one line ending in `\n` (the `\r\n` or `\n` is stripped), charging its
/// length to `budget`. `Ok(None)` means EOF before any byte.
pub fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Option<Vec<u8>>, WireError> {
    let mut line = Vec::new();
    let limit = (*budget as u64).saturating_add(1);
    let n = r.by_ref().take(limit).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        if n as u64 >= limit {
            return Err(bad(431, "header section too large"));
        }
        return Err(WireError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "EOF inside a line",
        )));
    }
    *budget = budget.saturating_sub(n);
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Reads header fields up to the empty line that ends the head.
pub fn read_headers<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<Vec<(String, String)>, WireError> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, budget)?.ok_or_else(|| eof("EOF inside headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        headers.push(parse_header_line(&line)?);
    }
}

fn eof(msg: &str) -> WireError {
    WireError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string()))
}

fn parse_header_line(line: &[u8]) -> Result<(String, String), WireError> {
    if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return Err(bad(400, "obsolete header line folding"));
    }
    let text = String::from_utf8_lossy(line);
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| bad(400, "header line without ':'"))?;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(bad(400, format!("invalid header name {name:?}")));
    }
    Ok((name.to_string(), value.trim_matches([' ', '\t']).to_string()))
}

/// RFC 9110 `tchar`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// How the body of a message is delimited.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// Until the peer closes (responses only).
    UntilClose,
}

/// Body framing from the headers (`Transfer-Encoding` wins over `Content-Length`).
pub fn body_kind(headers: &[(String, String)], is_request: bool) -> Result<BodyKind, WireError> {
    let te: Vec<&str> = values(headers, "transfer-encoding");
    if !te.is_empty() {
        let last = te
            .join(",")
            .rsplit(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        return match (last == "chunked", is_request) {
            (true, _) => Ok(BodyKind::Chunked),
            (false, true) => Err(bad(400, "unsupported transfer-encoding")),
            (false, false) => Ok(BodyKind::UntilClose),
        };
    }
    content_length(headers).map(|cl| match cl {
        Some(n) => BodyKind::Length(n),
        None if is_request => BodyKind::None,
        None => BodyKind::UntilClose,
    })
}

fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// All `Content-Length` values must agree (RFC 9112 §6.3) and be plain digits.
fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, WireError> {
    let mut found: Option<u64> = None;
    for raw in values(headers, "content-length").iter().flat_map(|v| v.split(',')) {
        let raw = raw.trim();
        let n: u64 = match raw.bytes().all(|b| b.is_ascii_digit()) {
            true => raw.parse().map_err(|_| bad(400, "invalid content-length"))?,
            false => return Err(bad(400, "invalid content-length")),
        };
        if found.is_some_and(|f| f != n) {
            return Err(bad(400, "conflicting content-length values"));
        }
        found = Some(n);
    }
    Ok(found)
}

/// Reads a body of the given kind, refusing more than `max` bytes with 413.
pub fn read_body<R: BufRead>(r: &mut R, kind: &BodyKind, max: usize) -> Result<Vec<u8>, WireError> {
    match kind {
        BodyKind::None => Ok(Vec::new()),
        BodyKind::Length(n) => read_exact_body(r, *n, max),
        BodyKind::Chunked => read_chunked(r, max),
        BodyKind::UntilClose => read_until_close(r, max),
    }
}

fn too_large() -> WireError {
    bad(413, "body too large")
}

fn read_exact_body<R: BufRead>(r: &mut R, n: u64, max: usize) -> Result<Vec<u8>, WireError> {
    if n > max as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(n as usize);
    r.by_ref().take(n).read_to_end(&mut body)?;
    if (body.len() as u64) < n {
        return Err(eof("EOF inside body"));
    }
    Ok(body)
}

fn read_until_close<R: BufRead>(r: &mut R, max: usize) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    r.by_ref().take(max as u64 + 1).read_to_end(&mut body)?;
    if body.len() > max {
        return Err(too_large());
    }
    Ok(body)
}

/// Chunked transfer coding: `size[;ext]CRLF data CRLF ... 0 CRLF trailers CRLF`.
fn read_chunked<R: BufRead>(r: &mut R, max: usize) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    loop {
        let size = read_chunk_size(r)?;
        if size == 0 {
            let mut budget = super::MAX_HEAD_BYTES;
            read_headers(r, &mut budget)?; // trailers are read and ignored
            return Ok(body);
        }
        if body.len() as u64 + size > max as u64 {
            return Err(too_large());
        }
        let chunk = read_exact_body(r, size, max)?;
        body.extend_from_slice(&chunk);
        let mut budget = 2;
        match read_line(r, &mut budget) {
            Ok(Some(end)) if end.is_empty() => {}
            Ok(_) | Err(WireError::Bad(..)) => return Err(bad(400, "chunk not followed by CRLF")),
            Err(e) => return Err(e),
        }
    }
}

fn read_chunk_size<R: BufRead>(r: &mut R) -> Result<u64, WireError> {
    let mut budget = 1024;
    let line = read_line(r, &mut budget)?.ok_or_else(|| eof("EOF before chunk size"))?;
    let text = String::from_utf8_lossy(&line);
    let hex = text.split(';').next().unwrap_or_default().trim();
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(400, "invalid chunk size"));
    }
    u64::from_str_radix(hex, 16).map_err(|_| bad(400, "invalid chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn read_line_strips_crlf_and_charges_the_budget() {
        let mut c = Cursor::new(b"abc\r\ndef\n".to_vec());
        let mut budget = 100;
        assert_eq!(read_line(&mut c, &mut budget).ok().flatten(), Some(b"abc".to_vec()));
        assert_eq!(budget, 95);
        assert_eq!(read_line(&mut c, &mut budget).ok().flatten(), Some(b"def".to_vec()));
        assert!(matches!(read_line(&mut c, &mut budget), Ok(None)));
    }

    #[test]
    fn read_line_over_budget_is_431() {
        let mut c = Cursor::new(vec![b'a'; 50]);
        let mut budget = 10;
        assert!(matches!(read_line(&mut c, &mut budget), Err(WireError::Bad(431, _))));
    }

    #[test]
    fn header_names_must_be_tokens() {
        let mut c = Cursor::new(b"bad name: x\r\n\r\n".to_vec());
        let mut budget = 1000;
        assert!(matches!(read_headers(&mut c, &mut budget), Err(WireError::Bad(400, _))));
    }

    #[test]
    fn body_kind_prefers_chunked_and_rejects_conflicting_lengths() {
        let chunked = hdrs(&[("Transfer-Encoding", "gzip, chunked"), ("Content-Length", "3")]);
        assert_eq!(body_kind(&chunked, true).ok(), Some(BodyKind::Chunked));
        let conflict = hdrs(&[("content-length", "3"), ("Content-Length", "4")]);
        assert!(matches!(body_kind(&conflict, true), Err(WireError::Bad(400, _))));
        let negative = hdrs(&[("content-length", "-1")]);
        assert!(matches!(body_kind(&negative, true), Err(WireError::Bad(400, _))));
        assert_eq!(body_kind(&[], true).ok(), Some(BodyKind::None));
        assert_eq!(body_kind(&[], false).ok(), Some(BodyKind::UntilClose));
    }

    #[test]
    fn chunked_bodies_decode_and_respect_the_limit() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n".to_vec();
        let body = read_body(&mut Cursor::new(wire.clone()), &BodyKind::Chunked, 100);
        assert_eq!(body.ok(), Some(b"hello world".to_vec()));
        let small = read_body(&mut Cursor::new(wire), &BodyKind::Chunked, 8);
        assert!(matches!(small, Err(WireError::Bad(413, _))));
        let junk = read_body(&mut Cursor::new(b"zz\r\n".to_vec()), &BodyKind::Chunked, 8);
        assert!(matches!(junk, Err(WireError::Bad(400, _))));
    }

    #[test]
    fn length_bodies_fail_on_early_eof() {
        let r = read_body(&mut Cursor::new(b"abc".to_vec()), &BodyKind::Length(5), 100);
        assert!(matches!(r, Err(WireError::Io(_))));
        let r = read_body(&mut Cursor::new(b"abc".to_vec()), &BodyKind::Length(500), 100);
        assert!(matches!(r, Err(WireError::Bad(413, _))));
    }
}
