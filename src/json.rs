//! A minimal JSON writer that appends straight into a batch buffer.
//!
//! Telemetry items are written once, directly where they will be sent, with no intermediate
//! tree or per-field allocation. Strings are escaped and cut to the schema's limits here
//! (limits count characters, as the ingestion service does), so no caller can emit an item
//! the service would reject for length. Bytes that are not UTF-8 (header values can be
//! anything) are written with U+FFFD in place of each invalid sequence.

/// Appends `s` as a JSON string, truncated to at most `max_chars` characters.
/// Returns true when it had to cut.
pub fn push_str(out: &mut Vec<u8>, s: &str, max_chars: usize) -> bool {
    out.push(b'"');
    let (_, cut) = push_escaped(out, s, max_chars);
    out.push(b'"');
    cut
}

/// Appends possibly non-UTF-8 `bytes` as a JSON string (lossy), truncated to `max_chars`.
/// Returns true when it had to cut.
pub fn push_bytes(out: &mut Vec<u8>, bytes: &[u8], max_chars: usize) -> bool {
    out.push(b'"');
    let (_, cut) = push_bytes_body(out, bytes, max_chars);
    out.push(b'"');
    cut
}

/// Appends the escaped content of possibly non-UTF-8 `bytes` (no quotes), at most `budget`
/// characters. Returns (characters written, was cut).
pub fn push_bytes_body(out: &mut Vec<u8>, mut bytes: &[u8], budget: usize) -> (usize, bool) {
    // Fast path (most header values, paths, ids): printable ASCII with nothing to escape
    // is copied as is, without a UTF-8 pass.
    if bytes.len() <= budget && is_plain_ascii(bytes) {
        out.extend_from_slice(bytes);
        return (bytes.len(), false);
    }
    let mut written = 0;
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                let (n, cut) = push_escaped(out, valid, budget - written);
                return (written + n, cut);
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                // `valid` is UTF-8 by construction; from_utf8 cannot fail here.
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                let (n, cut) = push_escaped(out, valid, budget - written);
                written += n;
                if cut {
                    return (written, true);
                }
                if written == budget {
                    return (written, !rest.is_empty());
                }
                out.extend_from_slice("\u{FFFD}".as_bytes());
                written += 1;
                let skip = e.error_len().unwrap_or(rest.len());
                bytes = rest.get(skip..).unwrap_or_default();
                if bytes.is_empty() {
                    return (written, false);
                }
            }
        }
    }
}

/// Appends the escaped content of `s` (no quotes), at most `budget` characters.
/// Returns (characters written, was cut).
fn push_escaped(out: &mut Vec<u8>, s: &str, budget: usize) -> (usize, bool) {
    // Fast path: ASCII without anything to escape is copied as is.
    if s.len() <= budget && is_plain_ascii(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return (s.len(), false);
    }
    let mut written = 0;
    for c in s.chars() {
        if written == budget {
            return (written, true);
        }
        push_char(out, c);
        written += 1;
    }
    (written, false)
}

/// Printable ASCII other than `"` and `\\`: bytes a JSON string holds unchanged.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    // Eight bytes at a time: no byte below 0x20 or above 0x7f, none equal to `"` or `\\`.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(c) else { return false };
        let v = u64::from_le_bytes(word);
        let bad = (v & HIGH)
            | (v.wrapping_sub(0x2020_2020_2020_2020) & !v & HIGH)
            | has_zero(v ^ (ONES * u64::from(b'"')))
            | has_zero(v ^ (ONES * u64::from(b'\\')));
        if bad != 0 {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
}

fn push_char(out: &mut Vec<u8>, c: char) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let n = c as usize;
            out.extend_from_slice(b"\\u00");
            out.push(HEX.get(n >> 4).copied().unwrap_or(b'0'));
            out.push(HEX.get(n & 0xf).copied().unwrap_or(b'0'));
        }
        c => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// Appends an unsigned integer.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends a finite double in JSON form (non-finite values become 0).
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.push(b'0');
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        if v < 0.0 {
            out.push(b'-');
        }
        push_u64(out, v.abs() as u64);
    } else {
        use std::io::Write;
        let _ = write!(out, "{v}");
    }
}

/// Appends `"key":` — for keys known to need no escaping (schema field names).
pub fn push_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_ascii_scan_agrees_with_its_definition_for_every_byte_at_every_position() {
        let naive = |b: &[u8]| b.iter().all(|&c| (0x20..0x80).contains(&c) && c != b'"' && c != b'\\');
        for len in [1usize, 7, 8, 9, 16, 17, 24] {
            for pos in 0..len {
                for byte in 0..=255u8 {
                    let mut buf = vec![b'a'; len];
                    buf[pos] = byte;
                    assert_eq!(is_plain_ascii(&buf), naive(&buf), "len {len} pos {pos} byte {byte:#x}");
                }
            }
        }
        assert!(is_plain_ascii(b""));
    }

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_quotes_backslashes_and_control_characters() {
        let out = s(|o| {
            push_str(o, "a\"b\\c\nd\u{1}e", 100);
        });
        assert_eq!(out, r#""a\"b\\c\nd\u0001e""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}e");
    }

    #[test]
    fn truncates_by_characters_not_bytes() {
        let mut out = Vec::new();
        assert!(push_str(&mut out, "héllo wörld", 7));
        assert_eq!(String::from_utf8(out).unwrap(), "\"héllo w\"");
        let mut out = Vec::new();
        assert!(!push_str(&mut out, "abc", 3));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_and_stays_valid_json() {
        let out = s(|o| {
            push_bytes(o, b"ok\xff\xfe-\xe2\x82", 100);
        });
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "ok\u{FFFD}\u{FFFD}-\u{FFFD}");
    }

    #[test]
    fn lossy_bytes_respect_the_character_budget() {
        let mut out = Vec::new();
        assert!(push_bytes(&mut out, b"ab\xffcd", 3));
        let parsed: String = serde_json::from_str(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(parsed, "ab\u{FFFD}");
        let mut out = Vec::new();
        assert!(!push_bytes(&mut out, b"ab\xff", 3));
    }

    #[test]
    fn numbers_round_trip() {
        assert_eq!(s(|o| push_u64(o, 0)), "0");
        assert_eq!(s(|o| push_u64(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(s(|o| push_f64(o, 100.0)), "100");
        assert_eq!(s(|o| push_f64(o, 33.5)), "33.5");
        assert_eq!(s(|o| push_f64(o, f64::NAN)), "0");
        assert_eq!(s(|o| push_f64(o, -2.0)), "-2");
    }
}
