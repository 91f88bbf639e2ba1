//! The backend call, read at log time: attempts, cluster, latency, and for a Dependency
//! item also the TLS, the address and the request as sent upstream. The call's `target`
//! ([`crate::telemetry::target`]) is worked out from what an item reads; an exchange
//! counted only in the metrics takes the cluster's last known target instead of reading
//! the request sent upstream (a whole header map), so `dependency/target` agrees with the
//! items.

use super::Pipeline;
use crate::exchange::{Backend, Frontend};
use crate::host::{Attribute, HeaderMapKind, Host};
use crate::telemetry::target;
use std::rc::Rc;

/// How to read: whether the filter's clock may time the call (a clean exchange whose
/// `now` was read for it), the client's `:authority`, and whether a Dependency item is
/// written.
pub type How<'a> = (bool, &'a [u8], bool);

/// The backend call, if one was attempted (`forwarded_at`: when the filter passed the
/// request on, 0 if not taken). On a clean exchange the timing comes from the filter's
/// clock (from forwarding the request to the end of the exchange, which the access-log
/// callback marks) and the cluster's TLS from a per-cluster cache.
pub fn read(
    p: &mut Pipeline,
    host: &mut impl Host,
    how: How<'_>,
    forwarded_at: Option<u64>,
    now: u64,
) -> Option<Backend> {
    let (clean, client_authority, item) = how;
    let attempts = host.property_u64(Attribute::UpstreamRequestAttemptCount).unwrap_or(0);
    if attempts == 0 {
        return None;
    }
    let cluster = host.property(Attribute::ClusterName).unwrap_or_default();
    let timed = forwarded_at.filter(|&at| clean && at > 0 && now >= at);
    let latency_nanos = match timed {
        Some(at) => Some(now - at),
        None => host.property_u64(Attribute::ResponseBackendLatency),
    };
    let attempts = attempts.min(u64::from(u32::MAX)) as u32;
    if !item {
        let target = known_target(p, host, &cluster, now);
        // (Every field given: a default target would allocate.)
        return Some(Backend {
            attempts,
            cluster,
            address: None,
            latency_nanos,
            tls: false,
            request: Frontend::default(),
            target,
        });
    }
    let tls = cluster_tls(p, host, &cluster, clean, now);
    let address = host.property(Attribute::UpstreamAddress);
    // At log time the request headers are the ones sent upstream (after rewrites).
    let request = Frontend::from_headers(host.header_map(HeaderMapKind::Request));
    let target = {
        let named = target::of(client_authority, request.authority(), &cluster, address.as_deref());
        // The cluster's cached target when it is the same (the usual case): no copy.
        match p.cluster_targets.get(&cluster, now) {
            Some(known) if *known == *named => known,
            _ => Rc::from(&*named),
        }
    };
    p.cluster_targets.remember(&cluster, &target, now, true);
    Some(Backend {
        attempts,
        cluster,
        address,
        latency_nanos,
        tls,
        request,
        target,
    })
}

/// The target of a call counted only in the metrics: as the cluster's last Dependency
/// named it, else from an Istio cluster's name or (once per cluster and minute) the
/// address of the host that served it.
fn known_target(p: &mut Pipeline, host: &mut impl Host, cluster: &[u8], now: u64) -> Rc<[u8]> {
    if let Some(t) = p.cluster_targets.get(cluster, now) {
        return t;
    }
    let address = target::istio_service(cluster)
        .is_none()
        .then(|| host.property(Attribute::UpstreamAddress))
        .flatten();
    let t: Rc<[u8]> = Rc::from(&*target::of(b"", b"", cluster, address.as_deref()));
    p.cluster_targets.remember(cluster, &t, now, false);
    t
}

/// Whether `cluster` speaks TLS: from the per-cluster cache on a clean exchange, else read.
fn cluster_tls(p: &mut Pipeline, host: &mut impl Host, cluster: &[u8], clean: bool, now: u64) -> bool {
    if let Some(tls) = p.cluster_tls.get(cluster, now).filter(|_| clean) {
        return tls;
    }
    let tls = host
        .property(Attribute::UpstreamTlsVersion)
        .is_some_and(|v| !v.is_empty());
    p.cluster_tls.remember(cluster, tls, now);
    tls
}
