//! Whether each upstream cluster speaks TLS to its backends (a Dependency's `type` is
//! `HTTP` or `HTTPS` by it). Reading it is one more call into Envoy per exchange, but it
//! changes only with the cluster's configuration: remembered per worker for a minute.

/// A cluster's TLS setting changes only with its configuration: re-read once a minute.
pub const CLUSTER_TLS_TTL_NANOS: u64 = 60_000_000_000;
/// Clusters remembered at most (the oldest entry goes).
const CLUSTER_TLS_ENTRIES: usize = 32;

/// Per cluster: whether it speaks TLS to its backends, and when that was read.
#[derive(Debug, Default)]
pub struct ClusterTls {
    entries: Vec<(Vec<u8>, bool, u64)>,
}

impl ClusterTls {
    /// Whether `cluster` uses TLS, as last read within [`CLUSTER_TLS_TTL_NANOS`] (`None`:
    /// read it and [`ClusterTls::remember`] it).
    pub fn get(&self, cluster: &[u8], now: u64) -> Option<bool> {
        self.entries
            .iter()
            .find(|e| e.0 == cluster && now.saturating_sub(e.2) < CLUSTER_TLS_TTL_NANOS)
            .map(|e| e.1)
    }

    /// Remembers a cluster's TLS (a few dozen clusters at most: the oldest entry goes).
    pub fn remember(&mut self, cluster: &[u8], tls: bool, now: u64) {
        self.entries.retain(|e| e.0 != cluster);
        if self.entries.len() >= CLUSTER_TLS_ENTRIES {
            let oldest = self.entries.iter().enumerate().min_by_key(|(_, e)| e.2).map(|(i, _)| i);
            if let Some(i) = oldest {
                self.entries.swap_remove(i);
            }
        }
        self.entries.push((cluster.to_vec(), tls, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_tls_is_remembered_for_a_minute_and_the_table_stays_small() {
        let mut c = ClusterTls::default();
        let t0 = 1_700_000_000_000_000_000;
        assert_eq!(c.get(b"orders", t0), None, "unknown: read it");
        c.remember(b"orders", true, t0);
        c.remember(b"users", false, t0);
        assert_eq!(c.get(b"orders", t0 + 1), Some(true));
        assert_eq!(c.get(b"users", t0 + 1), Some(false));
        assert_eq!(
            c.get(b"orders", t0 + CLUSTER_TLS_TTL_NANOS),
            None,
            "stale after a minute"
        );
        c.remember(b"orders", false, t0 + CLUSTER_TLS_TTL_NANOS);
        assert_eq!(
            c.get(b"orders", t0 + CLUSTER_TLS_TTL_NANOS),
            Some(false),
            "re-read value replaces the old one"
        );
        for i in 0..100u64 {
            c.remember(format!("c{i}").as_bytes(), true, t0 + 10 + i);
        }
        assert_eq!(c.entries.len(), CLUSTER_TLS_ENTRIES);
        assert_eq!(c.get(b"c99", t0 + 200), Some(true), "the newest stays");
        assert_eq!(c.get(b"c0", t0 + 200), None, "the oldest went");
    }
}
