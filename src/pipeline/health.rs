//! The gateway's health endpoint (`availability.health_path`): a `GET` or `HEAD` of
//! exactly that path (its query aside) is answered by the filter itself, 200 with
//! `{"status":"ok"}`, at request headers. It never reaches a backend and writes no
//! telemetry: it is what an Application Insights standard availability test probes from
//! outside, so its results say whether the gateway answers, and its own traffic must not
//! show up as requests (APIM's availability monitor does the same for its gateway).
//!
//! The decision reads nothing more from Envoy: the request's `:path` and `:method` are in
//! the header map the stream reads anyway. Only the answer itself is one more call.

use crate::config::Availability;
use crate::exchange::Frontend;
use crate::host::{Host, LocalResponse};

/// The body of a `GET`.
pub const BODY: &[u8] = br#"{"status":"ok"}"#;
/// Envoy's `response_code_details` of the answer (in access logs).
const DETAILS: &str = "appinsights_health_check";

/// Whether `request` is a health check this filter answers.
pub fn is_health_check(availability: &Availability, request: &Frontend) -> bool {
    let Some(path) = availability.health_path.as_deref() else {
        return false;
    };
    request.path() == path.as_bytes() && matches!(request.method(), b"GET" | b"HEAD")
}

/// Answers the health check (`head`: without a body).
pub fn answer(host: &mut impl Host, head: bool) {
    let headers = [
        ("content-type", "application/json"),
        // A probe must see the gateway, never a cache's copy of an earlier answer.
        ("cache-control", "no-store"),
    ];
    host.send_response(&LocalResponse {
        status: 200,
        details: DETAILS,
        headers: &headers,
        body: if head { &[] } else { BODY },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::HeaderMap;

    fn request(method: &str, path: &str) -> Frontend {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":method", method.as_bytes()), (b":path", path.as_bytes())];
        Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize(pairs)))
    }

    #[test]
    fn only_get_and_head_of_exactly_the_path_are_health_checks() {
        let on = Availability {
            health_path: Some("/healthz".into()),
            ..Availability::default()
        };
        assert!(is_health_check(&on, &request("GET", "/healthz")));
        assert!(is_health_check(&on, &request("HEAD", "/healthz?probe=azure")));
        for (method, path) in [
            ("POST", "/healthz"),
            ("GET", "/healthz/"),
            ("GET", "/healthz2"),
            ("GET", "/Healthz"),
            ("GET", "/api/healthz"),
        ] {
            assert!(!is_health_check(&on, &request(method, path)), "{method} {path}");
        }
        assert!(
            !is_health_check(&Availability::default(), &request("GET", "/healthz")),
            "off by default"
        );
    }
}
