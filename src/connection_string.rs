//! Application Insights connection strings and ingestion endpoints.
//!
//! Parsed the way the official SDKs do (.NET `ConfigStringParser` + `EndpointProvider`):
//! `key=value` pairs separated by `;`, keys case-insensitive, empty entries ignored, an entry
//! that is not exactly `key=value` or a repeated key is an error, 4096 characters at most.
//! The ingestion endpoint is, in order of precedence: `IngestionEndpoint`; else
//! `https://[Location.]dc.<EndpointSuffix>/`; else the global default endpoint.
//! Stricter than some SDKs where a value could never work: the instrumentation key must be
//! a GUID (the Python exporter's rule, see `validate_instrumentation_key`) and the
//! endpoint URL is checked strictly ([`Endpoint::parse`]).
//!
//! Telemetry goes to `<endpoint>/v2.1/track` (the path that also accepts Entra ID tokens).

mod endpoint;

pub use endpoint::{Endpoint, EndpointError, Scheme};
use std::fmt;

/// Longest connection string the SDKs accept.
pub const MAX_LEN: usize = 4096;
/// Longest instrumentation key the envelope's `iKey` field holds (a GUID has 36 characters).
pub const MAX_IKEY_LEN: usize = 40;
/// Where telemetry goes when a connection string names no endpoint.
pub const DEFAULT_INGESTION_ENDPOINT: &str = "https://dc.services.visualstudio.com/";

/// What a connection string says about where and how to send telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub instrumentation_key: String,
    pub ingestion_endpoint: Endpoint,
    /// `AADAudience`, for Entra ID tokens in sovereign clouds.
    pub aad_audience: Option<String>,
    /// `ApplicationId`, the resource's application id (legacy `Request-Context` headers).
    pub application_id: Option<String>,
}

/// Why a connection string was refused. Never contains the instrumentation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStringError {
    Empty,
    TooLong {
        len: usize,
    },
    /// Entry number (1-based) is not `key=value`.
    MalformedEntry {
        entry: usize,
    },
    EmptyKey {
        entry: usize,
    },
    DuplicateKey {
        key: String,
    },
    MissingInstrumentationKey,
    InvalidInstrumentationKey {
        reason: &'static str,
    },
    UnsupportedAuthorization,
    InvalidLocation,
    InvalidEndpoint {
        key: &'static str,
        error: EndpointError,
    },
}

impl fmt::Display for ConnectionStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong { len } => write!(f, "is {len} characters long; at most {MAX_LEN} are allowed"),
            Self::MalformedEntry { entry } => write!(f, "entry {entry} is not of the form key=value"),
            Self::EmptyKey { entry } => write!(f, "entry {entry} has an empty key"),
            Self::DuplicateKey { key } => write!(f, "key {} appears more than once", crate::config::excerpt(key)),
            Self::MissingInstrumentationKey => write!(f, "has no InstrumentationKey"),
            Self::InvalidInstrumentationKey { reason } => write!(f, "InstrumentationKey {reason}"),
            Self::UnsupportedAuthorization => write!(f, "Authorization must be ikey (the only supported value)"),
            Self::InvalidLocation => write!(f, "Location must contain only letters and digits"),
            Self::InvalidEndpoint { key, error } => write!(f, "{key} {error}"),
        }
    }
}

impl std::error::Error for ConnectionStringError {}

impl ConnectionString {
    /// Parses a connection string, applying the SDKs' endpoint precedence.
    pub fn parse(input: &str) -> Result<Self, ConnectionStringError> {
        let len = input.chars().count();
        if len > MAX_LEN {
            return Err(ConnectionStringError::TooLong { len });
        }
        if input.trim().is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        let pairs = split_pairs(input)?;
        if pairs.is_empty() {
            return Err(ConnectionStringError::Empty);
        }
        let get = |key: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v);
        if let Some(auth) = get("Authorization") {
            if !auth.eq_ignore_ascii_case("ikey") {
                return Err(ConnectionStringError::UnsupportedAuthorization);
            }
        }
        let ikey = match get("InstrumentationKey") {
            Some(v) if !v.is_empty() => v,
            _ => return Err(ConnectionStringError::MissingInstrumentationKey),
        };
        validate_instrumentation_key(ikey)?;
        Ok(ConnectionString {
            instrumentation_key: ikey.to_string(),
            ingestion_endpoint: ingestion_endpoint(get("IngestionEndpoint"), get("EndpointSuffix"), get("Location"))?,
            aad_audience: get("AADAudience").filter(|v| !v.is_empty()).map(str::to_string),
            application_id: get("ApplicationId")
                .filter(|v| !v.is_empty() && v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .map(str::to_string),
        })
    }

