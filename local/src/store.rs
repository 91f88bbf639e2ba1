//! The product's storage: a bounded ring buffer of accepted items and of rejected ones.
//!
//! Every accepted item gets a sequence number `seq` (1, 2, ... never reused) and its
//! receive time; the oldest items go when the buffer holds more than `max_items` items
//! or `max_bytes` bytes (the item's JSON plus a fixed overhead per item). With a store
//! file, accepted items are appended to it as NDJSON (one write per request, so a killed
//! process leaves whole lines) and on start its newest items are loaded back.
//!
//! Layout: this file holds the buffer; `record.rs` the fields extracted per item.

pub mod record;

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde_json::Value;

pub use record::{iso, parse_iso_ms, Kind, Record, Summary, KINDS};

/// Bytes counted per item on top of its JSON (the extracted fields, the buffer slot).
const ENTRY_OVERHEAD_BYTES: usize = 256;
/// Characters of a rejected item's text that are kept.
pub const REJECTED_LINE_CHARS: usize = 2000;

/// How much the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_items: usize,
    pub max_bytes: usize,
    pub max_rejected: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_items: 200_000,
            max_bytes: 256 * 1024 * 1024,
            max_rejected: 1000,
        }
    }
}

/// One stored item.
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    /// When it was received, milliseconds since the epoch.
    pub received_ms: i64,
    /// The envelope as received (compact JSON).
    pub text: String,
    pub rec: Record,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.text.len() + ENTRY_OVERHEAD_BYTES
    }
}

/// One rejected item with the validator's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub received_ms: i64,
    /// The item's index in its request.
    pub index: usize,
    pub reason: String,
    /// The item's text, at most [`REJECTED_LINE_CHARS`] characters.
    pub line: String,
}

/// The ring buffers and their counters.
#[derive(Debug, Default)]
pub struct Store {
    limits: Limits,
    entries: VecDeque<Entry>,
    bytes: usize,
    next_seq: u64,
    by_kind: HashMap<Kind, usize>,
    rejected: VecDeque<Rejected>,
    rejected_total: u64,
    file: Option<File>,
}

impl Store {
    /// An empty store in memory only.
    pub fn new(limits: Limits) -> Store {
        Store {
            limits,
            next_seq: 1,
            ..Store::default()
        }
    }

    /// A store backed by `path`: its newest items (within the limits) are loaded, then it
    /// is opened for appending. Unparsable lines are skipped; an item's receive time is
    /// its envelope time.
    pub fn open(limits: Limits, path: &Path) -> io::Result<Store> {
        let mut store = Store::new(limits);
        match File::open(path) {
            Ok(file) => store.load(BufReader::new(file))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        store.file = Some(OpenOptions::new().create(true).append(true).open(path)?);
        Ok(store)
    }

    fn load(&mut self, reader: impl BufRead) -> io::Result<()> {
        for line in reader.lines() {
            let line = line?;
            let Ok(item) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let rec = Record::of(&item);
            let received_ms = rec.time_ms;
            self.insert(line.trim().to_string(), rec, received_ms);
        }
        Ok(())
    }

    /// Stores accepted items received at `received_ms` (appending them to the file first).
    pub fn push_all(&mut self, items: &[Value], received_ms: i64) {
        let texts: Vec<String> = items.iter().map(Value::to_string).collect();
        self.append_to_file(&texts);
        for (item, text) in items.iter().zip(texts) {
            self.insert(text, Record::of(item), received_ms);
        }
    }

    fn insert(&mut self, text: String, rec: Record, received_ms: i64) {
        *self.by_kind.entry(rec.kind).or_default() += 1;
        let entry = Entry {
            seq: self.next_seq,
            received_ms,
            text,
            rec,
        };
        self.next_seq += 1;
        self.bytes += entry.bytes();
        self.entries.push_back(entry);
        while self.entries.len() > self.limits.max_items.max(1)
            || (self.bytes > self.limits.max_bytes && self.entries.len() > 1)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some(old) = self.entries.pop_front() else { return };
        self.bytes = self.bytes.saturating_sub(old.bytes());
        if let Some(n) = self.by_kind.get_mut(&old.rec.kind) {
            *n = n.saturating_sub(1);
        }
    }

    fn append_to_file(&mut self, texts: &[String]) {
        let Some(file) = self.file.as_mut() else { return };
        let mut lines = String::new();
        for text in texts {
            lines.push_str(text);
            lines.push('\n');
        }
        if let Err(e) = file.write_all(lines.as_bytes()).and_then(|_| file.flush()) {
            eprintln!("appinsights-local: cannot append to the store file: {e}");
        }
    }

    /// Keeps a rejected item (the oldest go beyond `max_rejected`).
    pub fn reject(&mut self, received_ms: i64, index: usize, reason: &str, line: &str) {
        self.rejected_total += 1;
        self.rejected.push_back(Rejected {
            received_ms,
            index,
            reason: reason.to_string(),
            line: line.chars().take(REJECTED_LINE_CHARS).collect(),
        });
        while self.rejected.len() > self.limits.max_rejected {
            self.rejected.pop_front();
        }
    }

    /// Forgets every item and rejection (the file and the sequence numbers go on).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.rejected.clear();
        self.by_kind.clear();
        self.bytes = 0;
    }

    /// The item stored under `seq`, if still kept.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        let first = self.entries.front()?.seq;
        let index = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get(index)
    }

    /// Items, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().rev()
    }

    /// Items with `seq < before`, newest first.
    pub fn before(&self, before: u64) -> impl Iterator<Item = &Entry> {
        let first = self.entries.front().map_or(0, |e| e.seq);
        let keep = before.saturating_sub(first).min(self.entries.len() as u64) as usize;
        self.entries.range(..keep).rev()
    }

    /// Rejected items, newest first.
    pub fn rejected(&self) -> impl Iterator<Item = &Rejected> {
        self.rejected.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected_total
    }

    /// `(oldest, newest)` sequence numbers kept (`None` when empty).
    pub fn seq_range(&self) -> Option<(u64, u64)> {
        Some((self.entries.front()?.seq, self.entries.back()?.seq))
    }

    /// Items kept per kind.
    pub fn count_of(&self, kind: Kind) -> usize {
        self.by_kind.get(&kind).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
