//! Connection strings: real ones with entries dropped, repeated, reordered, re-keyed and
//! given edge values (URLs built from valid and broken schemes, hosts, ports and paths).
//! An accepted one yields an endpoint Envoy can use as it is (printable ASCII, no spaces)
//! that parses back to itself; an error repeats no key; a configuration takes exactly the
//! connection strings the parser takes.

use crate::configuration::{check_error_message, guids_in, LOCAL_CS};
use crate::mutate::{edits, mutate_string, STRINGS};
use crate::runner::{fuzz, show, Findings, Rng};
use envoy_appinsights::config::Config;
use envoy_appinsights::connection_string::{ConnectionString, Endpoint};
use serde_json::json;

/// Real connection strings (the portal's form, the README's, sovereign clouds, local ones).
pub const CONNECTION_STRINGS: &[&str] = &[
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
    "InstrumentationKey=0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;\
     LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;ApplicationId=6f2c1b0a-1111-2222-3333-444455556666",
    LOCAL_CS,
    "InstrumentationKey=00000000-0000-0000-0000-000000000001;EndpointSuffix=applicationinsights.azure.cn;Location=chinaeast2",
    "instrumentationkey = 00000000-0000-0000-0000-000000000001 ;; INGESTIONENDPOINT=http://[::1]:8080/base/v1;\
     AADAudience=https://monitor.azure.us;Authorization=ikey",
    "InstrumentationKey=ABCDEF01-2345-6789-abcd-ef0123456789",
    "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://xn--bcher-kva.example:443/a%20b/~x/",
];

/// Keys a connection string may hold, in the case the portal writes them and others.
const CS_KEYS: &[&str] = &[
    "InstrumentationKey",
    "IngestionEndpoint",
    "EndpointSuffix",
    "Location",
    "Authorization",
    "AADAudience",
    "ApplicationId",
    "LiveEndpoint",
    "instrumentationkey",
    "INGESTIONENDPOINT",
];

/// An endpoint URL built from parts, each valid or at an edge.
pub fn url(rng: &mut Rng) -> String {
    let scheme = *rng.pick(&[
        "https://",
        "http://",
        "HTTPS://",
        "hTtP://",
        "ftp://",
        "",
        "//",
        "https:/",
        "https:///",
    ]);
    let user = *rng.pick(&["", "", "", "user:pw@", "@"]);
    let host = *rng.pick(&[
        "dc.services.visualstudio.com",
        "westeurope-5.in.applicationinsights.azure.com",
        "127.0.0.1",
        "[::1]",
        "[fe80::1%25eth0]",
        "[::ffff:1.2.3.4]",
        "[1:2:3:4:5:6:7:8:9]",
        "[::1",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "0x7f.0.0.1",
        "a..b",
        "-a.com",
        "a-.com",
        "a_b.com",
        "xn--bcher-kva.example",
        "bücher.example",
        "localhost",
        "LOCALHOST.",
        "",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
    ]);
    let port = *rng.pick(&[
        "",
        "",
        ":443",
        ":0",
        ":1",
        ":65535",
        ":65536",
        ":-1",
        ":+80",
        ":080",
        ":",
        ":99999999999999999999",
        ":８０",
    ]);
    let path = *rng.pick(&[
        "", "/", "/", "/v2", "/a/../b", "/a//b", "/./", "/%41", "/%4", "/%zz", "/a b", "/?q=1", "/#f", "/é", "/a;b=c",
        "/~u/x.y",
    ]);
    let mut url = format!("{scheme}{user}{host}{port}{path}");
    if rng.chance(10) {
        url = format!(" {url}\t");
    }
    if rng.chance(5) {
        url.push_str(&"a".repeat(rng.length()));
    }
    url
}

