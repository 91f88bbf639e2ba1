//! The ingestion service's answer to one batch, classified.
//!
//! `POST /v2.1/track` answers a `TrackResponse`:
//! `{"itemsReceived":n,"itemsAccepted":m,"errors":[{"index":i,"statusCode":c,"message":"…"}]}`.
//! 200 (and any other 2xx but 206, which the service may answer without a body): all
//! accepted. 206: some accepted; per-item code 206 means "sampled by the service" and
//! counts as accepted. 400/402/404…: rejected for good. 408/429/439/5xx: transient.
//! A missing, non-JSON or inconsistent body never causes more than a wrong count: the
//! status code decides, and counts are clamped to the batch size.

use serde_json::Value;

/// Per-item status codes worth sending again (the SDKs' partial-success set).
pub const RETRYABLE_ITEM_CODES: &[u16] = &[408, 429, 439, 500, 502, 503, 504];

/// One rejected item of a 206 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// Position of the item in the batch (NDJSON line number, from 0).
    pub index: usize,
    pub status_code: u16,
    pub message: String,
}

impl ItemError {
    pub fn is_retryable(&self) -> bool {
        RETRYABLE_ITEM_CODES.contains(&self.status_code)
    }
}

/// What became of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200 or 206: `accepted` items stored by the service; `errors` lists the others.
    Accepted { accepted: u32, errors: Vec<ItemError> },
    /// The whole batch was refused and sending it again would not help (400, 402, 404, …).
    Rejected { status: u16 },
    /// The whole batch failed for a reason that may pass (408, 429, 5xx, …).
    Transient { status: u16, retry_after: Option<String> },
    /// The service refused the credentials (401, 403).
    Unauthorized { status: u16 },
    /// No HTTP answer: reset, timeout, no healthy upstream.
    NoResponse,
    /// Send it (and what follows) to `location` instead (301, 302, 307, 308).
    Redirect { status: u16, location: String },
}

/// How Envoy's router words its own answers when the upstream gave none (reset, refused
/// connection, timeout, no healthy host, circuit breaker): the start of the local reply's
/// body. A 503 or 504 with such a body is not the service's, and not a request to slow
/// down.
pub const ENVOY_NO_ANSWER_BODIES: &[&[u8]] = &[
    b"upstream connect error or disconnect/reset before headers",
    b"upstream request timeout",
    b"upstream per-try timeout",
    b"no healthy upstream",
    b"upstream max stream duration reached",
];

/// Classifies an answer: `status` is `None` when the callout got no HTTP response.
pub fn classify(status: Option<u16>, retry_after: Option<&str>, body: &[u8], items: u32) -> Verdict {
    classify_with_location(status, retry_after, None, body, items)
}

/// [`classify`], with the answer's `Location` (a redirect without one is a refusal).
pub fn classify_with_location(
    status: Option<u16>,
    retry_after: Option<&str>,
    location: Option<&str>,
    body: &[u8],
    items: u32,
) -> Verdict {
    let Some(status) = status else {
        return Verdict::NoResponse;
    };
    if let Some(location) = location.filter(|_| super::redirect::REDIRECT_STATUSES.contains(&status)) {
        return Verdict::Redirect {
            status,
            location: location.to_string(),
        };
    }
    if matches!(status, 503 | 504) && ENVOY_NO_ANSWER_BODIES.iter().any(|b| body.starts_with(b)) {
        return Verdict::NoResponse;
    }
    match status {
        206 => partial(body, items),
        200..=299 => Verdict::Accepted {
            accepted: items,
            errors: Vec::new(),
        },
        408 | 429 | 439 | 500..=599 => Verdict::Transient {
            status,
            retry_after: retry_after.map(str::to_string),
        },
        401 | 403 => Verdict::Unauthorized { status },
        _ => Verdict::Rejected { status },
    }
}

fn partial(body: &[u8], items: u32) -> Verdict {
    let mut errors = parse_errors(body, items as usize);
    // Per-item 206: sampled out by ingestion sampling, i.e. accepted.
    errors.retain(|e| e.status_code != 206);
    let accepted = items.saturating_sub(errors.len() as u32);
    Verdict::Accepted { accepted, errors }
}

