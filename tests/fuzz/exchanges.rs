//! Trace templates and whole exchanges: random configurations (trace rules with random
//! templates and conditions, captures, header properties, masking, APIs, small batches)
//! over random exchanges (empty, huge and non-UTF-8 methods, paths and headers; odd and
//! inconsistent statuses; attributes of the wrong size; corrupt header maps; no request
//! headers callback, no response), run through the real callbacks, then delivered and
//! answered "all accepted". Every NDJSON line of every callout body is checked
//! ([`crate::items`]) and every item must be accounted for.

use crate::configuration::{config_seeds, LOCAL_CS};
use crate::correlation::correlation_case;
use crate::envoy::{drive_exchange, gunzip, loggers_of, Envoy, Exchange, DROP_REASONS, ITEMS_CREATED_BALANCE};
use crate::items::check_item;
use crate::mutate::{mutate_bytes, string, TOKENS};
use crate::runner::{cut, fuzz, show, Findings, Report, Rng};
use envoy_appinsights::correlation::Protocol;
use envoy_appinsights::headers::HeaderMap;
use envoy_appinsights::host::fake::FAKE_NOW;
use envoy_appinsights::host::{Attribute, BufferKind};
use envoy_appinsights::pipeline::plugin::Plugin;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// A configuration and the exchanges run through it.
struct ExchangeCase {
    config: Value,
    protocol: Protocol,
    exchanges: Vec<Exchange>,
}

/// Request and response headers the trace rules, captures and properties use.
const HEADER_NAMES: &[&str] = &[
    "x-tenant",
    "x-debug",
    "user-agent",
    "content-type",
    "authorization",
    "cookie",
    "x-api-key",
    "ocp-apim-subscription-key",
    "x-request-id",
    "tracestate",
    "x-missing",
    "x-cache",
    "set-cookie",
    "content-length",
];

/// Placeholders of trace templates (one with the spaces the parser trims).
const PLACEHOLDERS: &[&str] = &[
    "request.method",
    "request.path",
    "request.url",
    "response.status",
    "route",
    "api",
    "operation",
    "operation_id",
    "duration_ms",
    " request.method ",
    "cluster",
    "metadata.envoy.filters.http.jwt_authn/payload/sub",
];

/// A header value: usual ones, [`STRINGS`](crate::mutate::STRINGS), random bytes, a
/// mutated JSON document.
fn header_value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=3 => rng
            .pick(&[
                "contoso",
                "1",
                "",
                "application/json",
                "Bearer eyJhbGciOi.secret.sig",
                "session=abc; token=xyz",
                "curl/8.0",
                "00000000-0000-0000-0000-000000000001",
            ])
            .as_bytes()
            .to_vec(),
        4..=6 => string(rng).into_bytes(),
        7 => (0..rng.length()).map(|_| rng.next() as u8).collect(),
        _ => {
            let mut v = br#"{"password":"hunter2","card_number":"4111 1111","nested":{"token":"t"}}"#.to_vec();
            mutate_bytes(rng, &mut v, TOKENS);
            v
        }
    }
}

/// Text between placeholders.
const GLUE: &[&str] = &[" failed: ", "{{", "}}", " ", "é", "\"q\"", "\t"];

/// A trace template: placeholders (known ones, headers, now and then with spaces) and
/// text with its braces doubled, empty now and then.
pub fn template(rng: &mut Rng) -> String {
    let mut t = String::new();
    for _ in 0..rng.upto(5) {
        match rng.below(5) {
            0 | 1 => {
                let field = match rng.below(3) {
                    0 => rng.pick(PLACEHOLDERS).to_string(),
                    1 => {
                        let name = *rng.pick(HEADER_NAMES);
                        format!("request.header.{}", rng.pick(&[name, "X-Tenant", ":path", "é"]))
                    }
                    _ => format!("response.header.{}", rng.pick(HEADER_NAMES)),
                };
                t.push('{');
                t.push_str(&field);
                t.push('}');
            }
            2 => t.push_str(&string(rng).replace('{', "{{").replace('}', "}}")),
            3 => t.push_str(&"x".repeat(rng.length().min(32_000))),
            _ => {
                let glue = *rng.pick(GLUE);
                t.push_str(glue);
            }
        }
    }
    t
}