/// A connection string: a real one with its entries dropped, duplicated, reordered,
/// re-keyed or given edge values, or its text mutated.
pub fn connection_string(rng: &mut Rng) -> String {
    let seed = *rng.pick(CONNECTION_STRINGS);
    if rng.chance(35) {
        let mut s = seed.to_string();
        for _ in 0..edits(rng) {
            s = mutate_string(rng, &s);
        }
        return s;
    }
    let mut entries: Vec<String> = seed.split(';').map(str::to_string).collect();
    for _ in 0..edits(rng) {
        let i = rng.below(entries.len());
        match rng.below(8) {
            0 if entries.len() > 1 => {
                entries.remove(i);
            }
            1 => {
                let copy = entries[i].clone();
                entries.insert(rng.upto(entries.len()), copy);
            }
            2 => {
                let j = rng.below(entries.len());
                entries.swap(i, j);
            }
            3 => entries.insert(rng.upto(entries.len()), format!("IngestionEndpoint={}", url(rng))),
            4 => {
                let key = *rng.pick(CS_KEYS);
                let value = match rng.below(3) {
                    0 => url(rng),
                    1 => rng.pick(STRINGS).to_string(),
                    _ => mutate_string(rng, "00000000-0000-0000-0000-000000000001"),
                };
                entries.insert(rng.upto(entries.len()), format!("{key}={value}"));
            }
            5 => {
                let (key, value) = entries[i].split_once('=').unwrap_or((&entries[i], ""));
                entries[i] = format!("{}={}", mutate_string(rng, key), value);
            }
            6 => {
                let (key, value) = entries[i].split_once('=').unwrap_or((&entries[i], ""));
                entries[i] = format!("{key}={}", mutate_string(rng, value));
            }
            _ => entries.insert(
                rng.upto(entries.len()),
                rng.pick(&["", " ", "=", "a=b=c", "x"]).to_string(),
            ),
        }
    }
    entries.join(if rng.chance(90) { ";" } else { " ; " })
}

/// Exactly one instrumentation key, 8-4-4-4-12 hexadecimal digits.
pub fn is_guid(s: &str) -> bool {
    guids_in(s.as_bytes()).len() == 1 && s.len() == 36
}

#[test]
fn connection_strings() {
    let report = fuzz(
        "connection_strings",
        3000,
        connection_string,
        |s| show(s.as_bytes()),
        |s, f| {
            let parsed = ConnectionString::parse(s);
            let in_config = Config::from_value(&json!({"loggers": {"main": {"connection_string": s}}}));
            f.check(
                "a connection string is accepted in a configuration exactly when it parses",
                parsed.is_ok() == in_config.is_ok(),
                || format!("parse: {parsed:?}; configuration: {in_config:?}"),
            );
            match parsed {
                Err(e) => {
                    f.note("refused");
                    check_error_message(f, &e.to_string(), s.as_bytes());
                    if let Err(e) = in_config {
                        check_error_message(f, &e.to_string(), s.as_bytes());
                    }
                }
                Ok(cs) => {
                    f.note("accepted");
                    check_endpoint(f, &cs.ingestion_endpoint);
                    f.check(
                        "an accepted instrumentation key is a GUID",
                        is_guid(&cs.instrumentation_key),
                        || format!("{:?}", cs.instrumentation_key),
                    );
                    let app = cs.application_id.as_deref().unwrap_or("x");
                    f.check(
                        "an application id is 1-64 letters, digits and '-'",
                        app.len() <= 64
                            && !app.is_empty()
                            && app.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                        || format!("{app:?}"),
                    );
                }
            }
            // The bare-key form, on whatever the connection string holds as its key.
            let key = s.split(';').find_map(|e| {
                let (k, v) = e.split_once('=')?;
                k.trim().eq_ignore_ascii_case("instrumentationkey").then_some(v)
            });
            if let Some(key) = key {
                match ConnectionString::from_instrumentation_key(key) {
                    Ok(cs) => f.check(
                        "a bare key is accepted only as a GUID",
                        is_guid(&cs.instrumentation_key),
                        || format!("{key:?}"),
                    ),
                    Err(e) => check_error_message(f, &e.to_string(), key.as_bytes()),
                }
            }
        },
    );
    report.assert_holds(|_| true);
    assert!(
        report.noted("accepted") * 10 >= report.cases,
        "too few accepted: {:?}",
        report.notes
    );
}

/// What an accepted endpoint must be: a URL Envoy can use as it is, that parses back to
/// itself.
fn check_endpoint(f: &mut Findings, e: &Endpoint) {
    let url = e.url();
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    f.check(
        "an endpoint's URL is printable ASCII without spaces",
        printable(&url) && printable(&e.authority()) && printable(&e.track_path()),
        || format!("{url:?} {:?} {:?}", e.authority(), e.track_path()),
    );
    f.check(
        "an endpoint's URL is http(s)://host/",
        (url.starts_with("http://") || url.starts_with("https://")) && url.ends_with('/') && !e.host.is_empty(),
        || format!("{url:?}"),
    );
    f.check("an endpoint's port is not 0", e.port != 0, || format!("{e:?}"));
    f.check(
        "the track path is <base>/v2.1/track",
        e.track_path().starts_with('/') && e.track_path().ends_with("/v2.1/track") && !e.track_path().contains("//"),
        || e.track_path(),
    );
    let again = Endpoint::parse(&url);
    f.check(
        "an endpoint's URL parses back to the same endpoint",
        again.as_ref() == Ok(e),
        || format!("{e:?} -> {url:?} -> {again:?}"),
    );
}
