//! Time formats of the Application Insights schema.
//!
//! - envelope `time`: ISO 8601 UTC with a trailing `Z` (`2024-05-01T12:34:56.789012Z`);
//! - `duration`: .NET TimeSpan, `[d.]hh:mm:ss.fffffff` (must stay under 1000 days).
//!
//! Both are written straight into a buffer, without allocation or a date library.

/// Longest duration the schema accepts, in nanoseconds (999 days, 23:59:59.9999999).
pub const MAX_DURATION_NANOS: u64 = 1000 * 86_400 * 1_000_000_000 - 100;

/// Appends a unix timestamp in nanoseconds as ISO 8601 UTC with microseconds.
pub fn push_iso8601(out: &mut Vec<u8>, unix_nanos: u64) {
    let secs = unix_nanos / 1_000_000_000;
    let micros = (unix_nanos % 1_000_000_000) / 1_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    push_padded(out, y, 4);
    out.push(b'-');
    push_padded(out, m, 2);
    out.push(b'-');
    push_padded(out, d, 2);
    out.push(b'T');
    push_padded(out, rem / 3600, 2);
    out.push(b':');
    push_padded(out, rem / 60 % 60, 2);
    out.push(b':');
    push_padded(out, rem % 60, 2);
    out.push(b'.');
    push_padded(out, micros, 6);
    out.push(b'Z');
}

/// Appends a duration as a TimeSpan, `[d.]hh:mm:ss.fffffff`, clamped to the schema's maximum.
pub fn push_timespan(out: &mut Vec<u8>, nanos: u64) {
    let nanos = nanos.min(MAX_DURATION_NANOS);
    let ticks = nanos / 100; // 100 ns, the TimeSpan resolution
    let secs = ticks / 10_000_000;
    let days = secs / 86_400;
    if days > 0 {
        crate::json::push_u64(out, days);
        out.push(b'.');
    }
    push_padded(out, secs / 3600 % 24, 2);
    out.push(b':');
    push_padded(out, secs / 60 % 60, 2);
    out.push(b':');
    push_padded(out, secs % 60, 2);
    out.push(b'.');
    push_padded(out, ticks % 10_000_000, 7);
}

/// Appends `n` zero-padded to `width` digits (wider numbers are written in full).
fn push_padded(out: &mut Vec<u8>, n: u64, width: u32) {
    let mut div = 10u64.pow(width.saturating_sub(1));
    while div > 1 && n < div {
        out.push(b'0');
        div /= 10;
    }
    crate::json::push_u64(out, n);
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(n: u64) -> String {
        let mut out = Vec::new();
        push_iso8601(&mut out, n);
        String::from_utf8(out).unwrap()
    }

    fn span(n: u64) -> String {
        let mut out = Vec::new();
        push_timespan(&mut out, n);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T23:59:59.123456Z (a leap day)
        assert_eq!(iso(1_709_251_199_123_456_789), "2024-02-29T23:59:59.123456Z");
        assert_eq!(iso(1_735_689_600_000_000_000), "2025-01-01T00:00:00.000000Z");
        assert_eq!(iso(4_102_444_800_000_000_000), "2100-01-01T00:00:00.000000Z");
    }

    #[test]
    #[allow(clippy::manual_is_multiple_of)] // keep building with older toolchains
    fn iso8601_agrees_with_a_day_by_day_walk_over_decades() {
        // Walk 1970..2100 and compare with a naive calendar.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for day in 0..47_482u64 {
            assert_eq!(civil_from_days(day), (y, m, d), "day {day}");
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn timespan_uses_dotnet_constant_format() {
        assert_eq!(span(0), "00:00:00.0000000");
        assert_eq!(span(123_456_789), "00:00:00.1234567");
        assert_eq!(span(61_500_000_000), "00:01:01.5000000");
        assert_eq!(
            span((86_400 + 3 * 3600 + 4 * 60 + 5) * 1_000_000_000),
            "1.03:04:05.0000000"
        );
    }

    #[test]
    fn timespan_is_clamped_below_1000_days() {
        assert_eq!(span(u64::MAX), "999.23:59:59.9999999");
    }
}
