//! Telemetry one VM hands to the next. When Envoy replaces the module, it destroys the old
//! VM as soon as no exchange uses it, without waiting for its drain: what it had not
//! delivered would be lost. So a draining outbox writes what it has not sent (waiting,
//! retrying) as a record ([`Outbox::record`]), and the pipeline leaves it in Envoy's shared data
//! (`crate::pipeline::handoff`); a VM that outlives it takes the batches over
//! ([`Outbox::adopt`]).
//!
//! A record: `AIH1`, then per batch its item count, attempts, when it was opened (for the
//! service's age limit) and its NDJSON body. It is read back from shared data, so decoding
//! checks every length against what is there.

use super::{Batch, Outbox};

const MAGIC: &[u8; 4] = b"AIH1";
/// Most batches one record holds (a record is one outbox's worth).
const MAX_BATCHES: usize = 100_000;

/// One batch as a record carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandedBatch {
    pub items: u32,
    pub attempts: u32,
    pub opened_at: u64,
    pub body: Vec<u8>,
}

impl Outbox {
    /// Everything this outbox holds (the open batch, the waiting and retrying ones, those
    /// in flight, whose answer will not come if Envoy destroys the VM), encoded as a
    /// record headed by `take_after` (when another VM may take it); empty when it holds
    /// nothing.
    pub fn record(&self, take_after: u64) -> Vec<u8> {
        let held = std::iter::once(&self.open)
            .chain(self.queue.iter())
            .chain(self.in_flight.iter().map(|(_, b)| b))
            .filter(|b| b.items > 0);
        let mut out = Vec::new();
        for b in held {
            if out.is_empty() {
                out.reserve(8 + MAGIC.len() + self.buffered_bytes + 20 * (self.queue.len() + 2));
                out.extend_from_slice(&take_after.to_le_bytes());
                out.extend_from_slice(MAGIC);
            }
            out.extend_from_slice(&b.items.to_le_bytes());
            out.extend_from_slice(&b.attempts.to_le_bytes());
            out.extend_from_slice(&b.opened_at.to_le_bytes());
            out.extend_from_slice(&u32::try_from(b.body.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&b.body);
        }
        out
    }

    /// Bytes the memory budget still has room for.
    pub fn room(&self) -> usize {
        (self.limits.max_buffer_bytes as usize).saturating_sub(self.buffered_bytes)
    }

    /// Takes over batches another VM handed off: queued to be sent like any other (oldest
    /// first), counted in `items_adopted`; those the memory budget cannot hold are dropped
    /// and counted (`dropped_buffer_full`).
    pub fn adopt(&mut self, batches: Vec<HandedBatch>) {
        for h in batches.into_iter().rev() {
            self.stats.items_adopted += u64::from(h.items);
            if self.buffered_bytes + h.body.len() > self.limits.max_buffer_bytes as usize {
                self.stats.dropped_buffer_full += u64::from(h.items);
                continue;
            }
            self.buffered_bytes += h.body.len();
            self.queue.push_front(Batch {
                body: h.body,
                items: h.items,
                opened_at: h.opened_at,
                attempts: h.attempts,
                ..Batch::default()
            });
        }
    }
}

/// The batches of a record without its time header (`None`: not a record, or cut short).
pub fn decode(record: &[u8]) -> Option<Vec<HandedBatch>> {
    let mut rest = record.strip_prefix(MAGIC)?;
    let mut batches = Vec::new();
    while !rest.is_empty() && batches.len() < MAX_BATCHES {
        let (items, r) = take_u32(rest)?;
        let (attempts, r) = take_u32(r)?;
        let (opened_at, r) = take_u64(r)?;
        let (len, r) = take_u32(r)?;
        let len = usize::try_from(len).ok()?;
        let body = r.get(..len)?.to_vec();
        rest = r.get(len..)?;
        batches.push(HandedBatch {
            items,
            attempts,
            opened_at,
            body,
        });
    }
    Some(batches)
}

fn take_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

fn take_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = b.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Delivery;

    fn outbox_with(items: u32) -> Outbox {
        let mut o = Outbox::new(Delivery {
            max_batch_items: 2,
            ..Delivery::default()
        });
        for i in 0..items {
            o.add(1_000 + u64::from(i), |out| {
                out.extend_from_slice(format!("{{\"n\":{i}}}\n").as_bytes())
            });
        }
        o
    }

    #[test]
    fn what_an_outbox_holds_goes_to_another_whole_and_counted() {
        let mut old = outbox_with(5);
        // One batch in flight (items 0 and 1), the others waiting or open: all are handed
        // over (the answer to the one in flight will not come if the VM goes).
        let flying = old.next_due(2_000_000_000, true).unwrap();
        old.sent(7, flying, 10);
        let record = old.record(9);
        assert_eq!(record[..8], 9u64.to_le_bytes(), "headed by when it may be taken");
        let batches = decode(&record[8..]).unwrap();
        assert_eq!(batches.iter().map(|b| b.items).sum::<u32>(), 5, "the one in flight too");
        let mut new = Outbox::new(Delivery::default());
        new.adopt(batches);
        assert_eq!(new.stats.items_adopted, 5);
        assert_eq!(new.stats.items_created, 0, "created where they were written");
        assert_eq!(new.buffered_items(), 5);
        let mut bodies = Vec::new();
        while let Some(b) = new.next_due(2_000_000_000, true) {
            bodies.extend_from_slice(&b.body);
        }
        let text = String::from_utf8(bodies).unwrap();
        for i in 0..5 {
            assert!(text.contains(&format!("{{\"n\":{i}}}")), "{text}");
        }
    }

    #[test]
    fn an_empty_outbox_hands_over_nothing_and_bad_records_are_refused() {
        assert!(Outbox::new(Delivery::default()).record(1).is_empty());
        let full = outbox_with(3).record(1);
        let record = full[8..].to_vec();
        assert!(decode(&record).is_some());
        for cut in 1..record.len() {
            let d = decode(&record[..cut]);
            assert!(d.is_none() || d.is_some_and(|b| b.len() < 2), "cut at {cut}");
        }
        assert!(decode(b"nope").is_none());
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode(&huge).is_none(), "a length beyond the record");
    }

    #[test]
    fn adopted_batches_beyond_the_budget_are_dropped_and_counted() {
        let batches = decode(&outbox_with(4).record(1)[8..]).unwrap();
        let mut small = Outbox::new(Delivery {
            max_buffer_bytes: 8,
            ..Delivery::default()
        });
        small.adopt(batches);
        assert_eq!(small.stats.items_adopted, 4);
        assert_eq!(small.stats.dropped_buffer_full, 4);
        assert_eq!(small.buffered_items(), 0);
    }
}
