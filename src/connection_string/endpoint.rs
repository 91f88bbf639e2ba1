//! Ingestion endpoints: the URL a connection string names, as the scheme, host, port and
//! path prefix the Envoy cluster and the callouts need.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

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
    /// A character outside printable ASCII (a space, a control character, non-ASCII).
    Character {
        ch: char,
    },
    MissingHost,
    InvalidHost,
    InvalidPort,
    HasUserInfo,
    HasQueryOrFragment,
    InvalidPath,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Self::Character { ch } = self {
            return write!(
                f,
                "must be printable ASCII without spaces (found U+{:04X})",
                u32::from(*ch)
            );
        }
        f.write_str(match self {
            Self::Character { .. } => "must be printable ASCII without spaces",
            Self::UnsupportedScheme => "must be an absolute http:// or https:// URL",
            Self::MissingHost => "has no host",
            Self::InvalidHost => {
                "has an invalid host: a DNS name (letters, digits and '-' in dot-separated labels of at most 63 \
                 characters), an IPv4 address or an IPv6 address in brackets"
            }
            Self::InvalidPort => "has an invalid port: a number from 1 to 65535",
            Self::HasUserInfo => "must not contain user information",
            Self::HasQueryOrFragment => "must not contain a query or fragment",
            Self::InvalidPath => {
                "has an invalid path: letters, digits, - . _ ~ ! $ & ' ( ) * + , = : @ and %XX escapes, no empty, \
                 . or .. segments"
            }
        })
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// Parses an absolute `http(s)://host[:port][/path]` URL, strictly: printable ASCII
    /// only; a DNS name, an IPv4 address or an IPv6 address in brackets; a port from 1 to
    /// 65535; a path of RFC 3986 path characters without empty, `.` or `..` segments; no
    /// user information, query or fragment. Whatever passes can be put in an Envoy cluster
    /// and a `:path` header as it is.
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let url = url.trim();
        if let Some(ch) = url.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(EndpointError::Character { ch });
        }
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
            base_path: base_path(path)?,
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
        let (inner, after) = v6.split_once(']').ok_or(EndpointError::InvalidHost)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| EndpointError::InvalidHost)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(EndpointError::InvalidPort)?),
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        (host_name(host)?, port)
    };
    let port = match port {
        None => scheme.default_port(),
        Some(p) => parse_port(p)?,
    };
    Ok((host, port))
}

/// A DNS name of RFC 1123 labels, lowercased; or, when its last label is numeric (which
/// no DNS name's is), an IPv4 address in dotted decimal.
fn host_name(host: &str) -> Result<String, EndpointError> {
    let numeric_last = host
        .rsplit('.')
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if numeric_last {
        return host
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| EndpointError::InvalidHost);
    }
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(label) {
        return Err(EndpointError::InvalidHost);
    }
    Ok(host.to_ascii_lowercase())
}

/// Digits only (`u16::from_str` would also take a sign), 1 to 65535.
fn parse_port(p: &str) -> Result<u16, EndpointError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::InvalidPort);
    }
    match p.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(EndpointError::InvalidPort),
    }
}

/// The path prefix without its trailing `/`s (empty for none).
fn base_path(path: &str) -> Result<String, EndpointError> {
    let trimmed = path.trim_end_matches('/');
    match trimmed.strip_prefix('/') {
        None => Ok(String::new()),
        Some(body) if body.split('/').all(path_segment) => Ok(trimmed.to_string()),
        Some(_) => Err(EndpointError::InvalidPath),
    }
}