    /// A bare instrumentation key, sent to the default endpoint.
    pub fn from_instrumentation_key(ikey: &str) -> Result<Self, ConnectionStringError> {
        let ikey = ikey.trim();
        if ikey.is_empty() {
            return Err(ConnectionStringError::MissingInstrumentationKey);
        }
        validate_instrumentation_key(ikey)?;
        Ok(ConnectionString {
            instrumentation_key: ikey.to_string(),
            ingestion_endpoint: default_endpoint(),
            aad_audience: None,
            application_id: None,
        })
    }
}

/// Splits `k1=v1;k2=v2` into trimmed pairs, rejecting malformed and repeated keys.
fn split_pairs(input: &str) -> Result<Vec<(&str, &str)>, ConnectionStringError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (n, entry) in input.split(';').filter(|e| !e.trim().is_empty()).enumerate() {
        let entry_no = n + 1;
        let mut parts = entry.split('=');
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ConnectionStringError::MalformedEntry { entry: entry_no });
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(ConnectionStringError::EmptyKey { entry: entry_no });
        }
        if pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(ConnectionStringError::DuplicateKey { key: key.to_string() });
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// The instrumentation key must be a GUID in its 8-4-4-4-12 form, as Application Insights
/// issues them. This is the Python exporter's rule: `_validate_instrumentation_key` in
/// Azure/azure-sdk-for-python, `sdk/monitor/azure-monitor-opentelemetry-exporter/azure/
/// monitor/opentelemetry/exporter/_connection_string_parser.py`, raises "Invalid
/// instrumentation key. It should be a valid UUID." unless the key matches
/// `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`. Upper-case hex digits
/// are accepted too, as .NET's `Guid.TryParse` does. (The .NET and Java exporters only
/// require a key; the ingestion service then answers every batch 400 "Invalid
/// instrumentation key", which the Java exporter's `TelemetryPipelineResponse` checks for.
/// A key that cannot work is better refused at load.)
fn validate_instrumentation_key(ikey: &str) -> Result<(), ConnectionStringError> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut groups = ikey.split('-');
    let is_guid = GROUPS.iter().all(|&len| {
        groups
            .next()
            .is_some_and(|g| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    }) && groups.next().is_none();
    if is_guid {
        Ok(())
    } else {
        Err(ConnectionStringError::InvalidInstrumentationKey {
            reason: "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)",
        })
    }
}

fn ingestion_endpoint(
    explicit: Option<&str>,
    suffix: Option<&str>,
    location: Option<&str>,
) -> Result<Endpoint, ConnectionStringError> {
    if let Some(url) = explicit.filter(|v| !v.is_empty()) {
        return Endpoint::parse(url).map_err(|error| ConnectionStringError::InvalidEndpoint {
            key: "IngestionEndpoint",
            error,
        });
    }
    let Some(suffix) = suffix
        .map(|s| s.trim().trim_start_matches('.'))
        .filter(|s| !s.is_empty())
    else {
        return Ok(default_endpoint());
    };
    let location = location.map(|l| l.trim().trim_end_matches('.')).unwrap_or("");
    if !location.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConnectionStringError::InvalidLocation);
    }
    let url = if location.is_empty() {
        format!("https://dc.{suffix}/")
    } else {
        format!("https://{location}.dc.{suffix}/")
    };
    Endpoint::parse(&url).map_err(|error| ConnectionStringError::InvalidEndpoint {
        key: "EndpointSuffix",
        error,
    })
}

