//! What the core asks of the host it runs in (Envoy, through proxy-wasm).

/// Envoy's id for an HTTP callout the filter started (`dispatch_http_call`); its answer
/// comes back with the same id. Not to be confused with Entra ID *tokens*
/// ([`crate::managed_identity`]).
pub type CalloutId = u32;
