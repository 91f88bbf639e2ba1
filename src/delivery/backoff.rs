//! When to try again: exponential backoff with jitter and a cap, and `Retry-After`.
//!
//! The n-th consecutive failure waits a random time between half and all of
//! `min(max, initial × 2^(n-1))` ("equal jitter": workers that failed together do not retry
//! together, and the wait never collapses to zero), and never more than a tenth of the
//! outage so far ([`outage_cap_nanos`]), so a service that flaps is used while it is up. A `Retry-After` from the service wins:
//! nothing is sent before it (capped at [`MAX_RETRY_AFTER_NANOS`], so a wild header cannot
//! park telemetry for days).

/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER_NANOS: u64 = 3600 * 1_000_000_000;

/// The wait after `failures` consecutive failures (`failures` ≥ 1), in nanoseconds;
/// `random` is any random number (the jitter).
pub fn delay_nanos(failures: u32, initial_ms: u64, max_ms: u64, random: u64) -> u64 {
    let exp = failures.saturating_sub(1).min(30);
    let ceiling_ms = initial_ms.saturating_mul(1u64 << exp).min(max_ms).max(1);
    let half = ceiling_ms / 2;
    let jitter = random % (ceiling_ms - half + 1);
    (half + jitter).saturating_mul(1_000_000)
}

/// The longest wait after an outage that has lasted `outage_nanos`: a tenth of it (never
/// below `initial_ms`). A service that comes back after N seconds then waits at most
/// about N/10 seconds for the next probe, so a flapping service is used while it is up,
/// while a long outage is still probed ever more rarely (up to `retry_max_ms`).
pub fn outage_cap_nanos(outage_nanos: u64, initial_ms: u64) -> u64 {
    (outage_nanos / OUTAGE_FRACTION).max(initial_ms.saturating_mul(1_000_000))
}

/// The share of an outage the next probe may wait at most (see [`outage_cap_nanos`]).
pub const OUTAGE_FRACTION: u64 = 10;

/// Parses `Retry-After` (delay in seconds, or an HTTP date) into a wait from `now`.
pub fn retry_after_nanos(value: &str, now_unix_nanos: u64) -> Option<u64> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        secs.saturating_mul(1_000_000_000)
    } else {
        let at = http_date_unix_secs(value)?.saturating_mul(1_000_000_000);
        at.saturating_sub(now_unix_nanos)
    };
    Some(wait.min(MAX_RETRY_AFTER_NANOS))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate, RFC 9110) → unix seconds.
fn http_date_unix_secs(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT"
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || s > 60
        || !(1970..=9999).contains(&year)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn absurd_years_in_retry_after_are_not_dates() {
        assert_eq!(
            retry_after_nanos("Mon, 1 Feb 18446744073709551615 08:49:37 GMT", 0),
            None
        );
        assert_eq!(retry_after_nanos("Mon, 1 Feb 10000 08:49:37 GMT", 0), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        for (failures, ceiling) in [(1, 1000u64), (2, 2000), (3, 4000), (7, 60_000), (40, 60_000)] {
            for random in [0u64, 1, 12345, u64::MAX] {
                let d = delay_nanos(failures, 1000, 60_000, random) / 1_000_000;
                assert!((ceiling / 2..=ceiling).contains(&d), "failure {failures}: {d} ms");
            }
        }
        let spread: std::collections::HashSet<u64> = (0..50).map(|r| delay_nanos(3, 1000, 60_000, r * 7919)).collect();
        assert!(spread.len() > 10, "jittered");
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = 784_111_777 * S; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after_nanos("7", now), Some(7 * S));
        assert_eq!(retry_after_nanos(" 0 ", now), Some(0));
        assert_eq!(retry_after_nanos("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(10 * S));
        assert_eq!(
            retry_after_nanos("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(0),
            "in the past: now"
        );
        assert_eq!(retry_after_nanos("999999999", now), Some(MAX_RETRY_AFTER_NANOS));
        assert_eq!(retry_after_nanos("soon", now), None);
        assert_eq!(retry_after_nanos("Sun, 06 Foo 1994 08:49:47 GMT", now), None);
        assert_eq!(retry_after_nanos("-5", now), None);
    }

    #[test]
    fn http_dates_match_known_instants() {
        assert_eq!(http_date_unix_secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_unix_secs("Fri, 22 Apr 2016 23:59:59 GMT"),
            Some(1_461_369_599)
        );
        assert_eq!(
            http_date_unix_secs("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        assert_eq!(http_date_unix_secs("Thu, 29 Feb 2024 12:00:00 UTC"), None);
    }
}