/// A trace rule: a random template, now and then a severity, a source, conditions and
/// metadata.
fn trace_rule(rng: &mut Rng) -> Value {
    let mut rule = json!({"message": template(rng)});
    if rng.chance(70) {
        rule["severity"] = json!(rng.pick(&["verbose", "information", "error", "Error", "INFORMATION"]));
    }
    if rng.chance(40) {
        rule["source"] = json!(rng.pick(&["gateway", "policy", "é🦀", "s p a c e", &"s".repeat(150)]));
    }
    if rng.chance(60) {
        let mut when = Map::new();
        for _ in 0..rng.upto(3) {
            let (key, v) = match rng.below(6) {
                0 => (
                    "status",
                    rng.pick(&[
                        json!(["5xx"]),
                        json!([404, "4xx"]),
                        json!(200),
                        json!("2xx"),
                        json!([500, 503]),
                    ])
                    .clone(),
                ),
                1 => ("failed", json!(rng.chance(50))),
                2 => {
                    let mut h = json!({"name": rng.pick(HEADER_NAMES)});
                    if rng.chance(50) {
                        h["equals"] = json!(String::from_utf8_lossy(&header_value(rng)));
                    }
                    ("request_headers", json!([h]))
                }
                3 => (
                    "response_headers",
                    json!([{"name": rng.pick(&["x-cache", "content-type"])}]),
                ),
                4 => ("min_duration_ms", json!(rng.pick(&[0, 1, 500, 86_400_000]))),
                _ => ("route_names", json!([rng.pick(&["backend", "orders", "r1"])])),
            };
            when.insert(key.to_string(), v);
        }
        rule["when"] = Value::Object(when);
    }
    if rng.chance(40) {
        let mut metadata = Map::new();
        for _ in 0..rng.upto(2) + 1 {
            metadata.insert(
                rng.pick(&["tenant", "debug", "é", "Long Name"]).to_string(),
                json!(template(rng)),
            );
        }
        rule["metadata"] = Value::Object(metadata);
    }
    rule
}

/// Custom metrics (emit-metric rules, token metrics) now and then, on or off.
fn metric_settings(rng: &mut Rng, d: &mut Value) {
    if rng.chance(30) {
        d["standard_metrics"] = json!(rng.chance(50));
    }
    if !rng.chance(40) {
        return;
    }
    d["metrics"] = json!(rng.chance(80));
    let dimension = |rng: &mut Rng| match rng.below(3) {
        0 => json!({"name": rng.pick(&["API ID", "Operation ID", "Location", "Gateway ID"])}),
        _ => json!({"name": format!("d{}", rng.below(1000)), "value": template(rng)}),
    };
    let dimensions = |rng: &mut Rng, min: usize| -> Vec<Value> {
        let mut dims: Vec<Value> = (0..rng.upto(10 - min) + min).map(|_| dimension(rng)).collect();
        let mut seen = std::collections::HashSet::new();
        dims.retain(|d| seen.insert(d["name"].to_string()));
        dims
    };
    let rules: Vec<Value> = (0..rng.upto(2) + 1)
        .map(|i| {
            let value = [
                json!(1),
                json!(-2.5),
                json!("request.duration_ms"),
                json!("backend.duration_ms"),
                json!("request.size"),
                json!("response.size"),
                json!("request.header.x-tenant"),
                json!("response.header.content-length"),
            ][rng.below(8)]
            .clone();
            json!({"name": format!("metric {i}"), "value": value, "dimensions": dimensions(rng, 1)})
        })
        .collect();
    d["emit_metrics"] = json!(rules);
    if rng.chance(50) {
        d["token_metrics"] = json!({"namespace": "llm", "dimensions": dimensions(rng, 0)});
    }
}

