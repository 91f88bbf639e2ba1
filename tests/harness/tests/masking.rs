//! Masking by meaning, not spelling, through the real Envoy: secrets planted in every shape
//! an attacker found getting past masking (compressed bodies, escaped and case-varied JSON
//! keys, form bodies, URLs inside headers and trace templates, vendor credential headers,
//! odd query shapes) never reach the ingestion endpoint or Envoy's log, in any encoding.

mod common;

use common::*;
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use harness::http::{self, Reply, Request, Response, Server};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;

/// Every secret planted, by where it was planted. Distinct, so a leak names its variant.
const SECRETS: &[(&str, &str)] = &[
    ("gzip request body: access_token", "gzreq-access-7Qx1"),
    ("gzip request body: password", "gzreq-password-7Qx2"),
    ("JSON key pass\\u0077ord", "json-escaped-key-7Qx3"),
    ("JSON key Password", "json-capital-key-7Qx4"),
    ("JSON key PASSWORD", "json-upper-key-7Qx5"),
    ("JSON key \\u0061ccess_TOKEN", "json-escaped-upper-7Qx6"),
    ("form client_secret", "form-client-secret-7Qx7"),
    ("form password", "form-password-7Qx8"),
    ("form Client%5FSecret", "form-encoded-name-7Qx9"),
    ("form PASSWORD with reserved characters", "form+special/chars=7QxA"),
    ("Referer ?token=", "referer-token-7QxB"),
    ("x-auth-token header", "x-auth-token-7QxC"),
    ("x-amz-security-token header", "x-amz-security-7QxD"),
    ("x-goog-api-key header", "x-goog-api-key-7QxE"),
    ("?a=1;token=", "semicolon-token-7QxF"),
    ("??token=", "double-question-7QxG"),
    ("Location ?code=", "location-code-7QxH"),
    ("Location #access_token=", "location-fragment-7QxI"),
    ("Link ?sig=", "link-sig-7QxJ"),
    ("gzip response body: access_token", "gzresp-access-7QxK"),
    ("gzip response body: password", "gzresp-password-7QxL"),
    ("JSON response key PASSWORD", "jsonresp-upper-7QxM"),
    ("JSON response key pass\\u0077ord", "jsonresp-escaped-7QxN"),
    ("form response access_token", "formresp-access-7QxO"),
    ("JSON response URL with \\u0026token=", "jsonresp-url-token-7QxP"),
    ("binary request body", "binary-body-7QxQ"),
    ("JSON text in a JSON string", "json-in-json-7QxR"),
    ("?next=%2Fcb%3Ftoken%3D", "encoded-url-token-7QxS"),
];

fn secret(label: &str) -> &'static str {
    SECRETS
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("no secret {label}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A backend that answers with secrets in the shapes under test.
fn secret_backend() -> Server {
    let handler: http::Handler = Arc::new(|req: &Request| -> Reply {
        let s = secret;
        match req.path_only() {
            "/redirect" => Response::new(302)
                .with_header(
                    "Location",
                    &format!(
                        "https://app.example/cb?state=ok&code={}#access_token={}&token_type=bearer",
                        s("Location ?code="),
                        s("Location #access_token=")
                    ),
                )
                .with_header(
                    "Link",
                    &format!("<https://app.example/next?page=2&sig={}>; rel=\"next\"", s("Link ?sig=")),
                )
                .into(),
            "/gz-response" => Response::new(200)
                .with_header("Content-Type", "application/json")
                .with_header("Content-Encoding", "gzip")
                .with_body(gzip(
                    json!({"access_token": s("gzip response body: access_token"),
                           "password": s("gzip response body: password")})
                    .to_string()
                    .as_bytes(),
                ))
                .into(),
            "/json-response" => Response::new(200)
                .with_header("Content-Type", "application/json; charset=utf-8")
                .with_body(
                    format!(
                        r#"{{"user":"ada","PASSWORD":"{}","pass\u0077ord":"{}","next":"https://app.example/p?page=2\u0026token={}"}}"#,
                        s("JSON response key PASSWORD"),
                        s("JSON response key pass\\u0077ord"),
                        s("JSON response URL with \\u0026token=")
                    )
                    .into_bytes(),
                )
                .into(),
            "/form-response" => Response::new(200)
                .with_header("Content-Type", "application/x-www-form-urlencoded")
                .with_body(
                    format!(
                        "access_token={}&token_type=bearer&scope=repo",
                        s("form response access_token")
                    )
                    .into_bytes(),
                )
                .into(),
            _ => Response::json(200, &json!({"ok": true})).into(),
        }
    });
    Server::start("127.0.0.1:0", handler).unwrap()
}

/// `%XX` for every byte outside RFC 3986's unreserved set.
fn percent_encode(s: &str, upper: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ if upper => format!("%{b:02X}"),
            _ => format!("%{b:02x}"),
        })
        .collect()
}

