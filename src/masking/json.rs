//! Masking the values of named keys in a JSON text, best effort on a captured prefix.
//!
//! Keys are compared by meaning: escapes are decoded first (`"pass\u0077ord"` is
//! `password` to every JSON parser) and letters compared case-insensitively (`Password`,
//! `PASSWORD`: case-insensitive binders such as ASP.NET Core's read them as the same
//! field).

use super::Edits;
use std::borrow::Cow;

/// How deep JSON text held in a JSON string (`"{\\"password\\":…}"`) is masked inside.
const MAX_NESTING: u8 = 3;

/// Masks `"key": value` pairs whose decoded key `is_secret` says: string values become
/// `"***"`, other scalars `"***"` too; objects and arrays under such a key are masked
/// whole. A value cut off by the capture limit is masked to the end. A string value that
/// holds JSON text itself is masked inside too (a message embedded in a message).
pub(super) fn mask_fields<'a>(body: &'a [u8], is_secret: &impl Fn(&[u8]) -> bool) -> Cow<'a, [u8]> {
    mask_nested(body, is_secret, 0)
}

fn mask_nested<'a>(body: &'a [u8], is_secret: &impl Fn(&[u8]) -> bool, depth: u8) -> Cow<'a, [u8]> {
    let mut edits = Edits::new(body);
    let mut i = 0;
    while let Some(&c) = body.get(i) {
        if c != b'"' {
            i += 1;
            continue;
        }
        let (end, escaped) = string_span(body, i);
        // The contents end before the closing quote (at the end of input when cut).
        let close = if end > i + 1 && body.get(end - 1) == Some(&b'"') {
            end - 1
        } else {
            end
        };
        let contents = body.get(i + 1..close).unwrap_or_default();
        let after = skip_ws(body, end);
        let key = || {
            if escaped {
                decoded(contents)
            } else {
                Cow::Borrowed(contents)
            }
        };
        if body.get(after) == Some(&b':') && is_secret(&key()) {
            let start = skip_ws(body, after + 1);
            let stop = value_end(body, start);
            edits.replace(start..stop, b"\"***\"");
            i = stop;
            continue;
        }
        // Only a string with escapes can hold JSON text (its quotes are escaped).
        if let Some(inner) = escaped.then(|| nested(contents, is_secret, depth)).flatten() {
            edits.replace(i + 1..close, &inner);
        }
        i = end;
    }
    edits.finish()
}

/// The contents of a string holding JSON text, masked and escaped again; `None` when it
/// holds none (no escaped quote) or nothing in it is masked.
fn nested(contents: &[u8], is_secret: &impl Fn(&[u8]) -> bool, depth: u8) -> Option<Vec<u8>> {
    if depth >= MAX_NESTING || !contents.windows(2).any(|w| w == b"\\\"") {
        return None;
    }
    let inner = decoded(contents);
    let Cow::Owned(masked) = mask_nested(&inner, is_secret, depth + 1) else {
        return None;
    };
    let mut out = Vec::with_capacity(masked.len() + masked.len() / 8);
    crate::json::push_bytes_body(&mut out, &masked, usize::MAX);
    Some(out)
}

/// The text of a JSON string's contents (between the quotes) with escapes decoded; an
/// escape that decodes to nothing valid becomes U+FFFD. Borrowed when there is none.
fn decoded(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let (ch, used) = escape(raw, i);
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        i += used;
    }
    Cow::Owned(out)
}

/// The character an escape at `i` (a backslash) stands for, and its length in bytes.
fn escape(raw: &[u8], i: usize) -> (char, usize) {
    let simple = match raw.get(i + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode_escape(raw, i),
        Some(_) => char::REPLACEMENT_CHARACTER,
        None => return (char::REPLACEMENT_CHARACTER, 1),
    };
    (simple, 2)
}

/// `\uXXXX`, or a surrogate pair `\uD8XX\uDCXX`, at `i`.
fn unicode_escape(raw: &[u8], i: usize) -> (char, usize) {
    let Some(high) = hex4(raw, i + 2) else {
        return (char::REPLACEMENT_CHARACTER, 2);
    };
    if !(0xD800..0xDC00).contains(&high) {
        return (char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER), 6);
    }
    match (raw.get(i + 6..i + 8), hex4(raw, i + 8)) {
        (Some(b"\\u"), Some(low)) if (0xDC00..0xE000).contains(&low) => {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 12)
        }
        _ => (char::REPLACEMENT_CHARACTER, 6),
    }
}

/// Four hex digits at `at`, as a number.
fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(raw.get(at..at + 4)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Index just past the string starting at `start` (a `"`), or the end of input.
fn string_end(body: &[u8], start: usize) -> usize {
    string_span(body, start).0
}

/// [`string_end`], and whether the string holds an escape.
fn string_span(body: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    let mut escaped = false;
    // Byte by byte: JSON strings are short, a word-at-a-time scan would not pay its setup.
    while let Some(&c) = body.get(i) {
        match c {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => return (i + 1, escaped),
            _ => i += 1,
        }
    }
    (body.len(), escaped)
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
        Some(b'{' | b'[') => container_end(body, start),
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

/// Index just past the object or array starting at `start`, or the end of input.
fn container_end(body: &[u8], start: usize) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_as_json_parsers_read_them() {
        let d = |raw: &str| String::from_utf8(decoded(raw.as_bytes()).into_owned()).unwrap();
        assert_eq!(d(r"pass\u0077ord"), "password");
        assert_eq!(d(r#"a\"b\\c\/d\n"#), "a\"b\\c/d\n");
        assert_eq!(d(r"\ud83d\ude00"), "😀");
        assert_eq!(d(r"\ud83d"), "\u{fffd}", "a lone surrogate");
        assert_eq!(d(r"\uZZZZ"), "\u{fffd}ZZZZ");
        assert_eq!(d(r"a\"), "a\u{fffd}");
        assert!(matches!(decoded(b"plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_held_in_a_string_is_masked_inside() {
        let secret = |k: &[u8]| k == b"password";
        let m = |b: &str| String::from_utf8(mask_fields(b.as_bytes(), &secret).into_owned()).unwrap();
        assert_eq!(
            m(r#"{"Message":"{\"user\":\"ada\",\"password\":\"p\"}","n":1}"#),
            r#"{"Message":"{\"user\":\"ada\",\"password\":\"***\"}","n":1}"#
        );
        let twice = r#"{"a":"{\"b\":\"{\\\"password\\\":\\\"p\\\"}\"}"}"#;
        assert!(!m(twice).contains("\\\"p\\\""), "{}", m(twice));
        assert_eq!(m(r#"{"a":"say \"hi\""}"#), r#"{"a":"say \"hi\""}"#);
        assert_eq!(m(r#"{"a":"{\"password\":\"cut"#), r#"{"a":"{\"password\":\"***\""#);
    }
}