/// A configuration that should be accepted: one or two loggers, a diagnostic with trace
/// rules, captures, properties and masking, now and then APIs, small batches.
fn exchange_config(rng: &mut Rng) -> (Value, Protocol) {
    let (protocol, name) = *rng.pick(&[
        (Protocol::W3C, "W3C"),
        (Protocol::W3C, "w3c"),
        (Protocol::Legacy, "Legacy"),
        (Protocol::None, "None"),
    ]);
    let rules = if rng.chance(90) { rng.upto(2) + 1 } else { 0 };
    let mut d = json!({
        "sampling_percentage": rng.pick(&[json!(100), json!(100), json!(50), json!(0), json!(0.01)]),
        "always_log_errors": rng.chance(70),
        "log_client_ip": rng.chance(30),
        "verbosity": rng.pick(&["verbose", "information", "error"]),
        "correlation_protocol": name,
        "operation_name_format": rng.pick(&["Name", "Url"]),
        "templated_names": rng.chance(80),
        "traces": (0..rules).map(|_| trace_rule(rng)).collect::<Vec<_>>(),
    });
    let capture = |rng: &mut Rng| {
        let headers: Vec<&str> = (0..rng.upto(3)).map(|_| *rng.pick(HEADER_NAMES)).collect();
        json!({"headers": headers, "body_bytes": rng.pick(&[0, 16, 1024, 8192])})
    };
    if rng.chance(40) {
        d["frontend"] = json!({"request": capture(rng), "response": capture(rng)});
    }
    metric_settings(rng, &mut d);
    if rng.chance(30) {
        d["backend"] = json!({"request": capture(rng), "response": capture(rng)});
    }
    if rng.chance(30) {
        d["header_properties"] = json!({"Tenant": "x-tenant", "Agent": "user-agent", "Auth": "authorization"});
    }
    if rng.chance(30) {
        d["properties"] = json!({"Region": rng.pick(&["West Europe", "é🦀", "\"quoted\"", &"r".repeat(8192)])});
    }
    if rng.chance(30) {
        let mode = |rng: &mut Rng| *rng.pick(&["Mask", "Hide", "None"]);
        d["data_masking"] = json!({
            "defaults": rng.chance(70),
            "headers": [{"name": "x-tenant", "mode": mode(rng)}],
            "query_params": [{"name": rng.pick(&["page", "*", "sig"]), "mode": mode(rng)}],
            "json_fields": ["password"]});
    }
    let mut config = json!({"loggers": {"main": {"connection_string": LOCAL_CS}}, "diagnostic": d});
    if rng.chance(20) {
        config["loggers"]["audit"] = json!({"instrumentation_key": "00000000-0000-0000-0000-00000000000a",
                                            "cluster": "appinsights_global"});
    }
    if rng.chance(30) {
        let mut apis = config_seeds()[1]["apis"].clone();
        apis.as_array_mut()
            .unwrap()
            .push(json!({"name": "meta", "match": {"route_metadata": true}}));
        if rng.chance(50) {
            apis[0]["diagnostic"] = json!({"traces": [trace_rule(rng)], "correlation_protocol": name});
        }
        config["apis"] = apis;
    }
    config["delivery"] = json!({"gzip": rng.chance(70), "max_batch_items": rng.pick(&[1, 2, 1000]),
                                "max_batch_bytes": rng.pick(&[1024, 4096, 524_288])});
    if rng.chance(20) {
        config["cloud_role"] = json!(rng.pick(&["edge", "é🦀", &"r".repeat(256)]));
    }
    (config, protocol)
}

/// Request methods: usual, empty, lowercase, not UTF-8.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"PATCH",
    b"HEAD",
    b"",
    b"get",
    b"G\xffT",
    b"CONNECT",
    b"X-CUSTOM",
];

/// Request paths: with queries holding secrets, `*`, empty, escapes, NULs, unicode, not
/// UTF-8.
const PATHS: &[&[u8]] = &[
    b"/api/orders?page=1",
    b"/api/orders/42",
    b"/orders/7?sig=secret&x=1",
    b"/files/a/b/c.txt",
    b"/",
    b"",
    b"*",
    b"/status/500",
    b"/a%00b",
    "/é?q=🦀".as_bytes(),
    b"/a b\x00c\xff",
    b"/?",
    b"/#frag",
    b"//double//slash",
    b"/users/1?token=abc&code=xyz&session=s&key=k",
];

/// A `u64` attribute (8 bytes, little-endian), now and then of the wrong size.
fn u64_attribute(rng: &mut Rng, value: u64) -> Vec<u8> {
    if rng.chance(97) {
        value.to_le_bytes().to_vec()
    } else {
        // Never 8 bytes: a wrong size, not a random time (a start centuries ahead would
        // hold its batch back until it is full, see the report of issue 11's fuzzing).
        let len = *rng.pick(&[0, 1, 4, 7, 9, 16]);
        (0..len).map(|_| rng.next() as u8).collect()
    }
}