/// Decodes `%XX` and `+` (lenient: anything else stays).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(B64[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict base64 (standard or URL-safe alphabet), `None` if `s` is not base64.
fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() < 8 {
        return None;
    }
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = match c {
            b'-' => 62,
            b'_' => 63,
            _ => B64.iter().position(|&x| x == c)? as u32,
        };
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// The forms a secret could take in a text: clear, percent-encoded, and the parts of its
/// base64 that do not depend on where in the encoded text it started.
fn spellings(secret: &str) -> Vec<String> {
    let mut all = vec![
        secret.to_string(),
        percent_encode(secret, true),
        percent_encode(secret, false),
        serde_json::to_string(secret).unwrap().trim_matches('"').to_string(),
    ];
    for k in 0..3 {
        let mut bytes = vec![b'x'; k];
        bytes.extend_from_slice(secret.as_bytes());
        let b = base64(&bytes);
        let skip = [0, 2, 3][k];
        all.push(b[skip..b.len() - 4].to_string());
    }
    all.sort();
    all.dedup();
    all
}

/// Every string in a JSON value (keys and values), unescaped.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// A text and what it decodes to: percent-decoded, base64-decoded, gunzipped.
fn views(text: &str) -> Vec<String> {
    let mut out = vec![text.to_string(), percent_decode(text)];
    for word in text.split(|c: char| c.is_whitespace() || "\"'<>,;".contains(c)) {
        if let Some(bytes) = unbase64(word) {
            out.push(String::from_utf8_lossy(&bytes).into_owned());
            let mut plain = Vec::new();
            if GzDecoder::new(&bytes[..]).read_to_end(&mut plain).is_ok() {
                out.push(String::from_utf8_lossy(&plain).into_owned());
            }
        }
    }
    out
}

/// Which planted secrets appear in `text` (or anything it decodes to), in any spelling.
fn leaks_in(place: &str, text: &str, leaks: &mut Vec<String>) {
    let views = views(text);
    for (label, secret) in SECRETS {
        for spelling in spellings(secret) {
            if views.iter().any(|v| v.contains(&spelling)) {
                leaks.push(format!("{label} ({spelling:?}) in {place}"));
                break;
            }
        }
    }
}

fn config() -> Value {
    json!({"diagnostic": {
        "frontend": {"request": {"headers": ["referer", "x-auth-token", "x-amz-security-token", "x-goog-api-key", "content-type"], "body_bytes": 4096},
                     "response": {"headers": ["location", "link", "content-type"], "body_bytes": 4096}},
        "backend": {"request": {"headers": ["referer", "x-auth-token", "x-amz-security-token", "x-goog-api-key"], "body_bytes": 4096},
                    "response": {"headers": ["location", "link"], "body_bytes": 4096}},
        "header_properties": {"Ref": "referer", "GoogKey": "x-goog-api-key"},
        "data_masking": {"json_fields": ["password", "access_token"]},
        "traces": [{"severity": "information",
                    "message": "{request.method} {request.url} from {request.header.referer} to {response.header.location}",
                    "metadata": {"auth": "{request.header.x-auth-token}", "aws": "{request.header.x-amz-security-token}",
                                 "loc": "{response.header.location}", "link": "{response.header.link}", "url": "{request.url}"}}]}})
}

