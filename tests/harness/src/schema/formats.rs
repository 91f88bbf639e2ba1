//! String formats of the schema: the envelope `time` (ISO-8601 UTC) and TimeSpan.

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,7}]Z` into seconds since the Unix epoch.
/// Anything else (lower-case `t`/`z`, an offset, 8+ fraction digits) is `None`.
pub fn parse_time(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let body = s.strip_suffix('Z')?;
    if b.len() < 20 || !matches_pattern(b.get(..19)?, b"dddd-dd-ddTdd:dd:dd") {
        return None;
    }
    let fraction = fraction_secs(body.get(19..)?)?;
    let num = |from: usize, to: usize| -> Option<i64> { body.get(from..to)?.parse().ok() };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) as f64 + fraction)
}

/// `d` in the pattern means an ASCII digit; other bytes must match exactly.
fn matches_pattern(s: &[u8], pattern: &[u8]) -> bool {
    s.len() == pattern.len()
        && s.iter()
            .zip(pattern)
            .all(|(c, p)| if *p == b'd' { c.is_ascii_digit() } else { c == p })
}

/// `""` or `.` followed by 1 to 7 digits, as a fraction of a second.
fn fraction_secs(s: &str) -> Option<f64> {
    if s.is_empty() {
        return Some(0.0);
    }
    let digits = s.strip_prefix('.')?;
    if !all_digits(digits, 1, 7) {
        return None;
    }
    format!("0.{digits}").parse().ok()
}

fn all_digits(s: &str, min_len: usize, max_len: usize) -> bool {
    (min_len..=max_len).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit())
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats a time as the SDKs do: `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds).
pub fn format_time(t: std::time::SystemTime) -> String {
    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `[d.]hh:mm:ss[.fffffff]`: optional days (total under 1000 days), two-digit
/// hours < 24, minutes < 60, seconds < 60, and 1 to 7 fraction digits.
pub fn is_timespan(s: &str) -> bool {
    let mut parts = s.split(':');
    let (Some(first), Some(mm), Some(last), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let hh = match first.split_once('.') {
        Some((days, hh)) if all_digits(days, 1, 3) => hh,
        Some(_) => return false,
        None => first,
    };
    let (ss, fraction) = last.split_once('.').unwrap_or((last, "0"));
    two_digits_below(hh, 24) && two_digits_below(mm, 60) && two_digits_below(ss, 60) && all_digits(fraction, 1, 7)
}

fn two_digits_below(s: &str, limit: u32) -> bool {
    all_digits(s, 2, 2) && s.parse::<u32>().is_ok_and(|n| n < limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_to_unix_seconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_time("2024-01-01T00:00:00Z"), Some(1_704_067_200.0));
        assert_eq!(parse_time("2024-02-29T12:00:00.5Z"), Some(1_709_208_000.5));
        assert_eq!(parse_time("2009-06-15T13:45:30.0000000Z"), Some(1_245_073_530.0));
    }

    #[test]
    fn format_time_round_trips_through_parse_time() {
        use std::time::{Duration, UNIX_EPOCH};
        for ms in [0_u64, 951_782_400_123, 1_709_208_000_500, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let text = format_time(t);
            assert_eq!(parse_time(&text), Some(ms as f64 / 1000.0), "{text}");
        }
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::from_millis(1_709_208_000_500)),
            "2024-02-29T12:00:00.500Z"
        );
    }

    #[test]
    fn malformed_times_are_rejected() {
        for bad in [
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01t00:00:00z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.12345678Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:60Z",
            "24-01-01T00:00:00Z",
            "Z",
            "",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn timespans_in_every_sdk_form_are_accepted() {
        for good in [
            "00:00:00",
            "00:00:00.1234567",
            "1.02:03:04.5000000",
            "0.00:00:01.234",
            "999.23:59:59.9999999",
            "23:59:59.1",
        ] {
            assert!(is_timespan(good), "{good}");
        }
    }

    #[test]
    fn malformed_timespans_are_rejected() {
        for bad in [
            "1:2",
            "",
            "0:00:00",
            "24:00:00",
            "00:60:00",
            "00:00:60",
            "00:00:00.",
            "00:00:00.12345678",
            "1000.00:00:00",
            "-00:00:01",
            "1.2.00:00:00",
            "00:00:00:00",
            "a0:00:00",
            "+1.00:00:00",
            "1d.00:00:00",
        ] {
            assert!(!is_timespan(bad), "{bad}");
        }
    }
}
