//! The local ingestion endpoint over real HTTP: payload forms, per-item verdicts,
//! faults, the control API, and keep-alive.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use flate2::{write::GzEncoder, Compression};
use harness::http::{self, ClientResponse};
use harness::ingest::{Fault, IngestConfig, IngestServer};
use harness::schema::example_envelope;
use serde_json::{json, Value};

const TRACK: &str = "/v2.1/track";

fn start() -> IngestServer {
    IngestServer::start(IngestConfig::default()).unwrap()
}

fn item(base_type: &str) -> Value {
    example_envelope(base_type, SystemTime::now()).unwrap()
}

fn invalid_item() -> Value {
    let mut v = item("RequestData");
    v["data"]["baseData"]["duration"] = json!("1:2");
    v
}

fn ndjson(items: &[Value]) -> Vec<u8> {
    items.iter().map(|i| format!("{i}\n")).collect::<String>().into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn post(addr: SocketAddr, body: &[u8]) -> ClientResponse {
    http::post(addr, TRACK, "application/x-json-stream", body).unwrap()
}

fn three(types: [&str; 3]) -> Vec<Value> {
    types.iter().map(|t| item(t)).collect()
}

#[test]
fn valid_ndjson_is_accepted_and_stored() {
    let ing = start();
    let items = three(["RequestData", "RemoteDependencyData", "MessageData"]);
    let resp = post(ing.addr(), &ndjson(&items));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.json().unwrap(),
        json!({"itemsReceived": 3, "itemsAccepted": 3, "errors": []})
    );
    assert_eq!(ing.items(), items);
    let stats = ing.stats();
    assert_eq!(
        (
            stats.requests,
            stats.items_received,
            stats.items_accepted,
            stats.items_rejected
        ),
        (1, 3, 3, 0)
    );
    assert_eq!(
        stats
            .last_request_headers
            .iter()
            .find(|(k, _)| k == "Content-Type")
            .map(|(_, v)| v.as_str()),
        Some("application/x-json-stream")
    );
}

#[test]
fn every_base_type_is_accepted_on_both_paths() {
    let ing = start();
    let items: Vec<Value> = harness::schema::BASE_TYPES.iter().map(|t| item(t)).collect();
    for path in ["/v2/track", "/v2.1/track"] {
        let resp = http::post(ing.addr(), path, "application/x-json-stream", &ndjson(&items)).unwrap();
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    }
    assert_eq!(ing.items().len(), 12);
    assert_eq!(ing.metrics().len(), 2, "MetricData is kept apart");
    let paths: Vec<String> = ing.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v2/track", "/v2.1/track"]);
}

/// The Python exporter (azure-monitor-opentelemetry-exporter) posts to `{IngestionEndpoint}/v2.1/track`
/// without trimming the endpoint's trailing `/`, so a connection string as the portal gives it
/// (`IngestionEndpoint=https://<region>.in.applicationinsights.azure.com/`) yields `//v2.1/track`.
#[test]
fn a_doubled_leading_slash_reaches_track() {
    let ing = start();
    let body = ndjson(&[item("RequestData")]);
    let resp = http::post(ing.addr(), "//v2.1/track", "application/x-json-stream", &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(ing.items().len(), 1);
}

/// A tag outside the schema is rejected unless the endpoint was told to tolerate it (the
/// Python exporter's `ai.user.userAgent`, reference §2.5); the item is stored as sent.
#[test]
fn a_tolerated_tag_is_accepted_only_where_configured() {
    let mut it = item("RequestData");
    it["tags"]["ai.user.userAgent"] = json!("curl/8");
    let body = ndjson(std::slice::from_ref(&it));
    let strict = start();
    http::post(strict.addr(), TRACK, "application/x-json-stream", &body).unwrap();
    assert_eq!(strict.stats().items_rejected, 1);
    let tolerant = IngestServer::start(IngestConfig {
        tolerated_tags: vec!["ai.user.userAgent".into()],
        ..Default::default()
    })
    .unwrap();
    let resp = http::post(tolerant.addr(), TRACK, "application/x-json-stream", &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(tolerant.items()[0]["tags"]["ai.user.userAgent"], "curl/8");
    // Only that tag, and only as a string.
    it["tags"]["ai.user.userAgent"] = json!(1);
    it["tags"]["ai.user.other"] = json!("x");
    http::post(
        tolerant.addr(),
        TRACK,
        "application/json",
        &serde_json::to_vec(&[it]).unwrap(),
    )
    .unwrap();
    assert_eq!(tolerant.stats().items_rejected, 1);
}

#[test]
fn a_json_array_body_is_accepted() {
    let ing = start();
    let items = three(["EventData", "MessageData", "ExceptionData"]);
    let body = serde_json::to_vec(&items).unwrap();
    let resp = http::post(ing.addr(), TRACK, "application/json", &body).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(ing.items(), items);
}

#[test]
fn a_gzip_body_is_decoded_and_recorded_decoded() {
    let ing = start();
    let body = ndjson(&three(["RequestData", "RequestData", "EventData"]));
    let headers = [
        ("Content-Type", "application/x-json-stream"),
        ("Content-Encoding", "gzip"),
    ];
    let resp = http::request(ing.addr(), "POST", TRACK, &headers, &gzip(&body)).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(ing.items().len(), 3);
    let requests = ing.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, body);
    assert_eq!(requests[0].status_answered, 200);
}

#[test]
fn one_invalid_item_among_three_gives_206_with_its_index() {
    let ing = start();
    let (a, b) = (item("EventData"), item("MessageData"));
    let resp = post(ing.addr(), &ndjson(&[a.clone(), invalid_item(), b.clone()]));
    assert_eq!(resp.status, 206);
    let body = resp.json().unwrap();
    assert_eq!(
        (body["itemsReceived"].as_u64(), body["itemsAccepted"].as_u64()),
        (Some(3), Some(2))
    );
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0]["index"].as_u64(), errors[0]["statusCode"].as_u64()),
        (Some(1), Some(400))
    );
    let expected_message = r#"data.baseData.duration: "1:2" is not a TimeSpan"#;
    assert_eq!(errors[0]["message"], expected_message);
    assert_eq!(ing.items(), vec![a, b]);
    let stats = ing.stats();
    assert_eq!(
        (stats.items_rejected, stats.rejections.as_slice()),
        (1, [expected_message.to_string()].as_slice())
    );
}

