//! `/api/metrics`: request, failure, dependency and exception counts and request
//! duration percentiles per time bucket, and the custom metrics' series.
//!
//! Counts are what Application Insights counts: the standard (pre-aggregated) metrics
//! (`_MS.MetricId` `requests/duration`, `dependencies/duration`, `exceptions/count`:
//! exact under sampling), plus the items no such metric counted (those without
//! `_MS.ProcessedByMetricExtractors`, as the service tells them apart), each weighted by
//! 100/sampleRate. So a gateway that pre-aggregates and a backend whose SDK does not
//! (or does for requests but not exceptions) add up right. Percentiles always come from
//! the Request items (the aggregates carry no distribution), weighted the same way.
//! `source` names where the request counts came from (`standard_metrics` when any
//! aggregate counted them); `sources` says it per count. Buckets run from the window's start to its newest
//! item; `bucket_s` grows so that there are at most [`MAX_BUCKETS`].

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Params;
use crate::store::{iso, Entry, Kind, Store};

/// Most buckets in one answer.
pub const MAX_BUCKETS: i64 = 1440;
const REQUESTS: &str = "requests/duration";
const DEPENDENCIES: &str = "dependencies/duration";
const EXCEPTIONS: &str = "exceptions/count";

#[derive(Default, Clone)]
struct Bucket {
    requests: f64,
    failed: f64,
    dependencies: f64,
    exceptions: f64,
    /// (duration, weight) of the request items.
    durations: Vec<(f64, f64)>,
}

/// Which counts come from standard metrics.
#[derive(Default)]
struct Standard {
    requests: bool,
    dependencies: bool,
    exceptions: bool,
}

/// The window: `[since, until]` in ms and the bucket width.
struct Window {
    /// The first time counted (`since`).
    from_ms: i64,
    /// The first bucket's start (`from_ms` rounded down to a bucket).
    start_ms: i64,
    end_ms: i64,
    bucket_ms: i64,
}

impl Window {
    fn of(store: &Store, params: &Params) -> Result<Window, String> {
        let since = params.time("since")?;
        let until = params.time("until")?;
        let bucket_s = params.number::<i64>("bucket_s")?.unwrap_or(60).max(1);
        let in_range = |t: i64| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u);
        let times = store.newest_first().map(|e| e.rec.time_ms).filter(|&t| in_range(t));
        let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let start = since.unwrap_or(if lo == i64::MAX { 0 } else { lo });
        let end = until.unwrap_or(hi).max(start);
        let mut bucket_ms = bucket_s.saturating_mul(1000);
        let span = end.saturating_sub(start).saturating_add(1);
        if span / bucket_ms >= MAX_BUCKETS {
            bucket_ms = (span / MAX_BUCKETS / 1000 + 1) * 1000;
        }
        let start_ms = start.div_euclid(bucket_ms) * bucket_ms;
        Ok(Window {
            from_ms: start,
            start_ms,
            end_ms: end,
            bucket_ms,
        })
    }

    fn contains(&self, t: i64) -> bool {
        t >= self.from_ms && t <= self.end_ms
    }

    fn index(&self, t: i64) -> usize {
        (t.saturating_sub(self.start_ms) / self.bucket_ms).max(0) as usize
    }

    fn len(&self) -> usize {
        if self.end_ms < self.start_ms {
            return 0;
        }
        self.index(self.end_ms) + 1
    }
}

/// The buckets and custom series of the window `since`..`until` (default: all stored).
pub fn metrics(store: &Store, params: &Params) -> Result<Value, String> {
    let window = Window::of(store, params)?;
    let in_window = || store.newest_first().filter(|e| window.contains(e.rec.time_ms));
    let standard = standard_kinds(in_window());
    let mut buckets = vec![Bucket::default(); if store.is_empty() { 0 } else { window.len() }];
    for e in in_window() {
        if let Some(b) = buckets.get_mut(window.index(e.rec.time_ms)) {
            add(b, e, &standard);
        }
    }
    let buckets: Vec<Value> = buckets
        .into_iter()
        .enumerate()
        .map(|(i, b)| bucket_json(window.start_ms + i as i64 * window.bucket_ms, b))
        .collect();
    let source = |std: bool| if std { "standard_metrics" } else { "items" };
    Ok(json!({
        "bucket_s": window.bucket_ms / 1000,
        "source": source(standard.requests),
        "sources": {"requests": source(standard.requests), "dependencies": source(standard.dependencies),
            "exceptions": source(standard.exceptions)},
        "buckets": buckets,
        "custom": custom(in_window()),
    }))
}

