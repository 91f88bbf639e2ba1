//! Why an exchange failed, in stable, low-cardinality terms.
//!
//! API Management reports an exception for every failed request: the client closed the
//! connection, the gateway failed the request, or the status is 4xx/5xx. Here the kind
//! comes from Envoy's response flags first (what went wrong inside the gateway), then from
//! where the status came from (the backend, or Envoy itself). The type names are part of
//! the product's interface: alerts and workbooks group by them, so they never change
//! meaning. Where APIM has a name for the same failure, it is used (the reasons of its
//! error-handling reference: `ClientConnectionFailure`, `BackendConnectionFailure` for
//! every way the backend could not be reached or dropped the connection, `Timeout`,
//! `OperationNotFound`, `RateLimitExceeded`); Envoy's flags, in the `Response Flags`
//! property, keep the detail.

use crate::exchange::{flags, Outcome};

/// A failure kind: exception `typeName`, and what it means in one phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub type_name: &'static str,
    pub meaning: &'static str,
    /// Whether the backend call itself failed (then the dependency failed too).
    pub backend_failed: bool,
}

const fn kind(type_name: &'static str, meaning: &'static str, backend_failed: bool) -> Kind {
    Kind {
        type_name,
        meaning,
        backend_failed,
    }
}

/// Response flags → kind, in priority order: the client leaving first (nothing after it
/// reached anyone), then backend failures, then the gateway's own decisions.
const BY_FLAG: &[(u64, Kind)] = &[
    (
        flags::DOWNSTREAM_CONNECTION_TERMINATION,
        kind(
            "ClientConnectionFailure",
            "the client closed the connection before the response was complete",
            false,
        ),
    ),
    (
        flags::DOWNSTREAM_REMOTE_RESET,
        kind(
            "ClientConnectionFailure",
            "the client reset the stream before the response was complete",
            false,
        ),
    ),
    (
        flags::UPSTREAM_CONNECTION_FAILURE,
        kind(
            "BackendConnectionFailure",
            "the gateway could not connect to the backend",
            true,
        ),
    ),
    (
        flags::UPSTREAM_REQUEST_TIMEOUT,
        kind("Timeout", "the backend did not answer within the route timeout", true),
    ),
    (
        flags::NO_HEALTHY_UPSTREAM,
        kind(
            "BackendConnectionFailure",
            "the backend cluster had no healthy host",
            true,
        ),
    ),
    (
        flags::UPSTREAM_OVERFLOW,
        kind("BackendOverflow", "the backend's circuit breaker was open", true),
    ),
    (
        flags::UPSTREAM_RETRY_LIMIT_EXCEEDED,
        kind("BackendRetriesExhausted", "every retry to the backend failed", true),
    ),
    (
        flags::UPSTREAM_REMOTE_RESET,
        kind("BackendConnectionFailure", "the backend reset the stream", true),
    ),
    (
        flags::UPSTREAM_CONNECTION_TERMINATION,
        kind("BackendConnectionFailure", "the backend closed the connection", true),
    ),
    (
        flags::UPSTREAM_PROTOCOL_ERROR,
        kind(
            "BackendProtocolError",
            "the backend's response violated the protocol",
            true,
        ),
    ),
    (
        flags::UPSTREAM_MAX_STREAM_DURATION,
        kind("Timeout", "the backend stream exceeded its maximum duration", true),
    ),
    (
        flags::DNS_RESOLUTION_FAILED,
        kind("BackendConnectionFailure", "the backend's name did not resolve", true),
    ),
    (
        flags::NO_ROUTE_FOUND,
        kind("OperationNotFound", "no route matched the request", false),
    ),
    (
        flags::NO_CLUSTER_FOUND,
        kind("ClusterNotFound", "the route's cluster does not exist", false),
    ),
    (
        flags::RATE_LIMITED,
        kind("RateLimitExceeded", "the request was rate limited", false),
    ),
    (
        flags::RATELIMIT_SERVICE_ERROR,
        kind("RateLimitServiceError", "the rate limit service failed", false),
    ),
    (
        flags::UNAUTHORIZED_EXTERNAL_SERVICE,
        kind(
            "Unauthorized",
            "the external authorization service denied the request",
            false,
        ),
    ),
    (
        flags::FAULT_INJECTED,
        kind("FaultInjected", "a fault was injected by configuration", false),
    ),
    (
        flags::STREAM_IDLE_TIMEOUT,
        kind("StreamIdleTimeout", "the stream was idle for too long", false),
    ),
    (
        flags::DURATION_TIMEOUT,
        kind("Timeout", "the request exceeded its maximum duration", false),
    ),
    (
        flags::DOWNSTREAM_PROTOCOL_ERROR,
        kind(
            "ClientProtocolError",
            "the client's request violated the protocol",
            false,
        ),
    ),
    (
        flags::INVALID_ENVOY_REQUEST_HEADERS,
        kind(
            "InvalidRequestHeaders",
            "the request carried invalid x-envoy headers",
            false,
        ),
    ),
    (
        flags::OVERLOAD_MANAGER,
        kind("GatewayOverloaded", "the gateway shed load (overload manager)", false),
    ),
    (
        flags::DROP_OVERLOAD,
        kind(
            "GatewayOverloaded",
            "the gateway dropped the request (drop overload)",
            false,
        ),
    ),
    (
        flags::LOCAL_HEALTH_CHECK_FAILED,
        kind(
            "LocalHealthCheckFailed",
            "the gateway's local health check failed",
            false,
        ),
    ),
    (
        flags::NO_FILTER_CONFIG_FOUND,
        kind(
            "FilterConfigMissing",
            "a filter configuration was not yet available",
            false,
        ),
    ),
    (
        flags::LOCAL_RESET,
        kind("GatewayReset", "the gateway reset the stream", false),
    ),
];

