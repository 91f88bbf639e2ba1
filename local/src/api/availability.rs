//! `/api/availability`: availability results grouped by test name and location.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::summary_json;
use crate::store::{Entry, Kind, Store};

/// Results listed per test (newest first).
pub const MAX_RESULTS: usize = 50;

#[derive(Default)]
struct Test<'a> {
    runs: u64,
    passed: u64,
    results: Vec<&'a Entry>,
}

/// Every test with its runs, passes, newest result and the newest results.
pub fn availability(store: &Store) -> Value {
    let mut tests: BTreeMap<(&str, &str), Test> = BTreeMap::new();
    for e in store.newest_first().filter(|e| e.rec.kind == Kind::Availability) {
        let location = e.rec.target.as_deref().unwrap_or("");
        let test = tests.entry((e.rec.name.as_str(), location)).or_default();
        test.runs += 1;
        test.passed += u64::from(e.rec.success == Some(true));
        if test.results.len() < MAX_RESULTS {
            test.results.push(e);
        }
    }
    let tests: Vec<Value> = tests
        .into_iter()
        .map(|((name, location), t)| {
            let results: Vec<Value> = t.results.iter().map(|e| summary_json(e)).collect();
            let last = results.first().cloned().unwrap_or(Value::Null);
            json!({"name": name, "location": location, "runs": t.runs, "passed": t.passed,
                "last": last, "results": results})
        })
        .collect();
    json!({"tests": tests})
}
