//! Data masking: what must never reach telemetry in clear.
//!
//! As API Management's diagnostic `dataMasking`, per header and per query parameter:
//! `Mask` replaces the value with [`MASK`], `Hide` removes the entry. Unlike APIM, the
//! filter is **private by default**: the [`DEFAULT_HEADERS`] and [`DEFAULT_QUERY_PARAMS`]
//! are masked unless the configuration turns that off (`data_masking.defaults: false`, or
//! mode `None` for one name). Masking applies everywhere a value could appear: request
//! URLs, dependency data, captured headers, header-derived properties and trace messages.
//! Named JSON fields can also be masked in captured bodies (best effort on the captured
//! prefix).

use std::borrow::Cow;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Headers whose values are secrets (lowercase), masked by default.
pub const DEFAULT_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "ocp-apim-subscription-key",
    "x-api-key",
    "api-key",
    "x-functions-key",
];

/// Query parameters that carry secrets (compared case-insensitively), masked by default.
pub const DEFAULT_QUERY_PARAMS: &[&str] = &[
    "sig",
    "signature",
    "code",
    "key",
    "apikey",
    "api-key",
    "api_key",
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "client_secret",
    "password",
    "secret",
    "subscription-key",
    "subscription_key",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Record nothing but [`MASK`] for the value.
    Mask,
    /// Leave the entry out entirely.
    Hide,
    /// Record as is (exempts a name from the defaults).
    None,
}

/// Masking rules of one diagnostic, compiled once per configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masking {
    /// (lowercase header name, mode)
    headers: Vec<(String, Mode)>,
    /// (lowercase parameter name or `*`, mode)
    query: Vec<(String, Mode)>,
    /// JSON keys whose values are masked in captured bodies.
    json_fields: Vec<String>,
}

impl Default for Masking {
    /// The private-by-default rules.
    fn default() -> Self {
        Masking::new(true, Vec::new(), Vec::new(), Vec::new())
    }
}

impl Masking {
    /// Rules: the defaults (when `defaults`), then the configured entries, which win.
    pub fn new(
        defaults: bool,
        headers: Vec<(String, Mode)>,
        query: Vec<(String, Mode)>,
        json_fields: Vec<String>,
    ) -> Masking {
        let with_defaults = |list: &[&str], configured: Vec<(String, Mode)>| {
            let mut rules: Vec<(String, Mode)> = Vec::new();
            if defaults {
                rules.extend(list.iter().map(|n| (n.to_string(), Mode::Mask)));
            }
            for (name, mode) in configured {
                let name = name.to_ascii_lowercase();
                rules.retain(|(n, _)| *n != name);
                rules.push((name, mode));
            }
            rules
        };
        Masking {
            headers: with_defaults(DEFAULT_HEADERS, headers),
            query: with_defaults(DEFAULT_QUERY_PARAMS, query),
            json_fields,
        }
    }

    /// How the header `name` (lowercase, as Envoy stores names) is recorded.
    pub fn header(&self, name: &[u8]) -> Mode {
        self.headers
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map_or(Mode::None, |(_, m)| *m)
    }

    /// The value to record for header `name`, `None` when hidden.
    pub fn header_value<'a>(&self, name: &[u8], value: &'a [u8]) -> Option<&'a [u8]> {
        match self.header(name) {
            Mode::None => Some(value),
            Mode::Mask => Some(MASK.as_bytes()),
            Mode::Hide => None,
        }
    }

    fn query_mode(&self, name: &[u8]) -> Mode {
        let exact = self.query.iter().find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name));
        let any = || self.query.iter().find(|(n, _)| n == "*");
        exact.or_else(any).map_or(Mode::None, |(_, m)| *m)
    }

    /// `path?query` with masked parameters' values replaced and hidden ones removed.
    /// Borrowed unchanged when nothing matches (the common case: no allocation).
    pub fn path_and_query<'a>(&self, path_and_query: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(q) = path_and_query.iter().position(|&b| b == b'?') else {
            return Cow::Borrowed(path_and_query);
        };
        let (path, query) = path_and_query.split_at(q);
        let query = query.get(1..).unwrap_or_default();
        let params = || query.split(|&b| b == b'&');
        let name_of = |p: &'a [u8]| p.split(|&b| b == b'=').next().unwrap_or_default();
        if params().all(|p| self.query_mode(&percent_decoded_name(name_of(p))) == Mode::None) {
            return Cow::Borrowed(path_and_query);
        }
        let mut out = path.to_vec();
        let mut first = true;
        for p in params() {
            let name = name_of(p);
            let rendered: Cow<'_, [u8]> = match self.query_mode(&percent_decoded_name(name)) {
                Mode::Hide => continue,
                Mode::None => Cow::Borrowed(p),
                Mode::Mask if p.contains(&b'=') => Cow::Owned([name, b"=", MASK.as_bytes()].concat()),
                Mode::Mask => Cow::Borrowed(p),
            };
            out.push(if first { b'?' } else { b'&' });
            out.extend_from_slice(&rendered);
            first = false;
        }
        Cow::Owned(out)
    }

    /// Whether captured JSON bodies need field masking.
    pub fn masks_json_fields(&self) -> bool {
        !self.json_fields.is_empty()
    }

    /// Masks the values of the configured JSON keys in a (possibly cut) JSON text.
    pub fn json_body<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        if self.json_fields.is_empty() {
            return Cow::Borrowed(body);
        }
        mask_json_fields(body, &self.json_fields)
    }
}

