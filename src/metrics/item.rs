//! The MetricData item: one series' aggregate over one interval (`value` = sum, with
//! `count`, `min`, `max`, `stdDev`, kind `Aggregation`), its dimensions as properties,
//! and for standard metrics the `_MS.*` properties the service reads, as the official
//! SDKs write them.

use super::aggregate::{Series, Stats};
use super::catalog::MetricDef;
use crate::json::{push_f64, push_key, push_str, push_u64};
use crate::telemetry::envelope::Members;
use crate::telemetry::Sender;
use crate::timefmt::push_iso8601;

/// Appends one MetricData envelope for `series` of `def` (one NDJSON line).
pub fn write(
    out: &mut Vec<u8>,
    who: &Sender,
    def: &MetricDef,
    series: &Series,
    stats: &Stats,
    start: u64,
    interval_ms: u64,
) {
    out.extend_from_slice(b"{\"name\":\"Microsoft.ApplicationInsights.Metric\",\"time\":\"");
    push_iso8601(out, start);
    out.extend_from_slice(b"\",\"sampleRate\":100,");
    out.extend_from_slice(&who.ikey_field);
    out.extend_from_slice(b"\"tags\":{");
    out.extend_from_slice(&who.role_tags);
    out.extend_from_slice(b"},\"data\":{\"baseType\":\"MetricData\",\"baseData\":{\"ver\":2,\"metrics\":[{");
    push_key(out, "name");
    push_str(out, &def.name, 1024);
    if let Some(ns) = &def.namespace {
        out.push(b',');
        push_key(out, "ns");
        push_str(out, ns, 256);
    }
    out.extend_from_slice(b",\"kind\":\"Aggregation\",\"value\":");
    push_f64(out, stats.sum);
    out.extend_from_slice(b",\"count\":");
    push_u64(out, stats.count.min(i32::MAX as u64));
    out.extend_from_slice(b",\"min\":");
    push_f64(out, stats.min);
    out.extend_from_slice(b",\"max\":");
    push_f64(out, stats.max);
    out.extend_from_slice(b",\"stdDev\":");
    push_f64(out, stats.std_dev());
    out.extend_from_slice(b"}]");
    let mut p = Members::new(out, "properties");
    for (name, value) in def.dimensions.iter().zip(series.values()) {
        p.string(name, value);
    }
    if let Some(standard) = def.standard {
        p.raw_string("cloud/roleName", &who.role_name);
        p.raw_string("cloud/roleInstance", &who.instance_name);
        p.string("_MS.MetricId", standard.metric_id().as_bytes());
        p.string("_MS.IsAutocollected", b"True");
    }
    p.string("_MS.AggregationIntervalMs", interval_ms.to_string().as_bytes());
    p.finish();
    out.extend_from_slice(b"}}}\n");
}
