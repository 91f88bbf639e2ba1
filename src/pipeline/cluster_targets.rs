//! The dependency target of each upstream cluster, as the last Dependency item named it
//! ([`crate::telemetry::target`]), so that an exchange counted only in the metrics gets the
//! same `dependency/target` without reading the request sent upstream (a whole header map).
//! Remembered per worker for a minute.

/// How long a cluster's target is trusted.
const TTL_NANOS: u64 = 60_000_000_000;
/// Clusters remembered at most (the oldest entry goes).
const ENTRIES: usize = 32;

use std::rc::Rc;

/// (cluster, target, when it was learned, whether an item named it)
type Entry = (Vec<u8>, Rc<[u8]>, u64, bool);

#[derive(Debug, Default)]
pub struct ClusterTargets {
    entries: Vec<Entry>,
}

impl ClusterTargets {
    /// The target last named for `cluster` within the last minute.
    pub fn get(&self, cluster: &[u8], now: u64) -> Option<Rc<[u8]>> {
        self.entries
            .iter()
            .find(|e| e.0 == cluster && now.saturating_sub(e.2) < TTL_NANOS)
            .map(|e| Rc::clone(&e.1))
    }

    /// Remembers `target` for `cluster`; one an item named (`from_item`) replaces a guess.
    pub fn remember(&mut self, cluster: &[u8], target: &Rc<[u8]>, now: u64, from_item: bool) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == cluster) {
            let newer = from_item || !e.3 || now.saturating_sub(e.2) >= TTL_NANOS;
            if newer && (e.1 != *target || e.3 != from_item || now.saturating_sub(e.2) >= TTL_NANOS / 2) {
                *e = (cluster.to_vec(), Rc::clone(target), now, from_item);
            }
            return;
        }
        if self.entries.len() >= ENTRIES {
            let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.2).map(|(i, _)| i);
            if let Some(i) = oldest {
                self.entries.swap_remove(i);
            }
        }
        self.entries.push((cluster.to_vec(), Rc::clone(target), now, from_item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_items_target_replaces_a_guess_and_is_kept_for_a_minute() {
        let mut c = ClusterTargets::default();
        let t0 = 1_700_000_000_000_000_000;
        let t = |s: &[u8]| Rc::<[u8]>::from(s);
        c.remember(b"orders", &t(b"10.0.0.5:8080"), t0, false);
        c.remember(b"orders", &t(b"orders.internal"), t0 + 1, true);
        c.remember(b"orders", &t(b"10.0.0.6:8080"), t0 + 2, false);
        assert_eq!(c.get(b"orders", t0 + 3).as_deref(), Some(&b"orders.internal"[..]));
        assert_eq!(c.get(b"orders", t0 + 1 + TTL_NANOS), None);
        for i in 0..40u8 {
            c.remember(&[i], &t(b"x"), t0 + u64::from(i), false);
        }
        assert!(c.entries.len() <= ENTRIES);
    }
}
