//! Batching and delivery policy for one logger on one worker: the [`Outbox`].
//!
//! Items are serialized straight into the open batch (NDJSON). A batch is sealed when it
//! reaches its item or byte limit, and becomes due when sealed or when its first item is
//! older than the flush interval. The root context's tick asks for due batches
//! ([`Outbox::next_due`]), posts them, and reports back ([`Outbox::sent`],
//! [`Outbox::send_failed`], [`Outbox::completed`]).
//!
//! Memory is bounded: every byte waiting or in flight counts against `max_buffer_bytes`;
//! an item that does not fit is dropped and counted, never queued. The outbox does no I/O
//! and reads no clock: the caller passes `now`, so the policy is tested on the host.

pub mod track;

use crate::config::Delivery;
use crate::telemetry::limits::ITEM_BYTES;
use std::collections::VecDeque;
use track::Verdict;

/// Counters of what happened to items, per outbox (the source of the Envoy stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items serialized and queued.
    pub items_queued: u64,
    /// Items dropped because the memory budget was full.
    pub dropped_buffer_full: u64,
    /// Items dropped because they exceeded the service's 64 KB item limit even when
    /// written lean.
    pub dropped_too_large: u64,
    /// Items that came out over 64 KB and were sent lean (without captured content).
    pub items_trimmed: u64,
    pub batches_sent: u64,
    pub items_sent: u64,
    pub bytes_sent: u64,
    /// Items the service stored.
    pub items_accepted: u64,
    /// Items the service refused (bad data, quota): not sent again.
    pub items_rejected: u64,
    /// Items lost to a failed delivery (no answer, 5xx, throttling).
    pub items_failed: u64,
    /// Callouts Envoy refused to start or that got no HTTP answer.
    pub callout_failures: u64,
}

/// A batch of serialized items.
#[derive(Debug, Default)]
pub struct Batch {
    pub body: Vec<u8>,
    pub items: u32,
    /// When the first item was added (caller's clock, nanoseconds).
    opened_at: u64,
}

/// Outcome of [`Outbox::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Queued,
    DroppedBufferFull,
    DroppedTooLarge,
}

/// Batches for one logger on one worker.
#[derive(Debug)]
pub struct Outbox {
    limits: Delivery,
    open: Batch,
    sealed: VecDeque<Batch>,
    in_flight: Vec<(u32, Batch)>,
    /// Serialized bytes in the open, sealed and in-flight batches.
    buffered_bytes: usize,
    /// A sent batch's buffer, kept to be filled again instead of allocating.
    spare: Option<Vec<u8>>,
    pub stats: Stats,
}

impl Outbox {
    pub fn new(limits: Delivery) -> Self {
        Outbox {
            limits,
            open: Batch::default(),
            sealed: VecDeque::new(),
            in_flight: Vec::new(),
            buffered_bytes: 0,
            spare: None,
            stats: Stats::default(),
        }
    }

    /// Serializes one item with `write` into the open batch, or drops it (and counts why).
    pub fn add(&mut self, now: u64, write: impl Fn(&mut Vec<u8>)) -> Added {
        self.add_or_trim(now, |out, _lean| write(out))
    }

    /// Serializes one item with `write(out, false)`; an item over the service's 64 KB limit
    /// is written again with `write(out, true)` (lean: without optional content), and
    /// dropped (and counted) only if still too large.
    pub fn add_or_trim(&mut self, now: u64, write: impl Fn(&mut Vec<u8>, bool)) -> Added {
        let start = self.open.body.len();
        write(&mut self.open.body, false);
        let mut len = self.open.body.len().saturating_sub(start);
        if len > ITEM_BYTES {
            self.open.body.truncate(start);
            write(&mut self.open.body, true);
            len = self.open.body.len().saturating_sub(start);
            if len > ITEM_BYTES {
                self.open.body.truncate(start);
                self.stats.dropped_too_large += 1;
                return Added::DroppedTooLarge;
            }
            self.stats.items_trimmed += 1;
        }
        if self.buffered_bytes + len > self.limits.max_buffer_bytes as usize {
            self.open.body.truncate(start);
            self.stats.dropped_buffer_full += 1;
            return Added::DroppedBufferFull;
        }
        self.buffered_bytes += len;
        self.stats.items_queued += 1;
        if self.open.items > 0 && self.open.body.len() > self.limits.max_batch_bytes as usize {
            // The new item does not fit: it starts the next batch.
            let tail = self.open.body.split_off(start);
            self.seal();
            self.open.body = tail;
        }
        if self.open.items == 0 {
            self.open.opened_at = now;
        }
        self.open.items += 1;
        if u64::from(self.open.items) >= self.limits.max_batch_items
            || self.open.body.len() >= self.limits.max_batch_bytes as usize
        {
            self.seal();
        }
        Added::Queued
    }

