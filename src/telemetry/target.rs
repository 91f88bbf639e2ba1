//! A Dependency's `target`: the host the gateway actually called, as the SDKs name an HTTP
//! dependency's target (`host[:port]`), so the Application Map draws the backend rather
//! than the gateway calling its own host (Envoy passes the client's `Host` on unless a
//! route rewrites it). In order:
//!
//! 1. the `:authority` sent upstream, when it is not the client's (a route rewrote it:
//!    `host_rewrite_literal`, `auto_host_rewrite`, …);
//! 2. the service an Istio cluster names (`outbound|<port>|<subset>|<fqdn>`): `<fqdn>:<port>`,
//!    stable however many pods serve it;
//! 3. the address of the host that served the call (`upstream.address`);
//! 4. the `:authority` as sent.
//!
//! The Envoy cluster is on the item as the `Envoy Cluster` property.

use std::borrow::Cow;

/// The target, from what the filter knows of the call (`address`: `None` when not read).
pub fn of<'a>(
    client_authority: &[u8],
    sent_authority: &'a [u8],
    cluster: &[u8],
    address: Option<&'a [u8]>,
) -> Cow<'a, [u8]> {
    if !sent_authority.is_empty() && !sent_authority.eq_ignore_ascii_case(client_authority) {
        return Cow::Borrowed(sent_authority);
    }
    if let Some(service) = istio_service(cluster) {
        return Cow::Owned(service);
    }
    Cow::Borrowed(address.filter(|a| !a.is_empty()).unwrap_or(sent_authority))
}

/// `<fqdn>:<port>` of an Istio outbound cluster name (`outbound|9080||reviews.ns.svc.cluster.local`).
pub fn istio_service(cluster: &[u8]) -> Option<Vec<u8>> {
    let mut parts = cluster.split(|&b| b == b'|');
    let (Some(b"outbound"), Some(port), Some(_subset), Some(fqdn), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if fqdn.is_empty() || port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some([fqdn, b":", port].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_authority_names_the_backend() {
        let t = of(
            b"api.contoso.com",
            b"orders.internal:8080",
            b"orders",
            Some(b"10.0.0.5:8080"),
        );
        assert_eq!(&*t, b"orders.internal:8080");
    }

    #[test]
    fn without_a_rewrite_the_host_that_served_the_call_does() {
        let t = of(
            b"api.contoso.com",
            b"api.contoso.com",
            b"orders",
            Some(b"10.0.0.5:8080"),
        );
        assert_eq!(&*t, b"10.0.0.5:8080", "not the gateway's own host");
        assert_eq!(
            &*of(b"API.contoso.com", b"api.contoso.com", b"orders", None),
            b"api.contoso.com"
        );
    }

    #[test]
    fn an_istio_cluster_names_its_service() {
        let cluster = b"outbound|9080||reviews.default.svc.cluster.local";
        assert_eq!(
            &*of(
                b"bookinfo.example",
                b"bookinfo.example",
                cluster,
                Some(b"10.1.2.3:9080")
            ),
            b"reviews.default.svc.cluster.local:9080"
        );
        assert_eq!(
            istio_service(b"outbound|9080|v2|reviews"),
            Some(b"reviews:9080".to_vec())
        );
        assert_eq!(istio_service(b"inbound|9080||"), None);
        assert_eq!(istio_service(b"outbound|x||reviews"), None);
        assert_eq!(istio_service(b"backend"), None);
    }
}
