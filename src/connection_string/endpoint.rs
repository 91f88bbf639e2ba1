//! Ingestion endpoints: the URL a connection string names, as the scheme, host, port and
//! path prefix the Envoy cluster and the callouts need.

use std::fmt;

/// URL scheme of an ingestion endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// An ingestion endpoint: where the Envoy cluster for telemetry must point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing `/` (usually empty).
    pub base_path: String,
}

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    UnsupportedScheme,
    MissingHost,
    InvalidHost,
    InvalidPort,
    HasUserInfo,
    HasQueryOrFragment,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnsupportedScheme => "must be an absolute http:// or https:// URL",
            Self::MissingHost => "has no host",
            Self::InvalidHost => "has an invalid host",
            Self::InvalidPort => "has an invalid port",
            Self::HasUserInfo => "must not contain user information",
            Self::HasQueryOrFragment => "must not contain a query or fragment",
        })
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// Parses an absolute `http(s)://host[:port][/path]` URL.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let url = url.trim();
        let (scheme, rest) = if let Some(rest) = strip_prefix_ci(url, "https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = strip_prefix_ci(url, "http://") {
            (Scheme::Http, rest)
        } else {
            return Err(EndpointError::UnsupportedScheme);
        };
        if rest.contains(['?', '#']) {
            return Err(EndpointError::HasQueryOrFragment);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(EndpointError::HasUserInfo);
        }
        let (host, port) = split_host_port(authority, scheme)?;
        Ok(Endpoint {
            scheme,
            host,
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The `:authority` to send: the host, with the port only when it is not the default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The path telemetry is posted to.
    pub fn track_path(&self) -> String {
        format!("{}/v2.1/track", self.base_path)
    }

    /// The endpoint as a URL, for logs and docs.
    pub fn url(&self) -> String {
        format!("{}://{}{}/", self.scheme.as_str(), self.authority(), self.base_path)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn split_host_port(authority: &str, scheme: Scheme) -> Result<(String, u16), EndpointError> {
    if authority.is_empty() {
        return Err(EndpointError::MissingHost);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(EndpointError::InvalidHost)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(EndpointError::InvalidPort)?),
        };
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(EndpointError::InvalidHost);
        }
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
        if host.is_empty() || !host.chars().all(valid) {
            return Err(EndpointError::InvalidHost);
        }
        (host, port)
    };
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(EndpointError::InvalidPort),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_path_prefix_ipv6_and_non_default_ports() {
        let e = Endpoint::parse("HTTPS://Ingest.Example.com:8443/prefix/").unwrap();
        assert_eq!(e.host, "ingest.example.com");
        assert_eq!(e.track_path(), "/prefix/v2.1/track");
        assert_eq!(e.authority(), "ingest.example.com:8443");
        let e = Endpoint::parse("http://[::1]:9001").unwrap();
        assert_eq!(e.host, "::1");
        assert_eq!(e.authority(), "[::1]:9001");
        assert_eq!(Endpoint::parse("https://u@h/"), Err(EndpointError::HasUserInfo));
        assert_eq!(
            Endpoint::parse("https://h/?a=b"),
            Err(EndpointError::HasQueryOrFragment)
        );
        assert_eq!(Endpoint::parse("https:///x"), Err(EndpointError::MissingHost));
        assert_eq!(Endpoint::parse("https://h:0/"), Err(EndpointError::InvalidPort));
    }
}
