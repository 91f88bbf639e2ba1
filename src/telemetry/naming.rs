//! Low-cardinality names. Application Insights groups by a Request's `name` and by
//! `ai.operation.name` (the Performance and Failures blades, the standard metrics' views),
//! so neither may carry ids: `GET /orders/42` and `GET /orders/43` are one operation,
//! `GET /orders/{id}`. The `url` and a Dependency's `data` keep the exact path.
//!
//! A path segment is an id when it is
//! - a number (`42`), or digits with separators holding at least 4 digits (`2026-12-01`);
//! - hexadecimal with at least 8 hex digits and at least one decimal digit, dashes allowed
//!   (UUIDs, Mongo ObjectIds, hashes; `deadbeef` and `facade` stay words);
//! - a number of at least 4 digits with a prefix or suffix (`ORD-12345`, `user_4711`);
//! - a token of the base64 / base64url alphabet, not made of words (not a slug like
//!   `text-embedding-ada-002` or `api-v2-internal-services`, not camel case like
//!   `getUserProfileV2`): 16 or more characters with a digit and either a second digit
//!   or both letter cases (keys, JWT parts, encoded ids), or 8 or more with both cases and
//!   two digits (`Ab3xYz9Q`);
//! - anything holding `@` or `%` (e-mail addresses, percent-encoded values);
//! - any of these followed by a short file extension or a custom method (`12345.pdf` →
//!   `{id}.pdf`, `12345:cancel` → `{id}:cancel`; the extension starts with a letter, so
//!   `2.0` stays a version).
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

/// `Some(suffix)` (possibly empty) when `segment` is an id, a suffix kept: a short file
/// extension (`.pdf`) or a custom method (`:cancel`, as Google's APIs write actions).
fn id_like(segment: &[u8]) -> Option<&[u8]> {
    if segment.iter().any(|&b| b == b'@' || b == b'%') {
        return Some(b""); // an address or an encoded value, whole
    }
    if let Some(at) = segment.iter().rposition(|&b| b == b'.' || b == b':') {
        let (stem, suffix) = segment.split_at(at);
        let word =
            suffix.get(1).is_some_and(u8::is_ascii_alphabetic) && suffix.iter().skip(1).all(u8::is_ascii_alphanumeric);
        let short = suffix.first() == Some(&b':') || (2..=6).contains(&suffix.len());
        if word && short && is_id(stem) {
            return Some(suffix);
        }
    }
    is_id(segment).then_some(b"")
}

/// What kinds of characters a segment holds (one pass).
#[derive(Default)]
struct Chars {
    digits: usize,
    hex: usize,
    upper: bool,
    lower: bool,
    /// Only digits and separators.
    numeric: bool,
    /// Only hex digits and dashes.
    hexadecimal: bool,
    /// Only the base64 / base64url alphabet (and `.`, `~`).
    base64: bool,
    /// Holds `@` or `%`.
    marked: bool,
}

fn separator(b: &u8) -> bool {
    matches!(b, b'-' | b'_' | b'.' | b':' | b',' | b'+' | b'~')
}

impl Chars {
    fn of(s: &[u8]) -> Chars {
        let mut c = Chars {
            numeric: true,
            hexadecimal: true,
            base64: true,
            ..Chars::default()
        };
        for b in s {
            c.digits += usize::from(b.is_ascii_digit());
            c.hex += usize::from(b.is_ascii_hexdigit());
            c.upper |= b.is_ascii_uppercase();
            c.lower |= b.is_ascii_lowercase();
            c.marked |= matches!(b, b'@' | b'%');
            c.numeric &= b.is_ascii_digit() || separator(b);
            c.hexadecimal &= b.is_ascii_hexdigit() || *b == b'-';
            c.base64 &= b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'=' | b'.' | b'~');
        }
        c
    }
}

fn is_id(s: &[u8]) -> bool {
    if s.is_empty() {
        return false;
    }
    let c = Chars::of(s);
    let mut parts = s.split(separator);
    if c.digits == s.len() || c.marked || (c.numeric && c.digits >= 4) {
        return true;
    }
    if (c.hexadecimal && c.hex >= 8 && c.digits > 0) || parts.any(|p| p.len() >= 4 && p.iter().all(u8::is_ascii_digit))
    {
        return true; // a UUID, a hash; a number with a prefix (`ORD-12345`, `user_4711`)
    }
    if !c.base64 || slug(s) || camel_case(s) {
        return false;
    }
    let mixed = c.upper && c.lower;
    (s.len() >= 16 && c.digits > 0 && (c.digits >= 2 || mixed)) || (s.len() >= 8 && mixed && c.digits >= 2)
}

/// Words joined by separators, as names are written: every part is a word in one case, a
/// number, or short (`text-embedding-ada-002`, `gpt-35-turbo-16k`, `jquery-3.6.0.min.js`).
fn slug(s: &[u8]) -> bool {
    let word = |p: &[u8]| {
        p.len() <= 4
            || p.iter().all(u8::is_ascii_lowercase)
            || p.iter().all(u8::is_ascii_uppercase)
            || p.iter().all(u8::is_ascii_digit)
    };
    s.iter().any(separator) && s.split(separator).all(word)
}

/// An identifier in camel case, maybe with a version at its end (`getUserProfileV2`,
/// `iPhone15`): every capital starts a word of at least three letters.
fn camel_case(s: &[u8]) -> bool {
    let trailing_digits = s.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let Some(body) = s.get(..s.len() - trailing_digits) else {
        return false;
    };
    let starts_word = |i: usize| {
        i + 1 == body.len()
            || body
                .get(i + 1..i + 3)
                .is_some_and(|n| n.iter().all(u8::is_ascii_lowercase))
    };
    !body.is_empty()
        && body.iter().all(u8::is_ascii_alphabetic)
        && body
            .iter()
            .enumerate()
            .all(|(i, b)| !b.is_ascii_uppercase() || starts_word(i))
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
            (
                "/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "/t/{id}",
            ),
            ("/days/2026-12-01/report", "/days/{id}/report"),
            ("/files/12345.pdf", "/files/{id}.pdf"),
            ("/people/jane.doe@example.com", "/people/{id}"),
            ("/search/hello%20world", "/search/{id}"),
            ("/orders/ORD-12345", "/orders/{id}"),
            ("/users/user_4711/x", "/users/{id}/x"),
            ("/jobs/12345:cancel", "/jobs/{id}:cancel"),
            ("/s/Ab3xYz9Q", "/s/{id}"),
            (
                "/openai/deployments/text-embedding-ada-002/embeddings",
                "/openai/deployments/text-embedding-ada-002/embeddings",
            ),
            (
                "/openai/deployments/gpt-35-turbo-16k/chat",
                "/openai/deployments/gpt-35-turbo-16k/chat",
            ),
            ("/api/getUserProfileV2", "/api/getUserProfileV2"),
            ("/shop/iphone-15-pro-max", "/shop/iphone-15-pro-max"),
            ("/js/jquery-3.6.0.min.js", "/js/jquery-3.6.0.min.js"),
            ("/p/iPhone15", "/p/iPhone15"),
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