fn default_endpoint() -> Endpoint {
    Endpoint {
        scheme: Scheme::Https,
        host: "dc.services.visualstudio.com".to_string(),
        port: 443,
        base_path: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00000000-0000-0000-0000-000000000001";

    fn endpoint_of(cs: &str) -> String {
        ConnectionString::parse(cs).unwrap().ingestion_endpoint.url()
    }

    #[test]
    fn explicit_ingestion_endpoint_wins_over_suffix_and_location() {
        let cs = format!(
            "InstrumentationKey={KEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2"
        );
        assert_eq!(
            endpoint_of(&cs),
            "https://westeurope-5.in.applicationinsights.azure.com/"
        );
    }

    #[test]
    fn endpoint_suffix_with_location_builds_the_regional_dc_host() {
        let cs = format!("InstrumentationKey={KEY};EndpointSuffix=.applicationinsights.azure.cn;Location= chinaeast2.");
        assert_eq!(endpoint_of(&cs), "https://chinaeast2.dc.applicationinsights.azure.cn/");
        let cs = format!("InstrumentationKey={KEY};EndpointSuffix=applicationinsights.us");
        assert_eq!(endpoint_of(&cs), "https://dc.applicationinsights.us/");
    }

    #[test]
    fn no_endpoint_means_the_global_default() {
        let cs = ConnectionString::parse(&format!("InstrumentationKey={KEY}")).unwrap();
        assert_eq!(cs.ingestion_endpoint.url(), DEFAULT_INGESTION_ENDPOINT);
        assert_eq!(cs.instrumentation_key, KEY);
        assert_eq!(cs.ingestion_endpoint.track_path(), "/v2.1/track");
    }

    #[test]
    fn keys_are_case_insensitive_and_whitespace_and_empty_entries_are_ignored() {
        let cs = ConnectionString::parse(&format!(
            " instrumentationkey = {KEY} ;; INGESTIONENDPOINT=http://127.0.0.1:9001/;aadaudience=https://monitor.azure.us;"
        ))
        .unwrap();
        assert_eq!(cs.instrumentation_key, KEY);
        assert_eq!(cs.ingestion_endpoint.scheme, Scheme::Http);
        assert_eq!(cs.ingestion_endpoint.host, "127.0.0.1");
        assert_eq!(cs.ingestion_endpoint.port, 9001);
        assert_eq!(cs.ingestion_endpoint.authority(), "127.0.0.1:9001");
        assert_eq!(cs.aad_audience.as_deref(), Some("https://monitor.azure.us"));
        assert_eq!(cs.application_id, None);
        let with_app = ConnectionString::parse(&format!("InstrumentationKey={KEY};ApplicationId=abc-123")).unwrap();
        assert_eq!(with_app.application_id.as_deref(), Some("abc-123"));
    }

    #[test]
    fn malformed_duplicate_and_missing_entries_are_errors() {
        use ConnectionStringError as E;
        assert_eq!(ConnectionString::parse(""), Err(E::Empty));
        assert_eq!(ConnectionString::parse(" ; "), Err(E::Empty));
        assert_eq!(
            ConnectionString::parse("InstrumentationKey"),
            Err(E::MalformedEntry { entry: 1 })
        );
        assert_eq!(
            ConnectionString::parse(&format!("InstrumentationKey={KEY};a=b=c")),
            Err(E::MalformedEntry { entry: 2 })
        );
        assert_eq!(ConnectionString::parse("=x"), Err(E::EmptyKey { entry: 1 }));
        assert_eq!(
            ConnectionString::parse(&format!("InstrumentationKey={KEY};instrumentationKEY={KEY}")),
            Err(E::DuplicateKey {
                key: "instrumentationKEY".into()
            })
        );
        assert_eq!(
            ConnectionString::parse("IngestionEndpoint=https://x/"),
            Err(E::MissingInstrumentationKey)
        );
        assert_eq!(
            ConnectionString::parse("InstrumentationKey="),
            Err(E::MissingInstrumentationKey)
        );
    }

    #[test]
    fn length_is_capped_at_4096_characters() {
        let base = format!("InstrumentationKey={KEY};X=");
        let ok = format!("{base}{}", "a".repeat(MAX_LEN - base.len()));
        assert!(ConnectionString::parse(&ok).is_ok());
        let long = format!("{ok}a");
        assert_eq!(
            ConnectionString::parse(&long),
            Err(ConnectionStringError::TooLong { len: MAX_LEN + 1 })
        );
    }

    #[test]
    fn authorization_other_than_ikey_and_bad_location_are_rejected() {
        assert_eq!(
            ConnectionString::parse(&format!("InstrumentationKey={KEY};Authorization=aad")),
            Err(ConnectionStringError::UnsupportedAuthorization)
        );
        assert!(ConnectionString::parse(&format!("InstrumentationKey={KEY};Authorization=IKey")).is_ok());
        assert_eq!(
            ConnectionString::parse(&format!("InstrumentationKey={KEY};EndpointSuffix=x.com;Location=a/b")),
            Err(ConnectionStringError::InvalidLocation)
        );
    }

    #[test]
    fn invalid_endpoints_name_the_key_and_the_reason() {
        let err = ConnectionString::parse(&format!("InstrumentationKey={KEY};IngestionEndpoint=ftp://x/")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IngestionEndpoint must be an absolute http:// or https:// URL"
        );
        let err = ConnectionString::parse(&format!("InstrumentationKey={KEY};IngestionEndpoint=http://h:99999/"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "IngestionEndpoint has an invalid port: a number from 1 to 65535"
        );
    }

    #[test]
    fn endpoint_errors_name_the_key_and_say_what_is_allowed() {
        let e = |rest: &str| {
            ConnectionString::parse(&format!("InstrumentationKey={KEY};{rest}"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("IngestionEndpoint=http://127.0.0.1:9/\0/"),
            "IngestionEndpoint must be printable ASCII without spaces (found U+0000)"
        );
        assert_eq!(
            e("IngestionEndpoint=https://h/caf\u{e9}/"),
            "IngestionEndpoint must be printable ASCII without spaces (found U+00E9)"
        );
        assert_eq!(
            e("IngestionEndpoint=https://ingest_1.example/"),
            "IngestionEndpoint has an invalid host: a DNS name (letters, digits and '-' in dot-separated labels of at most 63 characters), an IPv4 address or an IPv6 address in brackets"
        );
        assert_eq!(
            e("IngestionEndpoint=https://h:+443/"),
            "IngestionEndpoint has an invalid port: a number from 1 to 65535"
        );
        assert_eq!(
            e("IngestionEndpoint=https://h/a{b}/"),
            "IngestionEndpoint has an invalid path: letters, digits, - . _ ~ ! $ & ' ( ) * + , = : @ and %XX escapes, no empty, . or .. segments"
        );
        assert_eq!(
            e("EndpointSuffix=applicationinsights .azure.cn"),
            "EndpointSuffix must be printable ASCII without spaces (found U+0020)"
        );
        assert_eq!(
            e("EndpointSuffix=x.com/../y"),
            "EndpointSuffix has an invalid path: letters, digits, - . _ ~ ! $ & ' ( ) * + , = : @ and %XX escapes, no empty, . or .. segments"
        );
    }

    #[test]
    fn the_instrumentation_key_is_a_guid() {
        for key in [
            KEY,
            "0123abcd-89ef-4abc-8def-0123456789ab",
            "0123ABCD-89EF-4ABC-8DEF-0123456789AB",
        ] {
            let cs = ConnectionString::parse(&format!("InstrumentationKey= {key} ")).unwrap();
            assert_eq!(cs.instrumentation_key, key);
            assert_eq!(
                ConnectionString::from_instrumentation_key(key)
                    .unwrap()
                    .instrumentation_key,
                key
            );
        }
        let not_a_guid = ConnectionStringError::InvalidInstrumentationKey {
            reason: "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)",
        };
        for key in [
            "my-key",
            "k",
            "00000000-0000-0000-0000-00000000000",
            "00000000-0000-0000-0000-0000000000001",
            "00000000000000000000000000000000",
            "{00000000-0000-0000-0000-000000000000}",
            "00000000-0000-0000-0000-00000000000g",
            "00000000_0000-0000-0000-000000000000",
            "0000000-00000-0000-0000-000000000000",
            "00000000-0000-0000-0000-0000000000\u{e9}",
        ] {
            assert_eq!(
                ConnectionString::parse(&format!("InstrumentationKey={key}")),
                Err(not_a_guid.clone()),
                "{key}"
            );
            assert_eq!(
                ConnectionString::from_instrumentation_key(key),
                Err(not_a_guid.clone()),
                "{key}"
            );
        }
        assert_eq!(
            not_a_guid.to_string(),
            "InstrumentationKey must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal digits)"
        );
    }

    #[test]
    fn errors_never_echo_the_instrumentation_key() {
        let secret = "SECRET-KEY-0123456789-0123456789-012345678";
        let err = ConnectionString::parse(&format!("InstrumentationKey={secret}")).unwrap_err();
        assert!(!err.to_string().contains(secret));
    }

    #[test]
    fn bare_instrumentation_key_uses_the_default_endpoint() {
        let cs = ConnectionString::from_instrumentation_key(KEY).unwrap();
        assert_eq!(cs.ingestion_endpoint.url(), DEFAULT_INGESTION_ENDPOINT);
        assert!(ConnectionString::from_instrumentation_key(&"k".repeat(41)).is_err());
    }
}