/// Sends every variant through the gateway.
fn plant(listener: std::net::SocketAddr) {
    let s = secret;
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        let r = http::request(listener, method, path, headers, body).unwrap();
        assert!(r.status < 400, "{method} {path}: {}", r.status);
    };
    let json_body = json!({"user": "ada", "access_token": s("gzip request body: access_token"),
                           "password": s("gzip request body: password")});
    send(
        "POST",
        "/gz-request",
        &[("content-type", "application/json"), ("content-encoding", "gzip")],
        &gzip(json_body.to_string().as_bytes()),
    );
    let escaped = format!(
        r#"{{"user":"ada","pass\u0077ord":"{}","Password":"{}","PASSWORD":"{}","\u0061ccess_TOKEN":"{}","Message":"{{\"password\":\"{}\"}}"}}"#,
        s("JSON key pass\\u0077ord"),
        s("JSON key Password"),
        s("JSON key PASSWORD"),
        s("JSON key \\u0061ccess_TOKEN"),
        s("JSON text in a JSON string")
    );
    send(
        "POST",
        "/json-request",
        &[("content-type", "application/json")],
        escaped.as_bytes(),
    );
    let form = format!(
        "grant_type=password&username=ada&client_secret={}&password={}&Client%5FSecret={};PASSWORD={}",
        s("form client_secret"),
        s("form password"),
        s("form Client%5FSecret"),
        percent_encode(s("form PASSWORD with reserved characters"), true)
    );
    send(
        "POST",
        "/form-request",
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    let referer = format!("https://app.example/from?x=1&token={}", s("Referer ?token="));
    send(
        "GET",
        "/headers",
        &[
            ("referer", &referer),
            ("x-auth-token", s("x-auth-token header")),
            ("x-amz-security-token", s("x-amz-security-token header")),
            ("x-goog-api-key", s("x-goog-api-key header")),
        ],
        b"",
    );
    let mut binary = vec![0xff, 0xfe, 0x00];
    binary.extend_from_slice(format!("password={}", s("binary request body")).as_bytes());
    send(
        "POST",
        "/binary",
        &[("content-type", "application/octet-stream")],
        &binary,
    );
    send("GET", &format!("/semicolon?a=1;token={}", s("?a=1;token=")), &[], b"");
    send("GET", &format!("/double??token={}", s("??token=")), &[], b"");
    let next = format!("/login?next=%2Fcb%3Fx%3D1%26token%3D{}", s("?next=%2Fcb%3Ftoken%3D"));
    send("GET", &next, &[], b"");
    for path in ["/redirect", "/gz-response", "/json-response", "/form-response"] {
        send("GET", path, &[], b"");
    }
}

#[test]
fn secrets_in_every_shape_never_reach_the_ingestion_endpoint_or_the_log() {
    let backend = secret_backend();
    let addr = backend.addr().to_string();
    let s = start_with(config(), &["--component-log-level", "wasm:debug"], |settings| {
        settings.backend = addr
    });
    plant(s.envoy.listener);
    // Twelve exchanges: a Request, a Dependency and a Trace each.
    let items = settled(&s.ingest, 36);
    assert_eq!(items.len(), 36, "{items:#?}");
    let mut leaks = Vec::new();
    for (n, r) in s.ingest.requests().iter().enumerate() {
        let raw = String::from_utf8_lossy(&r.body);
        leaks_in(&format!("ingestion payload {n}"), &raw, &mut leaks);
        for line in raw.lines() {
            let mut all = Vec::new();
            strings(&serde_json::from_str(line).unwrap(), &mut all);
            for text in all {
                leaks_in(&format!("ingestion payload {n}, string {text:?}"), &text, &mut leaks);
            }
        }
        let headers: String = r.headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        leaks_in("ingestion request headers", &headers, &mut leaks);
    }
    let log = s.envoy.log();
    assert!(log.contains("appinsights") && log.contains("configured"), "{log}");
    leaks_in("Envoy's log", &log, &mut leaks);
    assert!(leaks.is_empty(), "{} leaks:\n{}", leaks.len(), leaks.join("\n"));
    check_what_was_recorded_instead(&items, s.envoy.listener);
}

