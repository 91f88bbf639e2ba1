//! `/api/summary`, `/api/items` (filters and paging), `/api/items/{seq}`, `/api/rejected`.

use serde_json::{json, Map, Value};

use super::{summary_json, Params};
use crate::store::{iso, Entry, Kind, Store, KINDS};

/// `total` counts matching items up to this many.
pub const MAX_TOTAL: usize = 100_000;

/// `/api/summary`: counts, capacity, the seq range and the items per type.
pub fn summary(store: &Store) -> Value {
    let by_type: Map<String, Value> = KINDS
        .iter()
        .map(|k| (k.base_type().to_string(), json!(store.count_of(*k))))
        .filter(|(_, n)| n != &json!(0))
        .collect();
    let (oldest, newest) = store.seq_range().unwrap_or((0, 0));
    let limits = store.limits();
    json!({
        "items": store.len(),
        "rejected": store.rejected().count(),
        "rejected_total": store.rejected_total(),
        "capacity": limits.max_items,
        "bytes": store.bytes(),
        "max_bytes": limits.max_bytes,
        "oldest_seq": oldest,
        "newest_seq": newest,
        "by_type": by_type,
    })
}

/// What `/api/items` filters on.
#[derive(Debug, Default)]
pub struct Filter {
    pub kind: Option<Kind>,
    /// Matched case-insensitively (ASCII) against the item's JSON.
    pub q: Option<Needle>,
    pub operation_name: Option<String>,
    pub result: Option<String>,
    pub success: Option<bool>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Filter {
    /// The filter of a request's parameters.
    pub fn of(params: &Params, store: &Store) -> Result<Filter, String> {
        let kind = match params.get("type") {
            None => None,
            Some(t) => match Kind::from_base_type(t) {
                Kind::Other => return Err(format!("type: {t:?} is not a known baseType")),
                kind => Some(kind),
            },
        };
        Ok(Filter {
            kind,
            q: params
                .get("q")
                .map(|q| Needle::new(q, store.newest_first().take(64).map(|e| e.text.as_str()))),
            operation_name: params.get("operation_name").map(str::to_string),
            result: params.get("result").map(str::to_string),
            success: params.boolean("success")?,
            since_ms: params.time("since")?,
            until_ms: params.time("until")?,
        })
    }

    /// Whether `e` passes (the cheap fields first, the text search last).
    pub fn matches(&self, e: &Entry) -> bool {
        let r = &e.rec;
        self.kind.is_none_or(|k| r.kind == k)
            && self.since_ms.is_none_or(|t| r.time_ms >= t)
            && self.until_ms.is_none_or(|t| r.time_ms <= t)
            && self.success.is_none_or(|s| r.success == Some(s))
            && self.result.as_deref().is_none_or(|x| r.result.as_deref() == Some(x))
            && self.operation_name.as_deref().is_none_or(|x| r.operation_name == x)
            && self.q.as_ref().is_none_or(|q| q.found_in(&e.text))
    }
}

/// A lower-cased search text and the position of its rarest byte, the anchor that
/// memchr looks for (in either case) before comparing the whole text.
#[derive(Debug, Default)]
pub struct Needle {
    lower: Vec<u8>,
    anchor: usize,
}

impl Needle {
    /// `text` lower-cased; the anchor is the byte least frequent in `sample`.
    pub fn new<'a>(text: &str, sample: impl Iterator<Item = &'a str>) -> Needle {
        let lower = text.to_lowercase().into_bytes();
        let mut freq = [0u32; 256];
        for b in sample.flat_map(str::bytes) {
            if let Some(f) = freq.get_mut(usize::from(b.to_ascii_lowercase())) {
                *f += 1;
            }
        }
        let rank = |b: &u8| freq.get(usize::from(*b)).copied().unwrap_or(0);
        let anchor = (0..lower.len())
            .min_by_key(|&i| lower.get(i).map_or(0, rank))
            .unwrap_or(0);
        Needle { lower, anchor }
    }

    /// Whether `hay` contains the text, ignoring ASCII case.
    pub fn found_in(&self, hay: &str) -> bool {
        let (hay, needle) = (hay.as_bytes(), self.lower.as_slice());
        let Some(&anchor) = needle.get(self.anchor) else {
            return true;
        };
        let Some(last_start) = hay.len().checked_sub(needle.len()) else {
            return false;
        };
        let Some(candidates) = hay.get(self.anchor..=last_start + self.anchor) else {
            return false;
        };
        memchr::memchr2_iter(anchor, anchor.to_ascii_uppercase(), candidates).any(|at| {
            hay.get(at..at + needle.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(needle))
        })
    }
}

/// `/api/items`: matching items' summaries, newest first, one page.
pub fn items(store: &Store, params: &Params) -> Result<Value, String> {
    let filter = Filter::of(params, store)?;
    let limit = params.limit()?;
    let before = params.number::<u64>("before_seq")?.unwrap_or(u64::MAX);
    let (mut total, mut page) = (0usize, Vec::new());
    for e in store.newest_first() {
        if page.len() >= limit && total >= MAX_TOTAL {
            break;
        }
        if !filter.matches(e) {
            continue;
        }
        total += 1;
        if e.seq < before && page.len() < limit {
            page.push(summary_json(e));
        }
    }
    Ok(json!({"total": total.min(MAX_TOTAL), "items": page}))
}

/// `/api/items/{seq}`: the full envelope.
pub fn item(store: &Store, seq: u64) -> Option<Value> {
    let e = store.get(seq)?;
    let envelope: Value = serde_json::from_str(&e.text).unwrap_or(Value::Null);
    Some(json!({"seq": e.seq, "received": iso(e.received_ms), "envelope": envelope}))
}

/// `/api/rejected`: the newest `limit` rejected items with the validator's reason.
pub fn rejected(store: &Store, limit: usize) -> Value {
    let items: Vec<Value> = store
        .rejected()
        .take(limit)
        .map(|r| json!({"received": iso(r.received_ms), "index": r.index, "reason": r.reason, "line": r.line}))
        .collect();
    json!({"items": items, "total": store.rejected_total()})
}
