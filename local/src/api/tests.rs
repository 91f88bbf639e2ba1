//! API tests on a store filled with [`crate::sample`] items (the 100,000-item timing
//! bound is `tests/perf.rs`), and one over HTTP through the ingestion endpoint.

use serde_json::{json, Value};

use super::*;
use crate::sample::{self, Op};
use crate::store::Limits;

const T0: i64 = 1_790_000_000_000;

fn op<'a>(id: &'a str, name: &'a str, role: &'a str, offset_ms: i64, sample_rate: f64) -> Op<'a> {
    Op {
        operation_id: id,
        operation_name: name,
        role,
        time_ms: T0 + offset_ms,
        sample_rate,
    }
}

fn store_of(items: &[Value]) -> Store {
    let mut store = Store::new(Limits::default());
    store.push_all(items, T0);
    store
}

fn get(store: &Store, path_and_query: &str) -> (u16, Value) {
    let req = Request {
        method: "GET".into(),
        path: path_and_query.into(),
        ..Request::default()
    };
    let resp = route(store, &req);
    (resp.status, serde_json::from_slice(&resp.body).unwrap())
}

fn ok(store: &Store, path_and_query: &str) -> Value {
    let (status, body) = get(store, path_and_query);
    assert_eq!(status, 200, "{path_and_query}: {body}");
    body
}

fn seqs(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["seq"].as_u64().unwrap())
        .collect()
}

/// Two operations: op-a (GET /a, 200 then a failed 500) and op-b with an exception.
fn mixed() -> Vec<Value> {
    let a = op("op-a", "GET /a", "gateway", 0, 100.0);
    let b = op("op-b", "POST /b", "gateway", 60_000, 100.0);
    vec![
        sample::request(&a, "r1", "", 200, 10.0),                // seq 1
        sample::trace(&a, "r1", "Hello World", "Information"),   // seq 2
        sample::request(&a, "r2", "", 500, 30.0),                // seq 3
        sample::request(&b, "r3", "", 503, 20.0),                // seq 4
        sample::exception(&b, "r3", "IOError", "disk full"),     // seq 5
        sample::dependency(&b, "d1", "r3", "db:5432", 500, 5.0), // seq 6
    ]
}

#[test]
fn summary_counts_items_per_type() {
    let store = store_of(&mixed());
    let s = ok(&store, "/api/summary");
    assert_eq!(s["items"], 6);
    assert_eq!((s["oldest_seq"].as_u64(), s["newest_seq"].as_u64()), (Some(1), Some(6)));
    assert_eq!(
        s["by_type"],
        json!({"RequestData": 3, "MessageData": 1, "ExceptionData": 1, "RemoteDependencyData": 1})
    );
    assert_eq!(s["capacity"], 200_000);
}

#[test]
fn items_filter_by_type_text_name_result_success_and_time() {
    let store = store_of(&mixed());
    let list = |q: &str| {
        let v = ok(&store, &format!("/api/items?{q}"));
        (v["total"].as_u64().unwrap(), seqs(&v["items"]))
    };
    assert_eq!(list(""), (6, vec![6, 5, 4, 3, 2, 1]), "newest first");
    assert_eq!(list("type=RequestData"), (3, vec![4, 3, 1]));
    assert_eq!(
        list("q=hello%20WORLD"),
        (1, vec![2]),
        "case-insensitive, percent-decoded"
    );
    assert_eq!(list("q=disk+full"), (1, vec![5]));
    assert_eq!(list("operation_name=GET%20%2Fa"), (3, vec![3, 2, 1]));
    assert_eq!(list("result=500"), (2, vec![6, 3]), "responseCode and resultCode");
    assert_eq!(list("success=false&type=RequestData"), (2, vec![4, 3]));
    assert_eq!(list("since=2026-09-21T14:14:20.000Z"), (3, vec![6, 5, 4]));
    assert_eq!(list("until=2026-09-21T14:14:19.000Z"), (3, vec![3, 2, 1]));
    let first = &ok(&store, "/api/items?type=ExceptionData")["items"][0];
    assert_eq!(first["name"], "IOError");
    assert_eq!(first["message"], "disk full");
    assert_eq!(first["operation_id"], "op-b");
    assert_eq!(first["parent_id"], "r3");
}

