//! Metrics in the pipeline: what each exchange adds goes into the aggregator of every
//! logger its diagnostic sends to (`measure`); closed intervals become MetricData items in
//! that logger's batch on the tick ([`Pipeline::flush_metrics`], at most 100 ms after the
//! interval's end: not in an exchange's callback), and the open interval when the
//! configuration drains. A worker with nothing to report sends nothing.

use super::sink::Sink;
use super::{Notice, Pipeline};
use crate::config::{Diagnostic, TraceRule};
use crate::metrics::aggregate::Window;
use crate::metrics::catalog::{Catalog, DiagnosticMetrics};
use crate::metrics::extract::{self, Gateway, Missing};
use crate::metrics::item;
use crate::metrics::usage::Usage;
use crate::telemetry::Facts;

/// The metrics side of a pipeline, decided once per configuration.
#[derive(Debug, Default)]
pub struct Metrics {
    pub catalog: Catalog,
    /// The custom metrics of the all-APIs diagnostic, then each API's.
    pub per_diagnostic: Vec<DiagnosticMetrics>,
    pub gateway: Gateway,
    pub interval_ms: u64,
    /// The clock as last read (the tick reads it at least every 100 ms): an unsampled
    /// exchange does not read it again for its metrics.
    pub clock: u64,
    pub missing: Missing,
}

/// One exchange's part in the metrics: under which diagnostic, its facts, the traces it
/// wrote, the token usage its response reported.
pub(super) struct Measured<'a, 'f> {
    pub diagnostic: &'a Diagnostic,
    pub d_index: usize,
    pub facts: &'a Facts<'f>,
    pub traces: &'a [&'a TraceRule],
    pub usage: Option<Usage>,
    /// When the exchange ended.
    pub now: u64,
}

/// Adds what one exchange contributes to every logger's aggregates (standard metrics if
/// the diagnostic has them on, custom ones if `metrics` is on).
pub(super) fn measure(sinks: &mut [Sink], metrics: &mut Metrics, m: &Measured<'_, '_>) -> Vec<Notice> {
    let (d, facts, now) = (m.diagnostic, m.facts, m.now);
    let mut notices = Vec::new();
    {
        let mut record = |metric: usize, values: &[&[u8]], value: f64| {
            for &i in &d.loggers {
                if let Some(sink) = sinks.get_mut(i) {
                    record_into(
                        sink,
                        &metrics.catalog,
                        metrics.interval_ms,
                        now,
                        (metric, values, value),
                        &mut notices,
                    );
                }
            }
        };
        if d.standard_metrics {
            extract::standard(facts, m.traces, &mut record);
        }
        if let Some(ids) = metrics.per_diagnostic.get(m.d_index) {
            extract::custom(
                d,
                ids,
                facts,
                &metrics.gateway,
                m.usage,
                &mut metrics.missing,
                &mut record,
            );
        }
    }
    notices
}

impl Pipeline {
    /// The clock as the tick last read it.
    pub fn clock(&self) -> u64 {
        self.metrics.clock
    }

    /// Whether this exchange's response body is read for token usage.
    pub fn reads_token_usage(&self, begun: &super::Begun) -> bool {
        self.diagnostic_of(begun.api).active_token_metrics().is_some()
    }

    /// Exchanges the custom metrics had no value for.
    pub fn metrics_missing(&self) -> Missing {
        self.metrics.missing
    }

    /// Writes the aggregates of intervals that ended by `now` (`all`: the open ones too, the
    /// configuration is going) into their loggers' batches.
    pub fn flush_metrics(&mut self, now: u64, all: bool) -> Vec<Notice> {
        self.metrics.clock = now;
        let mut notices = Vec::new();
        for sink in &mut self.sinks {
            let windows = if all {
                sink.aggregator.all()
            } else {
                sink.aggregator.due(now)
            };
            for w in windows {
                let (catalog, interval_ms) = (&self.metrics.catalog, self.metrics.interval_ms);
                write_window(sink, catalog, interval_ms, w, now, &mut notices);
            }
        }
        notices
    }
}

/// Records one value into `sink`'s aggregator (writing closed intervals only when the
/// tick fell far behind), and says once per interval that a metric went over its cap.
fn record_into(
    sink: &mut Sink,
    catalog: &Catalog,
    interval_ms: u64,
    now: u64,
    (metric, values, value): (usize, &[&[u8]], f64),
    notices: &mut Vec<Notice>,
) {
    let recorded = sink.aggregator.record(now, metric, values, value);
    for w in recorded.backlog {
        write_window(sink, catalog, interval_ms, w, now, notices);
    }
    if recorded.first_overflow {
        let name = catalog.get(metric).map_or("?", |d| d.name.as_str());
        notices.push(Notice::Warn(format!(
            "logger {}: metric {} has more series this interval than metrics.max_series (or the \
             aggregates' memory allows); further values fold into its DIMENSION-CAPPED series, \
             counted in metric_values_overflowed",
            sink.id,
            crate::config::excerpt(name)
        )));
    }
}