/// Masked or withheld, the items still say what happened.
fn check_what_was_recorded_instead(items: &[Value], listener: std::net::SocketAddr) {
    let props = |base: &str, name: &str| one(items, base, "name", name)["data"]["baseData"]["properties"].clone();
    let gz = props("RequestData", "POST /gz-request");
    assert_eq!(gz["Request-Body-Withheld"], "compressed", "{gz:#}");
    assert_eq!(gz["Request-Body-Content-Encoding"], "gzip");
    assert!(gz.get("Request-Body").is_none());
    let js = props("RequestData", "POST /json-request");
    assert_eq!(
        js["Request-Body"],
        r#"{"user":"ada","pass\u0077ord":"***","Password":"***","PASSWORD":"***","\u0061ccess_TOKEN":"***","Message":"{\"password\":\"***\"}"}"#
    );
    let form = props("RemoteDependencyData", "POST /form-request");
    assert_eq!(
        form["Request-Body"],
        "grant_type=password&username=ada&client_secret=***&password=***&Client%5FSecret=***;PASSWORD=***"
    );
    let h = props("RequestData", "GET /headers");
    assert_eq!(h["Request-referer"], "https://app.example/from?x=1&token=***");
    assert_eq!(h["Ref"], "https://app.example/from?x=1&token=***");
    for name in ["x-auth-token", "x-amz-security-token", "x-goog-api-key"] {
        assert_eq!(h[format!("Request-{name}")], "***", "{name}");
    }
    let semi = one(items, "RequestData", "name", "GET /semicolon");
    assert_eq!(
        semi["data"]["baseData"]["url"],
        format!("http://{listener}/semicolon?a=1;token=***")
    );
    let login = one(items, "RemoteDependencyData", "name", "GET /login");
    assert!(
        login["data"]["baseData"]["data"]
            .as_str()
            .unwrap()
            .ends_with("/login?next=%2Fcb%3Fx%3D1%26token%3D***"),
        "{login:#}"
    );
    let redirect = props("RemoteDependencyData", "GET /redirect");
    assert_eq!(
        redirect["Response-location"],
        "https://app.example/cb?state=ok&code=***#access_token=***&token_type=bearer"
    );
    let gz = props("RequestData", "GET /gz-response");
    assert_eq!(gz["Response-Body-Withheld"], "compressed");
    let form = props("RequestData", "GET /form-response");
    assert_eq!(form["Response-Body"], "access_token=***&token_type=bearer&scope=repo");
    let bin = props("RequestData", "POST /binary");
    assert_eq!(bin["Request-Body-Withheld"], "binary");
    let traces = kind(items, "MessageData");
    let trace = |path: &str| -> Value {
        let t = traces
            .iter()
            .find(|t| {
                t["data"]["baseData"]["properties"]["url"]
                    .as_str()
                    .unwrap()
                    .contains(path)
            })
            .unwrap_or_else(|| panic!("a trace for {path}"));
        t["data"]["baseData"].clone()
    };
    assert_eq!(
        trace("/double")["message"],
        format!("GET http://{listener}/double??token=*** from  to ")
    );
    let h = trace("/headers");
    assert_eq!(
        h["message"],
        format!("GET http://{listener}/headers from https://app.example/from?x=1&token=*** to ")
    );
    assert_eq!(h["properties"]["auth"], "***");
    assert_eq!(h["properties"]["aws"], "***");
    let r = trace("/redirect");
    assert_eq!(
        r["properties"]["loc"],
        "https://app.example/cb?state=ok&code=***#access_token=***&token_type=bearer"
    );
    assert_eq!(
        r["properties"]["link"],
        "<https://app.example/next?page=2&sig=***>; rel=\"next\""
    );
}

#[test]
fn the_leak_detector_sees_every_encoding() {
    let secret = secret("form PASSWORD with reserved characters");
    let body = format!(r#"{{"password":"{secret}"}}"#);
    for (how, text) in [
        ("clear", format!("x {secret} y")),
        ("percent-encoded", format!("p={}", percent_encode(secret, false))),
        ("JSON-escaped", serde_json::to_string(&json!({"v": secret})).unwrap()),
        ("base64 at any offset", base64(format!("ab{secret}").as_bytes())),
        ("base64 of a gzip body", base64(&gzip(body.as_bytes()))),
    ] {
        let mut leaks = Vec::new();
        leaks_in(how, &text, &mut leaks);
        assert_eq!(leaks.len(), 1, "{how}: {text}");
    }
    let mut leaks = Vec::new();
    leaks_in("masked", "password=***&token=***", &mut leaks);
    assert!(leaks.is_empty());
}