/// Reads `errors` from a TrackResponse, keeping only well-formed entries with an index
/// inside the batch, each index once.
fn parse_errors(body: &[u8], items: usize) -> Vec<ItemError> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(list) = v.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out: Vec<ItemError> = Vec::new();
    for e in list {
        let index = e.get("index").and_then(Value::as_u64).map(|i| i as usize);
        let code = e
            .get("statusCode")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        let (Some(index), Some(status_code)) = (index, code) else {
            continue;
        };
        if index >= items || out.iter().any(|x| x.index == index) {
            continue;
        }
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        out.push(ItemError {
            index,
            status_code,
            message,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_need_a_location() {
        let to = |status| classify_with_location(Some(status), None, Some("https://x/v2.1/track"), b"", 1);
        for status in [301, 302, 307, 308] {
            assert_eq!(
                to(status),
                Verdict::Redirect {
                    status,
                    location: "https://x/v2.1/track".into()
                }
            );
        }
        assert_eq!(
            classify_with_location(Some(308), None, None, b"", 1),
            Verdict::Rejected { status: 308 }
        );
        assert_eq!(
            to(200),
            Verdict::Accepted {
                accepted: 1,
                errors: Vec::new()
            },
            "a Location alone is nothing"
        );
    }

    #[test]
    fn envoys_own_503_and_504_mean_no_answer_not_throttling() {
        let reset = b"upstream connect error or disconnect/reset before headers. reset reason: connection termination";
        assert_eq!(classify(Some(503), None, reset, 1), Verdict::NoResponse);
        assert_eq!(
            classify(Some(504), None, b"upstream request timeout", 1),
            Verdict::NoResponse
        );
        assert_eq!(
            classify(Some(503), None, b"no healthy upstream", 1),
            Verdict::NoResponse
        );
        let service = Verdict::Transient {
            status: 503,
            retry_after: None,
        };
        assert_eq!(
            classify(Some(503), None, b"{\"itemsReceived\":1}", 1),
            service,
            "the service's own 503"
        );
    }

    #[test]
    fn every_2xx_but_206_means_all_stored() {
        for status in [200, 201, 202, 204, 299] {
            let all = Verdict::Accepted {
                accepted: 3,
                errors: Vec::new(),
            };
            assert_eq!(classify(Some(status), None, b"", 3), all, "{status}");
        }
    }

    #[test]
    fn ok_means_every_item_accepted_whatever_the_body() {
        assert_eq!(
            classify(Some(200), None, b"garbage", 5),
            Verdict::Accepted {
                accepted: 5,
                errors: vec![]
            }
        );
    }

    #[test]
    fn partial_success_lists_failed_items_and_counts_sampled_ones_as_accepted() {
        let body = br#"{"itemsReceived":4,"itemsAccepted":1,"errors":[
            {"index":0,"statusCode":400,"message":"103: Field 'time' is older than allowed"},
            {"index":2,"statusCode":500,"message":"internal"},
            {"index":3,"statusCode":206,"message":"sampled"}]}"#;
        let Verdict::Accepted { accepted, errors } = classify(Some(206), None, body, 4) else {
            panic!()
        };
        assert_eq!(accepted, 2);
        assert_eq!(errors.len(), 2);
        assert!(!errors[0].is_retryable());
        assert!(errors[1].is_retryable());
    }

    #[test]
    fn lying_or_broken_partial_answers_are_clamped() {
        let body = br#"{"errors":[{"index":99,"statusCode":400},{"index":1,"statusCode":400},
            {"index":1,"statusCode":400},{"index":"x","statusCode":400},{"statusCode":70000,"index":0}]}"#;
        let Verdict::Accepted { accepted, errors } = classify(Some(206), None, body, 2) else {
            panic!()
        };
        assert_eq!((accepted, errors.len()), (1, 1));
        let Verdict::Accepted { accepted, .. } = classify(Some(206), None, b"{trunc", 3) else {
            panic!()
        };
        assert_eq!(accepted, 3);
    }

    #[test]
    fn statuses_map_to_rejected_transient_or_no_response() {
        assert_eq!(classify(Some(400), None, b"", 1), Verdict::Rejected { status: 400 });
        assert_eq!(classify(Some(402), None, b"", 1), Verdict::Rejected { status: 402 });
        assert_eq!(
            classify(Some(429), Some("7"), b"", 1),
            Verdict::Transient {
                status: 429,
                retry_after: Some("7".into())
            }
        );
        assert_eq!(
            classify(Some(503), None, b"", 1),
            Verdict::Transient {
                status: 503,
                retry_after: None
            }
        );
        assert_eq!(classify(None, None, b"", 1), Verdict::NoResponse);
        assert_eq!(classify(Some(401), None, b"", 1), Verdict::Unauthorized { status: 401 });
    }
}