/// One of `choices`, now and then mutated.
pub fn bytes_of(rng: &mut Rng, choices: &[&[u8]]) -> Vec<u8> {
    let mut v = rng.pick(choices).to_vec();
    if rng.chance(10) {
        mutate_bytes(rng, &mut v, TOKENS);
    }
    v
}

/// What Envoy knows once the exchange is over: status, flags, times, cluster, route,
/// addresses — usual values, edges, garbage.
fn exchange_properties(rng: &mut Rng, status: u64) -> Vec<(Attribute, Vec<u8>)> {
    const MS: u64 = 1_000_000;
    const H: u64 = 3_600_000 * MS;
    let mut p = Vec::new();
    let code = if rng.chance(90) {
        status
    } else {
        *rng.pick(&[0, 200, 503, u64::MAX])
    };
    if rng.chance(97) {
        p.push((Attribute::ResponseCode, u64_attribute(rng, code)));
    }
    let flags = match rng.below(10) {
        0..=6 => 0,
        7 | 8 => 1 << rng.below(28),
        _ if rng.chance(50) => u64::MAX,
        _ => rng.next(),
    };
    p.push((Attribute::ResponseFlags, u64_attribute(rng, flags)));
    // When the exchange started and how long it took, as Envoy says: short, long-lived
    // streams, a start a little ahead of the VM's clock, only a duration, nothing.
    let (start, duration) = *rng.pick(&[
        (FAKE_NOW - 2 * MS, 2 * MS),
        (FAKE_NOW - 2 * MS, 2 * MS),
        (FAKE_NOW - H, H),
        (FAKE_NOW - 47 * H, 47 * H),
        (FAKE_NOW + 5 * MS, 1),
        (0, 49 * H),
        (0, 2 * MS),
        (0, 0),
    ]);
    if start > 0 {
        p.push((Attribute::RequestTime, u64_attribute(rng, start)));
    }
    p.push((Attribute::RequestDuration, u64_attribute(rng, duration)));
    if rng.chance(80) {
        let latency = *rng.pick(&[MS, 0, 10 * H, 2 * MS]);
        p.push((Attribute::ResponseBackendLatency, u64_attribute(rng, latency)));
    }
    if rng.chance(90) {
        let attempts = *rng.pick(&[1, 1, 1, 0, 3, u64::MAX]);
        p.push((Attribute::UpstreamRequestAttemptCount, u64_attribute(rng, attempts)));
    }
    let long = vec![b'x'; rng.length()];
    let texts: [(Attribute, &[&[u8]]); 8] = [
        (
            Attribute::ClusterName,
            &[b"backend", b"", b"outbound|443||x.example.com", b"b\xffd", &long],
        ),
        (
            Attribute::RouteName,
            &[b"backend", b"orders", b"r1", b"", b"\xff\xfe", &long],
        ),
        (
            Attribute::UpstreamAddress,
            &[b"127.0.0.1:8080", b"[::1]:80", b"", b"garbage", b"\xff"],
        ),
        (
            Attribute::SourceAddress,
            &[
                b"127.0.0.1:50000",
                b"[2001:db8::1]:443",
                b"10.0.0.1",
                b"",
                b"a:b:c",
                b"pipe:/tmp/x",
                &long,
            ],
        ),
        (
            Attribute::ResponseCodeDetails,
            &[
                b"via_upstream",
                b"route_not_found",
                b"upstream_reset_before_response_started{connection_termination}",
                b"",
                &long,
            ],
        ),
        (Attribute::RouteMetadataApi, &[b"orders", b"meta", b"", b"\xff", &long]),
        (
            Attribute::RouteMetadataOperation,
            &[b"get-order", b"", b"\"op\"\n", &long],
        ),
        (Attribute::UpstreamTlsVersion, &[b"TLSv1.3", b""]),
    ];
    for (attribute, choices) in texts {
        if rng.chance(85) {
            p.push((attribute, bytes_of(rng, choices)));
        }
    }
    p
}

/// Secrets the default masking covers: a header of [`SECRET_HEADERS`] or a query parameter
/// of [`SECRET_QUERY`] holding one must never reach the service.
pub const SECRET: &[u8] = b"SECRET-";
const SECRET_HEADERS: &[(&[u8], &[u8])] = &[
    (b"authorization", b"Bearer SECRET-bearer"),
    (b"cookie", b"session=SECRET-cookie"),
    (b"x-api-key", b"SECRET-api-key"),
    (b"ocp-apim-subscription-key", b"SECRET-subscription"),
];
const SECRET_QUERY: &[u8] = b"token=SECRET-token&sig=SECRET-sig&code=SECRET-code";

