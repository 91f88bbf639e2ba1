//! What one run of an availability test found: passed or failed, and in words why, for
//! the result's `message`. Pure: the scheduler ([`super::availability`]) reads the answer
//! from Envoy and hands it here.
//!
//! Envoy reports a callout that got no answer from the target in one of two ways: no
//! response headers at all, or a response of its own — 504 `upstream request timeout`
//! when the timeout passed, 503 `upstream connect error or disconnect/reset before
//! headers…` when the connection failed or was reset, 503 `no healthy upstream` — which
//! must not read as the target's answer ([`crate::delivery::track::ENVOY_NO_ANSWER_BODIES`]
//! lists how Envoy words them).

use crate::delivery::track::ENVOY_NO_ANSWER_BODIES;

/// Longest piece of Envoy's own wording quoted in a message.
const MAX_QUOTED: usize = 200;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending<'a> {
    /// Envoy refused to start the request (e.g. no such cluster); why, in its words.
    NotStarted(&'a str),
    /// Envoy reported back: the status (`None`: no response headers) and, for a 503 or
    /// 504, the first bytes of the body (to tell Envoy's own answers apart).
    Answered { status: Option<u16>, body: &'a [u8] },
    /// The run was given up before an answer came (the gateway is draining); why.
    GivenUp(&'a str),
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub success: bool,
    pub message: String,
    /// The run ended at its timeout: its duration is the timeout (Envoy's timers run on
    /// the event loop's cached clock and may fire a few milliseconds before the filter's
    /// clock says the timeout passed).
    pub timed_out: bool,
}

impl Verdict {
    fn failed(message: String) -> Verdict {
        Verdict {
            success: false,
            message,
            timed_out: false,
        }
    }
}

/// Judges a run that expected `expected`, waited `elapsed_ms` and had `timeout_ms`.
pub fn judge(ending: Ending<'_>, expected: u16, elapsed_ms: u64, timeout_ms: u64) -> Verdict {
    let no_answer_within = || Verdict {
        timed_out: true,
        ..Verdict::failed(format!("no answer within {timeout_ms} ms"))
    };
    match ending {
        Ending::NotStarted(why) => Verdict::failed(format!("could not start the request: {why}")),
        Ending::GivenUp(why) => Verdict::failed(why.to_string()),
        // Envoy gives up at the timeout; anything earlier is the connection's doing.
        Ending::Answered { status: None, .. } if elapsed_ms >= timeout_ms => no_answer_within(),
        Ending::Answered { status: None, .. } => Verdict::failed("no answer (connection failed or reset)".to_string()),
        Ending::Answered {
            status: Some(status),
            body,
        } => match envoys_own(status, body) {
            Some(words) if words.starts_with(b"upstream request timeout") => no_answer_within(),
            Some(words) => Verdict::failed(format!(
                "no answer (connection failed or reset): Envoy answered {status} {}",
                quoted(words)
            )),
            None if status == expected => Verdict {
                success: true,
                message: format!("passed: status {status}"),
                timed_out: false,
            },
            None => Verdict::failed(format!("expected status {expected}, got {status}")),
        },
    }
}

/// Envoy's own wording, when a 503 or 504 is Envoy's answer rather than the target's.
fn envoys_own(status: u16, body: &[u8]) -> Option<&[u8]> {
    let envoys = matches!(status, 503 | 504) && ENVOY_NO_ANSWER_BODIES.iter().any(|w| body.starts_with(w));
    envoys.then_some(body)
}

/// Envoy's words, on one line and cut short.
fn quoted(words: &[u8]) -> String {
    let text = String::from_utf8_lossy(words);
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let line = line.trim();
    match line.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("\"{}…\"", line.get(..cut).unwrap_or(line)),
        None => format!("\"{line}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: Option<u16>, body: &[u8], elapsed_ms: u64) -> Verdict {
        judge(Ending::Answered { status, body }, 200, elapsed_ms, 5000)
    }

    #[test]
    fn the_expected_status_passes_and_any_other_fails_naming_both() {
        assert_eq!(
            answered(Some(200), b"", 12),
            Verdict {
                success: true,
                message: "passed: status 200".into(),
                timed_out: false
            }
        );
        let v = answered(Some(503), br#"{"status":503}"#, 12);
        assert!(!v.success);
        assert_eq!(v.message, "expected status 200, got 503");
        let head = judge(
            Ending::Answered {
                status: Some(204),
                body: b"",
            },
            204,
            3,
            100,
        );
        assert!(head.success);
        assert_eq!(answered(Some(301), b"", 1).message, "expected status 200, got 301");
    }

    #[test]
    fn no_answer_is_a_timeout_once_the_timeout_passed_else_a_connection_failure() {
        assert_eq!(answered(None, b"", 5000).message, "no answer within 5000 ms");
        assert_eq!(answered(None, b"", 5003).message, "no answer within 5000 ms");
        assert!(answered(None, b"", 5003).timed_out);
        assert!(
            answered(Some(504), b"upstream request timeout", 4997).timed_out,
            "Envoy's timer, early"
        );
        assert!(!answered(None, b"", 4000).timed_out);
        assert_eq!(answered(None, b"", 2).message, "no answer (connection failed or reset)");
        assert!(!answered(None, b"", 2).success);
    }

    #[test]
    fn envoys_own_answers_are_not_the_targets() {
        assert_eq!(
            answered(Some(504), b"upstream request timeout", 5001).message,
            "no answer within 5000 ms"
        );
        let refused = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure, \
transport failure reason: delayed connect error: Connection refused";
        assert_eq!(
            answered(Some(503), refused, 3).message,
            "no answer (connection failed or reset): Envoy answered 503 \"upstream connect error or disconnect/reset \
before headers. reset reason: connection failure, transport failure reason: delayed connect error: Connection refused\""
        );
        let v = judge(
            Ending::Answered {
                status: Some(503),
                body: b"no healthy upstream",
            },
            503,
            1,
            100,
        );
        assert!(!v.success, "even when 503 is expected: the target did not answer");
        assert_eq!(
            v.message,
            "no answer (connection failed or reset): Envoy answered 503 \"no healthy upstream\""
        );
        let long = format!(
            "upstream connect error or disconnect/reset before headers.\n{}",
            "x".repeat(500)
        );
        let m = answered(Some(503), long.as_bytes(), 1).message;
        assert!(m.ends_with("xxx…\"") && !m.contains('\n'), "{m}");
    }

    #[test]
    fn a_request_envoy_would_not_start_or_that_was_given_up_fails_with_the_reason() {
        let v = judge(Ending::NotStarted("Envoy has no cluster named nope"), 200, 0, 100);
        assert_eq!(
            v,
            Verdict {
                success: false,
                message: "could not start the request: Envoy has no cluster named nope".into(),
                timed_out: false
            }
        );
        assert_eq!(
            judge(Ending::GivenUp("gateway draining"), 200, 10, 100).message,
            "gateway draining"
        );
    }
}