#[test]
fn items_page_back_with_limit_and_before_seq() {
    let store = store_of(&mixed());
    let page = ok(&store, "/api/items?limit=2");
    assert_eq!((page["total"].as_u64(), seqs(&page["items"])), (Some(6), vec![6, 5]));
    let page = ok(&store, "/api/items?limit=2&before_seq=5");
    assert_eq!(seqs(&page["items"]), [4, 3]);
    let page = ok(&store, "/api/items?limit=2&before_seq=2");
    assert_eq!(seqs(&page["items"]), [1]);
    assert_eq!(
        seqs(&ok(&store, "/api/items?limit=0")["items"]),
        [6],
        "limit is at least 1"
    );
}

#[test]
fn bad_parameters_are_400_and_unknown_things_404() {
    let store = store_of(&mixed());
    for q in [
        "type=Nope",
        "success=maybe",
        "since=yesterday",
        "limit=x",
        "before_seq=-1",
    ] {
        assert_eq!(get(&store, &format!("/api/items?{q}")).0, 400, "{q}");
    }
    assert_eq!(get(&store, "/api/items/99").0, 404);
    assert_eq!(get(&store, "/api/items/x").0, 400);
    assert_eq!(get(&store, "/api/operations/none").0, 404);
    assert_eq!(get(&store, "/api/nothing").0, 404);
    let post = Request {
        method: "POST".into(),
        path: "/api/items".into(),
        ..Request::default()
    };
    assert_eq!(route(&store, &post).status, 405);
}

#[test]
fn one_item_comes_whole_with_its_receive_time() {
    let store = store_of(&mixed());
    let item = ok(&store, "/api/items/5");
    assert_eq!(item["seq"], 5);
    assert_eq!(item["received"], "2026-09-21T14:13:20.000Z");
    assert_eq!(item["envelope"]["data"]["baseType"], "ExceptionData");
}

/// A gateway request -> its dependency -> the backend's request (another role) -> a trace
/// and an exception; and an item whose parent was never received.
fn distributed() -> Vec<Value> {
    let g = op("op-x", "GET /api", "gateway", 0, 100.0);
    let b = op("op-x", "GET /api", "backend", 5, 100.0);
    vec![
        sample::trace(&b, "b-req", "backend handled it", "Information"), // seq 1, arrives first
        sample::request(&b, "b-req", "g-dep", 200, 8.0),                 // seq 2
        sample::exception(&b, "b-req", "ValueError", "bad"),             // seq 3
        sample::dependency(&g, "g-dep", "g-req", "backend:8000", 200, 9.0), // seq 4
        sample::request(&g, "g-req", "", 200, 10.0),                     // seq 5
        sample::trace(&g, "never-seen", "orphan", "Warning"),            // seq 6
        sample::request(&op("op-y", "GET /y", "gateway", 0, 100.0), "y", "", 200, 1.0), // seq 7
    ]
}

#[test]
fn an_operation_nests_the_backend_request_under_the_gateway_dependency() {
    let store = store_of(&distributed());
    let o = ok(&store, "/api/operations/op-x");
    assert_eq!(
        seqs(&o["items"]),
        [1, 2, 3, 4, 5, 6],
        "oldest first, other operations left out"
    );
    let expected = json!([
        {"seq": 5, "children": [
            {"seq": 4, "children": [
                {"seq": 2, "children": [{"seq": 1, "children": []}, {"seq": 3, "children": []}]}]}]},
        {"seq": 6, "children": []},
    ]);
    assert_eq!(o["tree"], expected);
    assert_eq!(o["items"][1]["role"], "backend");
}

#[test]
fn a_parent_cycle_or_a_self_parent_makes_roots_not_a_hang() {
    let o = op("op-c", "GET /c", "gateway", 0, 100.0);
    let items = vec![
        sample::request(&o, "a", "b", 200, 1.0),
        sample::request(&o, "b", "a", 200, 1.0),
        sample::request(&o, "c", "c", 200, 1.0),
    ];
    let store = store_of(&items);
    let tree = &ok(&store, "/api/operations/op-c")["tree"];
    let roots = seqs(tree);
    assert!(roots.contains(&3), "{tree}");
    let text = tree.to_string();
    assert!(
        text.contains("\"seq\":1") && text.contains("\"seq\":2"),
        "every item is in the tree: {tree}"
    );
}

