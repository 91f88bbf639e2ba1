//! Managed identity (Microsoft Entra ID) tokens for ingestion, as API Management's logger
//! `identityClientId`: `SystemAssigned` or a user-assigned identity's client id.
//!
//! Tokens come from the Azure instance metadata endpoint (IMDS) through an Envoy cluster:
//! `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=<audience>
//! [&client_id=<id>]` with `Metadata: true`. A token is cached until shortly before it
//! expires and refreshed ahead of time; telemetry is sent with `Authorization: Bearer …`
//! and waits (within the memory budget) while no token is available. A 401/403 from the
//! ingestion service drops the token and fetches a new one. Tokens never appear in logs,
//! errors or telemetry: [`TokenSource`] hands out the header value only.

use crate::delivery::backoff;
use crate::host::CalloutId;
use serde_json::Value;
use std::fmt;

/// The default audience (resource) of ingestion tokens.
pub const DEFAULT_AUDIENCE: &str = "https://monitor.azure.com/";
/// Host of the instance metadata endpoint (the `:authority` of token requests).
pub const IMDS_HOST: &str = "169.254.169.254";
/// How long a token request may take.
pub const FETCH_TIMEOUT_MS: u64 = 5_000;
/// Refresh this long before expiry (at most half the token's lifetime).
const REFRESH_MARGIN_NANOS: u64 = 300 * 1_000_000_000;

/// Which identity to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedIdentity {
    SystemAssigned,
    UserAssigned { client_id: String },
}

impl ManagedIdentity {
    /// APIM's form: `SystemAssigned` (any case) or a client id.
    pub fn parse(value: &str) -> Option<ManagedIdentity> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("SystemAssigned") {
            return Some(ManagedIdentity::SystemAssigned);
        }
        let valid =
            !value.is_empty() && value.len() <= 64 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        valid.then(|| ManagedIdentity::UserAssigned {
            client_id: value.to_string(),
        })
    }
}

/// Why a token could not be had (never contains the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    NoResponse,
    Status(u16),
    Unparsable,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::NoResponse => write!(f, "no answer from the metadata endpoint"),
            TokenError::Status(400) => write!(f, "status 400: the identity is not available on this host"),
            TokenError::Status(s) => write!(f, "status {s}"),
            TokenError::Unparsable => write!(f, "the answer has no access_token with an expiry"),
        }
    }
}

/// Counters for the Envoy stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenStats {
    pub refreshes: u64,
    pub failures: u64,
}

