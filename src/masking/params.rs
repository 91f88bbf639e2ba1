//! `name=value` parameters wherever they appear: a request's query and fragment, a form
//! body, and URLs inside other text (header values, text bodies).
//!
//! Parsed the way servers read them, not the way one spec spells them: parameters are
//! separated by `&` and also by `;` (HTML 4's recommendation, still honoured by Java
//! servlet containers and others), a second `?` (`??token=`) or a `#` (a fragment's
//! `#access_token=`, as OAuth's implicit grant returns it); and by their JSON escapes
//! (`\u0026`: Go's JSON encoder writes `&` so), so a URL inside a JSON string splits the
//! same way; and by their percent-encodings (`%26`, `%3F`, with `%3D` for `=`), so a URL
//! carried in another's parameter (`?next=%2Fcb%3Ftoken%3D…`) is read too. Everything is
//! a borrowed slice until something must change.

use super::{Edits, Mode, MASK};
use std::borrow::Cow;
use std::ops::Range;

/// Length of the parameter separator starting at `i`, if one does.
fn separator_len(text: &[u8], i: usize) -> Option<usize> {
    const CODES: &[&[u8; 2]] = &[b"26", b"3b", b"3f", b"23"];
    match text.get(i)? {
        b'&' | b';' | b'?' | b'#' => Some(1),
        b'\\' => escaped(text.get(i..i + 6)?, CODES).then_some(6),
        b'%' => percent_escaped(text.get(i..i + 3)?, CODES).then_some(3),
        _ => None,
    }
}

/// Length of a URL's query or fragment opener (`?`, `#`, or their JSON escapes) at `i`.
fn opener_len(text: &[u8], i: usize) -> Option<usize> {
    match text.get(i)? {
        b'?' | b'#' => Some(1),
        b'\\' => escaped(text.get(i..i + 6)?, &[b"3f", b"23"]).then_some(6),
        _ => None,
    }
}

/// Whether `e` is `%XX` with `XX` (case-insensitive) one of `codes`.
fn percent_escaped(e: &[u8], codes: &[&[u8; 2]]) -> bool {
    let [b'%', h, l] = e else {
        return false;
    };
    let code = [h.to_ascii_lowercase(), l.to_ascii_lowercase()];
    codes.iter().any(|c| **c == code)
}

/// Whether `e` is `\u00XX` with `XX` (case-insensitive) one of `codes`.
fn escaped(e: &[u8], codes: &[&[u8; 2]]) -> bool {
    let [b'\\', b'u', b'0', b'0', h, l] = e else {
        return false;
    };
    let code = [h.to_ascii_lowercase(), l.to_ascii_lowercase()];
    codes.iter().any(|c| **c == code)
}

/// Whether a URL in free text ends at `i`: URLs hold no unescaped whitespace, quotes or
/// angle brackets (RFC 3986), so these end one inside a header value or a JSON string.
fn ends_url(text: &[u8], i: usize) -> bool {
    match text.get(i) {
        None => true,
        Some(b'\\') => text.get(i + 1) == Some(&b'"'),
        Some(&b) => b.is_ascii_whitespace() || b.is_ascii_control() || b"\"'<>`".contains(&b),
    }
}

/// The parameters of a region: (the separator before it, the parameter), as ranges.
struct Params<'a> {
    text: &'a [u8],
    /// Where the next separator and parameter start; `None` when done.
    next: Option<(usize, usize)>,
}

impl<'a> Params<'a> {
    fn new(text: &'a [u8]) -> Self {
        Params {
            text,
            next: Some((0, 0)),
        }
    }
}

impl Iterator for Params<'_> {
    type Item = (Range<usize>, Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let (sep, start) = self.next.take()?;
        let mut i = start;
        while i < self.text.len() {
            if let Some(n) = separator_len(self.text, i) {
                self.next = Some((i, i + n));
                return Some((sep..start, start..i));
            }
            i += 1;
        }
        Some((sep..start, start..self.text.len()))
    }
}

