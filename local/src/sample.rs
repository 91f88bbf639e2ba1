//! Envelopes of every kind, built from a few fields: for the tests, the performance test
//! and demos (each one passes the strict schema check).

use serde_json::{json, Value};

use crate::store::iso;

/// Fields shared by the items of one operation.
#[derive(Debug, Clone)]
pub struct Op<'a> {
    pub operation_id: &'a str,
    pub operation_name: &'a str,
    pub role: &'a str,
    pub time_ms: i64,
    pub sample_rate: f64,
}

fn envelope(op: &Op, base_type: &str, name: &str, parent: &str, base: Value) -> Value {
    let mut tags = json!({
        "ai.operation.id": op.operation_id,
        "ai.operation.name": op.operation_name,
        "ai.cloud.role": op.role,
        "ai.cloud.roleInstance": "local-1",
    });
    if let (false, Some(tags)) = (parent.is_empty(), tags.as_object_mut()) {
        tags.insert("ai.operation.parentId".into(), json!(parent));
    }
    json!({
        "name": format!("Microsoft.ApplicationInsights.{name}"),
        "time": iso(op.time_ms),
        "iKey": "00000000-0000-0000-0000-000000000001",
        "sampleRate": op.sample_rate,
        "tags": tags,
        "data": {"baseType": base_type, "baseData": base},
    })
}

/// `[d.]hh:mm:ss.fffffff` of a duration in milliseconds.
pub fn timespan(ms: f64) -> String {
    let ticks = (ms * 10_000.0).round().max(0.0) as u64;
    let (secs, frac) = (ticks / 10_000_000, ticks % 10_000_000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!("{:02}:{:02}:{:02}.{frac:07}", rest / 3600, rest / 60 % 60, rest % 60);
    if days > 0 {
        format!("{days}.{hms}")
    } else {
        hms
    }
}

/// A RequestData item with id `id` under `parent` (empty: none).
pub fn request(op: &Op, id: &str, parent: &str, code: u16, duration_ms: f64) -> Value {
    let base = json!({"ver": 2, "id": id, "name": op.operation_name, "duration": timespan(duration_ms),
        "responseCode": code.to_string(), "success": code < 400, "url": "http://gateway.local/api"});
    envelope(op, "RequestData", "Request", parent, base)
}

/// A RemoteDependencyData item (HTTP) to `target`.
pub fn dependency(op: &Op, id: &str, parent: &str, target: &str, code: u16, duration_ms: f64) -> Value {
    let base = json!({"ver": 2, "id": id, "name": format!("GET {target}"), "duration": timespan(duration_ms),
        "resultCode": code.to_string(), "success": code < 400, "type": "HTTP", "target": target});
    envelope(op, "RemoteDependencyData", "RemoteDependency", parent, base)
}

/// An ExceptionData item of type `type_name`.
pub fn exception(op: &Op, parent: &str, type_name: &str, message: &str) -> Value {
    let base = json!({"ver": 2, "exceptions": [{"id": 1, "outerId": 0, "typeName": type_name,
        "message": message, "hasFullStack": false}], "severityLevel": "Error"});
    envelope(op, "ExceptionData", "Exception", parent, base)
}

/// A MessageData item (a trace).
pub fn trace(op: &Op, parent: &str, message: &str, severity: &str) -> Value {
    let base = json!({"ver": 2, "message": message, "severityLevel": severity});
    envelope(op, "MessageData", "Message", parent, base)
}

/// A MetricData aggregate with `properties` (a standard metric when they hold `_MS.MetricId`).
pub fn metric(op: &Op, name: &str, namespace: &str, stats: [f64; 4], properties: Value) -> Value {
    let [value, count, min, max] = stats;
    let mut m = json!({"name": name, "kind": "Aggregation", "value": value, "count": count.round() as i64,
        "min": min, "max": max, "stdDev": 0.0});
    if let (false, Some(m)) = (namespace.is_empty(), m.as_object_mut()) {
        m.insert("ns".into(), json!(namespace));
    }
    let base = json!({"ver": 2, "metrics": [m], "properties": properties});
    envelope(op, "MetricData", "Metric", "", base)
}

/// An AvailabilityData result of test `name` from `location`.
pub fn availability(op: &Op, id: &str, name: &str, location: &str, success: bool) -> Value {
    let base = json!({"ver": 2, "id": id, "name": name, "duration": timespan(120.0), "success": success,
        "runLocation": location, "message": if success { "Passed" } else { "Failed: 503" }});
    envelope(op, "AvailabilityData", "Availability", "", base)
}

/// `items` items of a realistic mix, starting at `t0` (unix ms), an operation every 36 ms:
/// per operation the gateway's request and dependency, the backend's request, and a trace
/// or (one in 17) an exception; every 20 operations standard and custom metrics and an
/// availability result. For the performance tests of the API and the page.
pub fn mix(items: usize, t0: i64) -> Vec<Value> {
    let mut out = Vec::with_capacity(items);
    let mut n = 0;
    while out.len() < items {
        out.extend(mix_operation(n, t0));
        if n.is_multiple_of(20) {
            out.extend(mix_periodic(n, t0));
        }
        n += 1;
    }
    out.truncate(items);
    out
}

fn mix_operation(n: usize, t0: i64) -> Vec<Value> {
    let (id, gw, be) = (format!("op{n:06}"), format!("g{n}"), format!("b{n}"));
    let name = match n % 4 {
        0 => "GET /api/orders",
        1 => "POST /api/orders",
        2 => "GET /api/users/{id}",
        _ => "GET /health",
    };
    let at = |role, ms: i64| Op {
        operation_id: &id,
        operation_name: name,
        role,
        time_ms: t0 + (n as i64) * 36 + ms,
        sample_rate: if n.is_multiple_of(3) { 50.0 } else { 100.0 },
    };
    let code = if n.is_multiple_of(17) { 500 } else { 200 };
    let (g, b) = (at("gateway", 0), at("backend", 2));
    let mut items = vec![
        request(&g, &gw, "", code, 20.0 + (n % 200) as f64),
        dependency(&g, &format!("d{n}"), &gw, "backend:8000", code, 18.0),
        request(&b, &be, &format!("d{n}"), code, 15.0),
    ];
    items.push(match code {
        500 => exception(&b, &be, "ConnectionError", "database unreachable"),
        _ => trace(&b, &be, &format!("served order {n}"), "Information"),
    });
    items
}

fn mix_periodic(n: usize, t0: i64) -> Vec<Value> {
    let o = Op {
        operation_id: "",
        operation_name: "",
        role: "gateway",
        time_ms: t0 + (n as i64) * 36,
        sample_rate: 100.0,
    };
    let std = json!({"_MS.MetricId": "requests/duration", "_MS.IsAutocollected": "True", "Request.Success": "True"});
    vec![
        metric(&o, "Server response time", "", [500.0, 20.0, 5.0, 90.0], std),
        metric(
            &o,
            "tokens",
            "openai",
            [120.0, 3.0, 10.0, 80.0],
            json!({"model": "gpt"}),
        ),
        availability(&o, &format!("a{n}"), "gateway health", "local", !n.is_multiple_of(40)),
    ]
}
