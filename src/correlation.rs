//! Correlation: reading the caller's trace context, and what to send the backend.
//!
//! Three protocols, as API Management's `httpCorrelationProtocol`:
//!
//! - **W3C** (default): `traceparent` is read and strictly validated (version, lengths,
//!   lowercase hex, all-zero ids, version `ff`); a valid one continues the caller's trace,
//!   otherwise a new one starts. A caller that sends only a legacy `Request-Id` of the
//!   `|<32 hex>.<…>.` form (what SDKs in compatible mode send) continues that trace too,
//!   where APIM would start a new one. The backend gets a `traceparent` carrying the
//!   dependency's span id; `tracestate` passes through untouched.
//! - **Legacy**: `Request-Id` (hierarchical, `|root.a.b.`) and `Request-Context` are read;
//!   the backend gets `Request-Id: |<operation>.<span>.`: always the root plus one fresh
//!   segment, never the caller's id plus a suffix, so ids cannot grow without bound the way
//!   APIM's did (ids over 128 characters made Application Insights drop the telemetry).
//! - **None**: nothing is read or injected; every request starts a new operation.
//!
//! Mapping to Application Insights fields (W3C): operation id = trace id; request id = the
//! gateway's span id; the request's parent = the caller's span id; the dependency's id =
//! the span id sent to the backend, which the backend's own Request names as its parent.

use crate::ids::{SpanId, TraceId};
use std::fmt;

/// Longest id the schema keeps (`id`, `ai.operation.id`, `ai.operation.parentId`).
pub const MAX_ID_LEN: usize = 128;
/// Incoming correlation headers longer than this are ignored (W3C implementations' cap).
const MAX_HEADER_LEN: usize = 8192;

/// Which correlation headers are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    None,
    Legacy,
    W3C,
}

/// An id as it appears in items and headers: printable ASCII without `"` or `\`, at most
/// [`MAX_ID_LEN`] bytes, stored inline (no allocation per request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdText {
    len: u8,
    buf: [u8; MAX_ID_LEN],
}

impl IdText {
    /// `None` if `bytes` is empty, too long, or has characters ids must not contain.
    pub fn new(bytes: &[u8]) -> Option<IdText> {
        if bytes.is_empty() || bytes.len() > MAX_ID_LEN {
            return None;
        }
        if !bytes.iter().all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            return None;
        }
        let mut buf = [0u8; MAX_ID_LEN];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(IdText {
            len: bytes.len() as u8,
            buf,
        })
    }

    pub fn trace(id: &TraceId) -> IdText {
        Self::from_ascii(&id.to_hex())
    }

    pub fn span(id: &SpanId) -> IdText {
        Self::from_ascii(&id.to_hex())
    }

    /// For bytes known to be valid (hex): never fails.
    fn from_ascii(bytes: &[u8]) -> IdText {
        let mut buf = [0u8; MAX_ID_LEN];
        let n = bytes.len().min(MAX_ID_LEN);
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        IdText { len: n as u8, buf }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The caller's correlation headers, as received (absent ones `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Incoming<'a> {
    pub traceparent: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    pub request_context: Option<&'a [u8]>,
}

/// What the caller's headers say about the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The operation (W3C trace id, or legacy root id).
    pub operation_id: IdText,
    /// The caller's own id: the request's parent.
    pub parent_id: IdText,
    /// W3C trace flags: whether the caller sampled this trace.
    pub sampled: Option<bool>,
    /// The W3C trace id, when the operation has one (needed to send `traceparent`).
    pub trace_id: Option<TraceId>,
}

/// Reads the caller's trace context under `protocol`; `None` starts a new operation.
pub fn read_caller(protocol: Protocol, incoming: &Incoming<'_>) -> Option<Caller> {
    match protocol {
        Protocol::None => None,
        Protocol::W3C => incoming
            .traceparent
            .and_then(parse_traceparent)
            .map(|(trace, span, flags)| Caller {
                operation_id: IdText::trace(&trace),
                parent_id: IdText::span(&span),
                sampled: Some(flags & 1 == 1),
                trace_id: Some(trace),
            })
            .or_else(|| incoming.request_id.and_then(w3c_compatible_request_id)),
        Protocol::Legacy => incoming.request_id.and_then(parse_request_id),
    }
}

/// `Request-Context: appId=cid-v1:<id>` → `cid-v1:<id>` (the caller's application), which
/// becomes the request's `source`.
pub fn request_context_app_id(value: &[u8]) -> Option<IdText> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    text.split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == "appId")
        .map(|(_, v)| v.trim())
        .filter(|v| v.starts_with("cid-v1:") && v.len() > "cid-v1:".len())
        .and_then(|v| IdText::new(v.as_bytes()))
}

