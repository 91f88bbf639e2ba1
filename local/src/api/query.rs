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
    /// Lower-cased; matched case-insensitively (ASCII) against the item's JSON.
    pub q: Option<String>,
    pub operation_name: Option<String>,
    pub result: Option<String>,
    pub success: Option<bool>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Filter {
    /// The filter of a request's parameters.
    pub fn of(params: &Params) -> Result<Filter, String> {
        let kind = match params.get("type") {
            None => None,
            Some(t) => match Kind::from_base_type(t) {
                Kind::Other => return Err(format!("type: {t:?} is not a known baseType")),
                kind => Some(kind),
            },
        };
        Ok(Filter {
            kind,
            q: params.get("q").map(str::to_lowercase),
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
            && self.q.as_deref().is_none_or(|q| contains_ignore_ascii_case(&e.text, q))
    }
}

/// Whether `hay` contains `needle_lower` (already lower-case), ignoring ASCII case.
pub fn contains_ignore_ascii_case(hay: &str, needle_lower: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle_lower.as_bytes());
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let upper = first.to_ascii_uppercase();
    let last_start = match hay.len().checked_sub(needle.len()) {
        Some(n) => n,
        None => return false,
    };
    let mut i = 0;
    while i <= last_start {
        let Some(offset) = hay
            .get(i..=last_start)
            .and_then(|h| h.iter().position(|&b| b == first || b == upper))
        else {
            return false;
        };
        let start = i + offset + 1;
        if hay
            .get(start..start + rest.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(rest))
        {
            return true;
        }
        i = start;
    }
    false
}

/// `/api/items`: matching items' summaries, newest first, one page.
pub fn items(store: &Store, params: &Params) -> Result<Value, String> {
    let filter = Filter::of(params)?;
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
