//! What must never reach telemetry in clear: secret-bearing headers and query parameters.
//!
//! Private by default: values of these headers are replaced by [`MASK`] wherever the filter
//! would copy them (header-derived properties, trace templates).

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Headers whose values are secrets (lowercase).
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "ocp-apim-subscription-key",
    "x-api-key",
    "api-key",
    "x-functions-key",
];

/// Whether a header (lowercase name) carries a secret by default.
pub fn is_sensitive_header(name: &[u8]) -> bool {
    SENSITIVE_HEADERS.iter().any(|h| h.as_bytes() == name)
}

/// The value to record for header `name`: masked when it is sensitive.
pub fn header_value<'a>(name: &[u8], value: &'a [u8]) -> &'a [u8] {
    if is_sensitive_header(name) {
        MASK.as_bytes()
    } else {
        value
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_masked_and_others_pass() {
        assert_eq!(header_value(b"authorization", b"Bearer abc"), b"***");
        assert_eq!(header_value(b"ocp-apim-subscription-key", b"k"), b"***");
        assert_eq!(header_value(b"x-tenant", b"contoso"), b"contoso");
    }
}