/// Parses a W3C `traceparent`: (trace id, parent span id, flags), or `None` if invalid.
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, u8)> {
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let value = trim_ows(value);
    let version = hex_byte(value.get(0..2)?)?;
    // Version 00 is exactly 55 characters; a later version may append fields after a '-'.
    let well_formed_length = value.len() == 55 || (version != 0 && value.get(55) == Some(&b'-'));
    if version == 0xff || !well_formed_length {
        return None;
    }
    if value.get(2) != Some(&b'-') || value.get(35) != Some(&b'-') || value.get(52) != Some(&b'-') {
        return None;
    }
    let trace = TraceId(hex_array::<16>(value.get(3..35)?)?);
    let span = SpanId(hex_array::<8>(value.get(36..52)?)?);
    let flags = hex_byte(value.get(53..55)?)?;
    (trace.is_valid() && span.is_valid()).then_some((trace, span, flags))
}

/// The `traceparent` to send the backend: version 00, the sampled flag as decided.
pub fn format_traceparent(trace: &TraceId, span: &SpanId, sampled: bool) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    out[3..35].copy_from_slice(&trace.to_hex());
    out[36..52].copy_from_slice(&span.to_hex());
    out[53] = b'0';
    out[54] = if sampled { b'1' } else { b'0' };
    out
}

/// A legacy `Request-Id`: root (operation id) and the whole id (the caller's id).
/// Hierarchical ids start with `|`; the root runs to the first `.`. Flat ids are their own
/// root. Characters: base64 and `-|._:` (HierarchicalRequestId.md), at most 1024 bytes.
pub fn parse_request_id(value: &[u8]) -> Option<Caller> {
    let value = trim_ows(value);
    if value.is_empty() || value.len() > 1024 {
        return None;
    }
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"+/=-|._:#".contains(b);
    if !value.iter().all(allowed) {
        return None;
    }
    // The root is what comes before the first '.', without a leading '|', for flat ids too
    // (.NET's Activity.GetRootId): the id the backend gets, `|<root>.<span>.`, then has
    // the same root, so its telemetry joins the same operation.
    let unmarked = value.strip_prefix(b"|").unwrap_or(value);
    let root = unmarked.split(|&b| b == b'.').next().unwrap_or_default();
    let operation_id = IdText::new(root)?;
    // The parent is the caller's id; ids beyond the schema's 128 are cut (they could not
    // be matched exactly anyway, and the cut never reaches the backend).
    let parent_id = IdText::new(value.get(..value.len().min(MAX_ID_LEN)).unwrap_or(value))?;
    let trace_id = (root.len() == 32).then(|| hex_array::<16>(root)).flatten().map(TraceId);
    Some(Caller {
        operation_id,
        parent_id,
        sampled: None,
        trace_id,
    })
}

/// A `Request-Id` in the SDKs' W3C-compatible form `|<32 hex trace id>.<…>.`.
fn w3c_compatible_request_id(value: &[u8]) -> Option<Caller> {
    let caller = parse_request_id(value)?;
    caller.trace_id.filter(TraceId::is_valid)?;
    Some(caller)
}

/// The `Request-Id` to send the backend: `|<operation>.<span>.`, at most 128 characters
/// (an operation id too long for that is cut).
pub fn format_request_id(operation_id: &IdText, span: &SpanId) -> IdText {
    let op = operation_id.as_bytes();
    let op = op.get(..op.len().min(MAX_ID_LEN - 19)).unwrap_or(op);
    let mut out = Vec::with_capacity(op.len() + 19);
    out.push(b'|');
    out.extend_from_slice(op);
    out.push(b'.');
    out.extend_from_slice(&span.to_hex());
    out.push(b'.');
    IdText::from_ascii(&out)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// Two lowercase hex digits → a byte (W3C requires lowercase).
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair {
        [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
        _ => None,
    }
}

fn hex_array<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_byte(pair)?;
    }
    Some(out)
}

