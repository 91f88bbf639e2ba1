//! Header maps as Envoy hands them to the filter, read without copying.
//!
//! `proxy_get_header_map_pairs` returns the whole map in one buffer:
//! `u32 count`, then `count` × (`u32 name_len`, `u32 value_len`), then each name and value
//! followed by a NUL byte. [`HeaderMap`] keeps that buffer as it came and hands out slices
//! into it, so reading every header the filter needs costs one host call and one allocation.
//! Every offset is checked: a malformed buffer yields fewer headers, never a panic.

/// A serialized header map and a cursor over its entries.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    buf: Vec<u8>,
}

impl HeaderMap {
    /// Wraps a buffer in the proxy-wasm pairs serialization.
    pub fn from_serialized(buf: Vec<u8>) -> Self {
        HeaderMap { buf }
    }

    /// Serializes pairs (used by tests and by the host-side tools).
    pub fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
        let pairs: Vec<(&[u8], &[u8])> = pairs.into_iter().collect();
        let mut out = Vec::new();
        out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (k, v) in &pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in &pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    /// The raw buffer (to keep a map alive elsewhere without re-reading it).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Iterates (name, value) pairs in order. Names are lowercase in Envoy.
    pub fn iter(&self) -> HeaderIter<'_> {
        let count = read_u32(&self.buf, 0).unwrap_or(0) as usize;
        // Each entry needs at least 8 bytes of sizes and 2 NULs: cap a lying count.
        let count = count.min(self.buf.len() / 10);
        HeaderIter {
            buf: &self.buf,
            count,
            index: 0,
            data: 4 + count * 8,
        }
    }

    /// The first value of `name` (lowercase), if present.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The position of a value inside the buffer, to remember it without copying.
    pub fn span_of(&self, value: &[u8]) -> Span {
        let base = self.buf.as_ptr() as usize;
        let at = (value.as_ptr() as usize).wrapping_sub(base);
        if at <= self.buf.len() && value.len() <= self.buf.len() - at {
            Span {
                start: at as u32,
                len: value.len() as u32,
            }
        } else {
            Span::default()
        }
    }

    /// The bytes at a span from [`HeaderMap::span_of`] (empty if out of range).
    pub fn at(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.buf.get(start..start + span.len as usize).unwrap_or_default()
    }
}

/// A slice of a [`HeaderMap`]'s buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

pub struct HeaderIter<'a> {
    buf: &'a [u8],
    count: usize,
    index: usize,
    data: usize,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let sizes = 4 + self.index * 8;
        let name_len = read_u32(self.buf, sizes)? as usize;
        let value_len = read_u32(self.buf, sizes + 4)? as usize;
        let name = self.buf.get(self.data..self.data.checked_add(name_len)?)?;
        let value_at = self.data + name_len + 1;
        let value = self.buf.get(value_at..value_at.checked_add(value_len)?)?;
        self.data = value_at + value_len + 1;
        self.index += 1;
        Some((name, value))
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::from_serialized(HeaderMap::serialize(
            pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        ))
    }

    #[test]
    fn reads_every_pair_in_order() {
        let m = map(&[(":method", "GET"), (":path", "/a?b=c"), ("x-empty", ""), ("x", "1")]);
        let got: Vec<(&[u8], &[u8])> = m.iter().collect();
        assert_eq!(got.len(), 4);
        assert_eq!(m.get(b":path"), Some(&b"/a?b=c"[..]));
        assert_eq!(m.get(b"x-empty"), Some(&b""[..]));
        assert_eq!(m.get(b"missing"), None);
    }

    #[test]
    fn spans_point_back_into_the_buffer() {
        let m = map(&[(":authority", "example.com")]);
        let v = m.get(b":authority").unwrap();
        let span = m.span_of(v);
        assert_eq!(m.at(span), b"example.com");
        assert_eq!(m.at(m.span_of(b"elsewhere")), b"");
    }

    #[test]
    fn malformed_buffers_yield_what_is_readable_and_never_panic() {
        let good = HeaderMap::serialize([(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);
        for cut in 0..good.len() {
            let m = HeaderMap::from_serialized(good[..cut].to_vec());
            assert!(m.iter().count() <= 2);
        }
        let mut lying = good.clone();
        lying[0] = 255; // claims 255 entries
        assert!(HeaderMap::from_serialized(lying).iter().count() <= 2);
        let mut huge = good;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::from_serialized(huge).iter().count(), 0);
        assert_eq!(HeaderMap::default().iter().count(), 0);
    }
}