#[test]
fn all_invalid_items_give_400() {
    let ing = start();
    let resp = post(ing.addr(), &ndjson(&[invalid_item(), invalid_item()]));
    assert_eq!(resp.status, 400);
    let body = resp.json().unwrap();
    assert_eq!(
        (body["itemsAccepted"].as_u64(), body["errors"].as_array().map(Vec::len)),
        (Some(0), Some(2))
    );
    assert!(ing.items().is_empty());
}

#[test]
fn undecodable_or_unrecognisable_bodies_give_400_with_a_track_response() {
    let ing = start();
    let bad_gzip = http::request(ing.addr(), "POST", TRACK, &[("Content-Encoding", "gzip")], b"not gzip").unwrap();
    let text = post(ing.addr(), b"hello world");
    let broken_array = post(ing.addr(), b"[{\"name\":");
    let empty = post(ing.addr(), b"");
    for resp in [bad_gzip, text, broken_array, empty] {
        assert_eq!(resp.status, 400);
        let body = resp.json().unwrap();
        assert_eq!(body["itemsAccepted"], 0, "{body}");
        assert!(body["errors"].is_array());
    }
    assert_eq!(ing.stats().requests, 4);
}

#[test]
fn oversized_items_are_rejected_per_item() {
    let ing = start();
    let mut big = item("EventData");
    big["data"]["baseData"]["properties"] = json!((0..10)
        .map(|i| (format!("p{i}"), json!("x".repeat(7000))))
        .collect::<serde_json::Map<_, _>>());
    let resp = post(ing.addr(), &ndjson(&[item("EventData"), big]));
    assert_eq!(resp.status, 206);
    let message = resp.json().unwrap()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("over the 65536-byte limit"), "{message}");
}

#[test]
fn routes_and_methods_are_checked() {
    let ing = start();
    assert_eq!(http::get(ing.addr(), "/v2/track").unwrap().status, 405);
    assert_eq!(
        http::post(ing.addr(), "/v2/validate", "application/json", b"[]")
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        http::post(ing.addr(), "/track", "application/json", b"[]")
            .unwrap()
            .status,
        404
    );
    assert_eq!(ing.stats().requests, 0);
}

#[test]
fn the_expected_ikey_is_enforced_case_insensitively() {
    let cfg = IngestConfig {
        expected_ikey: Some("00000000-0000-0000-0000-00000000000A".into()),
        ..IngestConfig::default()
    };
    let ing = IngestServer::start(cfg).unwrap();
    let mut good = item("EventData");
    good["iKey"] = json!("00000000-0000-0000-0000-00000000000a");
    let mut wrong = item("EventData");
    wrong["iKey"] = json!("11111111-0000-0000-0000-000000000000");
    let mut missing = item("EventData");
    missing.as_object_mut().unwrap().remove("iKey");
    let resp = post(ing.addr(), &ndjson(&[good, wrong, missing]));
    assert_eq!(resp.status, 206);
    let errors = resp.json().unwrap()["errors"].clone();
    assert_eq!(
        errors[0],
        json!({"index": 1, "statusCode": 400, "message": "invalid instrumentation key"})
    );
    assert_eq!(errors[1]["index"], 2);
    assert_eq!(ing.items().len(), 1);
}