/// `name`, and where the value starts when there is an `=` (or `%3D`: one level of
/// percent-encoding, as in a URL carried inside another's parameter).
fn split_pair(param: &[u8]) -> (&[u8], Option<usize>) {
    let eq = (0..param.len()).find_map(|i| match param.get(i)? {
        b'=' => Some((i, 1)),
        b'%' => percent_escaped(param.get(i..i + 3)?, &[b"3d"]).then_some((i, 3)),
        _ => None,
    });
    match eq {
        Some((at, len)) => (param.get(..at).unwrap_or_default(), Some(at + len)),
        None => (param, None),
    }
}

/// A parameter's mode, name and where its value starts.
fn verdict<'p>(param: &'p [u8], mode_of: &impl Fn(&[u8]) -> Mode) -> (Mode, &'p [u8], Option<usize>) {
    let (name, value) = split_pair(param);
    (mode_of(name), name, value)
}

/// Whether `mode` changes the parameter: hidden, or masked with a value to mask.
fn changes(mode: Mode, value: Option<usize>) -> bool {
    mode == Mode::Hide || (mode == Mode::Mask && value.is_some())
}

/// The region with masked parameters' values replaced and hidden ones removed (with the
/// separator before them, or after them for the first); `None` when nothing changes.
/// `mode_of` is given each parameter's name as written.
pub(super) fn mask_region(region: &[u8], mode_of: &impl Fn(&[u8]) -> Mode) -> Option<Vec<u8>> {
    let at = |r: Range<usize>| region.get(r).unwrap_or_default();
    if !Params::new(region).any(|(_, p)| {
        let (mode, _, value) = verdict(at(p), mode_of);
        changes(mode, value)
    }) {
        return None;
    }
    let mut out = Vec::with_capacity(region.len());
    let mut kept = false;
    for (sep, p) in Params::new(region) {
        let param = at(p);
        let (mode, _, value) = verdict(param, mode_of);
        if mode == Mode::Hide {
            continue;
        }
        if kept {
            out.extend_from_slice(at(sep));
        }
        kept = true;
        match value.filter(|_| mode == Mode::Mask) {
            Some(start) => {
                out.extend_from_slice(param.get(..start).unwrap_or_default());
                out.extend_from_slice(MASK.as_bytes());
            }
            None => out.extend_from_slice(param),
        }
    }
    Some(out)
}

/// Masks the parameters of every URL query or fragment in `text` (from `?` or `#` to the
/// end of the URL). A URL whose every parameter is hidden loses its `?` too.
pub(super) fn mask_urls_in_text<'a>(text: &'a [u8], mode_of: &impl Fn(&[u8]) -> Mode) -> Cow<'a, [u8]> {
    let mut edits = Edits::new(text);
    let mut i = 0;
    while let Some((open, start)) = next_opener(text, i) {
        let end = (start..=text.len()).find(|&j| ends_url(text, j)).unwrap_or(text.len());
        if let Some(masked) = mask_region(text.get(start..end).unwrap_or_default(), mode_of) {
            let from = if masked.is_empty() { open } else { start };
            edits.replace(from..end, &masked);
        }
        i = end;
    }
    edits.finish()
}

/// The next query or fragment opener at or after `from`: (where it starts, where its
/// parameters start).
fn next_opener(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut j = from;
    loop {
        let at = j + find_any(text.get(j..)?, *b"?#\\")?;
        if let Some(n) = opener_len(text, at) {
            return Some((at, at + n));
        }
        j = at + 1;
    }
}

/// Index of the first byte of `hay` that is one of `set`. Most text holds none of them, so
/// eight bytes are tested at a time (the zero-byte trick on each needle) and only an
/// eight-byte word that holds one is looked at byte by byte: captured bodies are scanned
/// at a fraction of a byte-by-byte loop's cost.
pub(super) fn find_any<const N: usize>(hay: &[u8], set: [u8; N]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let splats = set.map(|b| ONES * u64::from(b));
    let in_set = |b: &u8| set.contains(b);
    let words = hay.chunks_exact(8);
    let tail = words.remainder();
    for (n, word) in words.enumerate() {
        let x = u64::from_ne_bytes(word.try_into().unwrap_or([0; 8]));
        if splats.iter().fold(0, |found, s| found | zero_bytes(x ^ s)) != 0 {
            return word.iter().position(in_set).map(|k| n * 8 + k);
        }
    }
    tail.iter().position(in_set).map(|k| hay.len() - tail.len() + k)
}