/// Query parameter names may be percent-encoded (`access%5Ftoken`): compare decoded.
fn percent_decoded_name(name: &[u8]) -> Cow<'_, [u8]> {
    if !name.contains(&b'%') && !name.contains(&b'+') {
        return Cow::Borrowed(name);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while let Some(&c) = name.get(i) {
        match (
            c,
            name.get(i + 1).copied().and_then(hex),
            name.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Best-effort masking of `"field": value` pairs in a JSON prefix: string values become
/// `"***"`, other scalars `"***"` too; objects and arrays under a masked key are masked
/// whole. A value cut off by the capture limit is masked to the end.
fn mask_json_fields<'a>(body: &'a [u8], fields: &[String]) -> Cow<'a, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while let Some(&c) = body.get(i) {
        if c != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(body, i);
        let key = body.get(i + 1..end.saturating_sub(1).max(i + 1)).unwrap_or_default();
        let after = skip_ws(body, end);
        if body.get(after) == Some(&b':') && fields.iter().any(|f| f.as_bytes() == key) {
            let start = skip_ws(body, after + 1);
            let stop = value_end(body, start);
            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
            o.extend_from_slice(body.get(copied..start).unwrap_or_default());
            o.extend_from_slice(b"\"***\"");
            copied = stop;
            i = stop;
        } else {
            i = end;
        }
    }
    match out {
        None => Cow::Borrowed(body),
        Some(mut o) => {
            o.extend_from_slice(body.get(copied..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

/// Index just past the string starting at `start` (a `"`), or the end of input.
fn string_end(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(&c) = body.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while matches!(body.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// Index just past the JSON value starting at `start` (best effort; end of input if cut).
fn value_end(body: &[u8], start: usize) -> usize {
    match body.get(start) {
        Some(b'"') => string_end(body, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while let Some(&c) = body.get(i) {
                match c {
                    b'"' => {
                        i = string_end(body, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            body.len()
        }
        _ => {
            let mut i = start;
            while let Some(&c) = body.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                i += 1;
            }
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: Cow<'_, [u8]>) -> String {
        String::from_utf8(c.into_owned()).unwrap()
    }

    #[test]
    fn secret_headers_are_masked_by_default_and_configuration_wins() {
        let m = Masking::default();
        assert_eq!(m.header_value(b"authorization", b"Bearer abc"), Some(&b"***"[..]));
        assert_eq!(m.header_value(b"ocp-apim-subscription-key", b"k"), Some(&b"***"[..]));
        assert_eq!(m.header_value(b"x-tenant", b"contoso"), Some(&b"contoso"[..]));
        let m = Masking::new(
            true,
            vec![
                ("Cookie".into(), Mode::None),
                ("X-Internal".into(), Mode::Hide),
                ("x-tenant".into(), Mode::Mask),
            ],
            vec![],
            vec![],
        );
        assert_eq!(
            m.header_value(b"cookie", b"c=1"),
            Some(&b"c=1"[..]),
            "explicitly exempted"
        );
        assert_eq!(m.header_value(b"x-internal", b"v"), None);
        assert_eq!(m.header_value(b"x-tenant", b"contoso"), Some(&b"***"[..]));
        assert_eq!(m.header_value(b"authorization", b"x"), Some(&b"***"[..]));
        let off = Masking::new(false, vec![], vec![], vec![]);
        assert_eq!(off.header_value(b"authorization", b"x"), Some(&b"x"[..]));
    }

    #[test]
    fn query_parameters_are_masked_or_hidden_anywhere_in_the_query() {
        let m = Masking::new(true, vec![], vec![("debug".into(), Mode::Hide)], vec![]);
        assert_eq!(
            s(m.path_and_query(b"/a?x=1&sig=abc&debug=1&Token=t&flag")),
            "/a?x=1&sig=***&Token=***&flag"
        );
        assert_eq!(
            s(m.path_and_query(b"/a?access%5Ftoken=t")),
            "/a?access%5Ftoken=***",
            "encoded names"
        );
        assert!(
            matches!(m.path_and_query(b"/a?x=1&y=2"), Cow::Borrowed(_)),
            "nothing to mask: no copy"
        );
        assert!(matches!(m.path_and_query(b"/a"), Cow::Borrowed(_)));
        assert_eq!(s(m.path_and_query(b"/a?debug=1")), "/a");
        let all = Masking::new(
            false,
            vec![],
            vec![("*".into(), Mode::Mask), ("page".into(), Mode::None)],
            vec![],
        );
        assert_eq!(s(all.path_and_query(b"/a?page=2&q=secret")), "/a?page=2&q=***");
    }

    #[test]
    fn json_fields_are_masked_in_captured_bodies_even_when_cut() {
        let m = Masking::new(true, vec![], vec![], vec!["password".into(), "card".into()]);
        let body = br#"{"user":"ada","password":"hunter2","nested":{"card":{"n":"4111"}},"n":1}"#;
        assert_eq!(
            s(m.json_body(body)),
            r#"{"user":"ada","password":"***","nested":{"card":"***"},"n":1}"#
        );
        assert_eq!(
            s(m.json_body(br#"{"password" : 12345, "x": "password"}"#)),
            r#"{"password" : "***", "x": "password"}"#
        );
        assert_eq!(
            s(m.json_body(br#"{"a":1,"password":"hunt"#)),
            r#"{"a":1,"password":"***""#,
            "cut mid-value"
        );
        assert_eq!(s(m.json_body(br#"{"esc\"password":"v"}"#)), r#"{"esc\"password":"v"}"#);
        assert!(matches!(m.json_body(b"not json at all"), Cow::Borrowed(_)));
        // Garbage never panics.
        for junk in [&b"\"\"\"::"[..], b"\"password\":", b"\"password\":{[[", b"\\", b"\"a\\"] {
            let _ = m.json_body(junk);
        }
    }
}
