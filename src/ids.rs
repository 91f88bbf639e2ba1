//! Trace and span ids (W3C Trace Context sizes), from a fast generator seeded once per VM.
//!
//! Ids must be unique and unpredictable enough for sampling to be fair, not secret: a
//! xoshiro256++ generator seeded from the host's entropy (WASI `random_get`) is used, so
//! no request pays for a host call to get randomness.

/// A 16-byte W3C trace id (the Application Insights operation id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte W3C span id (the id of a request or dependency item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex into `out`, which must be twice as long.
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        if let [hi, lo] = pair {
            *hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
        }
    }
}

impl TraceId {
    /// 32 lowercase hex characters.
    pub fn to_hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex_into(&self.0, &mut out);
        out
    }

    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }
}

impl SpanId {
    /// 16 lowercase hex characters.
    pub fn to_hex(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        hex_into(&self.0, &mut out);
        out
    }

    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }
}

/// xoshiro256++: fast, small state, good statistical quality.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    s: [u64; 4],
}

impl IdGenerator {
    /// Seeds the generator; any seed works, including zeros.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut sm = u64::from_le_bytes(first8(&seed, 0)) ^ 0x9E37_79B9_7F4A_7C15;
        let mut s = [0u64; 4];
        for (i, word) in s.iter_mut().enumerate() {
            // SplitMix64 spreads the seed so that no state word is zero.
            sm ^= u64::from_le_bytes(first8(&seed, i * 8));
            *word = splitmix64(&mut sm);
        }
        IdGenerator { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.s;
        let result = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let mut s = [s0, s1, s2 ^ s0, s3 ^ s1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        self.s = s;
        result
    }

    pub fn trace_id(&mut self) -> TraceId {
        loop {
            let mut id = [0u8; 16];
            let (a, b) = id.split_at_mut(8);
            a.copy_from_slice(&self.next_u64().to_le_bytes());
            b.copy_from_slice(&self.next_u64().to_le_bytes());
            let id = TraceId(id);
            if id.is_valid() {
                return id;
            }
        }
    }

    pub fn span_id(&mut self) -> SpanId {
        loop {
            let id = SpanId(self.next_u64().to_le_bytes());
            if id.is_valid() {
                return id;
            }
        }
    }
}

fn first8(seed: &[u8; 32], at: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Some(src) = seed.get(at..at + 8) {
        out.copy_from_slice(src);
    }
    out
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_lowercase_hex_of_the_w3c_lengths() {
        let mut g = IdGenerator::from_seed([7; 32]);
        let t = g.trace_id().to_hex();
        let s = g.span_id().to_hex();
        assert!(t.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(s.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(&TraceId([0xab; 16]).to_hex()[..4], b"abab");
    }

    #[test]
    fn ids_do_not_repeat_and_differ_between_seeds() {
        let mut g = IdGenerator::from_seed([0; 32]);
        let ids: HashSet<[u8; 16]> = (0..100_000).map(|_| g.trace_id().0).collect();
        assert_eq!(ids.len(), 100_000);
        let mut a = IdGenerator::from_seed([1; 32]);
        let mut b = IdGenerator::from_seed([2; 32]);
        assert_ne!(a.span_id(), b.span_id());
    }

    #[test]
    fn all_zero_ids_are_invalid() {
        assert!(!TraceId([0; 16]).is_valid());
        assert!(!SpanId([0; 8]).is_valid());
    }
}
