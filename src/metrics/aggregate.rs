//! Aggregation: one logger's metric values on one worker, summed per series (a metric and
//! its dimension values) over aligned intervals (`metrics.interval_ms`), as the SDKs
//! pre-aggregate. An interval ends at a multiple of its length (unix time), so every
//! worker's aggregates of one interval carry the same timestamp.
//!
//! Memory is bounded: at most `max_series` series per metric per interval and
//! [`MAX_KEY_BYTES`] of series keys in all; beyond either, values fold into the metric's
//! overflow series, whose dimension values are [`OVERFLOW_VALUE`] (the .NET SDK's marker
//! for capped dimensions), counted and said once per interval.

use super::catalog::Standard;
use std::collections::HashMap;

/// What the overflow series has for every dimension value.
pub const OVERFLOW_VALUE: &[u8] = b"DIMENSION-CAPPED";
/// Longest dimension value kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_VALUE_BYTES: usize = 256;
/// Bytes of series keys one aggregator may hold.
pub const MAX_KEY_BYTES: usize = 1 << 20;

/// Count, sum, minimum and maximum (and the sum of squares, for `stdDev`) of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sum_of_squares: f64,
}

impl Stats {
    fn of(value: f64) -> Stats {
        Stats {
            count: 1,
            sum: value,
            min: value,
            max: value,
            sum_of_squares: value * value,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum_of_squares += value * value;
    }

    /// The population standard deviation.
    pub fn std_dev(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        (self.sum_of_squares / n - mean * mean).max(0.0).sqrt()
    }
}

/// One closed interval's aggregates, ready to be written as MetricData items.
#[derive(Debug, PartialEq)]
pub struct Window {
    /// Unix nanoseconds of the interval's start.
    pub start: u64,
    pub series: Vec<(Series, Stats)>,
}

/// A series key: the metric's index and its dimension values, encoded as one byte string
/// (so a lookup needs no allocation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Series(Box<[u8]>);

impl std::borrow::Borrow<[u8]> for Series {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl Series {
    pub fn metric(&self) -> usize {
        match self.0.get(..4) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
            _ => usize::MAX,
        }
    }

    /// The dimension values, in the metric's dimension order.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.0.get(4..).unwrap_or_default();
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_le_bytes(*len));
            let (value, tail) = tail.split_at_checked(len)?;
            rest = tail;
            Some(value)
        })
    }
}

/// What recording one value did beyond adding it.
#[derive(Debug, Default, PartialEq)]
pub struct Recorded {
    /// Closed intervals the tick has not written yet, when there are too many to keep:
    /// the caller writes them now.
    pub backlog: Vec<Window>,
    /// The value went to an overflow series, for the first time this interval.
    pub first_overflow: bool,
}

/// Largest value recorded: sums of 2^31 of them stay finite (durations, sizes and token
/// counts are far smaller; a header claiming `1e308` is not a measurement).
pub const MAX_VALUE: f64 = 1e15;
/// Closed intervals kept for the tick to write (it runs every 100 ms; an interval is at
/// least that long).
const MAX_PENDING: usize = 4;

#[derive(Debug)]
pub struct Aggregator {
    interval_nanos: u64,
    max_series: usize,
    /// Start of the open interval (`None`: nothing recorded yet).
    start: Option<u64>,
    series: HashMap<Series, Stats>,
    /// Closed intervals waiting for the tick, oldest first.
    pending: Vec<Window>,
    /// Series per metric in the open interval.
    per_metric: Vec<usize>,
    /// Key bytes of the custom metrics' series in the open interval.
    key_bytes: usize,
    overflowed_this_interval: bool,
    scratch: Vec<u8>,
    /// Values folded into an overflow series, ever (a stat).
    pub overflowed: u64,
}

impl Aggregator {
    pub fn new(interval_ms: u64, max_series: u64) -> Aggregator {
        Aggregator {
            interval_nanos: interval_ms.max(1).saturating_mul(1_000_000),
            max_series: usize::try_from(max_series).unwrap_or(usize::MAX),
            start: None,
            series: HashMap::new(),
            pending: Vec::new(),
            per_metric: Vec::new(),
            key_bytes: 0,
            overflowed_this_interval: false,
            scratch: Vec::new(),
            overflowed: 0,
        }
    }

