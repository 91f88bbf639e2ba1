//! The names masked unless the configuration says otherwise (`data_masking.defaults`), and
//! where they come from. Headers are matched by name; parameters by name,
//! case-insensitively.

/// Headers whose values are secrets (lowercase), masked by default.
pub const DEFAULT_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "ocp-apim-subscription-key",
    "x-api-key",
    "api-key",
    "x-functions-key",
];

/// Query parameters (and form fields) that carry credentials, masked by default.
pub const DEFAULT_QUERY_PARAMS: &[&str] = &[
    // Azure Storage shared access signatures; generic signatures and keys.
    "sig",
    "signature",
    "key",
    "apikey",
    "api-key",
    "api_key",
    "subscription-key",
    "subscription_key",
    "secret",
    "token",
    "password",
    "passwd",
    // OAuth 2.0 (RFC 6749), OpenID Connect, PKCE (RFC 7636), JWT and SAML assertion grants
    // and client authentication (RFC 7521–7523), device grant (RFC 8628), token exchange
    // (RFC 8693).
    "code",
    "access_token",
    "id_token",
    "refresh_token",
    "client_secret",
    "code_verifier",
    "assertion",
    "client_assertion",
    "device_code",
    "subject_token",
    "actor_token",
    // Presigned URLs: AWS Signature V4 query authentication, Google Cloud Storage V4 signing.
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
];
