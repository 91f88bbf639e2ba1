//! Unit tests of the envelope schema: one valid example per type, at least one
//! failing case per rule, and exact-maximum / maximum+1 boundaries.

use super::*;
use serde_json::json;
use std::time::Duration;

const NOW: &str = "2024-01-01T00:00:00Z";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_067_200)
}

/// The public example of `base_type` cut down to the envelope's required fields (name,
/// time, data): the smallest valid item, which the tests break one field at a time.
fn minimal(base_type: &str) -> Value {
    let example = example_envelope(base_type, now()).unwrap_or_else(|| panic!("no example for {base_type}"));
    with(&example, "/iKey", None)
}

/// A minimal envelope of `base_type` carrying `base_data`.
fn envelope(base_type: &str, base_data: Value) -> Value {
    with(&minimal(base_type), "/data/baseData", Some(base_data))
}

const ALL_TYPES: [&str; 7] = [
    "RequestData",
    "RemoteDependencyData",
    "ExceptionData",
    "MessageData",
    "MetricData",
    "EventData",
    "AvailabilityData",
];

/// Returns `v` with the value at `path` (`/`-separated; numbers index arrays) set or removed.
fn with(v: &Value, path: &str, value: Option<Value>) -> Value {
    let mut out = v.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (last, parents) = segments.split_last().unwrap();
    let mut cur = &mut out;
    for seg in parents {
        cur = match cur {
            Value::Array(a) => &mut a[seg.parse::<usize>().unwrap()],
            Value::Object(m) => m.entry(seg.to_string()).or_insert_with(|| json!({})),
            _ => panic!("cannot descend into {seg}"),
        };
    }
    let map = cur.as_object_mut().unwrap();
    match value {
        Some(value) => map.insert(last.to_string(), value),
        None => map.remove(*last),
    };
    out
}

fn ok(v: &Value) {
    if let Err(e) = validate_envelope(v, now()) {
        panic!("expected valid, got {e}\n{v}");
    }
}

fn fails(v: &Value, needle: &str) {
    match validate_envelope(v, now()) {
        Ok(()) => panic!("expected an error containing {needle:?}\n{v}"),
        Err(e) => assert!(e.contains(needle), "error {e:?} does not contain {needle:?}"),
    }
}

fn chars(n: usize) -> Value {
    Value::String("é".repeat(n)) // 2 bytes each: lengths are counted in characters
}

/// Exactly `max` characters pass, `max + 1` fail with the field's path in the message.
fn boundary(base: &Value, path: &str, max: usize) {
    ok(&with(base, path, Some(chars(max))));
    let shown = display_path(path);
    fails(
        &with(base, path, Some(chars(max + 1))),
        &format!("{shown}: length {}", max + 1),
    );
}

/// `/a/b/0/c` as the validator prints it: `a.b[0].c`.
fn display_path(path: &str) -> String {
    let mut out = String::new();
    for seg in path.trim_start_matches('/').split('/') {
        match seg.parse::<usize>() {
            Ok(i) => out.push_str(&format!("[{i}]")),
            Err(_) if out.is_empty() => out.push_str(seg),
            Err(_) => out.push_str(&format!(".{seg}")),
        }
    }
    out
}