#[test]
fn failures_group_and_count_items_and_sampling_weighted_estimates() {
    let s25 = op("op-f", "GET /f", "gateway", 0, 25.0);
    let full = op("op-g", "GET /g", "gateway", 0, 100.0);
    let items = vec![
        sample::exception(&s25, "", "IOError", "x"),
        sample::exception(&s25, "", "IOError", "y"),
        sample::exception(&full, "", "KeyError", "z"),
        sample::request(&s25, "r1", "", 500, 1.0),
        sample::request(&s25, "r2", "", 200, 1.0),
        sample::request(&full, "r3", "", 404, 1.0),
        sample::dependency(&full, "d1", "r3", "db:5432", 500, 1.0),
        sample::dependency(&full, "d2", "r3", "db:5432", 200, 1.0),
    ];
    let store = store_of(&items);
    let f = ok(&store, "/api/failures");
    assert_eq!(f["exceptions"][0]["type"], "IOError");
    assert_eq!(f["exceptions"][0]["operation_name"], "GET /f");
    assert_eq!(f["exceptions"][0]["count"], 2);
    assert_eq!(f["exceptions"][0]["estimated"], 8.0);
    assert_eq!(f["exceptions"][0]["last_seq"], 2);
    assert_eq!(f["exceptions"][1]["type"], "KeyError");
    let requests = f["failed_requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{f}");
    assert!(requests.contains(
        &json!({"operation_name": "GET /f", "result": "500", "count": 1, "items": 1,
        "estimated": 4.0, "last_seq": 4})
    ));
    assert_eq!(f["failed_dependencies"][0]["target"], "db:5432");
    assert_eq!(f["failed_dependencies"][0]["count"], 1);
    let later = ok(&store, "/api/failures?since=2030-01-01T00:00:00Z");
    assert_eq!(later["exceptions"], json!([]));
}

