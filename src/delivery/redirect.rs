//! Where the ingestion service sends telemetry instead: a 307 or 308 (and a 301 or 302)
//! with a `Location`, as the official SDKs follow them (the Python exporter's transmission
//! loop, for example, re-sends to the redirect's host and keeps it). The batch goes again at
//! once to the new place, which the logger keeps for its next batches; more than
//! [`MAX_REDIRECTS_IN_A_ROW`] redirects without an answer drop the batch (counted).

use crate::connection_string::Endpoint;

/// Redirects followed one after the other before a batch is given up.
pub const MAX_REDIRECTS_IN_A_ROW: u32 = 10;

/// Statuses that redirect a track request when they come with a `Location`.
pub const REDIRECT_STATUSES: &[u16] = &[301, 302, 307, 308];

/// Where track requests go after a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `scheme://authority`, to compare with where the logger was configured to send.
    pub origin: String,
    /// The `:authority` to send.
    pub authority: String,
    /// The `:path` to send (the `Location`'s own, else the track path).
    pub path: String,
}

/// The target a `Location` names, absolute or relative to `origin` (`scheme://authority`
/// of the request that was redirected); `None` for a location that is not a valid
/// ingestion URL (validated as strictly as a connection string's `IngestionEndpoint`).
pub fn target(location: &str, origin: &str) -> Option<Target> {
    let location = location.trim();
    let absolute = if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        location.to_string()
    };
    let endpoint = Endpoint::parse(&absolute).ok()?;
    let authority = endpoint.authority();
    let path = if endpoint.base_path.is_empty() {
        endpoint.track_path()
    } else {
        endpoint.base_path.clone()
    };
    let origin = format!("{}://{authority}", endpoint.scheme.as_str());
    Some(Target {
        origin,
        authority,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_absolute_or_relative_to_the_redirected_request() {
        let t = target(
            "https://westeurope-5.in.applicationinsights.azure.com/v2.1/track",
            "https://dc.example",
        )
        .unwrap();
        assert_eq!(t.authority, "westeurope-5.in.applicationinsights.azure.com");
        assert_eq!(t.path, "/v2.1/track");
        assert_eq!(t.origin, "https://westeurope-5.in.applicationinsights.azure.com");
        let t = target("/v2/track", "http://127.0.0.1:9001").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("127.0.0.1:9001", "/v2/track"));
        let t = target("https://other.example:8443", "https://dc.example").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("other.example:8443", "/v2.1/track")
        );
    }

    #[test]
    fn locations_that_are_not_ingestion_urls_are_refused() {
        for bad in [
            "",
            "ftp://x/",
            "https://a b/",
            "https://x/?q=1",
            "https://user@x/",
            "https://x/\u{0}",
        ] {
            assert_eq!(target(bad, "https://dc.example"), None, "{bad:?}");
        }
    }
}
