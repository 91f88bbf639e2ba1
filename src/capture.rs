//! Header and body capture, as API Management's diagnostic `frontend`/`backend` settings.
//!
//! Bodies are captured as they stream by: the filter copies at most the configured number
//! of bytes out of each chunk Envoy hands it and never pauses or buffers the stream, so a
//! server-sent-events response keeps flowing and a 10 MB upload costs the filter at most
//! the capture limit in memory. Captured content becomes properties named the APIM way:
//!
//! - `Request-<header>` / `Response-<header>` (multi-valued headers joined with `, `);
//! - `Request-Body` / `Response-Body`: the captured prefix as text, masked by its
//!   `Content-Type` (form fields, JSON keys, URLs); with `…-Body-Truncated: true` when the
//!   body was longer, and `…-Body-Content-Encoding` when the message declared one (`gzip`,
//!   `br`, …);
//! - `…-Body-Withheld` instead of the body when masking cannot read it (`compressed`,
//!   `multipart`, `binary`): what masking cannot inspect is not captured in clear. Only
//!   with masking off (nothing to look for) is such content kept, faithfully, as base64
//!   (`…-Body-Encoding: base64`).
//!
//! Masking applies before anything is written. A per-item budget keeps every item under
//! the service's 64 KB limit: captured content beyond it is left out and the item says so
//! (`Capture-Truncated: true`).

use crate::headers::HeaderMap;
use crate::masking::{BodyView, Masking};
use crate::telemetry::envelope::Members;
use crate::telemetry::limits;

/// Serialized bytes of captured content and custom properties one item may carry; leaves
/// room for the rest of the item under the service's 64 KB limit.
pub const ITEM_CAPTURE_BUDGET: usize = 40 * 1024;

/// The first bytes of a body, kept as they stream by.
#[derive(Debug, Clone, Default)]
pub struct BodyPrefix {
    bytes: Vec<u8>,
    limit: usize,
}

impl BodyPrefix {
    pub fn new(limit: u64) -> BodyPrefix {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        BodyPrefix {
            bytes: Vec::new(),
            limit,
        }
    }

    /// How many more bytes are wanted (0: stop reading chunks).
    pub fn wanted(&self) -> usize {
        self.limit.saturating_sub(self.bytes.len())
    }

