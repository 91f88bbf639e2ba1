//! What the operator reads in Envoy's log: one line per kind of problem and logger at most
//! every [`WARN_INTERVAL_NANOS`], saying how many similar lines were suppressed, so a
//! failing endpoint or a full buffer cannot flood the log. The pipeline's decisions return
//! [`Notice`]s rather than logging, so tests can read them; [`Notice::emit`] writes them
//! with the plugin's context id.

use super::sink::Sink;
use crate::delivery::track::Verdict;
use crate::delivery::{Added, Completion};

/// How often the same warning may be logged per logger.
pub const WARN_INTERVAL_NANOS: u64 = 10_000_000_000;

/// A log line the caller should emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Warn(String),
    Info(String),
    Debug(String),
}

impl Notice {
    /// Writes the line to the log, prefixed with the plugin's context id.
    pub fn emit(&self, context_id: u32) {
        match self {
            Notice::Warn(m) => log::warn!("appinsights[{context_id}]: {m}"),
            Notice::Info(m) => log::info!("appinsights[{context_id}]: {m}"),
            Notice::Debug(m) => log::debug!("appinsights[{context_id}]: {m}"),
        }
    }
}

/// Lets a repeated log line through at most once per interval, counting the rest.
#[derive(Debug, Clone, Default)]
pub struct LogLimiter {
    last: Option<u64>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(n)` when a line may be logged now, `n` being how many were suppressed since.
    pub fn allow(&mut self, now: u64, interval_nanos: u64) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_sub(last) < interval_nanos => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl Sink {
    /// A delivery problem of this logger, if a line about one may be logged now.
    pub fn warn(&mut self, now: u64, problem: &str) -> Option<Notice> {
        let suppressed = self.failure_warning.allow(now, WARN_INTERVAL_NANOS)?;
        Some(Notice::Warn(format!(
            "logger {}: {problem}{}",
            self.id,
            suppressed_note(suppressed)
        )))
    }

    /// An item was not queued (`added`), if a line about drops may be logged now.
    pub fn dropped(&mut self, added: Added, now: u64) -> Option<Notice> {
        let suppressed = self.drop_warning.allow(now, WARN_INTERVAL_NANOS)?;
        let why = match added {
            Added::DroppedTooLarge => "an item exceeded the service's 64 KB limit".to_string(),
            _ => format!(
                "the telemetry buffer is full ({} bytes waiting or in flight)",
                self.outbox.buffered_bytes()
            ),
        };
        let s = self.outbox.stats;
        Some(Notice::Warn(format!(
            "logger {}: dropping telemetry: {why}; dropped so far: {} (buffer full), {} (too large){}",
            self.id,
            s.dropped_buffer_full,
            s.dropped_too_large,
            suppressed_note(suppressed)
        )))
    }
}

/// A line for an answer worth one (`None` for a full success).
pub fn describe_verdict(verdict: &Verdict, done: &Completion, cluster: &str, now: u64) -> Option<String> {
    let items = done.items;
    let wait = |until: u64| (until.saturating_sub(now) as f64 / 1e9 * 10.0).round() / 10.0;
    Some(match verdict {
        Verdict::Accepted { errors, .. } if errors.is_empty() => return None,
        // Where the batch went is said when the logger's target changes.
        Verdict::Redirect { .. } if done.dropped == 0 => return None,
        Verdict::Redirect { status, .. } => format!(
            "{items} items dropped: ingestion answered {status} more than {} times in a row",
            crate::delivery::redirect::MAX_REDIRECTS_IN_A_ROW
        ),
        Verdict::Accepted { errors, .. } => {
            let first = errors.first().map(|e| format!(" (first: item {} status {}: {})", e.index, e.status_code, e.message));
            let (accepted, retried, dropped) = (done.accepted, done.retried, done.dropped);
            let first = first.unwrap_or_default();
            format!("{accepted} of {items} items accepted, {retried} to retry, {dropped} refused{first}")
        }
        Verdict::Rejected { status } => {
            format!("{items} items dropped: ingestion answered {status} ({})", why_rejected(*status))
        }
        Verdict::Unauthorized { status } if done.needs_credentials => {
            format!("ingestion answered {status}: refreshing the Entra ID token; {items} items wait")
        }
        Verdict::Unauthorized { status } => format!(
            "{items} items dropped: ingestion answered {status}; the resource requires Entra ID authentication (configure identity)"
        ),
        Verdict::Transient { status, .. } => {
            format!("ingestion answered {status}: {items} items retried in {} s", wait(done.paused_until))
        }
        Verdict::NoResponse => format!(
            "no answer from cluster {cluster} (timeout, reset or no healthy upstream): {items} items retried in {} s",
            wait(done.paused_until)
        ),
    })
}

/// What a refusal means, in the words of the service's documentation.
fn why_rejected(status: u16) -> &'static str {
    match status {
        400 => "invalid data or instrumentation key",
        402 => "the resource's daily quota is exhausted",
        404 => "wrong endpoint: use the connection string's regional IngestionEndpoint",
        _ => "refused",
    }
}

fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" [{n} similar messages suppressed]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_lets_one_line_through_per_interval() {
        let mut l = LogLimiter::default();
        assert_eq!(l.allow(0, 10), Some(0));
        assert_eq!(l.allow(5, 10), None);
        assert_eq!(l.allow(9, 10), None);
        assert_eq!(l.allow(10, 10), Some(2));
    }
}
