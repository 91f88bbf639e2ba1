//! The Envoy stats the filter reports: per logger `appinsights.<logger>.<name>` (items
//! created, sent, accepted, retried, dropped by reason; batches, bytes, callout failures,
//! throttling, tokens; what is buffered), plus `appinsights.operations_sampled_out`, and
//! for the plugin `appinsights.vm_memory_bytes` and `appinsights.host_calls`. The root
//! context defines them once per configuration ([`Publisher::define`]) and publishes what
//! changed on its tick, never per request.

use super::Pipeline;
use crate::host::{Host, MetricKind};
use std::cell::Cell;

/// A stat's name: `appinsights.<stat>` for the plugin, `appinsights.<logger>.<stat>` for a
/// logger.
#[derive(Debug, Clone, Copy)]
pub struct StatName<'a> {
    pub logger: Option<&'a str>,
    pub stat: &'static str,
}

impl std::fmt::Display for StatName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.logger {
            Some(logger) => write!(f, "appinsights.{logger}.{}", self.stat),
            None => write!(f, "appinsights.{}", self.stat),
        }
    }
}

impl Pipeline {
    /// Calls `f` with each stat, its kind and its current value, in an order fixed for a
    /// configuration (the tick reads the values without building names).
    pub fn visit_metrics(&self, mut f: impl FnMut(StatName<'_>, MetricKind, u64)) {
        let missing = self.metrics_missing();
        let plugin = [
            ("operations_sampled_out", self.sampled_out),
            ("metric_values_missing", missing.values),
            ("token_usage_missing", missing.usage),
        ];
        for (stat, value) in plugin {
            f(StatName { logger: None, stat }, MetricKind::Counter, value);
        }
        for s in &self.sinks {
            let st = s.outbox.stats;
            let tokens = s.token.as_ref().map(|t| t.stats).unwrap_or_default();
            let counters = [
                ("items_created", st.items_created),
                ("items_adopted", st.items_adopted),
                ("items_sent", st.items_sent),
                ("items_accepted", st.items_accepted),
                ("items_retried", st.items_retried),
                ("items_dropped_buffer_full", st.dropped_buffer_full),
                ("items_dropped_rejected", st.dropped_rejected),
                ("items_dropped_too_large", st.dropped_too_large),
                ("items_dropped_expired", st.dropped_expired),
                ("items_dropped_shutdown", st.dropped_shutdown),
                ("items_trimmed", st.items_trimmed),
                ("batches_sent", st.batches_sent),
                ("bytes_sent", st.bytes_sent),
                ("callout_failures", st.callout_failures),
                ("throttled", st.throttled),
                ("redirects", st.redirects),
                ("token_refreshes", tokens.refreshes),
                ("token_failures", tokens.failures),
                ("metric_series_sent", s.metric_series_sent),
                ("metric_values_overflowed", s.aggregator.overflowed),
            ];
            let gauges = [
                ("buffered_items", s.outbox.buffered_items()),
                ("buffered_bytes", s.outbox.buffered_bytes() as u64),
                ("metric_series", s.aggregator.series_count() as u64),
            ];
            let logger = Some(s.id.as_str());
            for (stat, value) in counters {
                f(StatName { logger, stat }, MetricKind::Counter, value);
            }
            for (stat, value) in gauges {
                f(StatName { logger, stat }, MetricKind::Gauge, value);
            }
        }
    }

    /// The stats with their names and current values.
    pub fn metrics(&self) -> Vec<(String, MetricKind, u64)> {
        let mut out = Vec::new();
        self.visit_metrics(|name, kind, value| out.push((name.to_string(), kind, value)));
        out
    }
}

/// Envoy's ids of the stats, and the values last reported: the tick reports what changed.
#[derive(Debug, Default)]
pub struct Publisher {
    /// The plugin's root context, which may report the VM's memory.
    context_id: u32,
    /// In the order of [`Pipeline::visit_metrics`] (`None`: Envoy refused to define it).
    metrics: Vec<(Option<u32>, MetricKind, u64)>,
    /// `appinsights.vm_memory_bytes` (gauge) and `appinsights.host_calls` (counter).
    memory: Option<(u32, u64)>,
    calls: Option<(u32, u64)>,
}

thread_local! {
    /// The root context that reports this VM's memory: one per VM, however many plugin
    /// configurations it runs (the old and the new one while a configuration is replaced).
    static MEMORY_REPORTER: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Whether `context_id` reports the VM's memory (claiming it if nobody does).
fn reports_memory(context_id: u32) -> bool {
    MEMORY_REPORTER.with(|r| match r.get() {
        Some(id) => id == context_id,
        None => {
            r.set(Some(context_id));
            true
        }
    })
}

impl Publisher {
    /// Defines the stats of `pipeline` (once per configuration).
    pub fn define(host: &mut impl Host, pipeline: &Pipeline, context_id: u32) -> Publisher {
        let metrics = pipeline
            .metrics()
            .into_iter()
            .map(|(name, kind, _)| (host.define_metric(kind, &name), kind, 0))
            .collect();
        let memory = host
            .define_metric(MetricKind::Gauge, "appinsights.vm_memory_bytes")
            .map(|id| (id, 0));
        let calls = host
            .define_metric(MetricKind::Counter, "appinsights.host_calls")
            .map(|id| (id, 0));
        Publisher {
            context_id,
            metrics,
            memory,
            calls,
        }
    }

    /// Reports what changed since the last tick (a few host calls per tick, none per
    /// request). `host_calls`: the calls made for exchanges so far.
    pub fn publish(&mut self, host: &mut impl Host, pipeline: &Pipeline, host_calls: u64) {
        let mut defined = self.metrics.iter_mut();
        pipeline.visit_metrics(|_, _, value| {
            let Some((id, kind, last)) = defined.next() else { return };
            let delta = value as i64 - *last as i64;
            if let Some(id) = id.filter(|_| delta != 0 && (*kind == MetricKind::Gauge || delta > 0)) {
                host.increment_metric(id, delta);
            }
            *last = value;
        });
        if let Some((id, last)) = self.memory.as_mut().filter(|_| reports_memory(self.context_id)) {
            let now = host.memory_bytes();
            move_stat(host, *id, now as i64 - *last as i64);
            *last = now;
        }
        if let Some((id, last)) = &mut self.calls {
            move_stat(host, *id, host_calls.wrapping_sub(*last) as i64);
            *last = host_calls;
        }
    }
}

impl Publisher {
    /// A drain begins and Envoy may destroy the VM without another tick: the gauges
    /// (buffered telemetry, series, the VM's memory) lose this configuration's share, so a
    /// destroyed VM leaves none behind (what it held is handed over). If the VM lives on,
    /// the next publish puts the share back.
    pub fn withdraw_gauges(&mut self, host: &mut impl Host) {
        for (id, kind, last) in &mut self.metrics {
            if *kind == MetricKind::Gauge {
                if let Some(id) = *id {
                    move_stat(host, id, -(*last as i64));
                }
                *last = 0;
            }
        }
        if let Some((id, last)) = self.memory.as_mut().filter(|_| reports_memory(self.context_id)) {
            move_stat(host, *id, -(*last as i64));
            *last = 0;
        }
    }

    /// The configuration is going: reports the last changes (the root context will not
    /// tick again) and takes this plugin's share out of the VM memory gauge, so replaced
    /// configurations do not add up.
    pub fn retire(&mut self, host: &mut impl Host, pipeline: &Pipeline, host_calls: u64) {
        self.publish(host, pipeline, host_calls);
        if let Some((id, last)) = self.memory.take() {
            move_stat(host, id, -(last as i64));
        }
        self.release_memory();
    }

    fn release_memory(&self) {
        MEMORY_REPORTER.with(|r| {
            if r.get() == Some(self.context_id) {
                r.set(None);
            }
        });
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.release_memory();
    }
}

fn move_stat(host: &mut impl Host, id: u32, delta: i64) {
    if delta != 0 {
        host.increment_metric(id, delta);
    }
}