fn time_at(offset_secs: i64) -> Value {
    let t = 1_704_067_200 + offset_secs;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let day = days - 19_723; // 2024-01-01 is day 19723 since the epoch
    let date = match day {
        -3..=-1 => format!("2023-12-{}", 32 + day),
        0..=30 => format!("2024-01-{:02}", day + 1),
        _ => panic!("offset out of the test range"),
    };
    json!(format!(
        "{date}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

#[test]
fn a_minimal_item_of_every_type_is_valid() {
    for t in ALL_TYPES {
        ok(&minimal(t));
    }
}

#[test]
fn the_public_examples_are_valid_and_cover_every_type() {
    assert_eq!(BASE_TYPES, ALL_TYPES);
    for t in BASE_TYPES {
        ok(&example_envelope(t, now()).unwrap());
    }
    assert_eq!(example_envelope("PageViewData", now()), None);
}

#[test]
fn the_reference_example_line_is_valid() {
    let line = r#"{"name":"Microsoft.ApplicationInsights.Request","time":"2024-01-01T00:00:00.000Z","sampleRate":100.0,"iKey":"00000000-0000-0000-0000-000000000000","tags":{"ai.operation.id":"4bf92f3577b34da6a3ce929d0e0e4736","ai.operation.parentId":"00f067aa0ba902b7","ai.operation.name":"GET /orders","ai.cloud.role":"gw","ai.internal.sdkVersion":"envoy:0.1.0"},"data":{"baseType":"RequestData","baseData":{"ver":2,"id":"b7ad6b7169203331","name":"GET /orders","duration":"00:00:00.1234567","responseCode":"200","success":true,"url":"https://h/orders"}}}"#;
    assert!(validate_line(line.as_bytes(), now()).is_ok());
}

#[test]
fn every_optional_field_of_every_type_is_accepted() {
    let props = json!({"k": "v"});
    let meas = json!({"m": 1.0});
    let full = [
        json!({"ver": 2, "id": "i", "duration": "1.00:00:00", "responseCode": "500", "success": false, "source": "s", "name": "n", "url": "http://u", "properties": props, "measurements": meas}),
        json!({"ver": 2, "name": "n", "id": "i", "resultCode": "200", "duration": "00:00:00.5", "success": true, "data": "d", "type": "HTTP", "target": "t", "properties": props, "measurements": meas}),
        json!({"ver": 2, "exceptions": [{"id": 1, "outerId": 0, "typeName": "T", "message": "m", "hasFullStack": true, "stack": "s", "parsedStack": [{"level": 0, "method": "f", "assembly": "a", "fileName": "x.rs", "line": 3}]}], "severityLevel": "Error", "problemId": "p", "properties": props, "measurements": meas}),
        json!({"ver": 2, "message": "m", "severityLevel": 1, "properties": props, "measurements": meas}),
        json!({"ver": 2, "metrics": [{"ns": "n", "name": "m", "kind": "Aggregation", "value": 3, "count": 2, "min": 1, "max": 2, "stdDev": 0.5}], "properties": props}),
        json!({"ver": 2, "name": "e", "properties": props, "measurements": meas}),
        json!({"ver": 2, "id": "i", "name": "n", "duration": "00:00:01", "success": false, "runLocation": "r", "message": "m", "properties": props, "measurements": meas}),
    ];
    for (t, base) in ALL_TYPES.iter().zip(full) {
        ok(&envelope(t, base));
    }
    let env = json!({"ver": 1, "name": "n", "time": NOW, "sampleRate": 25.0, "seq": "1", "iKey": "k", "flags": 2097152, "tags": {"ai.cloud.role": "gw"}, "data": {"baseType": "EventData", "baseData": {"ver": 2, "name": "e"}}});
    ok(&env);
}

#[test]
fn the_error_names_the_field_and_the_reason() {
    let v = with(&minimal("RequestData"), "/data/baseData/duration", Some(json!("1:2")));
    assert_eq!(
        validate_envelope(&v, now()),
        Err(r#"data.baseData.duration: "1:2" is not a TimeSpan"#.to_string())
    );
}

#[test]
fn the_envelope_must_be_an_object() {
    fails(&json!([1]), "envelope: expected an object");
}

#[test]
fn envelope_strings_have_their_maximum_lengths() {
    let base = minimal("EventData");
    boundary(&base, "/name", 1024);
    boundary(&base, "/iKey", 40);
    boundary(&base, "/seq", 64);
}

#[test]
fn required_envelope_fields_must_be_present_and_non_empty() {
    let base = minimal("EventData");
    for field in ["name", "time", "data"] {
        fails(&with(&base, field, None), &format!("{field}: required field missing"));
    }
    fails(&with(&base, "/name", Some(json!(""))), "name: required but empty");
    fails(
        &with(&base, "/name", Some(json!(7))),
        "name: expected a string, got a number",
    );
}

#[test]
fn unknown_envelope_fields_are_rejected() {
    fails(
        &with(&minimal("EventData"), "/iKEY", Some(json!("k"))),
        "iKEY: unknown field",
    );
}

#[test]
fn null_values_are_rejected() {
    fails(
        &with(&minimal("EventData"), "/iKey", Some(Value::Null)),
        "iKey: must not be null",
    );
}

#[test]
fn time_accepts_zero_to_seven_fraction_digits() {
    let base = minimal("EventData");
    for t in [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.1Z",
        "2024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.0000000Z",
    ] {
        ok(&with(&base, "/time", Some(json!(t))));
    }
    for t in [
        "2024-01-01T00:00:00.00000000Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00+00:00",
        "yesterday",
    ] {
        fails(&with(&base, "/time", Some(json!(t))), "is not an ISO-8601 UTC time");
    }
    fails(&with(&base, "/time", Some(json!(0))), "time: expected a string");
    let long = format!("2024-01-01T00:00:00.{}Z", "0".repeat(60));
    fails(&with(&base, "/time", Some(json!(long))), "time: length 81 exceeds");
}

#[test]
fn time_must_be_within_48_hours_past_and_2_hours_future() {
    let base = minimal("EventData");
    ok(&with(&base, "/time", Some(time_at(-48 * 3600))));
    fails(
        &with(&base, "/time", Some(time_at(-48 * 3600 - 1))),
        "more than 48 hours in the past",
    );
    ok(&with(&base, "/time", Some(time_at(2 * 3600))));
    fails(
        &with(&base, "/time", Some(time_at(2 * 3600 + 1))),
        "more than 2 hours in the future",
    );
}

#[test]
fn sample_rate_is_a_percentage_above_zero() {
    let base = minimal("EventData");
    for good in [json!(100), json!(0.001), json!(33.3)] {
        ok(&with(&base, "/sampleRate", Some(good)));
    }
    for bad in [json!(0), json!(-1), json!(100.5)] {
        fails(&with(&base, "/sampleRate", Some(bad)), "is not in (0, 100]");
    }
    fails(
        &with(&base, "/sampleRate", Some(json!("50"))),
        "sampleRate: expected a finite number",
    );
}

#[test]
fn flags_and_ver_are_integers() {
    let base = minimal("EventData");
    fails(&with(&base, "/flags", Some(json!(1.5))), "flags: expected an integer");
    fails(&with(&base, "/ver", Some(json!("1"))), "ver: expected an integer");
    fails(
        &with(&base, "/ver", Some(json!(4_294_967_296_i64))),
        "ver: 4294967296 is out of range",
    );
    ok(&with(&base, "/flags", Some(json!(i64::MAX))));
}

#[test]
fn every_known_tag_has_its_maximum_length() {
    let base = minimal("EventData");
    for (tag, max) in types::TAGS {
        let mut v = with(&base, "/tags", Some(json!({*tag: chars(*max)})));
        ok(&v);
        v["tags"][*tag] = chars(max + 1);
        fails(&v, &format!("tags[\"{tag}\"]: length {}", max + 1));
    }
}

#[test]
fn the_tag_table_has_the_documented_limits() {
    let expect = [
        ("ai.operation.id", 128),
        ("ai.operation.parentId", 128),
        ("ai.operation.name", 1024),
        ("ai.cloud.role", 256),
        ("ai.cloud.roleInstance", 256),
        ("ai.internal.sdkVersion", 64),
        ("ai.location.ip", 46),
        ("ai.user.id", 128),
        ("ai.session.id", 64),
        ("ai.session.isFirst", 5),
    ];
    for (tag, max) in expect {
        assert_eq!(types::tag_max_len(tag), Some(max), "{tag}");
    }
    assert_eq!(types::TAGS.len(), 28);
}

#[test]
fn unknown_or_non_string_tags_are_rejected() {
    let base = minimal("EventData");
    fails(
        &with(&base, "/tags", Some(json!({"ai.user.userAgent": "x"}))),
        r#"tags["ai.user.userAgent"]: unknown context tag"#,
    );
    fails(
        &with(&base, "/tags", Some(json!({"ai.cloud.role": 1}))),
        r#"tags["ai.cloud.role"]: expected a string"#,
    );
    fails(
        &with(&base, "/tags", Some(json!(["ai.cloud.role"]))),
        "tags: expected an object",
    );
}

#[test]
fn data_needs_a_known_base_type_and_a_base_data_object() {
    let base = minimal("EventData");
    fails(
        &with(&base, "/data/baseType", Some(json!("PageViewData"))),
        r#"data.baseType: unknown baseType "PageViewData""#,
    );
    fails(
        &with(&base, "/data/baseType", None),
        "data.baseType: required field missing",
    );
    fails(
        &with(&base, "/data/baseData", None),
        "data.baseData: required field missing",
    );
    fails(
        &with(&base, "/data/baseData", Some(json!("x"))),
        "data.baseData: expected an object, got a string",
    );
    fails(&with(&base, "/data/extra", Some(json!(1))), "data.extra: unknown field");
    fails(&with(&base, "/data", Some(json!(1))), "data: expected an object");
}

#[test]
fn unknown_base_data_fields_are_rejected() {
    for t in ALL_TYPES {
        fails(
            &with(&minimal(t), "/data/baseData/respnseCode", Some(json!("x"))),
            "data.baseData.respnseCode: unknown field",
        );
    }
}

#[test]
fn every_required_base_data_field_is_enforced() {
    let required = [
        ("RequestData", &["ver", "id", "duration", "responseCode", "success"][..]),
        ("RemoteDependencyData", &["ver", "name", "duration"][..]),
        ("ExceptionData", &["ver", "exceptions"][..]),
        ("MessageData", &["ver", "message"][..]),
        ("MetricData", &["ver", "metrics"][..]),
        ("EventData", &["ver", "name"][..]),
        ("AvailabilityData", &["ver", "id", "name", "duration", "success"][..]),
    ];
    for (t, fields) in required {
        for f in fields {
            fails(
                &with(&minimal(t), &format!("/data/baseData/{f}"), None),
                &format!("data.baseData.{f}: required field missing"),
            );
        }
    }
}

#[test]
fn base_data_strings_have_their_maximum_lengths() {
    let limits = [
        (
            "RequestData",
            &[
                ("id", 128),
                ("responseCode", 1024),
                ("source", 1024),
                ("name", 1024),
                ("url", 2048),
            ][..],
        ),
        (
            "RemoteDependencyData",
            &[
                ("name", 1024),
                ("id", 128),
                ("resultCode", 1024),
                ("data", 8192),
                ("type", 1024),
                ("target", 1024),
            ][..],
        ),
        ("ExceptionData", &[("problemId", 1024)][..]),
        ("MessageData", &[("message", 32768)][..]),
        ("EventData", &[("name", 512)][..]),
        (
            "AvailabilityData",
            &[("id", 64), ("name", 1024), ("runLocation", 1024), ("message", 8192)][..],
        ),
    ];
    for (t, fields) in limits {
        for (f, max) in fields {
            boundary(&minimal(t), &format!("/data/baseData/{f}"), *max);
        }
    }
}

#[test]
fn base_data_field_types_are_checked() {
    let req = minimal("RequestData");
    fails(
        &with(&req, "/data/baseData/success", Some(json!("true"))),
        "data.baseData.success: expected a boolean",
    );
    fails(
        &with(&req, "/data/baseData/responseCode", Some(json!(200))),
        "data.baseData.responseCode: expected a string",
    );
    fails(
        &with(&req, "/data/baseData/responseCode", Some(json!(""))),
        "data.baseData.responseCode: required but empty",
    );
    fails(
        &with(&req, "/data/baseData/ver", Some(json!(2.5))),
        "data.baseData.ver: expected an integer",
    );
    fails(
        &with(&req, "/data/baseData/duration", Some(json!(1.5))),
        "data.baseData.duration: expected a TimeSpan string",
    );
    let dep = minimal("RemoteDependencyData");
    fails(
        &with(&dep, "/data/baseData/success", Some(json!(1))),
        "data.baseData.success: expected a boolean",
    );
    fails(
        &with(&dep, "/data/baseData/duration", Some(json!("1000.00:00:00"))),
        "is not a TimeSpan",
    );
    fails(
        &with(
            &minimal("AvailabilityData"),
            "/data/baseData/duration",
            Some(json!("00:00")),
        ),
        "is not a TimeSpan",
    );
}

#[test]
fn exception_details_and_stack_frames_are_checked() {
    let base = minimal("ExceptionData");
    let exc = "/data/baseData/exceptions/0";
    fails(
        &with(&base, "/data/baseData/exceptions", Some(json!([]))),
        "data.baseData.exceptions: has 0 elements",
    );
    fails(
        &with(&base, "/data/baseData/exceptions", Some(json!({}))),
        "data.baseData.exceptions: expected an array",
    );
    fails(
        &with(&base, &format!("{exc}/typeName"), None),
        "data.baseData.exceptions[0].typeName: required field missing",
    );
    fails(
        &with(&base, &format!("{exc}/message"), None),
        "data.baseData.exceptions[0].message: required field missing",
    );
    fails(
        &with(&base, &format!("{exc}/id"), Some(json!("1"))),
        "data.baseData.exceptions[0].id: expected an integer",
    );
    fails(
        &with(&base, &format!("{exc}/hasFullStack"), Some(json!("no"))),
        "exceptions[0].hasFullStack: expected a boolean",
    );
    fails(
        &with(&base, &format!("{exc}/stackTrace"), Some(json!(""))),
        "exceptions[0].stackTrace: unknown field",
    );
    boundary(&base, &format!("{exc}/typeName"), 1024);
    boundary(&base, &format!("{exc}/message"), 32768);
    boundary(&base, &format!("{exc}/stack"), 32768);
    let framed = with(
        &base,
        &format!("{exc}/parsedStack"),
        Some(json!([{"level": 0, "method": "f"}])),
    );
    ok(&framed);
    let frame = format!("{exc}/parsedStack/0");
    fails(
        &with(&framed, &format!("{frame}/level"), None),
        "exceptions[0].parsedStack[0].level: required field missing",
    );
    fails(
        &with(&framed, &format!("{frame}/method"), None),
        "parsedStack[0].method: required field missing",
    );
    fails(
        &with(&framed, &format!("{frame}/line"), Some(json!("3"))),
        "parsedStack[0].line: expected an integer",
    );
    for f in ["method", "assembly", "fileName"] {
        boundary(&framed, &format!("{frame}/{f}"), 1024);
    }
}

#[test]
fn severity_level_is_a_name_or_a_number_from_0_to_4() {
    for t in ["ExceptionData", "MessageData"] {
        let base = minimal(t);
        for good in [json!("Verbose"), json!("Critical"), json!(0), json!(4)] {
            ok(&with(&base, "/data/baseData/severityLevel", Some(good)));
        }
        for bad in [
            json!("Fatal"),
            json!("error"),
            json!(5),
            json!(-1),
            json!(1.0),
            json!(true),
        ] {
            fails(
                &with(&base, "/data/baseData/severityLevel", Some(bad)),
                "data.baseData.severityLevel:",
            );
        }
    }
}

#[test]
fn metric_data_has_exactly_one_data_point_and_no_measurements() {
    let base = minimal("MetricData");
    let two = json!([{"name": "a", "value": 1}, {"name": "b", "value": 2}]);
    fails(
        &with(&base, "/data/baseData/metrics", Some(two)),
        "data.baseData.metrics: has 2 elements, expected exactly 1",
    );
    fails(
        &with(&base, "/data/baseData/metrics", Some(json!([]))),
        "has 0 elements",
    );
    fails(
        &with(&base, "/data/baseData/measurements", Some(json!({"m": 1}))),
        "data.baseData.measurements: unknown field",
    );
    let point = "/data/baseData/metrics/0";
    fails(
        &with(&base, &format!("{point}/value"), None),
        "metrics[0].value: required field missing",
    );
    fails(
        &with(&base, &format!("{point}/value"), Some(json!("1"))),
        "metrics[0].value: expected a finite number",
    );
    fails(
        &with(&base, &format!("{point}/name"), None),
        "metrics[0].name: required field missing",
    );
    fails(
        &with(&base, &format!("{point}/count"), Some(json!(1.5))),
        "metrics[0].count: expected an integer",
    );
    fails(
        &with(&base, &format!("{point}/stdDev"), Some(json!("0"))),
        "metrics[0].stdDev: expected a finite number",
    );
    boundary(&base, &format!("{point}/ns"), 256);
    boundary(&base, &format!("{point}/name"), 1024);
    for good in [json!("Measurement"), json!("Aggregation"), json!(0), json!(1)] {
        ok(&with(&base, &format!("{point}/kind"), Some(good)));
    }
    for bad in [json!("Sum"), json!(2)] {
        fails(&with(&base, &format!("{point}/kind"), Some(bad)), "metrics[0].kind:");
    }
}

#[test]
fn properties_are_short_keys_to_strings() {
    let base = minimal("RequestData");
    let p = "/data/baseData/properties";
    ok(&with(&base, p, Some(json!({"é".repeat(150): "é".repeat(8192)}))));
    fails(
        &with(&base, p, Some(json!({"é".repeat(151): "v"}))),
        "key length 151 is not between 1 and 150",
    );
    fails(
        &with(&base, p, Some(json!({"": "v"}))),
        r#"data.baseData.properties[""]: key length 0"#,
    );
    fails(
        &with(&base, p, Some(json!({"k": "é".repeat(8193)}))),
        r#"properties["k"]: length 8193 exceeds"#,
    );
    fails(
        &with(&base, p, Some(json!({"k": 1}))),
        r#"properties["k"]: expected a string"#,
    );
    fails(
        &with(&base, p, Some(json!("k=v"))),
        "data.baseData.properties: expected an object",
    );
}

#[test]
fn measurements_are_short_keys_to_numbers() {
    let base = minimal("EventData");
    let m = "/data/baseData/measurements";
    ok(&with(&base, m, Some(json!({"x".repeat(150): -1.5e300}))));
    fails(&with(&base, m, Some(json!({"x".repeat(151): 1}))), "key length 151");
    fails(
        &with(&base, m, Some(json!({"k": "1"}))),
        r#"measurements["k"]: expected a finite number"#,
    );
}

#[test]
fn validate_line_checks_syntax() {
    let good = minimal("EventData").to_string();
    assert!(validate_line(good.as_bytes(), now()).is_ok());
    assert!(validate_line(b"{not json", now())
        .unwrap_err()
        .starts_with("invalid JSON"));
    assert!(validate_line(b"[]", now())
        .unwrap_err()
        .starts_with("envelope: expected an object"));
}

/// A valid item padded with properties to exactly `len` bytes.
fn item_of_len(len: usize) -> String {
    let props: Map<String, Value> = (0..10).map(|i| (format!("p{i}"), json!("x".repeat(6400)))).collect();
    let mut v = with(
        &minimal("EventData"),
        "/data/baseData/properties",
        Some(Value::Object(props)),
    );
    let short = v.to_string().len();
    v["data"]["baseData"]["properties"]["p9"] = json!("x".repeat(6400 + len - short));
    v.to_string()
}

#[test]
fn an_item_may_be_at_most_65536_bytes() {
    let exact = item_of_len(MAX_ITEM_BYTES);
    assert_eq!(exact.len(), MAX_ITEM_BYTES);
    assert_eq!(validate_line(exact.as_bytes(), now()).err(), None);
    let over = item_of_len(MAX_ITEM_BYTES + 1);
    assert!(validate_line(over.as_bytes(), now())
        .unwrap_err()
        .contains("65537 bytes, over the 65536-byte limit"));
}