/// Parameter names may be percent-encoded (`access%5Ftoken`) or form-encoded (`+` for a
/// space): compared decoded, as the server reads them.
pub(super) fn percent_decoded(name: &[u8]) -> Cow<'_, [u8]> {
    if !name.contains(&b'%') && !name.contains(&b'+') {
        return Cow::Borrowed(name);
    }
    let hex = |c: Option<&u8>| c.and_then(|&c| (c as char).to_digit(16)).map(|d| d as u8);
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while let Some(&c) = name.get(i) {
        match (c, hex(name.get(i + 1)), hex(name.get(i + 2))) {
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

/// The innermost key of a structured name (`user[password]`, `token[]`, `User.Password`:
/// what Rails, PHP and ASP.NET bind the value to), when the name has structure.
pub(super) fn innermost(name: &[u8]) -> Option<&[u8]> {
    if !name.iter().any(|b| matches!(b, b'[' | b']' | b'.')) {
        return None;
    }
    name.split(|b| matches!(b, b'[' | b']' | b'.')).rfind(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_split_on_every_separator_and_its_json_escape() {
        let text = br"a=1&b=2;c=3?d=4#e=5\u0026f=6\u003Bg%26h%3fi";
        let params: Vec<&[u8]> = Params::new(text).map(|(_, p)| &text[p]).collect();
        assert_eq!(
            params,
            [&b"a=1"[..], b"b=2", b"c=3", b"d=4", b"e=5", b"f=6", b"g", b"h", b"i"],
            "{:?}",
            params.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn find_any_finds_the_first_byte_of_the_set_anywhere() {
        let text: Vec<u8> = (0..40).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(find_any(&text, *b"?#"), None);
        for at in 0..40 {
            for needle in [b'?', b'#', b'\\'] {
                let mut t = text.clone();
                t[at] = needle;
                t[39.min(at + 3)] = b'#';
                assert_eq!(find_any(&t, *b"?#\\"), Some(at), "{needle} at {at}");
            }
        }
        assert_eq!(find_any(b"", *b"?"), None);
        assert_eq!(find_any(&[0x80, 0xff, 0x3f], *b"?"), Some(2));
    }

    #[test]
    fn names_decode_and_structured_names_have_an_innermost_key() {
        assert_eq!(&*percent_decoded(b"access%5Ftoken+x%"), b"access_token x%");
        assert_eq!(innermost(b"user[password]"), Some(&b"password"[..]));
        assert_eq!(innermost(b"token[]"), Some(&b"token"[..]));
        assert_eq!(innermost(b"User.Password"), Some(&b"Password"[..]));
        assert_eq!(innermost(b"token"), None);
        assert_eq!(innermost(b"[]"), None);
    }

    #[test]
    fn urls_in_text_end_where_a_url_must() {
        let mask = |n: &[u8]| if n == b"t" { Mode::Mask } else { Mode::None };
        let m = |text: &str| match mask_urls_in_text(text.as_bytes(), &mask) {
            Cow::Owned(v) => Some(String::from_utf8(v).unwrap()),
            Cow::Borrowed(_) => None,
        };
        assert_eq!(m("a ?t=1 b"), Some("a ?t=*** b".into()));
        assert_eq!(
            m(r#"{"u":"/p?t=1\"x","v":"?t=2"}"#),
            Some(r#"{"u":"/p?t=***\"x","v":"?t=***"}"#.into())
        );
        assert_eq!(m("<a?t=1>,<b#t=2>"), Some("<a?t=***>,<b#t=***>".into()));
        assert_eq!(m("no url here"), None);
        assert_eq!(m("ends with ?"), None);
        assert_eq!(m(r"\u003ft=1"), Some(r"\u003ft=***".into()));
    }
}
