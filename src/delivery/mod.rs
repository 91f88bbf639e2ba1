//! Batching and delivery policy for one logger on one worker: the [`Outbox`].
//!
//! Items are serialized straight into the open batch (NDJSON). A batch is sealed when it
//! reaches its item or byte limit, and becomes due when sealed or when its first item is
//! older than the flush interval. The root context's tick asks for due batches
//! ([`Outbox::next_due`]), posts them, and reports back ([`Outbox::sent`],
//! [`Outbox::send_failed`], [`Outbox::completed`]).
//!
//! Failures never lose what can still be delivered:
//! - a transient failure (408/429/439/5xx, timeout, reset, no answer, a callout Envoy
//!   refused) puts the batch back at the head of the queue and pauses the logger: the
//!   service's `Retry-After`, else exponential backoff with jitter and a cap; while
//!   failing, one batch at a time probes for recovery;
//! - a 206 answer sends again exactly the items the service marked retryable, nothing
//!   it accepted;
//! - 400/402/404 and other refusals drop the batch (counted); 401/403 wait for fresh
//!   credentials when the logger uses managed identity.
//!
//! Memory is bounded: everything waiting, retrying or in flight counts against
//! `max_buffer_bytes`; past it the oldest waiting batches are dropped first (counted) to
//! make room. Items older than the service accepts are dropped rather than sent. The
//! outbox does no I/O and reads no clock or randomness: the caller passes `now` and a
//! random number, so the policy is tested on the host.

pub mod backoff;
mod batch;
pub mod gzip;
pub mod handoff;
pub mod redirect;
mod stats;
pub mod track;

use batch::fit;
pub use batch::Batch;
pub use stats::Stats;

use crate::config::Delivery;
use crate::host::CalloutId;
use crate::telemetry::limits::ITEM_BYTES;
use std::collections::VecDeque;
use track::Verdict;

/// Room claimed before an item is written (an item's first rendering may exceed the
/// service's 64 KB before it is trimmed).
const ITEM_HEADROOM: usize = 2 * ITEM_BYTES;

/// The service refuses items older than 48 hours; stop trying a little before.
pub const MAX_ITEM_AGE_NANOS: u64 = 47 * 3600 * 1_000_000_000;

/// Outcome of [`Outbox::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Queued,
    DroppedBufferFull,
    DroppedTooLarge,
}

/// What an answer changed, for the caller's log line and credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Completion {
    pub items: u32,
    pub accepted: u32,
    /// Items queued again.
    pub retried: u32,
    /// Items dropped for good.
    pub dropped: u32,
    /// The service refused the credentials (401/403): fetch a new token.
    pub needs_credentials: bool,
    /// When the logger sends again (0: now).
    pub paused_until: u64,
}

/// Batches for one logger on one worker.
#[derive(Debug)]
pub struct Outbox {
    limits: Delivery,
    open: Batch,
    /// Sealed batches and batches waiting for a retry, oldest first.
    queue: VecDeque<Batch>,
    in_flight: Vec<(CalloutId, Batch)>,
    /// Serialized bytes in the open, queued and in-flight batches.
    buffered_bytes: usize,
    /// A sent batch's buffer, kept to be filled again instead of allocating.
    spare: Option<Vec<u8>>,
    /// Consecutive transient failures (0: healthy).
    failures: u32,
    /// When the current run of failures began (`None`: healthy).
    failing_since: Option<u64>,
    /// Nothing is sent before this time (backoff or `Retry-After`).
    paused_until: u64,
    /// A `Retry-After` pause not yet shared with the other workers.
    service_pause: Option<u64>,
    /// Whether the logger authenticates (401/403 then mean "refresh the token").
    uses_credentials: bool,
    pub stats: Stats,
}

impl Outbox {
    pub fn new(limits: Delivery) -> Self {
        Outbox {
            limits,
            open: Batch::default(),
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            buffered_bytes: 0,
            spare: None,
            failures: 0,
            failing_since: None,
            paused_until: 0,
            service_pause: None,
            uses_credentials: false,
            stats: Stats::default(),
        }
    }

    /// The logger sends an Entra ID token: 401/403 are retried after a refresh.
    pub fn with_credentials(mut self) -> Self {
        self.uses_credentials = true;
        self
    }