fn standard_kinds<'a>(items: impl Iterator<Item = &'a Entry>) -> Standard {
    let mut found = Standard::default();
    for e in items {
        match e.rec.metric.as_ref().and_then(|m| m.metric_id.as_deref()) {
            Some(REQUESTS) => found.requests = true,
            Some(DEPENDENCIES) => found.dependencies = true,
            Some(EXCEPTIONS) => found.exceptions = true,
            _ => {}
        }
    }
    found
}

fn add(b: &mut Bucket, e: &Entry, std: &Standard) {
    let r = &e.rec;
    let w = r.weight();
    match (r.kind, r.metric.as_deref()) {
        (Kind::Request, _) => {
            if let Some(d) = r.duration_ms {
                b.durations.push((d, w));
            }
            if !counted(r, std.requests) {
                b.requests += w;
                b.failed += if r.success == Some(false) { w } else { 0.0 };
            }
        }
        (Kind::Dependency, _) if !counted(r, std.dependencies) => b.dependencies += w,
        (Kind::Exception, _) if !counted(r, std.exceptions) => b.exceptions += w,
        (Kind::Metric, Some(m)) => match m.metric_id.as_deref() {
            Some(REQUESTS) => {
                b.requests += m.count;
                b.failed += if m.success == Some(false) { m.count } else { 0.0 };
            }
            Some(DEPENDENCIES) => b.dependencies += m.count,
            Some(EXCEPTIONS) => b.exceptions += m.count,
            _ => {}
        },
        _ => {}
    }
}

/// Whether a pre-aggregated metric counted this item: it is marked, and the window holds
/// aggregates of its kind (a marked item whose aggregate was not received counts itself).
fn counted(r: &crate::store::Record, aggregates_present: bool) -> bool {
    r.pre_aggregated && aggregates_present
}

fn bucket_json(start_ms: i64, mut b: Bucket) -> Value {
    b.durations.sort_by(|x, y| x.0.total_cmp(&y.0));
    let p = |q: f64| percentile(&b.durations, q);
    json!({"start": iso(start_ms), "requests": b.requests, "failed": b.failed,
        "duration_p50": p(0.5), "duration_p95": p(0.95), "duration_p99": p(0.99),
        "dependencies": b.dependencies, "exceptions": b.exceptions})
}

/// The weighted `q`-quantile of `(value, weight)` sorted by value (`None` when empty).
pub fn percentile(sorted: &[(f64, f64)], q: f64) -> Option<f64> {
    let total: f64 = sorted.iter().map(|(_, w)| w).sum();
    let mut seen = 0.0;
    for (value, weight) in sorted {
        seen += weight;
        if seen >= q * total {
            return Some(*value);
        }
    }
    sorted.last().map(|(v, _)| *v)
}

#[derive(Default)]
struct Series {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
}

/// Custom (not standard) metrics by name and namespace, one series per dimension set.
fn custom<'a>(items: impl Iterator<Item = &'a Entry>) -> Vec<Value> {
    type Key<'a> = (&'a str, &'a str);
    let mut metrics: BTreeMap<Key, BTreeMap<&BTreeMap<String, String>, Series>> = BTreeMap::new();
    for m in items
        .filter_map(|e| e.rec.metric.as_deref())
        .filter(|m| m.metric_id.is_none())
    {
        let series = metrics.entry((m.name.as_str(), m.namespace.as_str())).or_default();
        let s = series.entry(&m.dimensions).or_insert(Series {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Series::default()
        });
        s.count += m.count;
        s.sum += m.value;
        s.min = s.min.min(m.min);
        s.max = s.max.max(m.max);
    }
    let series_json = |(dims, s): (&BTreeMap<String, String>, Series)| json!({"dimensions": dims, "count": s.count, "sum": s.sum, "min": s.min, "max": s.max});
    metrics
        .into_iter()
        .map(|((name, namespace), series)| {
            let series: Vec<Value> = series.into_iter().map(series_json).collect();
            json!({"name": name, "namespace": namespace, "series": series})
        })
        .collect()
}