/// One MetricData item per series of `w` into `sink`'s batch.
fn write_window(sink: &mut Sink, catalog: &Catalog, interval_ms: u64, w: Window, now: u64, notices: &mut Vec<Notice>) {
    for (series, stats) in &w.series {
        let Some(def) = catalog.get(series.metric()) else {
            continue;
        };
        let sender = &sink.sender;
        let added = sink.outbox.add(now, |out| {
            item::write(out, sender, def, series, stats, w.start, interval_ms)
        });
        sink.metric_series_sent += 1;
        if added != crate::delivery::Added::Queued {
            notices.extend(sink.dropped(added, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use std::collections::BTreeMap;

    /// Every item waiting in the pipeline's batches, after the metrics are flushed.
    fn flushed(p: &mut crate::pipeline::Pipeline) -> Vec<Value> {
        assert!(p.flush_metrics(1_700_000_100_000_000_000, true).is_empty());
        let mut items = Vec::new();
        while let Some(Work::Ingest { batch, .. }) = p.next_work(1_700_000_100_000_000_000, true) {
            for line in batch.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                items.push(serde_json::from_slice(line).unwrap());
            }
        }
        items
    }

    fn metrics_named<'i>(items: &'i [Value], metric_id: &str) -> Vec<&'i Value> {
        items
            .iter()
            .filter(|i| i["data"]["baseData"]["properties"]["_MS.MetricId"] == metric_id)
            .collect()
    }

    #[test]
    fn standard_metrics_count_every_exchange_whatever_was_sampled() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "sampling_percentage": 10}}));
        let statuses = [200, 200, 201, 404, 503, 200, 429, 200, 500, 302];
        let mut sent_requests = 0;
        for i in 0..200 {
            let fe = frontend(&format!("/orders/{i}"), &[]);
            let (_, _, items) = run(&mut p, &fe, "r", &outcome(statuses[i % 10]));
            sent_requests += kinds(&items).iter().filter(|k| **k == "RequestData").count();
            for item in items.iter().filter(|i| i["data"]["baseType"] != "MetricData") {
                let props = &item["data"]["baseData"]["properties"];
                assert!(
                    props["_MS.ProcessedByMetricExtractors"]
                        .as_str()
                        .is_some_and(|v| v.starts_with("(Name:'")),
                    "{item}"
                );
            }
        }
        assert!(sent_requests < 200, "sampling dropped some requests");
        let items = flushed(&mut p);
        let mut by_code = BTreeMap::new();
        for m in metrics_named(&items, "requests/duration") {
            let props = &m["data"]["baseData"]["properties"];
            let point = &m["data"]["baseData"]["metrics"][0];
            assert_eq!(point["name"], "Server response time");
            assert_eq!(props["_MS.IsAutocollected"], "True");
            assert_eq!(props["_MS.AggregationIntervalMs"], "60000");
            assert_eq!(
                (&props["cloud/roleName"], &props["cloud/roleInstance"]),
                (&json!("gw"), &json!("gw-1"))
            );
            assert_eq!(
                point["value"],
                point["count"].as_f64().unwrap() * 5.0,
                "5 ms each: value is the sum"
            );
            let code = props["request/resultCode"].as_str().unwrap().to_string();
            let success = props["Request.Success"].as_str().unwrap().to_string();
            *by_code.entry((code, success)).or_insert(0) += point["count"].as_u64().unwrap();
        }
        let expected: BTreeMap<(String, String), u64> = [
            (("200", "True"), 80),
            (("201", "True"), 20),
            (("302", "True"), 20),
            (("404", "False"), 20),
            (("429", "False"), 20),
            (("500", "False"), 20),
            (("503", "False"), 20),
        ]
        .into_iter()
        .map(|((c, s), n)| ((c.to_string(), s.to_string()), n))
        .collect();
        assert_eq!(by_code, expected);
        let dependencies: u64 = metrics_named(&items, "dependencies/duration")
            .iter()
            .map(|m| m["data"]["baseData"]["metrics"][0]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(dependencies, 200, "every exchange here called the backend");
        let exceptions: u64 = metrics_named(&items, "exceptions/count")
            .iter()
            .map(|m| m["data"]["baseData"]["metrics"][0]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(
            exceptions, 80,
            "every failed exchange (404, 429, 500, 503), kept or not"
        );
    }

    #[test]
    fn without_standard_metrics_nothing_is_counted_and_items_are_not_marked() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "standard_metrics": false}}));
        let (_, _, items) = run(&mut p, &frontend("/x", &[]), "", &outcome(200));
        assert!(items[0]["data"]["baseData"]["properties"]
            .get("_MS.ProcessedByMetricExtractors")
            .is_none());
        assert!(
            flushed(&mut p).is_empty(),
            "a worker with nothing to report sends nothing"
        );
    }

    #[test]
    fn custom_metrics_emit_only_where_metrics_is_on() {
        let rule = json!([{"name": "Orders", "namespace": "shop", "value": "request.header.x-amount",
                           "dimensions": [{"name": "API ID"}, {"name": "Tenant", "value": "{request.header.x-tenant}"},
                                          {"name": "Status", "value": "{response.status}"}]}]);
        for on in [false, true] {
            let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"], "standard_metrics": false,
                                                        "metrics": on, "emit_metrics": rule}}));
            for (amount, tenant) in [("3", "t1"), ("5", "t1"), ("-2", "t1"), ("7", "t2"), ("x", "t2")] {
                let fe = frontend("/x", &[("x-amount", amount), ("x-tenant", tenant)]);
                run(&mut p, &fe, "orders-route", &outcome(200));
            }
            let items = flushed(&mut p);
            if !on {
                assert!(items.is_empty());
                continue;
            }
            assert_eq!(items.len(), 2, "one series per tenant");
            let t1 = &items[0]["data"]["baseData"];
            assert_eq!(t1["metrics"][0]["name"], "Orders");
            assert_eq!(t1["metrics"][0]["ns"], "shop");
            let p1 = &t1["metrics"][0];
            assert_eq!(
                (&p1["value"], &p1["count"], &p1["min"], &p1["max"]),
                (&json!(6), &json!(3), &json!(-2), &json!(5))
            );
            assert_eq!(t1["properties"]["Tenant"], "t1");
            assert_eq!(t1["properties"]["API ID"], "orders-route");
            assert_eq!(t1["properties"]["Status"], "200");
            assert!(t1["properties"].get("_MS.MetricId").is_none());
            assert_eq!(p.metrics_missing().values, 1, "x is not a number");
        }
    }

    #[test]
    fn apim_default_dimensions_take_the_gateways_values() {
        let rule = json!([{"name": "Calls", "dimensions": [{"name": "API ID"}, {"name": "Operation ID"},
                                                          {"name": "Location"}, {"name": "Gateway ID"}]}]);
        let mut p = pipeline(
            json!({"diagnostic": {"loggers": ["a"], "standard_metrics": false, "metrics": true,
                                                    "emit_metrics": rule},
                                    "apis": [{"name": "orders", "match": {"path_prefixes": ["/orders"]},
                                              "operations": [{"name": "get-order", "method": "GET", "path": "/orders/{id}"}]}]}),
        );
        run(&mut p, &frontend("/orders/7", &[]), "orders-route", &outcome(200));
        run(&mut p, &frontend("/other", &[]), "other-route", &outcome(200));
        let items = flushed(&mut p);
        let dims: Vec<Vec<&str>> = items
            .iter()
            .map(|i| {
                let props = &i["data"]["baseData"]["properties"];
                ["API ID", "Operation ID", "Location", "Gateway ID"]
                    .iter()
                    .map(|d| props[*d].as_str().unwrap())
                    .collect()
            })
            .collect();
        assert!(
            dims.contains(&vec!["orders", "get-order", "westeurope", "gw-1"]),
            "{dims:?}"
        );
        assert!(
            dims.contains(&vec!["other-route", "other-route", "westeurope", "gw-1"]),
            "{dims:?}"
        );
    }

    #[test]
    fn the_operation_name_is_the_same_whether_an_exchange_was_sampled_or_not() {
        let rule = json!([{"name": "Calls", "dimensions": [{"name": "Op", "value": "{operation}"}]}]);
        for sampling in [0, 100] {
            let mut p = pipeline(
                json!({"diagnostic": {"loggers": ["a"], "standard_metrics": false, "metrics": true,
                                                        "sampling_percentage": sampling, "emit_metrics": rule}}),
            );
            run(&mut p, &frontend("/orders/7", &[]), "", &outcome(200));
            let items = flushed(&mut p);
            let metric = items.iter().find(|i| i["data"]["baseType"] == "MetricData").unwrap();
            assert_eq!(
                metric["data"]["baseData"]["properties"]["Op"], "GET /orders/{id}",
                "at {sampling}%"
            );
        }
    }

    #[test]
    fn an_interval_is_written_when_it_ends_and_only_then() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"]}, "metrics": {"interval_ms": 1000}}));
        let oc = outcome(200);
        run(&mut p, &frontend("/x", &[]), "", &oc);
        let end = oc.start_unix_nanos + oc.duration_nanos;
        assert!(p.flush_metrics(end + 1_000_000, false).is_empty());
        let open = p.sinks[0].aggregator.series_count();
        assert_eq!(open, 2, "request and dependency series still open");
        p.flush_metrics(end + 2_000_000_000, false);
        assert_eq!(
            p.sinks[0].aggregator.series_count(),
            0,
            "written once the interval ended"
        );
    }
}