#[test]
fn accepted_items_are_appended_to_the_store_file() {
    let path = std::env::temp_dir().join(format!(
        "harness-store-{}-{:?}.ndjson",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_file(&path);
    let ing = IngestServer::start(IngestConfig {
        store_path: Some(path.clone()),
        ..IngestConfig::default()
    })
    .unwrap();
    let items = three(["EventData", "RequestData", "EventData"]);
    post(ing.addr(), &ndjson(&items[..2]));
    post(ing.addr(), &ndjson(&[invalid_item(), items[2].clone()]));
    let stored: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored, items);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn wait_for_items_wakes_on_arrival_and_gives_up_at_the_timeout() {
    let ing = start();
    let started = Instant::now();
    assert!(ing.wait_for_items(1, Duration::from_millis(200)).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));
    let addr = ing.addr();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        post(addr, &ndjson(&[item("EventData"), item("EventData")]))
    });
    let started = Instant::now();
    assert_eq!(ing.wait_for_items(2, Duration::from_secs(10)).len(), 2);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sender.join().unwrap().status, 200);
}

#[test]
fn the_connection_string_points_at_the_endpoint() {
    let ing = start();
    let expected = format!("InstrumentationKey=k;IngestionEndpoint=http://{}/", ing.addr());
    assert_eq!(ing.connection_string("k"), expected);
}

#[test]
fn clear_forgets_items_requests_and_counters() {
    let ing = start();
    post(ing.addr(), &ndjson(&[item("EventData")]));
    ing.clear();
    assert!(ing.items().is_empty());
    assert!(ing.requests().is_empty());
    assert_eq!(ing.stats(), Default::default());
}

// ---- faults ---------------------------------------------------------------

#[test]
fn a_status_fault_refuses_everything_with_retry_after_for_n_requests() {
    let ing = start();
    ing.set_fault_for(
        Fault::Status {
            code: 503,
            retry_after: Some("5".into()),
        },
        Some(2),
    );
    let body = ndjson(&[item("EventData"), item("EventData")]);
    for _ in 0..2 {
        let resp = post(ing.addr(), &body);
        assert_eq!((resp.status, resp.header("retry-after")), (503, Some("5")));
        let json = resp.json().unwrap();
        assert_eq!(
            (json["itemsReceived"].as_u64(), json["itemsAccepted"].as_u64()),
            (Some(2), Some(0))
        );
        assert_eq!(json["errors"][1]["statusCode"], 503);
    }
    assert!(ing.items().is_empty());
    assert_eq!(ing.fault(), Fault::None);
    assert_eq!(post(ing.addr(), &body).status, 200);
    let stats = ing.stats();
    assert_eq!(
        (stats.items_faulted, stats.items_accepted, stats.items_rejected),
        (4, 2, 0)
    );
    let answered: Vec<u16> = ing.requests().iter().map(|r| r.status_answered).collect();
    assert_eq!(answered, [503, 503, 200]);
}

#[test]
fn a_partial_fault_refuses_the_chosen_indexes() {
    let ing = start();
    ing.set_fault(Fault::Partial {
        fail_indexes: vec![0, 2],
        code: 500,
    });
    let items = three(["EventData", "MessageData", "EventData"]);
    let resp = post(ing.addr(), &ndjson(&items));
    assert_eq!(resp.status, 206);
    let errors = resp.json().unwrap()["errors"].clone();
    assert_eq!(
        errors,
        json!([
            {"index": 0, "statusCode": 500, "message": "injected fault"},
            {"index": 2, "statusCode": 500, "message": "injected fault"},
        ])
    );
    assert_eq!(ing.items(), vec![items[1].clone()]);
    let only_failing = post(ing.addr(), &ndjson(&[item("EventData")]));
    assert_eq!(only_failing.status, 500, "nothing accepted: the first item's status");
}