    fn seal(&mut self) {
        let fresh = Batch { body: self.spare.take().unwrap_or_default(), items: 0, opened_at: 0 };
        let full = std::mem::replace(&mut self.open, fresh);
        if full.items > 0 {
            self.sealed.push_back(full);
        }
    }

    /// The next batch to post now, if any: sealed ones first, then the open one once it is
    /// older than the flush interval (or at once with `flush_all`). `None` while the
    /// in-flight limit is reached.
    pub fn next_due(&mut self, now: u64, flush_all: bool) -> Option<Batch> {
        if self.in_flight.len() as u64 >= self.limits.max_in_flight {
            return None;
        }
        if self.sealed.is_empty() && self.open.items > 0 {
            let age = now.saturating_sub(self.open.opened_at);
            if flush_all || age >= self.limits.flush_interval_ms * 1_000_000 {
                self.seal();
            }
        }
        self.sealed.pop_front()
    }

    /// The batch was handed to Envoy; its answer will come with `token`.
    pub fn sent(&mut self, token: u32, batch: Batch) {
        self.stats.batches_sent += 1;
        self.stats.items_sent += u64::from(batch.items);
        self.stats.bytes_sent += batch.body.len() as u64;
        self.in_flight.push((token, batch));
    }

    /// Envoy refused to start the callout: the batch is lost (counted).
    pub fn send_failed(&mut self, batch: Batch) {
        self.stats.callout_failures += 1;
        self.stats.items_failed += u64::from(batch.items);
        self.release(batch);
    }

