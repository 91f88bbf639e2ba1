//! Low-cardinality names. Application Insights groups by a Request's `name` and by
//! `ai.operation.name` (the Performance and Failures blades, the standard metrics' views),
//! so neither may carry ids: `GET /orders/42` and `GET /orders/43` are one operation,
//! `GET /orders/{id}`. The `url` and a Dependency's `data` keep the exact path.
//!
//! A path segment is an id when it is
//! - a number (`42`), or digits with separators holding at least 4 digits (`2026-12-01`);
//! - hexadecimal with at least 8 hex digits and at least one decimal digit, dashes allowed
//!   (UUIDs, Mongo ObjectIds, hashes; `deadbeef` and `facade` stay words);
//! - a token of at least 16 characters of the base64 / base64url alphabet holding a digit
//!   and either a second digit or both letter cases (keys, JWT parts, encoded ids; a long
//!   slug such as `api-v2-internal-services` stays);
//! - anything holding `@` or `%` (e-mail addresses, percent-encoded values);
//! - any of these followed by a short file extension (`12345.pdf` → `{id}.pdf`; the
//!   extension starts with a letter, so `2.0` stays a version).
//!
//! The same rules the OpenTelemetry and APM agents apply to URL paths when no route
//! template is known; they err on the side of keeping words.

use std::borrow::Cow;

/// What an id-like segment becomes.
pub const PLACEHOLDER: &[u8] = b"{id}";

/// Route names Envoy or Istio give routes nobody named: they say nothing about the
/// operation (Istio: `default` for a service's catch-all, `allow_any` / `block_all` for
/// passthrough and blackhole routes).
const GENERIC_ROUTE_NAMES: [&[u8]; 4] = [b"default", b"allow_any", b"block_all", b"InboundPassthroughCluster"];

/// `METHOD /path`, the path templated when `templated` (the Request's `name`; also the
/// operation name when nothing better is known). A request Envoy refused unparsed is `HTTP`.
pub fn request_line(method: &[u8], path: &[u8], templated: bool) -> Vec<u8> {
    if method.is_empty() {
        return b"HTTP".to_vec();
    }
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    // Room for a few placeholders longer than their ids (`/7` → `/{id}`) without regrowing.
    let mut line = Vec::with_capacity(method.len() + 1 + path.len() + 3 * PLACEHOLDER.len());
    line.extend_from_slice(method);
    line.push(b' ');
    match templated {
        true => push_template(&mut line, path),
        false => line.extend_from_slice(path),
    }
    line
}

/// Whether a route name says what the operation is (it is set and not a generic name).
pub fn meaningful_route(name: &[u8]) -> bool {
    !name.is_empty() && !GENERIC_ROUTE_NAMES.contains(&name)
}

/// `path` with every id-like segment replaced by [`PLACEHOLDER`] (borrowed when none is).
pub fn template(path: &[u8]) -> Cow<'_, [u8]> {
    if !path.split(|&b| b == b'/').any(|s| id_like(s).is_some()) {
        return Cow::Borrowed(path);
    }
    let mut out = Vec::with_capacity(path.len());
    push_template(&mut out, path);
    Cow::Owned(out)
}

/// Appends `path` templated to `out` (no allocation of its own).
fn push_template(out: &mut Vec<u8>, path: &[u8]) {
    for (i, segment) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        match id_like(segment) {
            Some(kept) => {
                out.extend_from_slice(PLACEHOLDER);
                out.extend_from_slice(kept);
            }
            None => out.extend_from_slice(segment),
        }
    }
}

/// `Some(extension)` (possibly empty) when `segment` is an id, the extension kept.
fn id_like(segment: &[u8]) -> Option<&[u8]> {
    if is_id(segment) {
        return Some(b"");
    }
    let dot = segment.iter().rposition(|&b| b == b'.')?;
    let (stem, ext) = segment.split_at(dot);
    let short_ext = (2..=6).contains(&ext.len())
        && ext.get(1).is_some_and(u8::is_ascii_alphabetic)
        && ext.iter().skip(1).all(u8::is_ascii_alphanumeric);
    (short_ext && is_id(stem)).then_some(ext)
}

fn is_id(s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    // One pass: what kinds of characters the segment holds.
    let (mut digits, mut hex, mut upper, mut lower) = (0, 0, false, false);
    let (mut numeric, mut hexadecimal, mut base64) = (true, true, true);
    for &b in s {
        match b {
            b'0'..=b'9' => digits += 1,
            b'@' | b'%' => return true,
            _ => {}
        }
        hex += usize::from(b.is_ascii_hexdigit());
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        numeric &= b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b':' | b',' | b'+');
        hexadecimal &= b.is_ascii_hexdigit() || b == b'-';
        base64 &= b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'=' | b'.' | b'~');
    }
    digits == s.len()
        || (numeric && digits >= 4)
        || (hexadecimal && hex >= 8 && digits > 0)
        || (base64 && s.len() >= 16 && digits > 0 && (digits >= 2 || (upper && lower)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> String {
        String::from_utf8(template(path.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn ids_become_placeholders_and_words_stay() {
        let cases = [
            ("/orders/42", "/orders/{id}"),
            ("/orders/42/lines/7", "/orders/{id}/lines/{id}"),
            ("/users/123e4567-e89b-12d3-a456-426614174000", "/users/{id}"),
            ("/users/123E4567E89B12D3A456426614174000/x", "/users/{id}/x"),
            ("/objects/507f1f77bcf86cd799439011", "/objects/{id}"),
            ("/commits/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commits/{id}"),
            ("/keys/dGhpcyBpcyBhIHNlY3JldCB0b2tlbg2", "/keys/{id}"),
            ("/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "/t/{id}"),
            ("/days/2026-12-01/report", "/days/{id}/report"),
            ("/files/12345.pdf", "/files/{id}.pdf"),
            ("/people/jane.doe@example.com", "/people/{id}"),
            ("/search/hello%20world", "/search/{id}"),
            ("/api/v1/status", "/api/v1/status"),
            ("/api/2.0/items", "/api/2.0/items"),
            ("/oauth2/token", "/oauth2/token"),
            ("/deadbeef/facade", "/deadbeef/facade"),
            (
                "/api-v2-internal-services/getOrderDetailsById",
                "/api-v2-internal-services/getOrderDetailsById",
            ),
            ("/v1/things:batchGet", "/v1/things:batchGet"),
            ("/report.pdf", "/report.pdf"),
            ("/", "/"),
            ("", ""),
            ("//42//", "//{id}//"),
        ];
        for (path, want) in cases {
            assert_eq!(t(path), want, "{path}");
        }
    }

    #[test]
    fn a_path_without_ids_is_borrowed() {
        assert!(matches!(template(b"/api/v1/orders"), Cow::Borrowed(_)));
    }

    #[test]
    fn request_lines_template_only_when_asked() {
        assert_eq!(request_line(b"GET", b"/orders/42", true), b"GET /orders/{id}");
        assert_eq!(request_line(b"GET", b"/orders/42", false), b"GET /orders/42");
        assert_eq!(request_line(b"GET", b"", true), b"GET /");
        assert_eq!(request_line(b"", b"/x", true), b"HTTP");
    }

    #[test]
    fn generic_route_names_are_not_operations() {
        assert!(meaningful_route(b"orders"));
        for generic in ["", "default", "allow_any", "block_all"] {
            assert!(!meaningful_route(generic.as_bytes()), "{generic}");
        }
    }
}
