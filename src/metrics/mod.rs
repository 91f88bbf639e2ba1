//! Metrics: the standard metrics pre-aggregated before sampling (so `requests/count`,
//! `requests/failed` and the rest stay exact at any sampling percentage), APIM's custom
//! metrics (`emit-metric`) and token metrics (`llm-emit-token-metric`).
//!
//! Flow: an exchange ends → [`extract`] says what it adds (metric, dimension values,
//! value) → each logger's [`aggregate::Aggregator`] sums it into its series for the
//! interval → when the interval ends (or the configuration drains) every series becomes
//! one MetricData item ([`item`]) in the logger's batch, delivered like every other item.
//! [`catalog`] names the metrics; [`usage`] reads token counts from response bodies as
//! they stream by.

pub mod aggregate;
pub mod catalog;
pub mod extract;
pub mod item;
pub mod usage;