const BACKEND_SERVER_ERROR: Kind = kind("BackendServerError", "the backend answered with a server error", false);
const BACKEND_CLIENT_ERROR: Kind = kind("BackendClientError", "the backend answered with a client error", false);
const GATEWAY_ERROR: Kind = kind("GatewayError", "the gateway answered with a server error", false);
const REQUEST_REJECTED: Kind = kind("RequestRejected", "the gateway answered with a client error", false);
const NO_RESPONSE: Kind = kind("NoResponse", "no response was sent", false);
const INCOMPLETE: Kind = kind(
    "ResponseIncomplete",
    "the response did not reach the client in full",
    false,
);

/// The kind of a failed exchange (`None` if it succeeded).
pub fn classify(oc: &Outcome) -> Option<Kind> {
    if oc.success() {
        return None;
    }
    if let Some((_, k)) = BY_FLAG.iter().find(|(bit, _)| oc.response_flags & bit != 0) {
        return Some(*k);
    }
    let from_backend = oc.via_upstream().unwrap_or(true);
    Some(match oc.response_code {
        0 => NO_RESPONSE,
        500.. if from_backend => BACKEND_SERVER_ERROR,
        500.. => GATEWAY_ERROR,
        400..=499 if from_backend => BACKEND_CLIENT_ERROR,
        400..=499 => REQUEST_REJECTED,
        _ => INCOMPLETE,
    })
}

/// A human-readable account: `GET /orders/7: the backend did not answer within the route
/// timeout (status 504, response_timeout, flags UT)`.
pub fn describe(kind: &Kind, request_line: &[u8], oc: &Outcome) -> String {
    let mut details = Vec::new();
    if oc.response_code > 0 {
        details.push(format!("status {}", oc.response_code));
    }
    if let Some(d) = oc.code_details.as_deref().filter(|d| !d.is_empty()) {
        details.push(String::from_utf8_lossy(d).into_owned());
    }
    let flag_names = flags::short_names(oc.response_flags);
    if !flag_names.is_empty() {
        details.push(format!("flags {flag_names}"));
    }
    // The request line is bounded like an item name, so a huge path cannot blow up the item.
    let line: String = String::from_utf8_lossy(request_line).chars().take(1024).collect();
    format!("{line}: {} ({})", kind.meaning, details.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oc(code: u32, flags: u64, details: &str) -> Outcome {
        Outcome {
            response_code: code,
            response_flags: flags,
            code_details: Some(details.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn successes_are_not_failures() {
        assert_eq!(classify(&oc(200, 0, "via_upstream")), None);
    }

    #[test]
    fn flags_decide_first() {
        let k = classify(&oc(
            503,
            flags::UPSTREAM_CONNECTION_FAILURE,
            "upstream_reset_before_response_started{connection_failure}",
        ))
        .unwrap();
        assert_eq!(k.type_name, "BackendConnectionFailure");
        assert!(k.backend_failed);
        let k = classify(&oc(504, flags::UPSTREAM_REQUEST_TIMEOUT, "response_timeout")).unwrap();
        assert_eq!(k.type_name, "Timeout");
        let k = classify(&oc(404, flags::NO_ROUTE_FOUND, "route_not_found")).unwrap();
        assert_eq!(k.type_name, "OperationNotFound");
        assert!(!k.backend_failed);
        let both = flags::DOWNSTREAM_CONNECTION_TERMINATION | flags::UPSTREAM_REQUEST_TIMEOUT;
        assert_eq!(
            classify(&oc(200, both, "via_upstream")).unwrap().type_name,
            "ClientConnectionFailure"
        );
    }

    #[test]
    fn statuses_are_split_by_who_answered() {
        assert_eq!(
            classify(&oc(500, 0, "via_upstream")).unwrap().type_name,
            "BackendServerError"
        );
        assert_eq!(
            classify(&oc(404, 0, "via_upstream")).unwrap().type_name,
            "BackendClientError"
        );
        assert_eq!(
            classify(&oc(403, 0, "rbac_access_denied_matched_policy[none]"))
                .unwrap()
                .type_name,
            "RequestRejected"
        );
        assert_eq!(
            classify(&oc(503, 0, "direct_response")).unwrap().type_name,
            "GatewayError"
        );
        assert_eq!(classify(&oc(0, 0, "")).unwrap().type_name, "NoResponse");
    }

    #[test]
    fn descriptions_carry_status_details_and_flags() {
        let o = oc(504, flags::UPSTREAM_REQUEST_TIMEOUT, "response_timeout");
        let k = classify(&o).unwrap();
        assert_eq!(
            describe(&k, b"GET /orders/7", &o),
            "GET /orders/7: the backend did not answer within the route timeout (status 504, response_timeout, flags UT)"
        );
    }
}
