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

/// CRC-32 (IEEE), as gzip's trailer needs: table-driven, eight bytes per step
/// ("slicing-by-8"), the tables computed at compile time.
// Indices are bytes (or masked to a byte) into 256-entry tables: always in bounds.
#[allow(clippy::indexing_slicing)]
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let Ok([b0, b1, b2, b3, b4, b5, b6, b7]) = <[u8; 8]>::try_from(c) else {
            continue;
        };
        let lo = crc ^ u32::from_le_bytes([b0, b1, b2, b3]);
        let t = &CRC_TABLES;
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][b4 as usize]
            ^ t[2][b5 as usize]
            ^ t[1][b6 as usize]
            ^ t[0][b7 as usize];
    }
    for &b in chunks.remainder() {
        crc = CRC_TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `CRC_TABLES[0]` is the classic byte table; `CRC_TABLES[k][i]` is the CRC of byte `i`
/// followed by `k` zero bytes.
static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

// Evaluated at compile time only: an out-of-range index would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn crc32_agrees_with_the_bitwise_definition_at_every_length_and_alignment() {
        fn bitwise(data: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &b in data {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let data: Vec<u8> = (0u32..300)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(crc32(&data[start..end]), bitwise(&data[start..end]), "{start}..{end}");
            }
        }
    }

    #[test]
    fn output_is_a_gzip_member_that_inflates_back() {
        let data = b"{\"name\":\"Microsoft.ApplicationInsights.Request\"}\n".repeat(200);
        let gz = compress(&data);
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        assert!(
            gz.len() * 5 < data.len(),
            "repetitive NDJSON shrinks: {} -> {}",
            data.len(),
            gz.len()
        );
        let inflated = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        assert_eq!(inflated, data);
        assert_eq!(
            u32::from_le_bytes(gz[gz.len() - 8..gz.len() - 4].try_into().unwrap()),
            crc32(&data)
        );
        assert_eq!(
            u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap()) as usize,
            data.len()
        );
    }
}