#[test]
fn metrics_from_items_weight_each_by_its_sample_rate() {
    let half = op("op-m", "GET /m", "gateway", 0, 50.0);
    let mut items: Vec<Value> = (1..=10)
        .map(|i| sample::request(&half, &format!("r{i}"), "", if i == 10 { 500 } else { 200 }, i as f64))
        .collect();
    items.push(sample::dependency(&half, "d", "r1", "db", 200, 1.0));
    items.push(sample::exception(
        &op("op-m", "GET /m", "gateway", 90_000, 100.0),
        "r1",
        "E",
        "e",
    ));
    let store = store_of(&items);
    let m = ok(&store, "/api/metrics?bucket_s=60");
    assert_eq!(m["source"], "items");
    let buckets = m["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2, "{m}");
    let b = &buckets[0];
    assert_eq!((b["requests"].as_f64(), b["failed"].as_f64()), (Some(20.0), Some(2.0)));
    assert_eq!(b["dependencies"], 2.0);
    assert_eq!(
        (b["duration_p50"].as_f64(), b["duration_p95"].as_f64()),
        (Some(5.0), Some(10.0))
    );
    assert_eq!(buckets[1]["exceptions"], 1.0);
    assert_eq!(buckets[1]["duration_p50"], Value::Null);
}

#[test]
fn metrics_prefer_standard_metrics_and_list_custom_series() {
    let o = op("op-s", "GET /s", "gateway", 0, 10.0);
    let std = |success: &str, count: f64| {
        let props = json!({"_MS.MetricId": "requests/duration", "_MS.IsAutocollected": "True",
            "Request.Success": success, "request/resultCode": "200"});
        sample::metric(&o, "Server response time", "", [count * 10.0, count, 1.0, 20.0], props)
    };
    let mut marked = sample::request(&o, "r1", "", 200, 4.0);
    marked["data"]["baseData"]["properties"] =
        json!({"_MS.ProcessedByMetricExtractors": "(Name:'Requests', Ver:'1.1')"});
    // Another role's request no aggregate counted (its SDK does not pre-aggregate): it
    // counts itself, as the service counts it.
    let other = sample::request(&op("op-t", "GET /t", "backend", 0, 100.0), "r2", "", 500, 6.0);
    let items = vec![
        marked,
        other,
        std("True", 7.0),
        std("False", 3.0),
        sample::metric(&o, "queue length", "app", [6.0, 2.0, 1.0, 5.0], json!({"queue": "a"})),
        sample::metric(&o, "queue length", "app", [4.0, 1.0, 4.0, 4.0], json!({"queue": "a"})),
        sample::metric(&o, "queue length", "app", [9.0, 1.0, 9.0, 9.0], json!({"queue": "b"})),
    ];
    let store = store_of(&items);
    let m = ok(&store, "/api/metrics");
    assert_eq!(m["source"], "standard_metrics");
    assert_eq!(m["sources"]["dependencies"], "items");
    let b = &m["buckets"][0];
    assert_eq!(
        (b["requests"].as_f64(), b["failed"].as_f64()),
        (Some(11.0), Some(4.0)),
        "the aggregates' 10, not 10 x the marked item; and the unmarked one"
    );
    let custom = m["custom"].as_array().unwrap();
    assert_eq!(custom.len(), 1, "standard metrics are not custom: {m}");
    assert_eq!(
        (custom[0]["name"].as_str(), custom[0]["namespace"].as_str()),
        (Some("queue length"), Some("app"))
    );
    let a = &custom[0]["series"][0];
    assert_eq!(a["dimensions"], json!({"queue": "a"}));
    assert_eq!(
        (
            a["count"].as_f64(),
            a["sum"].as_f64(),
            a["min"].as_f64(),
            a["max"].as_f64()
        ),
        (Some(3.0), Some(10.0), Some(1.0), Some(5.0))
    );
}

#[test]
fn availability_groups_by_test_and_location() {
    let at = |ms: i64| op("", "", "gateway", ms, 100.0);
    let items = vec![
        sample::availability(&at(0), "a1", "ping", "local", true),
        sample::availability(&at(1000), "a2", "ping", "local", false),
        sample::availability(&at(2000), "a3", "ping", "remote", true),
        sample::availability(&at(3000), "a4", "home", "local", true),
    ];
    let store = store_of(&items);
    let tests = ok(&store, "/api/availability")["tests"].clone();
    assert_eq!(tests.as_array().unwrap().len(), 3);
    let ping_local = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ping" && t["location"] == "local")
        .unwrap();
    assert_eq!(
        (ping_local["runs"].as_u64(), ping_local["passed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(ping_local["last"]["seq"], 2);
    assert_eq!(seqs(&ping_local["results"]), [2, 1]);
}

#[test]
fn rejected_items_are_listed_newest_first_with_a_limit() {
    let mut store = store_of(&[]);
    store.reject(T0, 0, "first", "{}");
    store.reject(T0, 3, "second", "{\"x\":1}");
    let r = ok(&store, "/api/rejected?limit=1");
    assert_eq!(
        r["items"],
        json!([{"received": "2026-09-21T14:13:20.000Z", "index": 3, "reason": "second", "line": "{\"x\":1}"}])
    );
    assert_eq!(ok(&store, "/api/summary")["rejected"], 2);
}

#[test]
fn percent_decoding_keeps_bad_escapes() {
    assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%e2%82%ac"), "%zz€");
}

#[test]
fn the_endpoint_serves_the_api_and_the_page_over_http() {
    use crate::http as client;
    use crate::ingest::{IngestConfig, IngestServer};
    let server = IngestServer::start(IngestConfig::default()).unwrap();
    let now = op("op-h", "GET /h", "gateway", 0, 100.0);
    let mut item = sample::request(&now, "r", "", 200, 1.0);
    item["time"] = json!(crate::schema::format_time(std::time::SystemTime::now()));
    let body = format!("{item}\n{{\"bad\": true}}\n");
    let resp = client::post(server.addr(), "/v2.1/track", "application/x-ndjson", body.as_bytes()).unwrap();
    assert_eq!(resp.status, 206);
    let summary = client::get(server.addr(), "/api/summary").unwrap().json().unwrap();
    assert_eq!(
        (summary["items"].as_u64(), summary["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let rejected = client::get(server.addr(), "/api/rejected").unwrap().json().unwrap();
    assert_eq!(rejected["items"][0]["index"], 1);
    assert_eq!(rejected["items"][0]["line"], "{\"bad\": true}");
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let page = client::get(server.addr(), path).unwrap();
        assert_eq!(page.status, 200, "{path}");
        assert!(page.header("content-type").unwrap().starts_with(kind), "{path}");
    }
    assert_eq!(client::get(server.addr(), "/ui/nope.js").unwrap().status, 404);
    assert_eq!(server.items().len(), 1, "the test-facing list is fed too");
}

#[test]
fn the_text_search_anchors_on_any_byte_and_ignores_ascii_case() {
    let texts = ["aaaa xyz", "aaaa"];
    let needle = query::Needle::new("AXy", texts.iter().copied());
    assert!(!needle.found_in("aaaa xyz"));
    assert!(needle.found_in("..aXY.."));
    assert!(needle.found_in("AXY"));
    assert!(!needle.found_in("AX"));
    assert!(!needle.found_in("XY"));
    assert!(query::Needle::new("", texts.iter().copied()).found_in("anything"));
    assert!(query::Needle::new("ünï", texts.iter().copied()).found_in("x ünï"));
}