/// A non-empty segment of RFC 3986 `pchar`s (minus `;`, which a connection string cannot
/// hold anyway), with well-formed `%XX` escapes, other than `.` and `..`.
fn path_segment(segment: &str) -> bool {
    const ALLOWED: &[u8] = b"-._~!$&'()*+,=:@";
    if segment.is_empty() || segment == "." || segment == ".." {
        return false;
    }
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        let ok = if b == b'%' {
            bytes.next().is_some_and(|h| h.is_ascii_hexdigit()) && bytes.next().is_some_and(|h| h.is_ascii_hexdigit())
        } else {
            b.is_ascii_alphanumeric() || ALLOWED.contains(&b)
        };
        if !ok {
            return false;
        }
    }
    true
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

    #[test]
    fn anything_but_printable_ascii_is_refused() {
        for (url, ch) in [
            ("https://h/a b", ' '),
            ("https://my host/", ' '),
            ("https://h\0st/", '\0'),
            ("http://127.0.0.1:9/\0/", '\0'),
            ("https://h\u{e9}.example/", '\u{e9}'),
            ("https://h/caf\u{e9}", '\u{e9}'),
            ("https://h:80\t/", '\t'),
            ("https://h/x\u{202e}y", '\u{202e}'),
            ("https://h/\u{7f}", '\u{7f}'),
        ] {
            assert_eq!(Endpoint::parse(url), Err(EndpointError::Character { ch }), "{url:?}");
        }
    }

    #[test]
    fn hosts_are_dns_names_ipv4_or_bracketed_ipv6() {
        let label63 = "a".repeat(63);
        for (url, host) in [
            (
                "https://westeurope-5.in.applicationinsights.azure.com/",
                "westeurope-5.in.applicationinsights.azure.com",
            ),
            ("http://127.0.0.1:9001", "127.0.0.1"),
            ("http://[::1]:9001", "::1"),
            ("http://[2001:DB8::1]/", "2001:db8::1"),
            ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1"),
            ("http://localhost", "localhost"),
            ("http://A-1.b2/", "a-1.b2"),
            (&format!("http://{label63}.x/"), &format!("{label63}.x")),
        ] {
            assert_eq!(Endpoint::parse(url).map(|e| e.host), Ok(host.to_string()), "{url:?}");
        }
        let long = format!("http://{}/", vec!["a".repeat(50); 6].join("."));
        for url in [
            "http://-h/",
            "http://h-/",
            "http://a..b/",
            "http://.h/",
            "http://h./",
            "http://h_x/",
            "http://h%41/",
            "http://h!/",
            "http://999.0.0.1/",
            "http://1.2.3/",
            "http://01.2.3.4/",
            "http://[::zz]/",
            "http://[:::::]/",
            "http://[1.2.3.4]/",
            "http://[]/",
            "http://[::1/",
            "http://::1/",
            &format!("http://{}a.x/", label63),
            &long,
        ] {
            assert_eq!(Endpoint::parse(url), Err(EndpointError::InvalidHost), "{url:?}");
        }
    }

    #[test]
    fn ports_are_1_to_65535_in_digits() {
        assert_eq!(Endpoint::parse("http://h:1/").map(|e| e.port), Ok(1));
        assert_eq!(Endpoint::parse("http://h:65535/").map(|e| e.port), Ok(65535));
        assert_eq!(Endpoint::parse("https://h/").map(|e| e.port), Ok(443));
        for url in [
            "http://h:/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:+80/",
            "http://h:8a/",
            "http://h:1:2/",
            "http://[::1]:/",
            "http://[::1]x/",
        ] {
            assert_eq!(Endpoint::parse(url), Err(EndpointError::InvalidPort), "{url:?}");
        }
    }

    #[test]
    fn paths_are_safe_characters_without_dot_or_empty_segments() {
        for (url, base) in [
            ("https://h/a/b-c_d.e~f/", "/a/b-c_d.e~f"),
            ("https://h/v2%20x", "/v2%20x"),
            ("https://h/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
            ("https://h//", ""),
            ("https://h", ""),
        ] {
            assert_eq!(
                Endpoint::parse(url).map(|e| e.base_path),
                Ok(base.to_string()),
                "{url:?}"
            );
        }
        for url in [
            "https://h/a%2",
            "https://h/a%zz/",
            "https://h/a\"b",
            "https://h/<x>",
            "https://h/a\\b",
            "https://h/a{b}",
            "https://h/a|b",
            "https://h/a^b",
            "https://h/a`b",
            "https://h/[x]",
            "https://h/a//b",
            "https://h/./",
            "https://h/a/../b",
        ] {
            assert_eq!(Endpoint::parse(url), Err(EndpointError::InvalidPath), "{url:?}");
        }
    }
}