    /// Serializes one item with `write` into the open batch, or drops it (and counts why).
    pub fn add(&mut self, now: u64, write: impl Fn(&mut Vec<u8>)) -> Added {
        self.add_or_trim(now, |out, _lean| write(out))
    }

    /// Serializes one item with `write(out, false)`; an item over the service's 64 KB limit
    /// is written again with `write(out, true)` (lean: without optional content), and
    /// dropped (and counted) only if still too large.
    pub fn add_or_trim(&mut self, now: u64, write: impl Fn(&mut Vec<u8>, bool)) -> Added {
        self.stats.items_created += 1;
        // Room for the item is claimed first: when the VM has no memory left, an item is
        // dropped and counted, not the VM.
        if self.open.body.try_reserve(ITEM_HEADROOM).is_err() {
            self.stats.dropped_buffer_full += 1;
            return Added::DroppedBufferFull;
        }
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
        if !self.make_room(len) {
            self.open.body.truncate(start);
            self.stats.dropped_buffer_full += 1;
            return Added::DroppedBufferFull;
        }
        self.buffered_bytes += len;
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

    /// Frees space for `len` more bytes by dropping the oldest waiting batches; false if
    /// even that is not enough (everything left is in flight or in the open batch).
    fn make_room(&mut self, len: usize) -> bool {
        let budget = self.limits.max_buffer_bytes as usize;
        while self.buffered_bytes + len > budget {
            let Some(oldest) = self.queue.pop_front() else {
                return false;
            };
            self.stats.dropped_buffer_full += u64::from(oldest.items);
            self.release(oldest);
        }
        true
    }

    fn seal(&mut self) {
        let fresh = Batch {
            body: self.spare.take().unwrap_or_default(),
            ..Batch::default()
        };
        let mut full = std::mem::replace(&mut self.open, fresh);
        if full.items > 0 {
            if self.failures > 0 {
                // The service is failing: it will wait. Keep only its bytes (a grown buffer
                // holds up to twice them, and the budget counts bytes).
                fit(&mut full.body);
            }
            self.queue.push_back(full);
        }
    }

    /// The next batch to post now, if any: queued ones (oldest first, once their retry
    /// time has come), then the open one once it is older than the flush interval (at once
    /// while `draining`: the configuration is going). `None` while paused (backoff,
    /// `Retry-After`) or at the in-flight limit (one batch while failing) — a drain too
    /// respects the service.
    pub fn next_due(&mut self, now: u64, draining: bool) -> Option<Batch> {
        if now < self.paused_until {
            return None;
        }
        let limit = if self.failures > 0 {
            1
        } else {
            self.limits.max_in_flight
        };
        if self.in_flight.len() as u64 >= limit {
            return None;
        }
        loop {
            let ready = self.queue.iter().position(|b| b.not_before <= now);
            let batch = match ready {
                Some(i) => self.queue.remove(i)?,
                None => {
                    let age = now.saturating_sub(self.open.opened_at);
                    if self.open.items == 0 || !(draining || age >= self.limits.flush_interval_ms * 1_000_000) {
                        return None;
                    }
                    self.seal();
                    self.queue.pop_back()?
                }
            };
            if now.saturating_sub(batch.opened_at) > MAX_ITEM_AGE_NANOS {
                self.stats.dropped_expired += u64::from(batch.items);
                self.release(batch);
                continue;
            }
            return Some(batch);
        }
    }

    /// The batch was handed to Envoy (`wire_bytes` after compression) as `callout`.
    pub fn sent(&mut self, callout: CalloutId, mut batch: Batch, wire_bytes: usize) {
        batch.attempts += 1;
        self.stats.batches_sent += 1;
        self.stats.items_sent += u64::from(batch.items);
        self.stats.bytes_sent += wire_bytes as u64;
        self.in_flight.push((callout, batch));
    }

    /// Envoy refused to start the callout (unknown cluster, no healthy host): a transient
    /// failure, retried with backoff.
    pub fn send_failed(&mut self, mut batch: Batch, now: u64, random: u64) -> u64 {
        batch.attempts += 1;
        self.stats.callout_failures += 1;
        self.retry_whole(batch, now, None, random)
    }

    /// Whether this outbox is waiting for the answer to `callout`.
    pub fn owns(&self, callout: CalloutId) -> bool {
        self.in_flight.iter().any(|(c, _)| *c == callout)
    }

    /// Items in the batch sent as `callout`, if it is in flight here.
    pub fn items_of(&self, callout: CalloutId) -> Option<u32> {
        self.in_flight.iter().find(|(c, _)| *c == callout).map(|(_, b)| b.items)
    }

    /// Applies the service's verdict on the batch sent as `callout` (`None` for an unknown
    /// callout). `random` drives the backoff's jitter.
    pub fn completed(&mut self, callout: CalloutId, verdict: &Verdict, now: u64, random: u64) -> Option<Completion> {
        let at = self.in_flight.iter().position(|(c, _)| *c == callout)?;
        let (_, batch) = self.in_flight.swap_remove(at);
        let items = batch.items;
        let mut done = Completion {
            items,
            ..Completion::default()
        };
        match verdict {
            Verdict::Accepted { accepted, errors } => {
                self.recovered();
                let accepted = (*accepted).min(items);
                let retry: Vec<usize> = errors.iter().filter(|e| e.is_retryable()).map(|e| e.index).collect();
                let retried = self.retry_lines(&batch, &retry, now, random);
                done.accepted = accepted;
                done.retried = retried;
                done.dropped = items - accepted - retried.min(items - accepted);
                self.stats.items_accepted += u64::from(accepted);
                self.stats.dropped_rejected += u64::from(done.dropped);
                self.release(batch);
            }
            Verdict::Rejected { .. } => {
                self.recovered();
                done.dropped = items;
                self.stats.dropped_rejected += u64::from(items);
                self.release(batch);
            }
            Verdict::Unauthorized { .. } if self.uses_credentials => {
                // Fresh credentials first; the batch goes again once they are in.
                done.needs_credentials = true;
                done.retried = items;
                self.requeue(batch, now);
            }
            Verdict::Unauthorized { .. } => {
                done.dropped = items;
                self.stats.dropped_rejected += u64::from(items);
                self.release(batch);
            }
            Verdict::Transient { status, retry_after } => {
                if matches!(status, 429 | 439 | 503) {
                    self.stats.throttled += 1;
                }
                let wait = retry_after.as_deref().and_then(|v| backoff::retry_after_nanos(v, now));
                done.retried = items;
                done.paused_until = self.retry_whole(batch, now, wait, random);
                if wait.is_some() {
                    self.service_pause = Some(done.paused_until);
                }
            }
            Verdict::Redirect { .. } => self.redirected(batch, &mut done),
            Verdict::NoResponse => {
                self.stats.callout_failures += 1;
                done.retried = items;
                done.paused_until = self.retry_whole(batch, now, None, random);
            }
        }
        Some(done)
    }

    /// The service sent the batch elsewhere: it goes again at once (to where the caller now
    /// sends), unless it has been redirected too often in a row.
    fn redirected(&mut self, mut batch: Batch, done: &mut Completion) {
        self.stats.redirects += 1;
        batch.redirects += 1;
        if batch.redirects > redirect::MAX_REDIRECTS_IN_A_ROW {
            done.dropped = batch.items;
            self.stats.dropped_rejected += u64::from(batch.items);
            self.release(batch);
            return;
        }
        done.retried = batch.items;
        self.stats.items_retried += u64::from(batch.items);
        self.queue.push_front(batch);
    }

    /// The service answered: the next failure starts a new outage, and full-rate delivery
    /// (every in-flight slot) resumes at once.
    fn recovered(&mut self) {
        self.failures = 0;
        self.failing_since = None;
    }

    /// Puts a batch back at the head of the queue and pauses the logger: for `wait` (the
    /// service's `Retry-After`), else an exponential backoff that never exceeds a tenth of
    /// the outage so far (see [`backoff::outage_cap_nanos`]).
    fn retry_whole(&mut self, batch: Batch, now: u64, wait: Option<u64>, random: u64) -> u64 {
        self.failures = self.failures.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        let (initial, max) = (self.limits.retry_initial_ms, self.limits.retry_max_ms);
        let delay = wait.unwrap_or_else(|| {
            let cap = backoff::outage_cap_nanos(now.saturating_sub(since), initial);
            backoff::delay_nanos(self.failures, initial, max, random).min(cap)
        });
        self.paused_until = now.saturating_add(delay);
        self.stats.items_retried += u64::from(batch.items);
        self.requeue(batch, now);
        self.paused_until
    }

    fn requeue(&mut self, mut batch: Batch, now: u64) {
        fit(&mut batch.body);
        batch.not_before = now;
        self.queue.push_front(batch);
    }

    /// Queues a new batch with the given lines of `batch` (a 206's retryable items), after
    /// a backoff of its own; returns how many lines it took.
    fn retry_lines(&mut self, batch: &Batch, indexes: &[usize], now: u64, random: u64) -> u32 {
        if indexes.is_empty() {
            return 0;
        }
        let mut body = Vec::new();
        let mut items = 0;
        for (i, line) in batch.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            if indexes.contains(&i) {
                body.extend_from_slice(line);
                body.push(b'\n');
                items += 1;
            }
        }
        if items == 0 {
            return 0;
        }
        let delay = backoff::delay_nanos(
            batch.attempts.max(1),
            self.limits.retry_initial_ms,
            self.limits.retry_max_ms,
            random,
        );
        self.buffered_bytes += body.len();
        self.stats.items_retried += u64::from(items);
        let retry = Batch {
            body,
            items,
            opened_at: batch.opened_at,
            not_before: now.saturating_add(delay),
            attempts: batch.attempts,
            redirects: 0,
        };
        self.queue.push_front(retry);
        items
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

    /// Serialized bytes waiting, retrying or in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Items waiting, retrying or in flight.
    pub fn buffered_items(&self) -> u64 {
        let queued: u64 = self.queue.iter().map(|b| u64::from(b.items)).sum();
        let flying: u64 = self.in_flight.iter().map(|(_, b)| u64::from(b.items)).sum();
        queued + flying + u64::from(self.open.items)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The configuration is going and what is left cannot be delivered in time: every
    /// item still buffered (waiting, retrying or in flight, whose answer will not be heard)
    /// is dropped and counted as `dropped_shutdown`. Returns how many.
    pub fn abandon(&mut self) -> u64 {
        let left = self.buffered_items();
        self.stats.dropped_shutdown += left;
        self.open = Batch::default();
        self.queue.clear();
        self.in_flight.clear();
        self.buffered_bytes = 0;
        left
    }

    /// Whether nothing is waiting or in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty() && self.open.items == 0
    }

    /// When the logger sends again (0 or in the past: now).
    pub fn paused_until(&self) -> u64 {
        self.paused_until
    }

    /// Lifts a pause (fresh credentials arrived).
    pub fn resume(&mut self) {
        self.paused_until = 0;
    }

    /// Sends nothing for `wait` nanoseconds.
    pub fn pause_for(&mut self, now: u64, wait: u64) {
        self.pause_until(now.saturating_add(wait));
    }

    /// Sends nothing before `until` (a pause the service asked another worker for).
    pub fn pause_until(&mut self, until: u64) {
        self.paused_until = self.paused_until.max(until);
    }

    /// A pause the service asked for with `Retry-After` since the last call: until when.
    pub fn take_service_pause(&mut self) -> Option<u64> {
        self.service_pause.take()
    }
}

#[cfg(test)]
mod tests {
    use super::track::{ItemError, Verdict};
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    fn limits() -> Delivery {
        Delivery {
            flush_interval_ms: 1000,
            max_batch_items: 3,
            max_batch_bytes: 100,
            max_buffer_bytes: 1000,
            max_in_flight: 2,
            retry_initial_ms: 1000,
            retry_max_ms: 8000,
            ..Delivery::default()
        }
    }