    /// Series in the open interval.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Whether nothing is held: no open series, no closed interval waiting.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.pending.is_empty()
    }

    /// Adds `value` to the series of `metric` with these dimension values, at `now`. An
    /// interval that ended is set aside for the tick: writing its items is not the
    /// exchange's work. Values that are not numbers or beyond [`MAX_VALUE`] are ignored.
    pub fn record(&mut self, now: u64, metric: usize, values: &[&[u8]], value: f64) -> Recorded {
        self.close_if_ended(now);
        let mut recorded = Recorded {
            backlog: if self.pending.len() > MAX_PENDING {
                std::mem::take(&mut self.pending)
            } else {
                Vec::new()
            },
            first_overflow: false,
        };
        if !value.is_finite() || value.abs() > MAX_VALUE {
            return recorded;
        }
        if self.start.is_none() {
            self.start = Some(now - now % self.interval_nanos);
        }
        encode(&mut self.scratch, metric, values.iter().copied());
        if let Some(stats) = self.series.get_mut(self.scratch.as_slice()) {
            stats.add(value);
            return recorded;
        }
        recorded.first_overflow = self.add_series(metric, values, value);
        recorded
    }

    /// Starts a series for `metric` (the key is in `scratch`), or folds the value into the
    /// metric's overflow series beyond the caps; `true` the first time that happens in
    /// this interval. The standard metrics (whose values are few: status codes, clusters)
    /// do not count against the key-byte budget, so custom dimensions cannot crowd them out.
    fn add_series(&mut self, metric: usize, values: &[&[u8]], value: f64) -> bool {
        let budgeted = metric >= Standard::ALL.len();
        let used = self.per_metric.get(metric).copied().unwrap_or(0);
        let over_bytes = budgeted && self.key_bytes + self.scratch.len() > MAX_KEY_BYTES;
        let mut first_overflow = false;
        if used >= self.max_series || over_bytes {
            encode(&mut self.scratch, metric, values.iter().map(|_| OVERFLOW_VALUE));
            self.overflowed += 1;
            first_overflow = !std::mem::replace(&mut self.overflowed_this_interval, true);
            if let Some(stats) = self.series.get_mut(self.scratch.as_slice()) {
                stats.add(value);
                return first_overflow;
            }
        } else {
            if self.per_metric.len() <= metric {
                self.per_metric.resize(metric + 1, 0);
            }
            if let Some(n) = self.per_metric.get_mut(metric) {
                *n += 1;
            }
            if budgeted {
                // (An overflow series, one per metric, is not counted.)
                self.key_bytes += self.scratch.len();
            }
        }
        self.series
            .insert(Series(self.scratch.as_slice().into()), Stats::of(value));
        first_overflow
    }

    /// Sets the open interval aside if it ended by `now`.
    fn close_if_ended(&mut self, now: u64) {
        let Some(start) = self.start else { return };
        if now >= start.saturating_add(self.interval_nanos) {
            let closed = self.close();
            self.pending.extend(closed);
        }
    }

    /// The aggregates of the intervals that ended by `now`, oldest first (the tick writes
    /// them).
    pub fn due(&mut self, now: u64) -> Vec<Window> {
        self.close_if_ended(now);
        std::mem::take(&mut self.pending)
    }

    /// Every aggregate held, the open interval's too, whatever its end (a drain sends them
    /// early).
    pub fn all(&mut self) -> Vec<Window> {
        let closed = self.close();
        let mut windows = std::mem::take(&mut self.pending);
        windows.extend(closed);
        windows
    }

    /// Closes the open interval: its aggregates, if it has any.
    fn close(&mut self) -> Option<Window> {
        let start = self.start.take()?;
        if self.series.is_empty() {
            return None;
        }
        self.per_metric.clear();
        self.key_bytes = 0;
        self.overflowed_this_interval = false;
        let mut series: Vec<(Series, Stats)> = self.series.drain().collect();
        series.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
        Some(Window { start, series })
    }
}

/// `metric` (4 bytes) then each value (2-byte length, bytes), values cut to
/// [`MAX_VALUE_BYTES`] at a character boundary.
fn encode<'v>(out: &mut Vec<u8>, metric: usize, values: impl Iterator<Item = &'v [u8]>) {
    out.clear();
    out.extend_from_slice(&u32::try_from(metric).unwrap_or(u32::MAX).to_le_bytes());
    for v in values {
        let v = cut(v, MAX_VALUE_BYTES);
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v);
    }
}