/// One exchange: its request headers (pseudo-headers, correlation, others, now and then
/// 300 of them or secrets), its response, its attributes, its bodies and how its callbacks
/// come.
pub fn exchange(rng: &mut Rng) -> Exchange {
    let mut request: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut header = |k: &[u8], v: Vec<u8>| request.push((k.to_vec(), v));
    if rng.chance(95) {
        let mut method = rng.pick(METHODS).to_vec();
        if rng.chance(3) {
            method = vec![b'M'; rng.length()];
        }
        header(b":method", method);
        let mut path = bytes_of(rng, PATHS);
        if rng.chance(5) {
            path.extend_from_slice(&vec![b'a'; rng.length()]);
        }
        header(b":path", path);
        header(
            b":authority",
            bytes_of(
                rng,
                &[
                    b"api.example.com",
                    b"127.0.0.1:10000",
                    b"",
                    b"[::1]:443",
                    b"X.EXAMPLE.COM",
                ],
            ),
        );
        header(b":scheme", bytes_of(rng, &[b"http", b"https", b"", b"ftp"]));
    }
    if rng.chance(70) {
        header(
            b"x-request-id",
            bytes_of(rng, &[b"7f1c0a55-3a4b-4f6e-9d0e-2b8f3c4d5e6f", b"", b"\"id\""]),
        );
    }
    for (name, value) in correlation_case(rng).headers {
        header(name.as_bytes(), value);
    }
    let extra = if rng.chance(3) { 300 } else { rng.upto(6) };
    for _ in 0..extra {
        let name = rng.pick(HEADER_NAMES).as_bytes().to_vec();
        let value = header_value(rng);
        header(&name, value);
    }
    // Secrets, as they are (a mutated name would rightly not be masked), in a map Envoy
    // hands over intact.
    let secrets = rng.chance(40);
    if secrets {
        for (name, value) in SECRET_HEADERS {
            request.push((name.to_vec(), value.to_vec()));
        }
        if let Some((_, path)) = request.iter_mut().find(|(k, v)| k == b":path" && !v.contains(&b'#')) {
            path.push(if path.contains(&b'?') { b'&' } else { b'?' });
            path.extend_from_slice(SECRET_QUERY);
        }
    }
    let corrupt_request = (!secrets && rng.chance(3)).then(|| corrupt(rng, &request));
    let status = *rng.pick(&[
        200,
        200,
        200,
        201,
        204,
        206,
        301,
        304,
        400,
        401,
        404,
        429,
        499,
        500,
        502,
        503,
        504,
        0,
        99,
        600,
        999,
        65_535,
        u64::from(u32::MAX),
        u64::MAX,
    ]);
    let mut response = vec![(
        b":status".to_vec(),
        if rng.chance(90) {
            status.to_string().into_bytes()
        } else {
            bytes_of(rng, &[b"", b"abc", "２００".as_bytes(), b"200 ", b"-1"])
        },
    )];
    for _ in 0..rng.upto(3) {
        response.push((rng.pick(HEADER_NAMES).as_bytes().to_vec(), header_value(rng)));
    }
    let body = |rng: &mut Rng| -> Vec<Vec<u8>> {
        (0..rng.upto(2))
            .map(|_| {
                let mut chunk = br#"{"password":"p","id":1}"#.to_vec();
                chunk.extend_from_slice(&vec![b'b'; rng.length().min(10_000)]);
                chunk
            })
            .collect()
    };
    let corrupt_response = rng.chance(3).then(|| corrupt(rng, &response));
    Exchange {
        request,
        secrets,
        corrupt_request,
        response,
        corrupt_response,
        properties: exchange_properties(rng, status),
        request_body: body(rng),
        response_body: body(rng),
        no_request_headers: rng.chance(5),
        no_response: rng.chance(5),
        trailers: rng.chance(10),
        takes: *rng.pick(&[1_000_000, 0, 100_000_000, 61_000_000_000]),
        tick: rng.chance(40),
    }
}

