//! `/api/failures`: exceptions, failed requests and failed dependencies, grouped.
//!
//! `count` is the number of stored items of the group, `estimated` the sampling-weighted
//! count (the sum of 100/sampleRate), `last_seq` the newest item's seq. Groups are
//! sorted by count, largest first.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::Params;
use crate::store::{Entry, Kind, Store};

#[derive(Default)]
struct Group {
    count: u64,
    estimated: f64,
    last_seq: u64,
}

impl Group {
    fn add(&mut self, e: &Entry) {
        self.count += 1;
        self.estimated += e.rec.weight();
        self.last_seq = self.last_seq.max(e.seq);
    }
}

type Groups<'a> = HashMap<(&'a str, &'a str), Group>;

/// Groups since `since` (default: everything stored).
pub fn failures(store: &Store, params: &Params) -> Result<Value, String> {
    let since = params.time("since")?.unwrap_or(i64::MIN);
    let (mut exceptions, mut requests, mut dependencies) = (Groups::new(), Groups::new(), Groups::new());
    for e in store.newest_first().filter(|e| e.rec.time_ms >= since) {
        let r = &e.rec;
        let result = r.result.as_deref().unwrap_or("");
        let group = match r.kind {
            Kind::Exception => exceptions.entry((r.name.as_str(), r.operation_name.as_str())),
            Kind::Request if r.success == Some(false) => requests.entry((r.operation_name.as_str(), result)),
            Kind::Dependency if r.success == Some(false) => {
                let target = r.target.as_deref().unwrap_or(r.name.as_str());
                dependencies.entry((target, result))
            }
            _ => continue,
        };
        group.or_default().add(e);
    }
    Ok(json!({
        "exceptions": listed(exceptions, |(t, op)| json!({"type": t, "operation_name": op})),
        "failed_requests": listed(requests, |(op, res)| json!({"operation_name": op, "result": res})),
        "failed_dependencies": listed(dependencies, |(target, res)| json!({"target": target, "result": res})),
    }))
}

fn listed<'a>(groups: Groups<'a>, key: impl Fn((&'a str, &'a str)) -> Value) -> Vec<Value> {
    let mut groups: Vec<((&str, &str), Group)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    groups
        .into_iter()
        .map(|(k, g)| {
            let mut v = key(k);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("count".into(), json!(g.count));
                obj.insert("items".into(), json!(g.count));
                obj.insert("estimated".into(), json!(g.estimated));
                obj.insert("last_seq".into(), json!(g.last_seq));
            }
            v
        })
        .collect()
}
