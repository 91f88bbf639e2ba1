//! Store tests: bounds by count and bytes, sequence numbers, persistence and reload.

use super::*;
use crate::sample::{self, Op};
use std::time::SystemTime;

fn op(n: i64) -> Op<'static> {
    Op {
        operation_id: "op",
        operation_name: "GET /api",
        role: "gateway",
        time_ms: 1_790_000_000_000 + n,
        sample_rate: 100.0,
    }
}

fn traces(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| sample::trace(&op(i as i64), "", &format!("line {i}"), "Information"))
        .collect()
}

#[test]
fn samples_pass_the_schema() {
    let o = op(0);
    let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(o.time_ms as u64);
    let items = [
        sample::request(&o, "r1", "", 500, 12.5),
        sample::dependency(&o, "d1", "r1", "backend:8080", 200, 3.0),
        sample::exception(&o, "r1", "IOError", "boom"),
        sample::trace(&o, "r1", "hello", "Warning"),
        sample::metric(&o, "queue", "app", [3.0, 2.0, 1.0, 2.0], serde_json::json!({"q": "a"})),
        sample::availability(&o, "a1", "ping", "local", true),
    ];
    for item in items {
        crate::schema::validate_envelope(&item, now).unwrap_or_else(|e| panic!("{e}: {item}"));
    }
}

#[test]
fn items_get_increasing_seqs_and_the_oldest_go_beyond_max_items() {
    let mut store = Store::new(Limits {
        max_items: 3,
        ..Limits::default()
    });
    store.push_all(&traces(5), 7);
    assert_eq!(store.len(), 3);
    assert_eq!(store.seq_range(), Some((3, 5)));
    assert!(store.get(2).is_none());
    assert_eq!(store.get(4).unwrap().rec.name, "line 3");
    assert_eq!(store.get(4).unwrap().received_ms, 7);
    assert_eq!(store.count_of(Kind::Message), 3);
    let seqs: Vec<u64> = store.before(5).map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 3]);
    let seqs: Vec<u64> = store.newest_first().map(|e| e.seq).collect();
    assert_eq!(seqs, [5, 4, 3]);
}

#[test]
fn the_byte_bound_evicts_too_but_keeps_the_newest_item() {
    let items = traces(10);
    let one = items[0].to_string().len() + ENTRY_OVERHEAD_BYTES;
    let mut store = Store::new(Limits {
        max_bytes: one * 4,
        ..Limits::default()
    });
    store.push_all(&items, 0);
    assert_eq!(store.len(), 4);
    assert!(store.bytes() <= one * 4);
    let mut tiny = Store::new(Limits {
        max_bytes: 1,
        ..Limits::default()
    });
    tiny.push_all(&items, 0);
    assert_eq!(tiny.len(), 1, "a single item larger than the bound is still kept");
}

#[test]
fn rejected_items_are_bounded_and_truncated() {
    let mut store = Store::new(Limits {
        max_rejected: 2,
        ..Limits::default()
    });
    for i in 0..3 {
        store.reject(1, i, &format!("reason {i}"), &"x".repeat(5000));
    }
    let kept: Vec<&Rejected> = store.rejected().collect();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].reason, "reason 2");
    assert_eq!(kept[0].line.len(), REJECTED_LINE_CHARS);
    assert_eq!(store.rejected_total(), 3);
}

#[test]
fn a_store_file_is_appended_and_its_newest_items_load_back() {
    let dir = std::env::temp_dir().join(format!("appinsights-local-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("items.ndjson");
    let _ = std::fs::remove_file(&path);
    let limits = Limits {
        max_items: 3,
        ..Limits::default()
    };
    {
        let mut store = Store::open(limits, &path).unwrap();
        store.push_all(&traces(4), 1);
        store.push_all(&traces(1), 2);
    }
    let mut file_text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(file_text.lines().count(), 5);
    file_text.push_str("not json\n");
    std::fs::write(&path, file_text).unwrap();
    let store = Store::open(limits, &path).unwrap();
    let names: Vec<&str> = store.newest_first().map(|e| e.rec.name.as_str()).collect();
    assert_eq!(
        names,
        ["line 0", "line 3", "line 2"],
        "the newest three lines, unparsable ones skipped"
    );
    assert_eq!(store.get(3).unwrap().received_ms, store.get(3).unwrap().rec.time_ms);
    std::fs::remove_dir_all(&dir).unwrap();
}
