//! What the ingestion service and the instance metadata endpoint may answer: statuses,
//! `Retry-After` values (seconds, HTTP dates, broken ones), TrackResponse bodies (real
//! ones, random errors, Envoy's own no-answer bodies, garbage) and token bodies.

use crate::mutate::{edits, mutate_bytes, mutate_value, number, string, TOKENS};
use crate::runner::Rng;
use envoy_appinsights::delivery::track;
use envoy_appinsights::host::fake::FAKE_NOW;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// `Sun, 06 Nov 1994 08:49:37 GMT` for a unix time (Howard Hinnant's civil_from_days).
fn http_date(unix_secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let (days, secs) = ((unix_secs / 86_400) as i64, unix_secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A `Retry-After`: seconds (valid, negative, fractional, huge), an HTTP date (past,
/// near, far) or one with its fields broken, or anything.
pub fn retry_after(rng: &mut Rng) -> Option<String> {
    let now = FAKE_NOW / 1_000_000_000;
    Some(match rng.below(8) {
        0 | 1 => return None,
        2 | 3 => rng
            .pick(&[
                "0",
                "1",
                "7",
                "60",
                "3600",
                "3601",
                "-1",
                "1.5",
                " 7 ",
                "+5",
                "99999999999999999999",
                "18446744073709551615",
                "0x10",
                "",
            ])
            .to_string(),
        4 => http_date(now.saturating_add(*rng.pick(&[0, 30, 3600, 7200, 315_360_000])) - rng.upto(1) as u64 * 7200),
        5 => format!(
            "{} {} {} {} {} {}",
            rng.pick(&["Sun,", "Mon,", "", "Xyz,"]),
            rng.pick(&["06", "1", "31", "32", "0", "99999"]),
            rng.pick(&["Nov", "Feb", "nov", "Foo"]),
            rng.pick(&[
                "2026",
                "1970",
                "1969",
                "9999",
                "99999999999",
                "584554049253",
                "18446744073709551615"
            ]),
            rng.pick(&["08:49:37", "23:59:60", "24:00:00", "1:2:3", "aa:bb:cc", "00:00"]),
            rng.pick(&["GMT", "UTC", ""]),
        ),
        6 => string(rng),
        _ => (rng.next() >> rng.below(64)).to_string(),
    })
}

/// What the ingestion service answered, as the SDKs' tests and the service's docs show it.
const TRACK_RESPONSES: &[&str] = &[
    r#"{"itemsReceived":3,"itemsAccepted":3,"appId":null,"errors":[]}"#,
    r#"{"itemsReceived":4,"itemsAccepted":1,"errors":[{"index":0,"statusCode":400,"message":"103: Field 'time' on type 'Envelope' is older than the allowed min date. Expected: now - 172800000ms, Actual: now - 176400000ms"},{"index":2,"statusCode":500,"message":"Internal Server Error"},{"index":3,"statusCode":206,"message":"Item was sampled out"}]}"#,
    r#"{"itemsReceived":2,"itemsAccepted":0,"errors":[{"index":0,"statusCode":429,"message":"Too many requests"},{"index":1,"statusCode":439,"message":"Daily quota exceeded"}]}"#,
    r#"{"itemsReceived":1,"itemsAccepted":0,"errors":[{"index":0,"statusCode":400,"message":"Invalid instrumentation key"}]}"#,
];

/// The fields of a TrackResponse, for the mutators to add and rename.
const TRACK_KEYS: &[&str] = &[
    "itemsReceived",
    "itemsAccepted",
    "errors",
    "index",
    "statusCode",
    "message",
    "appId",
];

/// A TrackResponse body: a real one, one with random errors (indexes in and out of the
/// batch, repeated, of the wrong type; codes retryable, sampled, refused, impossible),
/// Envoy's own no-answer bodies, or garbage.
pub fn track_body(rng: &mut Rng) -> Vec<u8> {
    static REAL: OnceLock<Vec<Value>> = OnceLock::new();
    let real = REAL.get_or_init(|| {
        TRACK_RESPONSES
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    });
    let mut body = match rng.below(10) {
        0 => Vec::new(),
        1 => {
            let mut b = rng.pick(track::ENVOY_NO_ANSWER_BODIES).to_vec();
            b.extend_from_slice(b". reset reason: connection termination");
            b
        }
        2 => string(rng).into_bytes(),
        3 => rng.pick(TRACK_RESPONSES).as_bytes().to_vec(),
        _ => {
            let errors: Vec<Value> = (0..rng.upto(6))
                .map(|_| {
                    let mut e = Map::new();
                    if rng.chance(95) {
                        let index = match rng.below(8) {
                            0 => rng
                                .pick(&[json!(-1), json!(u64::MAX), json!("1"), json!(1.5), Value::Null])
                                .clone(),
                            _ => json!(rng.upto(8)),
                        };
                        e.insert("index".into(), index);
                    }
                    if rng.chance(95) {
                        let codes = [206, 400, 408, 429, 439, 500, 502, 503, 504, 70_000, -1, 0];
                        let code = if rng.chance(95) {
                            json!(*rng.pick(&codes))
                        } else {
                            json!("500")
                        };
                        e.insert("statusCode".into(), code);
                    }
                    if rng.chance(80) {
                        e.insert("message".into(), Value::String(string(rng)));
                    }
                    Value::Object(e)
                })
                .collect();
            let mut v = json!({"itemsReceived": number(rng), "itemsAccepted": number(rng), "errors": errors});
            if rng.chance(20) {
                mutate_value(rng, &mut v, real, TRACK_KEYS);
            }
            serde_json::to_vec(&v).unwrap()
        }
    };
    if rng.chance(10) {
        mutate_bytes(rng, &mut body, TOKENS);
    }
    body
}

/// An HTTP status of an answer (`None`: no HTTP answer at all).
pub fn status(rng: &mut Rng) -> Option<u16> {
    let statuses = [
        200, 200, 200, 206, 206, 206, 201, 204, 299, 400, 401, 402, 403, 404, 408, 413, 429, 439, 500, 502, 503, 504,
        0, 100, 302, 999, 65_535,
    ];
    rng.chance(92).then(|| *rng.pick(&statuses))
}

/// An answer of the instance metadata endpoint: a token, or one broken.
pub fn token_body(rng: &mut Rng) -> Vec<u8> {
    let expires_on = FAKE_NOW / 1_000_000_000 + 86_399;
    let mut v = json!({"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJtb25pdG9yIn0.c2ln",
                       "client_id": "1111-2222", "expires_in": "86399", "expires_on": expires_on.to_string(),
                       "ext_expires_in": "86399", "not_before": "1795000000", "resource": "https://monitor.azure.com/",
                       "token_type": "Bearer"});
    for _ in 0..edits(rng) {
        let keys = ["access_token", "expires_in", "expires_on", "token_type"];
        mutate_value(
            rng,
            &mut v,
            &[json!({"expires_in": 60, "expires_on": 1, "access_token": "a b"})],
            &keys,
        );
    }
    let mut body = serde_json::to_vec(&v).unwrap();
    if rng.chance(10) {
        mutate_bytes(rng, &mut body, TOKENS);
    }
    body
}