    /// Appends bytes read from the current chunk (at most [`BodyPrefix::wanted`]).
    pub fn push(&mut self, chunk: &[u8]) {
        let take = chunk.len().min(self.wanted());
        self.bytes.extend_from_slice(chunk.get(..take).unwrap_or_default());
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Writes captured properties of one item, within [`ITEM_CAPTURE_BUDGET`].
pub struct Writer<'m, 'o> {
    pub members: &'m mut Members<'o>,
    pub masking: &'m Masking,
    budget: usize,
    cut: bool,
}

impl<'m, 'o> Writer<'m, 'o> {
    pub fn new(members: &'m mut Members<'o>, masking: &'m Masking) -> Self {
        Writer {
            members,
            masking,
            budget: ITEM_CAPTURE_BUDGET,
            cut: false,
        }
    }

    /// Writes one or more members with `write`; keeps them if their serialized size fits
    /// the budget, else removes them and marks the item.
    fn within_budget(&mut self, write: impl FnOnce(&mut Members<'o>)) -> bool {
        let mark = self.members.checkpoint();
        write(self.members);
        let size = self.members.written_since(mark);
        if size > self.budget {
            self.members.rollback(mark);
            self.cut = true;
            return false;
        }
        self.budget -= size;
        true
    }

    /// A custom property taken from a request header (masked or hidden as configured).
    pub fn header_property(&mut self, property: &str, header: &[u8], map: &HeaderMap) {
        let Some(value) = map.get(header).and_then(|v| self.masking.header_value(header, v)) else {
            return;
        };
        self.within_budget(|m| m.string(property, &value));
    }

    /// A custom property already masked (a rendered template masks what it prints).
    pub fn property(&mut self, property: &str, value: &[u8]) {
        self.within_budget(|m| m.string(property, value));
    }

    /// `<side>-<name>` for each configured header present in `map` (masked or hidden).
    pub fn headers(&mut self, side: &str, names: &[String], map: &HeaderMap) {
        for name in names {
            let mut joined: Vec<u8> = Vec::new();
            for (k, v) in map.iter() {
                if k != name.as_bytes() {
                    continue;
                }
                let Some(v) = self.masking.header_value(k, v) else {
                    break;
                };
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(&v);
            }
            if joined.is_empty() {
                continue;
            }
            self.within_budget(|m| m.string(&format!("{side}-{name}"), &joined));
        }
    }

    /// `<side>-Body` and its markers for a captured prefix of `limit` bytes out of a body
    /// of `total` bytes, sent with the header map `headers` (which says its type and
    /// encoding); or `<side>-Body-Withheld` when masking cannot read it.
    pub fn body(&mut self, side: &str, prefix: &BodyPrefix, limit: u64, total: u64, headers: Option<&HeaderMap>) {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let captured = prefix
            .bytes()
            .get(..prefix.bytes().len().min(limit))
            .unwrap_or_default();
        if captured.is_empty() {
            return;
        }
        let content_type = headers.and_then(|h| h.get(b"content-type"));
        let coding = headers
            .and_then(|h| h.get(b"content-encoding"))
            .filter(|e| is_coding(e));
        match self.masking.body(captured, content_type, coding) {
            BodyView::Capture(masked) => {
                let cut = total > captured.len() as u64;
                self.body_text(side, &masked, cut, coding);
            }
            BodyView::Withheld(reason) => {
                self.within_budget(|m| {
                    m.string(&format!("{side}-Body-Withheld"), reason.as_bytes());
                    content_encoding_marker(m, side, coding);
                });
            }
        }
    }

    /// `<side>-Body` (text, or base64 when not UTF-8) and its markers; `cut`: the body was
    /// longer than what was captured.
    fn body_text(&mut self, side: &str, masked: &[u8], cut: bool, coding: Option<&[u8]>) {
        let (text, base64) = render(masked);
        // Property values hold at most 8192 characters (text here is UTF-8 or base64).
        let chars = if base64 {
            text.len()
        } else {
            String::from_utf8_lossy(&text).chars().count()
        };
        let truncated = cut || chars > limits::PROPERTY_VALUE;
        self.within_budget(|m| {
            m.string(&format!("{side}-Body"), &text);
            if truncated {
                m.string(&format!("{side}-Body-Truncated"), b"true");
            }
            if base64 {
                m.string(&format!("{side}-Body-Encoding"), b"base64");
            }
            content_encoding_marker(m, side, coding);
        });
    }

    /// Marks the item when the budget left captured content out.
    pub fn finish(self) {
        if self.cut {
            self.members.string("Capture-Truncated", b"true");
        }
    }
}

/// Whether a `Content-Encoding` value declares a coding (not empty, not `identity`).
fn is_coding(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    !v.is_empty() && !v.eq_ignore_ascii_case(b"identity")
}

/// `<side>-Body-Content-Encoding` when the message declared a content coding.
fn content_encoding_marker(m: &mut Members<'_>, side: &str, content_encoding: Option<&[u8]>) {
    if let Some(enc) = content_encoding {
        m.string_limited(&format!("{side}-Body-Content-Encoding"), enc, 64);
    }
}

/// The captured bytes as text: UTF-8 as is (a character cut at the end is dropped),
/// anything else as base64. Returns (text, is base64).
fn render(bytes: &[u8]) -> (Vec<u8>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(_) => (bytes.to_vec(), false),
        // Only an incomplete character at the very end: the capture limit cut it.
        Err(e) if e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4 => {
            (bytes.get(..e.valid_up_to()).unwrap_or_default().to_vec(), false)
        }
        Err(_) => (base64(bytes), true),
    }
}

fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |n: u32| ALPHABET.get((n & 63) as usize).copied().unwrap_or(b'=');
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = b(0) << 16 | b(1) << 8 | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sym(n) } else { b'=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::Mode;
    use serde_json::Value;

    fn props(f: impl FnOnce(&mut Writer<'_, '_>)) -> Value {
        let masking = Masking::new(
            true,
            vec![("x-hidden".into(), Mode::Hide)],
            vec![],
            vec!["password".into()],
        );
        props_with(&masking, f)
    }

    fn props_with(masking: &Masking, f: impl FnOnce(&mut Writer<'_, '_>)) -> Value {
        let mut out = b"{\"ver\":2".to_vec();
        {
            let mut m = Members::new(&mut out, "properties");
            let mut w = Writer::new(&mut m, masking);
            f(&mut w);
            w.finish();
            m.finish();
        }
        out.push(b'}');
        let v: Value = serde_json::from_slice(&out).unwrap();
        v["properties"].clone()
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::from_serialized(HeaderMap::serialize(
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        ))
    }

    #[test]
    fn body_prefix_keeps_only_the_limit() {
        let mut b = BodyPrefix::new(5);
        b.push(b"abc");
        assert_eq!(b.wanted(), 2);
        b.push(b"defgh");
        assert_eq!(b.bytes(), b"abcde");
        assert_eq!(b.wanted(), 0);
        b.push(b"more");
        assert_eq!(b.bytes(), b"abcde");
    }

    #[test]
    fn headers_are_named_the_apim_way_joined_and_masked() {
        let h = map(&[
            ("content-type", "application/json"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("authorization", "Bearer s3cret"),
            ("x-hidden", "h"),
        ]);
        let names: Vec<String> = ["content-type", "x-multi", "authorization", "x-hidden", "x-absent"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = props(|w| w.headers("Request", &names, &h));
        assert_eq!(p["Request-content-type"], "application/json");
        assert_eq!(p["Request-x-multi"], "a, b");
        assert_eq!(p["Request-authorization"], "***");
        assert!(p.get("Request-x-hidden").is_none());
        assert!(p.get("Request-x-absent").is_none());
    }

    #[test]
    fn bodies_are_text_or_base64_and_marked() {
        let mut b = BodyPrefix::new(16);
        b.push(br#"{"password":"hunter2","a":1}"#);
        let p = props(|w| w.body("Request", &b, 16, 28, None));
        assert_eq!(p["Request-Body"], r#"{"password":"***""#);
        assert_eq!(p["Request-Body-Truncated"], "true");
        assert!(p.get("Request-Body-Encoding").is_none());

        // With masking explicitly off (nothing to look for), binary and compressed content is
        // kept faithfully; with masking on it is withheld (see below).
        let off = Masking::new(false, vec![], vec![], vec![]);
        let mut bin = BodyPrefix::new(8);
        bin.push(&[0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0x01]);
        let gzip = map(&[("content-encoding", "gzip")]);
        let p = props_with(&off, |w| w.body("Response", &bin, 8, 8, Some(&gzip)));
        assert_eq!(p["Response-Body"], "H4sIAP/+AAE=");
        assert_eq!(p["Response-Body-Encoding"], "base64");
        assert_eq!(p["Response-Body-Content-Encoding"], "gzip");
        assert!(p.get("Response-Body-Truncated").is_none());
    }

    #[test]
    fn bodies_masking_cannot_read_are_withheld_and_say_why() {
        let json = map(&[("content-type", "application/json"), ("content-encoding", "gzip")]);
        let mut gz = BodyPrefix::new(64);
        gz.push(&[0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0x01]);
        let p = props(|w| w.body("Request", &gz, 64, 8, Some(&json)));
        assert_eq!(p["Request-Body-Withheld"], "compressed");
        assert_eq!(p["Request-Body-Content-Encoding"], "gzip");
        assert!(p.get("Request-Body").is_none());
        // Compressed, whatever the bytes look like: a coding masking cannot undo.
        let mut text = BodyPrefix::new(64);
        text.push(br#"{"password":"hunter2"}"#);
        let br = map(&[("content-encoding", "BR")]);
        let p = props(|w| w.body("Response", &text, 64, 22, Some(&br)));
        assert_eq!(p["Response-Body-Withheld"], "compressed");
        // Not UTF-8 text, whatever the headers say.
        let p = props(|w| w.body("Response", &gz, 64, 8, None));
        assert_eq!(p["Response-Body-Withheld"], "binary");
        assert!(p.get("Response-Body").is_none() && p.get("Response-Body-Encoding").is_none());
        let identity = map(&[("content-type", "application/json"), ("content-encoding", "identity")]);
        let p = props(|w| w.body("Request", &text, 64, 22, Some(&identity)));
        assert_eq!(p["Request-Body"], r#"{"password":"***"}"#);
        assert!(p.get("Request-Body-Content-Encoding").is_none());
    }

    #[test]
    fn bodies_are_masked_by_their_content_type() {
        let mut form = BodyPrefix::new(256);
        form.push(b"grant_type=password&username=ada&Password=hunter2&client%5Fsecret=s3cret&scope=a");
        let ct = map(&[("content-type", "application/x-www-form-urlencoded; charset=UTF-8")]);
        let p = props(|w| w.body("Request", &form, 256, 80, Some(&ct)));
        assert_eq!(
            p["Request-Body"],
            "grant_type=password&username=ada&Password=***&client%5Fsecret=***&scope=a"
        );
        let mut json = BodyPrefix::new(256);
        json.push(br#"{"password":"a","PASSWORD":"b","next":"https://x/?a=1&access_token=c"}"#);
        let ct = map(&[("content-type", "application/problem+json")]);
        let p = props(|w| w.body("Response", &json, 256, 80, Some(&ct)));
        assert_eq!(
            p["Response-Body"],
            r#"{"password":"***","PASSWORD":"***","next":"https://x/?a=1&access_token=***"}"#
        );
    }

    #[test]
    fn captured_header_values_have_urls_masked() {
        let h = map(&[
            ("referer", "https://app.example/from?x=1&token=t1"),
            ("location", "/cb?state=s;code=c1#access_token=t2"),
            ("x-goog-api-key", "k1"),
        ]);
        let names: Vec<String> = ["referer", "location", "x-goog-api-key"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let p = props(|w| {
            w.headers("Request", &names, &h);
            w.header_property("Ref", b"referer", &h);
        });
        assert_eq!(p["Request-referer"], "https://app.example/from?x=1&token=***");
        assert_eq!(p["Request-location"], "/cb?state=s;code=***#access_token=***");
        assert_eq!(p["Request-x-goog-api-key"], "***");
        assert_eq!(p["Ref"], "https://app.example/from?x=1&token=***");
    }

    #[test]
    fn a_character_cut_by_the_limit_is_not_binary() {
        let mut b = BodyPrefix::new(4);
        b.push("héé".as_bytes()); // h + 2-byte é + first byte of é
        let p = props(|w| w.body("Request", &b, 4, 5, None));
        assert_eq!(p["Request-Body"], "hé");
        assert!(p.get("Request-Body-Encoding").is_none());
    }

    #[test]
    fn a_smaller_limit_uses_a_prefix_of_the_capture() {
        let mut b = BodyPrefix::new(10);
        b.push(b"0123456789");
        let p = props(|w| w.body("Request", &b, 4, 10, None));
        assert_eq!(p["Request-Body"], "0123");
        assert_eq!(p["Request-Body-Truncated"], "true");
        let p = props(|w| w.body("Request", &b, 0, 10, None));
        assert!(p.get("Request-Body").is_none(), "limit 0 captures nothing");
    }

    #[test]
    fn the_item_budget_leaves_content_out_and_says_so() {
        let big = "x".repeat(8000);
        let pairs: Vec<(String, String)> = (0..10).map(|i| (format!("h{i}"), big.clone())).collect();
        let h = HeaderMap::from_serialized(HeaderMap::serialize(
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        ));
        let names: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
        let p = props(|w| w.headers("Request", &names, &h));
        let kept = names.iter().filter(|n| p.get(format!("Request-{n}")).is_some()).count();
        assert_eq!(kept, 5, "40 KB of 8 KB headers");
        assert_eq!(p["Capture-Truncated"], "true");
    }

    #[test]
    fn the_budget_counts_escaped_bytes_not_characters() {
        // 8 KB of control characters escape to 6 bytes each: 48 KB, over the budget.
        let mut b = BodyPrefix::new(8192);
        b.push(&[0x01; 8192]);
        let p = props(|w| w.body("Request", &b, 8192, 8192, None));
        assert!(p.get("Request-Body").is_none());
        assert_eq!(p["Capture-Truncated"], "true");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), b"");
        assert_eq!(base64(b"f"), b"Zg==");
        assert_eq!(base64(b"fo"), b"Zm8=");
        assert_eq!(base64(b"foo"), b"Zm9v");
        assert_eq!(base64(b"foobar"), b"Zm9vYmFy");
    }
}