#[test]
fn a_slow_fault_delays_the_answer() {
    let ing = start();
    ing.set_fault_for(Fault::Slow(Duration::from_millis(300)), Some(1));
    let started = Instant::now();
    assert_eq!(post(ing.addr(), &ndjson(&[item("EventData")])).status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(ing.items().len(), 1);
}

#[test]
fn a_drop_fault_closes_without_answering_and_stores_nothing() {
    let ing = start();
    ing.set_fault_for(Fault::Drop, Some(1));
    let result = http::post(ing.addr(), TRACK, "application/json", &ndjson(&[item("EventData")]));
    assert!(result.is_err(), "expected no response, got {result:?}");
    assert!(ing.items().is_empty());
    assert_eq!(ing.requests()[0].status_answered, 0);
    assert_eq!(ing.stats().items_faulted, 1);
    assert_eq!(post(ing.addr(), &ndjson(&[item("EventData")])).status, 200);
}

#[test]
fn garbage_and_truncated_faults_answer_200_with_an_unparseable_body() {
    let ing = start();
    for fault in [Fault::Garbage, Fault::Truncated] {
        ing.set_fault_for(fault.clone(), Some(1));
        let resp = post(ing.addr(), &ndjson(&[item("EventData")]));
        assert_eq!(resp.status, 200, "{fault:?}");
        assert!(resp.json().is_err(), "{fault:?}: {}", resp.text());
    }
    assert_eq!(ing.items().len(), 2, "the service did accept the items");
}

// ---- control API ----------------------------------------------------------

#[test]
fn the_control_api_drives_a_running_endpoint() {
    let ing = start();
    let addr = ing.addr();
    let fault = br#"{"mode":"status","code":429,"retry_after":"7","count":1}"#;
    assert_eq!(
        http::post(addr, "/_fault", "application/json", fault).unwrap().status,
        200
    );
    let refused = post(addr, &ndjson(&[item("EventData")]));
    assert_eq!((refused.status, refused.header("Retry-After")), (429, Some("7")));
    assert_eq!(post(addr, &ndjson(&[item("EventData"), invalid_item()])).status, 206);

    let items = http::get(addr, "/_items").unwrap();
    assert_eq!(items.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(items.text().lines().count(), 1);
    let stats = http::get(addr, "/_stats").unwrap().json().unwrap();
    assert_eq!(
        (
            stats["requests"].as_u64(),
            stats["items_accepted"].as_u64(),
            stats["items_rejected"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(stats["fault"], "none");
    let requests = http::get(addr, "/_requests").unwrap().text();
    assert_eq!(requests.lines().count(), 2);
    let first: Value = serde_json::from_str(requests.lines().next().unwrap()).unwrap();
    assert_eq!(first["status_answered"], 429);

    assert_eq!(http::request(addr, "DELETE", "/_items", &[], b"").unwrap().status, 200);
    assert!(http::get(addr, "/_items").unwrap().body.is_empty());
    assert_eq!(http::get(addr, "/_health").unwrap().status, 200);
}

#[test]
fn every_fault_mode_can_be_set_over_http() {
    let ing = start();
    let modes = [
        (
            json!({"mode": "partial", "fail_indexes": [0, 2], "code": 500}),
            Fault::Partial {
                fail_indexes: vec![0, 2],
                code: 500,
            },
        ),
        (json!({"mode": "slow", "ms": 2000}), Fault::Slow(Duration::from_secs(2))),
        (json!({"mode": "drop"}), Fault::Drop),
        (json!({"mode": "garbage"}), Fault::Garbage),
        (json!({"mode": "truncated"}), Fault::Truncated),
        (json!({"mode": "none"}), Fault::None),
    ];
    for (body, fault) in modes {
        let resp = http::post(ing.addr(), "/_fault", "application/json", body.to_string().as_bytes()).unwrap();
        assert_eq!(resp.status, 200, "{body}");
        assert_eq!(ing.fault(), fault);
    }
    let bad = http::post(ing.addr(), "/_fault", "application/json", br#"{"mode":"boom"}"#).unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("unknown mode"));
    assert_eq!(http::get(ing.addr(), "/_fault").unwrap().status, 405);
}

// ---- transport ------------------------------------------------------------

#[test]
fn two_requests_share_one_keep_alive_connection() {
    let ing = start();
    let mut stream = TcpStream::connect(ing.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for i in 0..2 {
        let body = ndjson(&[item("EventData")]);
        let head = format!(
            "POST {TRACK} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        let resp = http::read_response(&mut reader, "POST").unwrap();
        assert_eq!(resp.status, 200, "request {i}: {}", resp.text());
        assert_eq!(
            resp.header("connection"),
            None,
            "the server must keep the connection open"
        );
    }
    assert_eq!(ing.items().len(), 2);
}

#[test]
fn a_chunked_request_body_is_accepted() {
    let ing = start();
    let body = ndjson(&[item("EventData"), item("MessageData")]);
    let (a, b) = body.split_at(body.len() / 2);
    let mut chunked = Vec::new();
    for part in [a, b] {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let resp = http::request(ing.addr(), "POST", TRACK, &[("Transfer-Encoding", "chunked")], &chunked).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(ing.requests()[0].body, body);
}
