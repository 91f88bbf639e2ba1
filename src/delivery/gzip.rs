//! gzip (RFC 1952) for batch bodies: the ingestion service accepts `Content-Encoding: gzip`
//! and recommends it. Deflate comes from `miniz_oxide` at its fastest level: telemetry
//! NDJSON is repetitive, so even the fastest level shrinks it several times over.

/// Compression level: fastest. (Levels trade CPU on the worker for bytes on the wire; see
/// docs/performance.md for the measurement behind the default.)
const LEVEL: u8 = 1;

/// `data` as a gzip member.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let deflated = miniz_oxide::deflate::compress_to_vec(data, LEVEL);
    let mut out = Vec::with_capacity(deflated.len() + 18);
    // Magic, deflate, no flags, no mtime, fastest, unknown OS.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), as gzip's trailer needs.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn output_is_a_gzip_member_that_inflates_back() {
        let data = b"{\"name\":\"Microsoft.ApplicationInsights.Request\"}\n".repeat(200);
        let gz = compress(&data);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert!(gz.len() * 5 < data.len(), "repetitive NDJSON shrinks: {} -> {}", data.len(), gz.len());
        let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        assert_eq!(inflated, data);
        assert_eq!(u32::from_le_bytes(gz[gz.len() - 8..gz.len() - 4].try_into().unwrap()), crc32(&data));
        assert_eq!(u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap()) as usize, data.len());
    }
}