/// A header map as Envoy serializes it, with its counts and sizes mutated.
fn corrupt(rng: &mut Rng, map: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut buf = HeaderMap::serialize(map.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    mutate_bytes(rng, &mut buf, &[b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x01\0\0\0"]);
    buf
}

/// A configuration and one to four exchanges.
fn exchange_case(rng: &mut Rng) -> ExchangeCase {
    let (config, protocol) = exchange_config(rng);
    let exchanges = (0..rng.upto(3) + 1).map(|_| exchange(rng)).collect();
    ExchangeCase {
        config,
        protocol,
        exchanges,
    }
}

fn show_exchanges(c: &ExchangeCase) -> String {
    let pairs = |list: &[(Vec<u8>, Vec<u8>)], corrupt: &Option<Vec<u8>>| -> String {
        let shown: Vec<String> = list.iter().map(|(k, v)| format!("{}: {}", show(k), show(v))).collect();
        let corrupt = corrupt
            .as_ref()
            .map(|b| format!(" (Envoy hands over a corrupt map: {})", show(b)));
        format!("[{}]{}", shown.join(", "), corrupt.unwrap_or_default())
    };
    let mut out = format!("configuration {}", cut(&c.config.to_string(), 3000));
    for (i, e) in c.exchanges.iter().enumerate() {
        let props: Vec<String> = e
            .properties
            .iter()
            .map(|(a, v)| format!("{}={}", a.dotted(), show(v)))
            .collect();
        let _ = write!(
            out,
            "\n  exchange {i}: request {}, response {}, properties [{}], bodies {:?}/{:?} bytes, \
             no request headers {}, no response {}, trailers {}, takes {} ns, tick {}",
            pairs(&e.request, &e.corrupt_request),
            pairs(&e.response, &e.corrupt_response),
            props.join(", "),
            e.request_body.iter().map(Vec::len).collect::<Vec<_>>(),
            e.response_body.iter().map(Vec::len).collect::<Vec<_>>(),
            e.no_request_headers,
            e.no_response,
            e.trailers,
            e.takes,
            e.tick
        );
    }
    out
}

/// Broken on main as of 3f2f3f8: see `exchanges_never_send_a_secret_masked_by_default`.
const SECRETS_MASKED: &str = "a secret the default masking covers never reaches the service";

/// Whether the configuration keeps the default masking of [`SECRET_HEADERS`] and
/// [`SECRET_QUERY`] (no `defaults: false`, no rule of its own for those query parameters).
fn masks_secrets(config: &Value) -> bool {
    let masking = &config["diagnostic"]["data_masking"];
    masking.is_null() || (masking["defaults"] != false && masking["query_params"][0]["name"] == "page")
}

/// Broken on main as of 3f2f3f8: see `exchanges_never_write_an_empty_trace_message`.
pub const TRACE_MESSAGE_NOT_EMPTY: &str = "a trace's message is never empty (the service refuses the item)";

/// Runs the exchanges, delivers everything (every batch answered "all accepted"), then
/// checks every item sent and the accounting of every logger.
fn check_exchanges(c: &ExchangeCase, f: &mut Findings) {
    let mut envoy = Envoy::new();
    let gzip = c.config["delivery"]["gzip"].as_bool().unwrap_or(true);
    envoy
        .fake
        .buffers
        .insert(BufferKind::PluginConfiguration, serde_json::to_vec(&c.config).unwrap());
    let mut plugin = Plugin::new(1);
    if !plugin.configure(&mut envoy) {
        f.note("configuration refused");
        return;
    }
    for e in &c.exchanges {
        drive_exchange(&plugin, &mut envoy, e);
        if e.tick {
            plugin.tick(&mut envoy);
        }
    }
    // Everything goes out and is answered "all accepted". A tick may close a metric
    // interval and write its aggregates, which the next tick sends: done after two quiet
    // ticks.
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut quiet = 0;
    for _ in 0..100 {
        envoy.fake.now += 61_000_000_000;
        plugin.tick(&mut envoy);
        let sent = std::mem::take(&mut envoy.fake.callouts);
        quiet = if sent.is_empty() { quiet + 1 } else { 0 };
        if quiet == 2 {
            break;
        }
        for s in sent {
            let header = |name: &str| s.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            f.check(
                "a batch is POSTed as NDJSON to <endpoint>/v2.1/track, gzip as configured",
                header(":method") == Some("POST")
                    && header(":path") == Some("/v2.1/track")
                    && header("content-type") == Some("application/x-json-stream")
                    && (header("content-encoding") == Some("gzip")) == gzip,
                || format!("{:?}", s.headers),
            );
            let plain = if gzip { gunzip(&s.body) } else { Ok(s.body.clone()) };
            let plain = match plain {
                Ok(p) => p,
                Err(e) => {
                    f.check("a gzip body is one valid gzip member", false, || e);
                    continue;
                }
            };
            let batch: Vec<&[u8]> = plain.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
            f.check(
                "a batch is NDJSON: every line ends with a newline",
                plain.ends_with(b"\n"),
                || show(&plain),
            );
            let n = batch.len();
            lines.extend(batch.into_iter().map(<[u8]>::to_vec));
            let answer = format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#).into_bytes();
            let size = answer.len();
            envoy.answer_with(vec![(b":status".to_vec(), b"200".to_vec())], answer);
            plugin.answer(&mut envoy, s.id, 1, size);
        }
    }
    plugin.tick(&mut envoy);
    f.note(if lines.is_empty() { "no items" } else { "items" });
    for line in &lines {
        check_item(f, line, c.protocol);
    }
    if c.exchanges.iter().any(|e| e.secrets) && masks_secrets(&c.config) {
        let leak = lines.iter().find(|l| l.windows(SECRET.len()).any(|w| w == SECRET));
        f.check(SECRETS_MASKED, leak.is_none(), || {
            show(leak.map(Vec::as_slice).unwrap_or_default())
        });
    }
    for logger in loggers_of(&c.config) {
        let stat = |name: &str| envoy.fake.stat(&format!("appinsights.{logger}.{name}")).unwrap_or(0);
        let dropped: i64 = DROP_REASONS.iter().map(|r| stat(&format!("items_dropped_{r}"))).sum();
        f.check(
            "once the service took everything, nothing is left buffered",
            stat("buffered_items") == 0 && stat("buffered_bytes") == 0,
            || format!("{logger}: {:?}", envoy.fake.stats),
        );
        f.check(
            ITEMS_CREATED_BALANCE,
            stat("items_created") == stat("items_accepted") + dropped,
            || format!("{logger}: {:?}", envoy.fake.stats),
        );
    }
    let sent: i64 = loggers_of(&c.config)
        .iter()
        .map(|l| envoy.fake.stat(&format!("appinsights.{l}.items_sent")).unwrap_or(0))
        .sum();
    f.check("every item sent is one NDJSON line", sent == lines.len() as i64, || {
        format!("{sent} items sent, {} lines", lines.len())
    });
}

/// The exchanges are run once for both tests below.
pub fn exchanges_report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| fuzz("exchanges", 400, exchange_case, show_exchanges, check_exchanges))
}

/// Properties that break on main as of 3f2f3f8, each with its own test below so that the
/// others keep guarding CI while the owners fix them.
const KNOWN_BROKEN: &[&str] = &[TRACE_MESSAGE_NOT_EMPTY, SECRETS_MASKED, ITEMS_CREATED_BALANCE];

#[test]
fn exchanges_write_valid_items() {
    let report = exchanges_report();
    report.assert_holds(|p| !KNOWN_BROKEN.contains(&p));
    assert!(
        report.noted("configuration refused") * 20 <= report.cases && report.noted("traces") * 4 >= report.cases,
        "the generator should make accepted configurations and traces: {:?}",
        report.notes
    );
}

/// Broken on main as of 3f2f3f8: a trace rule whose message renders empty (`"message": ""`,
/// or only placeholders with nothing to print, like `{request.header.x-absent}`) writes a
/// Trace whose `message` is empty, which the service refuses (`message` is required). The
/// configuration accepts an empty template (`config/traces.rs`, `parse_rule`) and
/// `telemetry/trace.rs` (`write`) writes whatever `render` returns.
#[test]
fn exchanges_never_write_an_empty_trace_message() {
    exchanges_report().assert_holds(|p| p == TRACE_MESSAGE_NOT_EMPTY);
}

/// Broken on main as of 3f2f3f8: `{request.header.:path}` in a trace template prints the
/// request's path with its query string unmasked (`sig`, `token`, `code`, … masked by
/// default everywhere else, `{request.url}` included): `telemetry/trace.rs` (`field`,
/// `Field::RequestHeader`) masks header values by header name only, and no rule names
/// `:path`.
#[test]
fn exchanges_never_send_a_secret_masked_by_default() {
    exchanges_report().assert_holds(|p| p == SECRETS_MASKED);
}
