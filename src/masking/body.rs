//! Which grammar masking reads a captured body with, from what its message declared and
//! what its bytes are; or why it cannot read it at all.

/// How masking reads a body it can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grammar {
    /// `application/x-www-form-urlencoded`: parameters, like a query.
    Form,
    /// Any other text: JSON keys (best effort for text that is not JSON) and URLs.
    Text,
}

/// Media types of binary serializations: text masking cannot find names in them, even when
/// a small message happens to be valid UTF-8 (a gRPC frame often is).
const BINARY_TYPES: &[&str] = &[
    "application/grpc",
    "protobuf",
    "msgpack",
    "cbor",
    "avro",
    "thrift",
    "bson",
];

/// The grammar for a body prefix, or why masking cannot read it: `compressed` (a content
/// coding other than identity), `multipart` (parts masking does not parse, files among
/// them), `binary` (a binary media type, or bytes that are not UTF-8 text).
pub(super) fn grammar(
    bytes: &[u8],
    content_type: Option<&[u8]>,
    content_encoding: Option<&[u8]>,
) -> Result<Grammar, &'static str> {
    if content_encoding.is_some_and(|e| !is_identity(e)) {
        return Err("compressed");
    }
    let mut buf = [0u8; 128];
    let media = lowercase(media_type(content_type.unwrap_or_default()), &mut buf);
    if media.starts_with(b"multipart/") {
        return Err("multipart");
    }
    if BINARY_TYPES.iter().any(|t| contains(media, t.as_bytes())) || !is_text(bytes) {
        return Err("binary");
    }
    if media == b"application/x-www-form-urlencoded" {
        return Ok(Grammar::Form);
    }
    Ok(Grammar::Text)
}

/// `text` in lowercase, in `buf` (media types are short; a longer one is compared by its
/// first 128 bytes).
fn lowercase<'b>(text: &[u8], buf: &'b mut [u8; 128]) -> &'b [u8] {
    let n = text.len().min(buf.len());
    for (b, t) in buf.iter_mut().zip(text) {
        *b = t.to_ascii_lowercase();
    }
    buf.get(..n).unwrap_or_default()
}

/// Whether a `Content-Encoding` value means no coding (`identity`, or empty).
fn is_identity(encoding: &[u8]) -> bool {
    let e = encoding.trim_ascii();
    e.is_empty() || e.eq_ignore_ascii_case(b"identity")
}

/// `type/subtype` of a `Content-Type` value (parameters dropped).
fn media_type(content_type: &[u8]) -> &[u8] {
    content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// UTF-8 text, allowing an incomplete character at the very end (the capture limit cut it).
pub(super) fn is_text(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_and_codings_choose_the_grammar() {
        let g = |ct: &str, enc: Option<&str>| grammar(b"a=1", Some(ct.as_bytes()), enc.map(str::as_bytes));
        assert_eq!(g("application/x-www-form-urlencoded", None), Ok(Grammar::Form));
        assert_eq!(
            g("Application/X-WWW-Form-Urlencoded ; charset=utf-8", None),
            Ok(Grammar::Form)
        );
        assert_eq!(g("application/json", Some(" identity ")), Ok(Grammar::Text));
        assert_eq!(g("application/json", Some("")), Ok(Grammar::Text));
        assert_eq!(g("text/plain", Some("gzip")), Err("compressed"));
        assert_eq!(
            g("application/x-www-form-urlencoded", Some("deflate")),
            Err("compressed")
        );
        assert_eq!(g("Multipart/Form-Data; boundary=x", None), Err("multipart"));
        assert_eq!(g("application/grpc+proto", None), Err("binary"));
        assert_eq!(g("application/vnd.google.protobuf", None), Err("binary"));
        assert_eq!(
            g("application/octet-stream", None),
            Ok(Grammar::Text),
            "text bytes are read as text"
        );
        assert_eq!(grammar(&[0xff, 0x00], None, None), Err("binary"));
        assert_eq!(
            grammar("é".as_bytes().get(..1).unwrap(), None, None),
            Ok(Grammar::Text),
            "cut"
        );
    }
}