    fn item(n: usize) -> impl Fn(&mut Vec<u8>) {
        move |out: &mut Vec<u8>| {
            out.extend(std::iter::repeat_n(b'x', n - 1));
            out.push(b'\n');
        }
    }

    /// An item whose line says which one it is.
    fn named(i: usize) -> impl Fn(&mut Vec<u8>) {
        move |out: &mut Vec<u8>| out.extend_from_slice(format!("item-{i}\n").as_bytes())
    }

    fn lines(b: &Batch) -> Vec<String> {
        String::from_utf8(b.body.clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn accepted(n: u32) -> Verdict {
        Verdict::Accepted {
            accepted: n,
            errors: vec![],
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
        assert_eq!(o.next_due(0, false).unwrap().items, 3, "item limit seals the batch");
        o.add(0, item(60));
        o.add(0, item(60)); // would exceed 100 bytes: starts the next batch
        let b = o.next_due(0, false).unwrap();
        assert_eq!((b.items, b.body.len()), (1, 60));
        assert!(o.next_due(0, false).is_none(), "second one is still open and young");
        assert_eq!(o.next_due(0, true).unwrap().body.len(), 60);
    }

    #[test]
    fn a_transient_failure_retries_the_batch_first_after_a_backoff_then_recovers() {
        let mut o = Outbox::new(limits());
        for i in 0..3 {
            o.add(0, named(i));
        }
        let b = o.next_due(0, false).unwrap();
        o.sent(1, b, 30);
        o.add(0, named(3));
        let done = o
            .completed(
                1,
                &Verdict::Transient {
                    status: 500,
                    retry_after: None,
                },
                0,
                0,
            )
            .unwrap();
        assert_eq!(done.retried, 3);
        assert!(
            (500 * MS..=1000 * MS).contains(&done.paused_until),
            "first backoff: 0.5-1 s"
        );
        assert!(o.next_due(400 * MS, true).is_none(), "a drain respects the backoff too");
        assert!(
            o.next_due(1000 * MS, true).is_some_and(|b| lines(&b)[0] == "item-0"),
            "then sends"
        );
    }

    #[test]
    fn an_outage_costs_at_most_a_tenth_of_its_length_in_extra_delay() {
        // A service down for N seconds is probed at least every N/10 seconds (and never
        // faster than retry_initial_ms), so once it is back, delivery resumes within N/10.
        let mut o = Outbox::new(Delivery {
            retry_initial_ms: 100,
            retry_max_ms: 60_000,
            ..limits()
        });
        o.add(0, item(10));
        let (start, mut now, mut callout) = (0u64, 0u64, 0u32);
        while now < 300 * S {
            let b = o.next_due(now, true).unwrap();
            callout += 1;
            o.sent(callout, b, 10);
            let done = o.completed(callout, &Verdict::NoResponse, now, u64::MAX / 3).unwrap();
            let wait = done.paused_until - now;
            let allowed = (100 * MS).max((now - start) / 10);
            assert!(
                wait <= allowed,
                "after {} s of outage the next probe waits {} ms",
                (now - start) / S,
                wait / MS
            );
            now = done.paused_until;
        }
    }

    #[test]
    fn a_redirected_batch_goes_again_at_once_until_it_is_redirected_too_often() {
        let mut o = Outbox::new(limits());
        o.add(0, item(10));
        let redirect = Verdict::Redirect {
            status: 308,
            location: "https://x/".into(),
        };
        for callout in 1..=redirect::MAX_REDIRECTS_IN_A_ROW {
            let b = o.next_due(5 * S, true).expect("at once, no backoff");
            o.sent(callout, b, 10);
            let done = o.completed(callout, &redirect, 5 * S, 0).unwrap();
            assert_eq!((done.retried, done.dropped), (1, 0));
        }
        let b = o.next_due(5 * S, true).unwrap();
        o.sent(99, b, 10);
        let done = o.completed(99, &redirect, 5 * S, 0).unwrap();
        assert_eq!(
            done.dropped,
            1,
            "given up after {} redirects",
            redirect::MAX_REDIRECTS_IN_A_ROW
        );
        assert_eq!((o.stats.redirects, o.stats.dropped_rejected), (11, 1));
        assert!(o.is_idle());
    }

    #[test]
    fn an_item_dropped_on_arrival_was_created_too() {
        let mut o = Outbox::new(Delivery {
            max_batch_bytes: 1024,
            max_buffer_bytes: 1024,
            ..limits()
        });
        for _ in 0..3 {
            o.add(0, item(300));
        }
        let b = o.next_due(0, true).unwrap();
        o.sent(1, b, 100);
        assert_eq!(
            o.add(0, item(300)),
            Added::DroppedBufferFull,
            "no room: the rest is in flight"
        );
        let s = o.stats;
        assert_eq!(s.items_created, 4);
        assert_eq!(s.items_created, s.dropped_buffer_full + o.buffered_items(), "{s:?}");
    }

    #[test]
    fn while_failing_one_batch_probes_and_success_releases_the_rest() {
        let mut o = Outbox::new(Delivery {
            max_batch_items: 1,
            ..limits()
        });
        for i in 0..4 {
            o.add(0, named(i));
        }
        let b = o.next_due(0, false).unwrap();
        o.sent(1, b, 7);
        o.completed(1, &Verdict::NoResponse, 0, 0).unwrap();
        let probe = o.next_due(10 * S, false).unwrap();
        assert_eq!(lines(&probe), ["item-0"], "the failed batch goes first");
        o.sent(2, probe, 7);
        assert!(o.next_due(10 * S, false).is_none(), "only one in flight while failing");
        o.completed(2, &accepted(1), 10 * S, 0).unwrap();
        let a = o.next_due(10 * S, false).unwrap();
        o.sent(3, a, 7);
        assert!(
            o.next_due(10 * S, false).is_some(),
            "healthy: the in-flight limit is back"
        );
        assert_eq!(o.stats.items_accepted, 1);
        assert_eq!(o.stats.items_retried, 1);
        assert_eq!(o.stats.callout_failures, 1);
    }

    #[test]
    fn retry_after_is_respected_to_the_second() {
        let mut o = Outbox::new(limits());
        o.add(0, named(0));
        let b = o.next_due(0, true).unwrap();
        o.sent(1, b, 7);
        let done = o
            .completed(
                1,
                &Verdict::Transient {
                    status: 429,
                    retry_after: Some("7".into()),
                },
                100 * S,
                0,
            )
            .unwrap();
        assert_eq!(done.paused_until, 107 * S);
        assert!(o.next_due(107 * S - 1, false).is_none(), "nothing early");
        assert!(o.next_due(107 * S, false).is_some());
        assert_eq!(o.stats.throttled, 1);
    }

    #[test]
    fn partial_success_resends_exactly_the_retryable_items() {
        let mut o = Outbox::new(Delivery {
            max_batch_items: 10,
            ..limits()
        });
        for i in 0..5 {
            o.add(0, named(i));
        }
        let b = o.next_due(0, true).unwrap();
        o.sent(1, b, 35);
        let errors = vec![
            ItemError {
                index: 1,
                status_code: 500,
                message: String::new(),
            },
            ItemError {
                index: 2,
                status_code: 400,
                message: String::new(),
            },
            ItemError {
                index: 4,
                status_code: 429,
                message: String::new(),
            },
        ];
        let done = o
            .completed(1, &Verdict::Accepted { accepted: 2, errors }, 0, 0)
            .unwrap();
        assert_eq!((done.accepted, done.retried, done.dropped), (2, 2, 1));
        assert!(o.next_due(0, false).is_none(), "the retry waits its backoff");
        let retry = o.next_due(2 * S, false).unwrap();
        assert_eq!(lines(&retry), ["item-1", "item-4"]);
        assert_eq!(retry.attempts, 1);
        let s = o.stats;
        assert_eq!((s.items_accepted, s.items_retried, s.dropped_rejected), (2, 2, 1));
    }

    #[test]
    fn refusals_drop_and_unauthorized_waits_only_with_credentials() {
        let mut o = Outbox::new(limits());
        o.add(0, named(0));
        let b = o.next_due(0, true).unwrap();
        o.sent(1, b, 7);
        let done = o.completed(1, &Verdict::Rejected { status: 400 }, 0, 0).unwrap();
        assert_eq!(done.dropped, 1);
        o.add(0, named(1));
        let b = o.next_due(0, true).unwrap();
        o.sent(2, b, 7);
        assert_eq!(
            o.completed(2, &Verdict::Unauthorized { status: 401 }, 0, 0)
                .unwrap()
                .dropped,
            1
        );
        assert_eq!(o.stats.dropped_rejected, 2);
        assert!(o.is_idle());

        let mut o = Outbox::new(limits()).with_credentials();
        o.add(0, named(0));
        let b = o.next_due(0, true).unwrap();
        o.sent(1, b, 7);
        let done = o.completed(1, &Verdict::Unauthorized { status: 403 }, 0, 0).unwrap();
        assert!(done.needs_credentials);
        assert_eq!(
            lines(&o.next_due(0, false).unwrap()),
            ["item-0"],
            "kept for the next token"
        );
    }

    #[test]
    fn the_memory_budget_drops_the_oldest_waiting_items_first() {
        let mut o = Outbox::new(Delivery {
            max_batch_items: 1,
            max_buffer_bytes: 1000,
            ..limits()
        });
        let big = |i: usize| move |out: &mut Vec<u8>| out.extend_from_slice(format!("{i:0>249}\n").as_bytes());
        for i in 0..4 {
            assert_eq!(o.add(0, big(i)), Added::Queued);
        }
        assert_eq!(o.add(0, big(4)), Added::Queued, "room made by dropping the oldest");
        assert_eq!(o.stats.dropped_buffer_full, 1);
        assert!(o.buffered_bytes() <= 1000);
        let first = o.next_due(0, false).unwrap();
        assert!(lines(&first)[0].ends_with('1'), "item 0 was the one dropped");
        // In-flight batches are never dropped: with everything in flight, new items are.
        o.sent(1, first, 250);
        let b = o.next_due(0, false).unwrap();
        o.sent(2, b, 250);
        let mut o2 = Outbox::new(Delivery {
            max_batch_items: 1,
            max_buffer_bytes: 500,
            max_in_flight: 2,
            ..limits()
        });
        o2.add(0, big(0));
        o2.add(0, big(1));
        for t in 1..=2 {
            let b = o2.next_due(0, false).unwrap();
            o2.sent(t, b, 250);
        }
        assert_eq!(o2.add(0, big(2)), Added::DroppedBufferFull);
    }

    #[test]
    fn items_too_old_for_the_service_are_dropped_not_sent() {
        let mut o = Outbox::new(limits());
        o.add(0, named(0));
        assert!(o.next_due(MAX_ITEM_AGE_NANOS + 1, true).is_none());
        assert_eq!(o.stats.dropped_expired, 1);
        assert_eq!(o.buffered_bytes(), 0);
    }

    #[test]
    fn oversized_items_are_written_again_lean_before_being_dropped() {
        let mut o = Outbox::new(Delivery {
            max_buffer_bytes: 1 << 20,
            ..limits()
        });
        let write = |out: &mut Vec<u8>, lean: bool| {
            out.extend(std::iter::repeat_n(b'x', if lean { 100 } else { ITEM_BYTES + 1 }))
        };
        assert_eq!(o.add_or_trim(0, write), Added::Queued);
        assert_eq!((o.stats.items_trimmed, o.stats.dropped_too_large), (1, 0));
        assert_eq!(o.next_due(0, true).unwrap().body.len(), 100);
        assert_eq!(o.add(0, item(ITEM_BYTES + 1)), Added::DroppedTooLarge);
    }

    #[test]
    fn counters_add_up_and_buffers_are_released() {
        let mut o = Outbox::new(Delivery {
            max_batch_items: 100,
            ..limits()
        });
        for _ in 0..4 {
            o.add(0, item(10));
        }
        let b = o.next_due(0, true).unwrap();
        o.sent(7, b, 40);
        assert_eq!(o.buffered_items(), 4);
        o.completed(7, &accepted(4), 0, 0).unwrap();
        assert!(
            o.completed(7, &Verdict::NoResponse, 0, 0).is_none(),
            "each answer counts once"
        );
        let s = o.stats;
        assert_eq!(
            (
                s.items_created,
                s.items_sent,
                s.items_accepted,
                s.batches_sent,
                s.bytes_sent
            ),
            (4, 4, 4, 1, 40)
        );
        assert_eq!(o.buffered_bytes(), 0);
        assert!(o.is_idle());
    }
}