/// Tokens for one logger on one worker.
#[derive(Clone)]
pub struct TokenSource {
    pub cluster: String,
    path: String,
    /// `Bearer <token>`, when one is held.
    header: Option<String>,
    expires_at: u64,
    refresh_at: u64,
    /// The callout fetching a token, if one is under way.
    fetching: Option<u32>,
    failures: u32,
    next_attempt: u64,
    pub stats: TokenStats,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("TokenSource")
            .field("cluster", &self.cluster)
            .field("path", &self.path)
            .field("has_token", &self.header.is_some())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TokenSource {
    pub fn new(identity: &ManagedIdentity, audience: Option<&str>, cluster: &str) -> TokenSource {
        let resource = audience.unwrap_or(DEFAULT_AUDIENCE);
        let mut path = format!(
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
            percent_encode(resource)
        );
        if let ManagedIdentity::UserAssigned { client_id } = identity {
            path.push_str("&client_id=");
            path.push_str(&percent_encode(client_id));
        }
        TokenSource {
            cluster: cluster.to_string(),
            path,
            header: None,
            expires_at: 0,
            refresh_at: 0,
            fetching: None,
            failures: 0,
            next_attempt: 0,
            stats: TokenStats::default(),
        }
    }

    /// Headers of a token request.
    pub fn request_headers(&self) -> [(&str, &str); 4] {
        [
            (":method", "GET"),
            (":path", &self.path),
            (":authority", IMDS_HOST),
            ("metadata", "true"),
        ]
    }

    /// `Authorization` header value, while the token is valid.
    pub fn authorization(&self, now: u64) -> Option<&str> {
        self.header.as_deref().filter(|_| now < self.expires_at)
    }

    /// Whether a token request should start now (none held or refresh time reached, none
    /// under way, not backing off after a failure).
    pub fn due(&self, now: u64) -> bool {
        self.fetching.is_none() && now >= self.next_attempt && (self.header.is_none() || now >= self.refresh_at)
    }

    pub fn started(&mut self, callout: CalloutId) {
        self.fetching = Some(callout);
    }

    /// Envoy refused to start the token request.
    pub fn start_failed(&mut self, now: u64, random: u64) {
        self.failed(now, random);
    }

    pub fn owns(&self, callout: CalloutId) -> bool {
        self.fetching == Some(callout)
    }

    /// The metadata endpoint's answer (`status` `None`: no answer).
    pub fn answered(&mut self, status: Option<u16>, body: &[u8], now: u64, random: u64) -> Result<(), TokenError> {
        self.fetching = None;
        let result = match status {
            None => Err(TokenError::NoResponse),
            Some(200) => parse_token(body, now).ok_or(TokenError::Unparsable),
            Some(s) => Err(TokenError::Status(s)),
        };
        match result {
            Ok((token, expires_at)) => {
                let lifetime = expires_at.saturating_sub(now);
                self.header = Some(format!("Bearer {token}"));
                self.expires_at = expires_at;
                self.refresh_at = expires_at.saturating_sub(REFRESH_MARGIN_NANOS.min(lifetime / 2));
                self.failures = 0;
                self.next_attempt = 0;
                self.stats.refreshes += 1;
                Ok(())
            }
            Err(e) => {
                self.failed(now, random);
                Err(e)
            }
        }
    }

    fn failed(&mut self, now: u64, random: u64) {
        self.fetching = None;
        self.failures = self.failures.saturating_add(1);
        self.stats.failures += 1;
        self.next_attempt = now.saturating_add(backoff::delay_nanos(self.failures, 1_000, 60_000, random));
    }

    /// The ingestion service refused the token: drop it and fetch a new one now.
    pub fn invalidate(&mut self) {
        self.header = None;
        self.next_attempt = 0;
    }
}

/// `access_token` and the expiry (`expires_on`, else now + `expires_in`), unix nanoseconds.
fn parse_token(body: &[u8], now: u64) -> Option<(String, u64)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let token = v
        .get("access_token")?
        .as_str()
        .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)?;
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let number = |key: &str| -> Option<u64> {
        let field = v.get(key)?;
        field.as_u64().or_else(|| field.as_str()?.trim().parse().ok())
    };
    let expires_at = match number("expires_on") {
        Some(secs) => secs.saturating_mul(1_000_000_000),
        None => now.saturating_add(number("expires_in")?.saturating_mul(1_000_000_000)),
    };
    (expires_at > now).then(|| (token.to_string(), expires_at))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_700_000_000 * S;

    #[test]
    fn identities_are_read_the_apim_way() {
        assert_eq!(
            ManagedIdentity::parse("SystemAssigned"),
            Some(ManagedIdentity::SystemAssigned)
        );
        assert_eq!(
            ManagedIdentity::parse("systemassigned"),
            Some(ManagedIdentity::SystemAssigned)
        );
        assert_eq!(
            ManagedIdentity::parse("0000-aaaa"),
            Some(ManagedIdentity::UserAssigned {
                client_id: "0000-aaaa".into()
            })
        );
        assert_eq!(ManagedIdentity::parse("bad id"), None);
        assert_eq!(ManagedIdentity::parse(""), None);
    }

    #[test]
    fn token_requests_follow_the_imds_contract() {
        let t = TokenSource::new(
            &ManagedIdentity::UserAssigned {
                client_id: "c-1".into(),
            },
            None,
            "imds",
        );
        let h = t.request_headers();
        assert_eq!(h[1].1, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmonitor.azure.com%2F&client_id=c-1");
        assert_eq!(h[2], (":authority", "169.254.169.254"));
        assert_eq!(h[3], ("metadata", "true"));
        let sovereign = TokenSource::new(
            &ManagedIdentity::SystemAssigned,
            Some("https://monitor.azure.us"),
            "imds",
        );
        assert!(sovereign.request_headers()[1]
            .1
            .ends_with("resource=https%3A%2F%2Fmonitor.azure.us"));
    }

    #[test]
    fn a_token_is_cached_and_refreshed_ahead_of_expiry() {
        let mut t = TokenSource::new(&ManagedIdentity::SystemAssigned, None, "imds");
        assert!(t.due(NOW) && t.authorization(NOW).is_none());
        t.started(7);
        assert!(!t.due(NOW), "one request at a time");
        let body = format!(
            r#"{{"access_token":"tok-1","expires_on":"{}","token_type":"Bearer"}}"#,
            NOW / S + 3600
        );
        t.answered(Some(200), body.as_bytes(), NOW, 0).unwrap();
        assert_eq!(t.authorization(NOW), Some("Bearer tok-1"));
        assert!(!t.due(NOW + 3000 * S), "cached");
        assert!(t.due(NOW + 3301 * S), "refreshed five minutes ahead");
        assert_eq!(
            t.authorization(NOW + 3301 * S),
            Some("Bearer tok-1"),
            "still usable meanwhile"
        );
        assert_eq!(t.authorization(NOW + 3600 * S), None, "expired");
        // Short-lived tokens refresh at half their lifetime.
        t.started(8);
        t.answered(Some(200), br#"{"access_token":"tok-2","expires_in":10}"#, NOW, 0)
            .unwrap();
        assert!(!t.due(NOW + 4 * S) && t.due(NOW + 5 * S));
        assert_eq!(t.stats.refreshes, 2);
    }

    #[test]
    fn failures_back_off_and_401_forces_a_refresh() {
        let mut t = TokenSource::new(&ManagedIdentity::SystemAssigned, None, "imds");
        t.started(1);
        assert_eq!(t.answered(Some(400), b"{}", NOW, 0), Err(TokenError::Status(400)));
        assert!(!t.due(NOW), "backing off");
        assert!(t.due(NOW + 2 * S));
        t.started(2);
        assert_eq!(t.answered(Some(200), b"not json", NOW, 0), Err(TokenError::Unparsable));
        assert_eq!(t.answered(None, b"", NOW, 0), Err(TokenError::NoResponse));
        assert_eq!(t.stats.failures, 3);
        t.started(3);
        t.answered(Some(200), br#"{"access_token":"tok","expires_in":"3600"}"#, NOW, 0)
            .unwrap();
        t.invalidate();
        assert!(t.due(NOW) && t.authorization(NOW).is_none());
    }

    #[test]
    fn the_token_never_shows_in_debug_output_or_errors() {
        let mut t = TokenSource::new(&ManagedIdentity::SystemAssigned, None, "imds");
        t.started(1);
        t.answered(Some(200), br#"{"access_token":"SECRET-TOKEN","expires_in":60}"#, NOW, 0)
            .unwrap();
        assert!(!format!("{t:?}").contains("SECRET-TOKEN"));
        assert!(
            parse_token(br#"{"access_token":"x","expires_on":"1"}"#, NOW).is_none(),
            "already expired"
        );
        assert!(parse_token(br#"{"access_token":"a b","expires_in":60}"#, NOW).is_none());
    }
}
