//! `service`: how the gateway names itself in the dimensions API Management puts on every
//! Request (`Service Name`, `Service Type`, `Service ID`, `Region`), so queries and
//! workbooks written for APIM find the gateway's requests.
//!
//! ```json
//! "service": {"name": "contoso-gw.example.com", "type": "API Management",
//!             "id": "contoso-gw", "region": "West Europe"}
//! ```
//!
//! Unset, the name and the id are the cloud role, the type is `Envoy`, and the region is
//! the Envoy node's locality region (none when the node has none).

use super::reader::Fields;
use super::ConfigError;

/// `Service Type` unless configured: what APIM writes as `API Management`.
pub const DEFAULT_SERVICE_TYPE: &str = "Envoy";

/// Longest value of each field (a property value may be 8192; these are names).
const MAX_LEN: usize = 256;

pub(super) const SERVICE_FIELDS: &[&str] = &["name", "type", "id", "region"];

/// The configured service dimensions (`None`: the default applies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub id: Option<String>,
    pub region: Option<String>,
}

pub(super) fn parse_service(f: &Fields<'_>) -> Result<Service, ConfigError> {
    Ok(Service {
        name: f.bounded_string("name", MAX_LEN)?,
        kind: f.bounded_string("type", MAX_LEN)?,
        id: f.bounded_string("id", MAX_LEN)?,
        region: f.bounded_string("region", MAX_LEN)?,
    })
}
