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

fn days_in_year(y: i64) -> i64 {
    if is_leap(y) {
        366
    } else {
        365
    }
}

// The two conversions below count whole years and months one at a time. That is slow
// next to a closed form, but plainly right, and deliberately not the filter's own
// method: src/timefmt.rs uses Howard Hinnant's days-to-civil arithmetic, and a checker
// sharing the algorithm under test would share its mistakes too.

/// Days since 1970-01-01 of a proleptic Gregorian date (month and day already valid).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let whole_years = if y >= 1970 {
        (1970..y).map(days_in_year).sum::<i64>()
    } else {
        -(y..1970).map(days_in_year).sum::<i64>()
    };
    let whole_months = (1..m).map(|month| days_in_month(y, month)).sum::<i64>();
    whole_years + whole_months + d - 1
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

/// The proleptic Gregorian (year, month, day) `days` after 1970-01-01; the inverse of
/// [`days_from_civil`], by the same counting.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let (mut y, mut left) = (1970, days);
    while left < 0 {
        y -= 1;
        left += days_in_year(y);
    }
    while left >= days_in_year(y) {
        left -= days_in_year(y);
        y += 1;
    }
    let mut m = 1;
    while left >= days_in_month(y, m) {
        left -= days_in_month(y, m);
        m += 1;
    }
    (y, m, left + 1)
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

    /// Dates and their day numbers since 1970-01-01, from an independent source (Python's
    /// `datetime.date.toordinal() - date(1970, 1, 1).toordinal()`; year 0, which Python
    /// lacks, is one leap year before 0001-01-01): the epoch, both sides of the leap days
    /// of 1600, 1900, 2000, 2100 and 2400, and the ends of the four-digit range.
    const KNOWN_DATES: [(i64, i64, i64, i64); 17] = [
        (0, 1, 1, -719_528),
        (1, 1, 1, -719_162),
        (1600, 2, 29, -135_081),
        (1900, 2, 28, -25_509),
        (1900, 3, 1, -25_508),
        (1969, 12, 31, -1),
        (1970, 1, 1, 0),
        (1970, 3, 1, 59),
        (1999, 12, 31, 10_956),
        (2000, 2, 29, 11_016),
        (2000, 3, 1, 11_017),
        (2024, 2, 29, 19_782),
        (2038, 1, 19, 24_855),
        (2100, 2, 28, 47_540),
        (2100, 3, 1, 47_541),
        (2400, 2, 29, 157_113),
        (9999, 12, 31, 2_932_896),
    ];

    #[test]
    fn known_dates_convert_both_ways() {
        for (y, m, d, days) in KNOWN_DATES {
            let date = format!("{y:04}-{m:02}-{d:02}");
            assert_eq!(days_from_civil(y, m, d), days, "{date}");
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            assert_eq!(
                parse_time(&format!("{date}T00:00:00Z")),
                Some((days * 86_400) as f64),
                "{date}"
            );
        }
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Some(253_402_300_799.0));
        let last_ms_of_2100_02_28 = std::time::UNIX_EPOCH + std::time::Duration::from_millis(47_541 * 86_400_000 - 1);
        assert_eq!(format_time(last_ms_of_2100_02_28), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn only_real_leap_days_exist() {
        for real in ["2000-02-29", "2024-02-29", "2400-02-29", "1600-02-29", "0000-02-29"] {
            assert!(parse_time(&format!("{real}T12:00:00Z")).is_some(), "{real}");
        }
        for missing in [
            "1900-02-29",
            "2100-02-29",
            "2200-02-29",
            "2023-02-29",
            "2024-02-30",
            "2024-04-31",
        ] {
            assert_eq!(parse_time(&format!("{missing}T12:00:00Z")), None, "{missing}");
        }
    }

    #[test]
    fn consecutive_day_numbers_are_consecutive_calendar_days() {
        // Every day from 1899-12-31 to 2201-01-01: the next number is the next date.
        let (first, last) = (days_from_civil(1899, 12, 31), days_from_civil(2201, 1, 1));
        let mut prev = civil_from_days(first);
        for n in first + 1..=last {
            let (y, m, d) = civil_from_days(n);
            let expected = if prev.2 < days_in_month(prev.0, prev.1) {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {n}");
            assert_eq!(days_from_civil(y, m, d), n, "{y}-{m}-{d}");
            prev = (y, m, d);
        }
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
