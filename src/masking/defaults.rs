//! The names masked unless the configuration says otherwise (`data_masking.defaults`), and
//! where they come from. Headers are matched by name and by meaning (a name that says it
//! carries a credential); parameters by name, case-insensitively.

/// Headers whose values are credentials (lowercase), masked by default.
pub const DEFAULT_HEADERS: &[&str] = &[
    // HTTP authentication and state (RFC 9110 §11.6.2, §11.7.2; RFC 6265).
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    // Azure API Management subscription keys; Azure Functions keys; the common API key names
    // (Kong's key-auth plugin defaults to `apikey`).
    "ocp-apim-subscription-key",
    "x-api-key",
    "api-key",
    "apikey",
    "x-functions-key",
    // OpenStack Identity (Keystone) v3: `X-Auth-Token`, `X-Subject-Token`; used by many others.
    "x-auth-token",
    "x-subject-token",
    // AWS: Signature V4 with temporary credentials (`X-Amz-Security-Token`); S3 server-side
    // encryption with customer keys (SSE-C); Application Load Balancer OIDC authentication.
    "x-amz-security-token",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amzn-oidc-accesstoken",
    "x-amzn-oidc-data",
    // Google Cloud: API keys (`X-Goog-Api-Key`), Identity-Aware Proxy, Cloud Storage
    // customer-supplied encryption keys.
    "x-goog-api-key",
    "x-goog-iap-jwt-assertion",
    "x-goog-encryption-key",
    "x-goog-copy-source-encryption-key",
    // Azure: App Service authentication's token store, Resource Manager's auxiliary tokens,
    // Storage customer-provided keys and copy-source authorization.
    "x-ms-token-aad-access-token",
    "x-ms-token-aad-id-token",
    "x-ms-token-aad-refresh-token",
    "x-ms-authorization-auxiliary",
    "x-ms-encryption-key",
    "x-ms-copy-source-authorization",
    // oauth2-proxy (passes the user's tokens upstream); Cloudflare Access service tokens.
    "x-forwarded-access-token",
    "x-auth-request-access-token",
    "cf-access-client-secret",
    "cf-access-jwt-assertion",
    // HashiCorp Vault, Consul, Nomad; GitLab API and webhook tokens.
    "x-vault-token",
    "x-consul-token",
    "x-nomad-token",
    "private-token",
    "job-token",
    "x-gitlab-token",
];

/// Words that make a header name say it carries a credential (`x-my-app-token`,
/// `x-client-secret`, `x-partner-apikey`): such headers are masked by default too, so a
/// vendor's header need not be listed to be safe.
pub const HEADER_WORDS: &[&str] = &["token", "secret", "passw", "apikey", "api-key", "api_key"];

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

/// Whether a (lowercase) header name says it carries a credential.
pub fn names_a_credential(name: &[u8]) -> bool {
    // Every word holds a `k`, `c` or `w`: most header names are let go without a search.
    if !name
        .iter()
        .any(|b| matches!(b.to_ascii_lowercase(), b'k' | b'c' | b'w'))
    {
        return false;
    }
    HEADER_WORDS
        .iter()
        .any(|w| name.windows(w.len()).any(|win| win.eq_ignore_ascii_case(w.as_bytes())))
}