    /// Whether this outbox is waiting for the answer with `token`.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight.iter().any(|(t, _)| *t == token)
    }

    /// Items in the batch sent with `token`, if it is in flight here.
    pub fn items_of(&self, token: u32) -> Option<u32> {
        self.in_flight.iter().find(|(t, _)| *t == token).map(|(_, b)| b.items)
    }

    /// Records the service's verdict on the batch sent with `token`. Returns the verdict's
    /// batch size, or `None` for an unknown token.
    pub fn completed(&mut self, token: u32, verdict: &Verdict) -> Option<u32> {
        let at = self.in_flight.iter().position(|(t, _)| *t == token)?;
        let (_, batch) = self.in_flight.swap_remove(at);
        let items = u64::from(batch.items);
        match verdict {
            Verdict::Accepted { accepted, errors } => {
                let accepted = u64::from(*accepted).min(items);
                self.stats.items_accepted += accepted;
                let retryable = errors.iter().filter(|e| e.is_retryable()).count() as u64;
                let failed = retryable.min(items - accepted);
                self.stats.items_failed += failed;
                self.stats.items_rejected += items - accepted - failed;
            }
            Verdict::Rejected { .. } => self.stats.items_rejected += items,
            Verdict::Transient { .. } => self.stats.items_failed += items,
            Verdict::NoResponse => {
                self.stats.callout_failures += 1;
                self.stats.items_failed += items;
            }
        }
        let n = batch.items;
        self.release(batch);
        Some(n)
    }

    fn release(&mut self, batch: Batch) {
        self.buffered_bytes = self.buffered_bytes.saturating_sub(batch.body.len());
        let mut body = batch.body;
        body.clear();
        // Keep one buffer for reuse, unless it grew far beyond a normal batch.
        if body.capacity() <= 2 * self.limits.max_batch_bytes as usize {
            self.spare = Some(body);
        }
    }

    /// Serialized bytes waiting or in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Items waiting to be sent (not in flight).
    pub fn queued_items(&self) -> u64 {
        self.sealed.iter().map(|b| u64::from(b.items)).sum::<u64>() + u64::from(self.open.items)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// Lets a repeated log line through at most once per interval, counting the rest, so a
/// failing endpoint cannot flood Envoy's log.
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::track::{ItemError, Verdict};
    use super::*;

    const MS: u64 = 1_000_000;

    fn limits() -> Delivery {
        Delivery {
            flush_interval_ms: 1000,
            max_batch_items: 3,
            max_batch_bytes: 100,
            max_buffer_bytes: 1000,
            max_in_flight: 2,
            timeout_ms: 1000,
        }
    }

    fn item(n: usize) -> impl Fn(&mut Vec<u8>) {
        move |out: &mut Vec<u8>| {
            out.extend(std::iter::repeat_n(b'x', n - 1));
            out.push(b'\n');
        }
    }

    #[test]
    fn a_batch_waits_for_the_flush_interval_then_goes() {
        let mut o = Outbox::new(limits());
        assert_eq!(o.add(0, item(10)), Added::Queued);
        assert!(o.next_due(999 * MS, false).is_none());
        let b = o.next_due(1000 * MS, false).unwrap();
        assert_eq!((b.items, b.body.len()), (1, 10));
        assert!(o.next_due(5000 * MS, false).is_none(), "nothing left");
    }

    #[test]
    fn full_batches_are_due_at_once_and_items_never_straddle_batches() {
        let mut o = Outbox::new(limits());
        for _ in 0..3 {
            o.add(0, item(10));
        }
        let b = o.next_due(0, false).unwrap();
        assert_eq!(b.items, 3, "item limit seals the batch");
        o.add(0, item(60));
        o.add(0, item(60)); // would exceed 100 bytes: starts the next batch
        let b = o.next_due(0, false).unwrap();
        assert_eq!((b.items, b.body.len()), (1, 60));
        assert!(o.next_due(0, false).is_none(), "second one is still open and young");
        let b = o.next_due(0, true).unwrap();
        assert_eq!((b.items, b.body.len()), (1, 60));
    }

    #[test]
    fn the_memory_budget_drops_new_items_and_counts_them() {
        let mut o = Outbox::new(limits());
        let mut queued = 0;
        for _ in 0..30 {
            if o.add(0, item(50)) == Added::Queued {
                queued += 1;
            }
        }
        assert_eq!(queued, 20);
        assert_eq!(o.stats.dropped_buffer_full, 10);
        assert!(o.buffered_bytes() <= 1000);
        // In-flight batches still count until their answer arrives.
        let b = o.next_due(0, true).unwrap();
        o.sent(1, b);
        assert_eq!(o.add(0, item(50)), Added::DroppedBufferFull);
        o.completed(1, &Verdict::Accepted { accepted: 2, errors: vec![] });
        assert_eq!(o.add(0, item(50)), Added::Queued);
    }

    #[test]
    fn oversized_items_are_dropped_not_sent() {
        let mut o = Outbox::new(Delivery { max_buffer_bytes: 1 << 20, ..limits() });
        assert_eq!(o.add(0, item(ITEM_BYTES + 1)), Added::DroppedTooLarge);
        assert_eq!(o.stats.dropped_too_large, 1);
        assert!(o.next_due(0, true).is_none());
    }

    #[test]
    fn oversized_items_are_written_again_lean_before_being_dropped() {
        let mut o = Outbox::new(Delivery { max_buffer_bytes: 1 << 20, ..limits() });
        let write = |out: &mut Vec<u8>, lean: bool| out.extend(std::iter::repeat_n(b'x', if lean { 100 } else { ITEM_BYTES + 1 }));
        assert_eq!(o.add_or_trim(0, write), Added::Queued);
        assert_eq!((o.stats.items_trimmed, o.stats.dropped_too_large), (1, 0));
        assert_eq!(o.next_due(0, true).unwrap().body.len(), 100);
    }

    #[test]
    fn in_flight_limit_holds_back_further_batches() {
        let mut o = Outbox::new(limits());
        for _ in 0..9 {
            o.add(0, item(10));
        }
        let a = o.next_due(0, false).unwrap();
        o.sent(1, a);
        let b = o.next_due(0, false).unwrap();
        o.sent(2, b);
        assert!(o.next_due(0, false).is_none());
        assert!(o.owns(2) && !o.owns(3));
        o.completed(2, &Verdict::Rejected { status: 400 });
        assert!(o.next_due(0, false).is_some());
    }

    #[test]
    fn verdicts_update_the_counters() {
        let mut o = Outbox::new(Delivery { max_batch_items: 100, ..limits() });
        for _ in 0..4 {
            o.add(0, item(10));
        }
        let b = o.next_due(0, true).unwrap();
        o.sent(7, b);
        let errors = vec![
            ItemError { index: 0, status_code: 400, message: String::new() },
            ItemError { index: 1, status_code: 503, message: String::new() },
        ];
        assert_eq!(o.completed(7, &Verdict::Accepted { accepted: 2, errors }), Some(4));
        assert_eq!(o.completed(7, &Verdict::NoResponse), None, "each answer counts once");
        let s = o.stats;
        assert_eq!((s.items_sent, s.items_accepted, s.items_rejected, s.items_failed), (4, 2, 1, 1));
        assert_eq!(s.bytes_sent, 40);
        assert_eq!(o.buffered_bytes(), 0);
    }

    #[test]
    fn failed_sends_and_missing_answers_count_as_failures() {
        let mut o = Outbox::new(limits());
        o.add(0, item(10));
        let b = o.next_due(0, true).unwrap();
        o.send_failed(b);
        o.add(0, item(10));
        let b = o.next_due(0, true).unwrap();
        o.sent(3, b);
        o.completed(3, &Verdict::NoResponse);
        assert_eq!(o.stats.callout_failures, 2);
        assert_eq!(o.stats.items_failed, 2);
        assert_eq!(o.buffered_bytes(), 0);
    }

    #[test]
    fn log_limiter_lets_one_line_through_per_interval() {
        let mut l = LogLimiter::default();
        assert_eq!(l.allow(0, 10), Some(0));
        assert_eq!(l.allow(5, 10), None);
        assert_eq!(l.allow(9, 10), None);
        assert_eq!(l.allow(10, 10), Some(2));
    }
}