impl TraceId {
    /// Parses 32 lowercase hex characters.
    pub fn from_hex(hex: &[u8]) -> Option<TraceId> {
        hex_array::<16>(hex).map(TraceId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn w3c(tp: &[u8]) -> Option<Caller> {
        read_caller(
            Protocol::W3C,
            &Incoming {
                traceparent: Some(tp),
                ..Default::default()
            },
        )
    }

    #[test]
    fn a_flat_request_id_with_dots_keeps_the_root_before_the_first_dot() {
        // .NET's Activity.GetRootId: the root ends at the first '.', with or without '|'.
        let c = parse_request_id(b"abc.def").unwrap();
        assert_eq!(c.operation_id.as_str(), "abc");
        assert_eq!(c.parent_id.as_str(), "abc.def");
        assert_eq!(parse_request_id(b"|abc.def.").unwrap().operation_id.as_str(), "abc");
        assert_eq!(parse_request_id(b"plain").unwrap().operation_id.as_str(), "plain");
    }

    #[test]
    fn a_valid_traceparent_continues_the_callers_trace() {
        let c = w3c(TP).unwrap();
        assert_eq!(c.operation_id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent_id.as_str(), "00f067aa0ba902b7");
        assert_eq!(c.sampled, Some(true));
        let c = w3c(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert_eq!(c.sampled, Some(false));
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        let bad: &[&[u8]] = &[
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  // short span id
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // 00 has no extras
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            b"",
            b"garbage",
        ];
        for tp in bad {
            assert!(parse_traceparent(tp).is_none(), "{}", String::from_utf8_lossy(tp));
        }
        assert!(parse_traceparent(&[b'0'; 9000]).is_none());
    }

    #[test]
    fn future_versions_may_carry_more_fields() {
        let tp = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever";
        assert!(parse_traceparent(tp).is_some());
        assert!(parse_traceparent(b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ").is_some());
    }

    #[test]
    fn traceparent_round_trips() {
        let (t, s, _) = parse_traceparent(TP).unwrap();
        assert_eq!(&format_traceparent(&t, &s, true)[..], TP);
        assert!(format_traceparent(&t, &s, false).ends_with(b"-00"));
    }

    #[test]
    fn w3c_mode_continues_a_compatible_request_id_when_there_is_no_traceparent() {
        let incoming = Incoming {
            request_id: Some(b"|4bf92f3577b34da6a3ce929d0e0e4736.00f067aa0ba902b7."),
            ..Default::default()
        };
        let c = read_caller(Protocol::W3C, &incoming).unwrap();
        assert_eq!(c.operation_id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            c.parent_id.as_str(),
            "|4bf92f3577b34da6a3ce929d0e0e4736.00f067aa0ba902b7."
        );
        assert!(c.trace_id.is_some());
        let legacy_only = Incoming {
            request_id: Some(b"|abc.1."),
            ..Default::default()
        };
        assert!(read_caller(Protocol::W3C, &legacy_only).is_none());
    }

    #[test]
    fn legacy_mode_reads_hierarchical_and_flat_request_ids() {
        let c = read_caller(
            Protocol::Legacy,
            &Incoming {
                request_id: Some(b"|Guid-1.1.da4e9679_"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.operation_id.as_str(), "Guid-1");
        assert_eq!(c.parent_id.as_str(), "|Guid-1.1.da4e9679_");
        assert!(c.trace_id.is_none());
        let c = parse_request_id(b"flat-id").unwrap();
        assert_eq!(c.operation_id.as_str(), "flat-id");
        assert!(parse_request_id(b"|bad id with spaces.").is_none());
        assert!(parse_request_id(b"|\"quote\".").is_none());
        assert!(parse_request_id(&[b'a'; 1025]).is_none());
        // Legacy mode ignores traceparent.
        assert!(read_caller(
            Protocol::Legacy,
            &Incoming {
                traceparent: Some(TP),
                ..Default::default()
            }
        )
        .is_none());
        assert!(read_caller(
            Protocol::None,
            &Incoming {
                traceparent: Some(TP),
                ..Default::default()
            }
        )
        .is_none());
    }

    #[test]
    fn a_very_long_caller_id_is_cut_to_the_schema_limit() {
        let mut long = b"|root.".to_vec();
        long.extend(std::iter::repeat_n(b'a', 500));
        let c = parse_request_id(&long).unwrap();
        assert_eq!(c.parent_id.as_bytes().len(), MAX_ID_LEN);
        assert_eq!(c.operation_id.as_str(), "root");
    }

    #[test]
    fn outgoing_request_ids_never_grow_beyond_128() {
        let span = SpanId([0xab; 8]);
        let id = format_request_id(&IdText::new(b"root").unwrap(), &span);
        assert_eq!(id.as_str(), "|root.abababababababab.");
        // Re-feeding our own ids a thousand times keeps them bounded (APIM's bug).
        let mut caller = parse_request_id(id.as_bytes()).unwrap();
        for _ in 0..1000 {
            let next = format_request_id(&caller.operation_id, &span);
            assert!(next.as_bytes().len() <= MAX_ID_LEN);
            caller = parse_request_id(next.as_bytes()).unwrap();
        }
        assert_eq!(caller.operation_id.as_str(), "root");
        let huge = IdText::new(&[b'x'; 128]).unwrap();
        assert_eq!(format_request_id(&huge, &span).as_bytes().len(), MAX_ID_LEN);
    }

    #[test]
    fn request_context_yields_the_callers_app_id() {
        assert_eq!(
            request_context_app_id(b"appId=cid-v1:1234-abcd").unwrap().as_str(),
            "cid-v1:1234-abcd"
        );
        assert_eq!(
            request_context_app_id(b"other=1, appId = cid-v1:x ").unwrap().as_str(),
            "cid-v1:x"
        );
        assert!(request_context_app_id(b"appId=foo").is_none());
        assert!(request_context_app_id(b"appId=cid-v1:").is_none());
    }

    #[test]
    fn id_text_rejects_what_could_break_json_or_headers() {
        assert!(IdText::new(b"").is_none());
        assert!(IdText::new(b"a b").is_none());
        assert!(IdText::new(b"a\"b").is_none());
        assert!(IdText::new(&[b'a'; 129]).is_none());
        assert_eq!(IdText::new(b"ok-1").unwrap().as_str(), "ok-1");
    }
}