/// At most `max` bytes of `v`, not ending inside a UTF-8 character.
pub fn cut(v: &[u8], max: usize) -> &[u8] {
    if v.len() <= max {
        return v;
    }
    let mut end = max;
    while end > 0 && v.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
        end -= 1;
    }
    v.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_040_000 * MS; // a multiple of 60 s

    #[test]
    fn values_of_a_series_aggregate_and_the_interval_closes_on_its_boundary() {
        let mut a = Aggregator::new(60_000, 10);
        for v in [3.0, 1.0, 2.0] {
            assert_eq!(a.record(T0 + 5 * MS, 0, &[b"200", b"True"], v), Recorded::default());
        }
        a.record(T0 + 6 * MS, 0, &[b"500", b"False"], 7.0);
        assert!(a.due(T0 + 59_999 * MS).is_empty(), "still open");
        let w = a.due(T0 + 60_000 * MS).pop().unwrap();
        assert_eq!(w.start, T0);
        assert_eq!(w.series.len(), 2);
        let (key, stats) = &w.series[0];
        assert_eq!(key.values().collect::<Vec<_>>(), [&b"200"[..], b"True"]);
        assert_eq!((stats.count, stats.sum, stats.min, stats.max), (3, 6.0, 1.0, 3.0));
        assert!((stats.std_dev() - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert!(
            a.due(T0 + 200_000 * MS).is_empty(),
            "nothing recorded since: nothing to send"
        );
    }

    #[test]
    fn a_value_after_the_boundary_sets_the_interval_before_it_aside_for_the_tick() {
        let mut a = Aggregator::new(1_000, 10);
        a.record(T0 + 10 * MS, 1, &[b"x"], 1.0);
        let r = a.record(T0 + 2_500 * MS, 1, &[b"x"], 2.0);
        assert!(r.backlog.is_empty(), "the exchange writes nothing");
        let windows = a.all();
        assert_eq!(windows.len(), 2);
        assert_eq!((windows[0].start, windows[0].series[0].1.sum), (T0, 1.0));
        assert_eq!(
            (windows[1].start, windows[1].series[0].0.metric()),
            (T0 + 2_000 * MS, 1)
        );
        assert!(a.is_empty());
        for i in 0..=(MAX_PENDING as u64 + 1) {
            let r = a.record(T0 + i * 1_000 * MS, 1, &[b"x"], 1.0);
            if i == MAX_PENDING as u64 + 1 {
                assert_eq!(r.backlog.len(), MAX_PENDING + 1, "no tick for too long: written now");
            }
        }
    }

    #[test]
    fn values_beyond_the_bound_are_ignored_so_sums_stay_finite() {
        let mut a = Aggregator::new(60_000, 10);
        for v in [1e308, 1e308, 5.0, -1e16] {
            a.record(T0, 4, &[b"x"], v);
        }
        let w = a.all().pop().unwrap();
        assert_eq!((w.series[0].1.count, w.series[0].1.sum), (1, 5.0));
    }

    #[test]
    fn custom_dimensions_cannot_crowd_out_the_standard_metrics() {
        let mut a = Aggregator::new(60_000, 50_000);
        for i in 0..20_000u32 {
            let v = format!("{i:0>250}");
            a.record(T0, 4, &[v.as_bytes()], 1.0);
        }
        assert!(a.overflowed > 0, "the custom metric reached the byte budget");
        a.record(T0, Standard::Requests.index(), &[b"503", b"False"], 1.0);
        let w = a.all().pop().unwrap();
        let request = w.series.iter().find(|(k, _)| k.metric() == 0).unwrap();
        assert_eq!(request.0.values().next(), Some(&b"503"[..]));
    }

    #[test]
    fn metric_indexes_beyond_sixteen_bits_stay_apart() {
        let mut a = Aggregator::new(60_000, 10);
        a.record(T0, 65_535, &[b"x"], 1.0);
        a.record(T0, 70_000, &[b"x"], 1.0);
        let w = a.all().pop().unwrap();
        let mut metrics: Vec<usize> = w.series.iter().map(|(k, _)| k.metric()).collect();
        metrics.sort();
        assert_eq!(metrics, [65_535, 70_000]);
    }

    #[test]
    fn series_beyond_the_cap_fold_into_one_overflow_series() {
        let mut a = Aggregator::new(60_000, 2);
        let mut firsts = 0;
        for i in 0..10u32 {
            let v = i.to_string();
            firsts += usize::from(a.record(T0, 0, &[v.as_bytes(), b"k"], 1.0).first_overflow);
        }
        a.record(T0, 1, &[b"other metric"], 1.0);
        assert_eq!((a.overflowed, firsts), (8, 1), "counted each time, said once");
        let w = a.all().pop().unwrap();
        assert_eq!(w.series.len(), 4, "2 series, the overflow series, the other metric's");
        let overflow = w
            .series
            .iter()
            .find(|(k, _)| k.values().all(|v| v == OVERFLOW_VALUE))
            .unwrap();
        assert_eq!(overflow.1.count, 8);
        assert_eq!(
            overflow.0.values().count(),
            2,
            "as many values as the metric has dimensions"
        );
        a.record(T0 + 60_000 * MS, 0, &[b"new", b"k"], 1.0);
        assert_eq!(a.series_count(), 1, "the cap starts again with each interval");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary_and_key_bytes_are_bounded() {
        let long = "é".repeat(200);
        let mut a = Aggregator::new(60_000, 50_000);
        a.record(T0, 0, &[long.as_bytes()], 1.0);
        let w = a.all().pop().unwrap();
        let value = w.series[0].0.values().next().unwrap();
        assert_eq!(value.len(), 256);
        assert!(std::str::from_utf8(value).is_ok());
        let mut a = Aggregator::new(60_000, 50_000);
        for i in 0..10_000u32 {
            let v = format!("{i:0>250}");
            a.record(T0, 4, &[v.as_bytes()], 1.0); // a custom metric
        }
        assert!(a.key_bytes <= MAX_KEY_BYTES);
        assert!(a.overflowed > 0);
    }

    #[test]
    fn values_that_are_not_numbers_are_not_recorded() {
        let mut a = Aggregator::new(60_000, 10);
        a.record(T0, 0, &[], f64::NAN);
        assert!(a.all().is_empty());
    }
}
