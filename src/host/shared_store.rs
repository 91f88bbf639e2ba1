//! Envoy's shared data, played in memory for [`super::fake::FakeHost`]: values with a
//! version (`cas`) that every write bumps, and a write that fails when the version it
//! was given is no longer current. Cloning a store shares it, so two fake hosts holding
//! clones play two workers of one Envoy.
//!
//! The rules are Envoy's (`source/extensions/common/wasm/context.cc`, `SharedData::set`):
//! a `cas` of 0 writes unconditionally; a key that does not exist is written whatever
//! `cas` says; every write gives the value a new version, never 0.
//!
//! Workers run at the same time in Envoy; tests make them read before any of them writes
//! with [`SharedStore::hold_reads`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Shared values by key, each with its version. Clones share the same values.
#[derive(Debug, Clone, Default)]
pub struct SharedStore(Rc<RefCell<Store>>);

#[derive(Debug, Default)]
struct Store {
    values: HashMap<String, (Vec<u8>, u32)>,
    last_cas: u32,
    /// What reads see while held: the values when they were held.
    held: Option<HashMap<String, (Vec<u8>, u32)>>,
}

impl SharedStore {
    /// The value under `key` and its version.
    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let store = self.0.borrow();
        store.held.as_ref().unwrap_or(&store.values).get(key).cloned()
    }

    /// Until [`SharedStore::release_reads`], reads see the values as they are now, while
    /// writes go on (and are checked against the current versions): as if every worker
    /// read before any of them wrote.
    pub fn hold_reads(&self) {
        let mut store = self.0.borrow_mut();
        store.held = Some(store.values.clone());
    }

    pub fn release_reads(&self) {
        self.0.borrow_mut().held = None;
    }

    /// Writes `value` under `key` unless the key exists with a version other than a
    /// non-zero `cas` (then `false`, nothing written).
    pub fn set(&self, key: &str, value: &[u8], cas: u32) -> bool {
        let mut store = self.0.borrow_mut();
        let current = store.values.get(key).map(|(_, c)| *c);
        if cas != 0 && current.is_some_and(|c| c != cas) {
            return false;
        }
        store.last_cas = store.last_cas.wrapping_add(1).max(1);
        let next = store.last_cas;
        store.values.insert(key.to_string(), (value.to_vec(), next));
        true
    }

    /// Forgets every value (Envoy restarted).
    pub fn clear(&self) {
        self.0.borrow_mut().values.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_with_a_stale_version_fails_and_a_current_one_bumps_it() {
        let store = SharedStore::default();
        let worker = store.clone();
        assert!(store.get("k").is_none());
        assert!(store.set("k", b"a", 0));
        let (value, cas) = worker.get("k").unwrap();
        assert_eq!(value, b"a");
        assert!(store.set("k", b"b", cas), "the current version");
        assert!(!worker.set("k", b"c", cas), "stale: someone wrote in between");
        assert_eq!(store.get("k").unwrap().0, b"b");
        let (_, newer) = store.get("k").unwrap();
        assert!(newer > cas);
        assert!(worker.set("k", b"d", 0), "0 writes whatever is there");
    }

    #[test]
    fn held_reads_see_the_old_value_and_only_the_first_write_with_its_version_wins() {
        let store = SharedStore::default();
        assert!(store.set("k", b"a", 0));
        store.hold_reads();
        let (_, cas) = store.get("k").unwrap();
        assert!(store.set("k", b"b", cas));
        assert_eq!(store.get("k").unwrap(), (b"a".to_vec(), cas), "still the old read");
        assert!(!store.set("k", b"c", cas), "the second worker's write is stale");
        store.release_reads();
        assert_eq!(store.get("k").unwrap().0, b"b");
    }

    #[test]
    fn creating_a_key_cannot_be_compared_and_swapped() {
        let store = SharedStore::default();
        assert!(store.set("new", b"x", 12345), "as Envoy: an absent key is written");
        assert!(store.set("other", b"y", 0));
    }
}
