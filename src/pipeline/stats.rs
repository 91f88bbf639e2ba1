//! The Envoy stats the pipeline reports: per logger `appinsights.<logger>.<name>` (items
//! created, sent, accepted, retried, dropped by reason; batches, bytes, callout failures,
//! throttling, tokens; what is buffered), plus `appinsights.operations_sampled_out`. The
//! root context defines them once per configuration and publishes what changed on its
//! tick, never per request.

use super::Pipeline;

/// Counter (only grows) or gauge (goes up and down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

impl Pipeline {
    /// The stats with their current values. The list (names, kinds, order) is fixed for a
    /// configuration.
    pub fn metrics(&self) -> Vec<(String, MetricKind, u64)> {
        let sampled_out = (
            "appinsights.operations_sampled_out".to_string(),
            MetricKind::Counter,
            self.sampled_out,
        );
        let mut out = vec![sampled_out];
        for s in &self.sinks {
            let st = s.outbox.stats;
            let tokens = s.token.as_ref().map(|t| t.stats).unwrap_or_default();
            let counters = [
                ("items_created", st.items_queued),
                ("items_sent", st.items_sent),
                ("items_accepted", st.items_accepted),
                ("items_retried", st.items_retried),
                ("items_dropped_buffer_full", st.dropped_buffer_full),
                ("items_dropped_rejected", st.dropped_rejected),
                ("items_dropped_too_large", st.dropped_too_large),
                ("items_dropped_expired", st.dropped_expired),
                ("items_trimmed", st.items_trimmed),
                ("batches_sent", st.batches_sent),
                ("bytes_sent", st.bytes_sent),
                ("callout_failures", st.callout_failures),
                ("throttled", st.throttled),
                ("token_refreshes", tokens.refreshes),
                ("token_failures", tokens.failures),
            ];
            let gauges = [
                ("buffered_items", s.outbox.buffered_items()),
                ("buffered_bytes", s.outbox.buffered_bytes() as u64),
            ];
            let named = |(name, value)| (format!("appinsights.{}.{name}", s.id), value);
            out.extend(
                counters
                    .into_iter()
                    .map(named)
                    .map(|(n, v)| (n, MetricKind::Counter, v)),
            );
            out.extend(gauges.into_iter().map(named).map(|(n, v)| (n, MetricKind::Gauge, v)));
        }
        out
    }
}
