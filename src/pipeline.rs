//! The per-worker telemetry pipeline: everything the filter does between "an exchange
//! ended" and "this batch goes to that cluster", without talking to Envoy.
//!
//! One [`Pipeline`] exists per root context (one per plugin configuration per worker VM).
//! HTTP contexts ask it for operation ids and hand it finished exchanges; the root context's
//! tick asks it for due batches and reports the callouts' outcomes back.

use crate::config::{Config, Logger};
use crate::delivery::track::{self, Verdict};
use crate::delivery::{Added, Batch, LogLimiter, Outbox, Stats};
use crate::exchange::{Frontend, Outcome};
use crate::ids::IdGenerator;
use crate::telemetry::{request, Identity, Operation};

/// How often the same warning may be logged per logger.
const WARN_INTERVAL_NANOS: u64 = 10_000_000_000;

/// `ai.cloud.role` and `ai.cloud.roleInstance` after defaults were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    pub role: String,
    pub instance: String,
}

/// One logger's state on this worker.
#[derive(Debug)]
pub struct Sink {
    pub id: String,
    pub cluster: String,
    /// Pseudo-headers and headers of every track request, prepared once.
    pub authority: String,
    pub path: String,
    identity: Identity,
    pub outbox: Outbox,
    drop_warning: LogLimiter,
    failure_warning: LogLimiter,
}

impl Sink {
    fn new(logger: &Logger, roles: &Roles, config: &Config) -> Sink {
        let endpoint = &logger.connection.ingestion_endpoint;
        Sink {
            id: logger.id.clone(),
            cluster: logger.cluster.clone(),
            authority: endpoint.authority(),
            path: endpoint.track_path(),
            identity: Identity::new(&logger.connection.instrumentation_key, &roles.role, &roles.instance),
            outbox: Outbox::new(config.delivery),
            drop_warning: LogLimiter::default(),
            failure_warning: LogLimiter::default(),
        }
    }

    /// Headers of a track request carrying `body_len` bytes.
    pub fn request_headers(&self) -> [(&str, &str); 4] {
        [
            (":method", "POST"),
            (":path", &self.path),
            (":authority", &self.authority),
            ("content-type", "application/x-json-stream"),
        ]
    }
}

/// The ingestion service's answer to one callout, as the proxy-wasm layer read it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// HTTP status; `None` when there was no HTTP answer (reset, timeout, …).
    pub status: Option<u16>,
    pub retry_after: Option<&'a str>,
    pub body: &'a [u8],
}

/// A log line the caller should emit (the pipeline has no logger of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Warn(String),
    Debug(String),
}

pub struct Pipeline {
    config: Config,
    sinks: Vec<Sink>,
    ids: IdGenerator,
}

impl Pipeline {
    pub fn new(config: Config, roles: &Roles, seed: [u8; 32]) -> Pipeline {
        let sinks = config.loggers.iter().map(|l| Sink::new(l, roles, &config)).collect();
        Pipeline { config, sinks, ids: IdGenerator::from_seed(seed) }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// Ids for a new exchange. (Incoming trace context comes with correlation support.)
    pub fn start_operation(&mut self) -> Operation {
        Operation {
            trace_id: self.ids.trace_id(),
            parent: None,
            span_id: self.ids.span_id(),
            sample_rate: 100.0,
        }
    }

    /// Builds the Request item of a finished exchange into every selected logger's batch.
    pub fn record_request(&mut self, op: &Operation, fe: &Frontend, oc: &Outcome) -> Vec<Notice> {
        let now = oc.start_unix_nanos.saturating_add(oc.duration_nanos);
        let opts = request::Options { log_client_ip: self.config.diagnostic.log_client_ip };
        let mut notices = Vec::new();
        for &i in &self.config.diagnostic.loggers {
            let Some(sink) = self.sinks.get_mut(i) else { continue };
            let identity = &sink.identity;
            let added = sink.outbox.add(now, |out| request::write(out, identity, op, fe, oc, opts));
            if added != Added::Queued {
                if let Some(n) = sink.drop_warning.allow(now, WARN_INTERVAL_NANOS) {
                    notices.push(Notice::Warn(drop_message(sink, added, n)));
                }
            }
        }
        notices
    }

    /// The next batch due for sending, and the index of its sink.
    pub fn next_due(&mut self, now: u64, flush_all: bool) -> Option<(usize, Batch)> {
        self.sinks
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| s.outbox.next_due(now, flush_all).map(|b| (i, b)))
    }

    pub fn sink(&self, index: usize) -> Option<&Sink> {
        self.sinks.get(index)
    }

    /// The callout for `batch` started and will answer with `token`.
    pub fn sent(&mut self, sink: usize, token: u32, batch: Batch) {
        if let Some(s) = self.sinks.get_mut(sink) {
            s.outbox.sent(token, batch);
        }
    }

    /// Envoy refused to start the callout (e.g. the cluster does not exist).
    pub fn send_failed(&mut self, sink: usize, batch: Batch, why: &str, now: u64) -> Option<Notice> {
        let s = self.sinks.get_mut(sink)?;
        let items = batch.items;
        s.outbox.send_failed(batch);
        let suppressed = s.failure_warning.allow(now, WARN_INTERVAL_NANOS)?;
        Some(Notice::Warn(format!(
            "logger {}: could not send {items} items to cluster {}: {why}{}",
            s.id,
            s.cluster,
            suppressed_note(suppressed)
        )))
    }

    /// Applies the ingestion service's answer to the batch sent with `token`.
    /// `status` is `None` when the callout got no HTTP answer.
    pub fn completed(&mut self, token: u32, answer: Answer<'_>, now: u64) -> Vec<Notice> {
        let Some(s) = self.sinks.iter_mut().find(|s| s.outbox.owns(token)) else {
            return vec![Notice::Debug(format!("answer for unknown callout {token} ignored"))];
        };
        let items = s.outbox.items_of(token).unwrap_or(0);
        let verdict = &track::classify(answer.status, answer.retry_after, answer.body, items);
        if s.outbox.completed(token, verdict).is_none() {
            return Vec::new();
        }
        let problem = match verdict {
            Verdict::Accepted { errors, .. } if errors.is_empty() => return Vec::new(),
            Verdict::Accepted { accepted, errors } => {
                let first = errors.first().map(|e| format!(" (first: item {} status {}: {})", e.index, e.status_code, e.message));
                format!("{accepted} of {items} items accepted{}", first.unwrap_or_default())
            }
            Verdict::Rejected { status } => format!("{items} items rejected with status {status}"),
            Verdict::Transient { status, .. } => format!("{items} items lost: ingestion answered status {status}"),
            Verdict::NoResponse => format!("{items} items lost: no answer from cluster {} (timeout, reset or no healthy upstream)", s.cluster),
        };
        match s.failure_warning.allow(now, WARN_INTERVAL_NANOS) {
            Some(suppressed) => vec![Notice::Warn(format!("logger {}: {problem}{}", s.id, suppressed_note(suppressed)))],
            None => Vec::new(),
        }
    }

    /// Counters of every sink, in logger order.
    pub fn stats(&self) -> Vec<(String, Stats)> {
        self.sinks.iter().map(|s| (s.id.clone(), s.outbox.stats)).collect()
    }
}

fn drop_message(sink: &Sink, added: Added, suppressed: u64) -> String {
    let why = match added {
        Added::DroppedTooLarge => "an item exceeded the service's 64 KB limit".to_string(),
        _ => format!(
            "the telemetry buffer is full ({} bytes waiting or in flight)",
            sink.outbox.buffered_bytes()
        ),
    };
    let s = sink.outbox.stats;
    format!(
        "logger {}: dropping telemetry: {why}; dropped so far: {} (buffer full), {} (too large){}",
        sink.id,
        s.dropped_buffer_full,
        s.dropped_too_large,
        suppressed_note(suppressed)
    )
}

fn suppressed_note(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" [{n} similar messages suppressed]")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::headers::HeaderMap;
    use serde_json::json;

    fn pipeline(extra: serde_json::Value) -> Pipeline {
        let mut v = json!({"loggers": {
            "a": {"connection_string": "InstrumentationKey=key-a;IngestionEndpoint=http://127.0.0.1:9001/", "cluster": "ca"},
            "b": {"instrumentation_key": "key-b", "cluster": "cb"}
        }});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let config = Config::from_value(&v).unwrap();
        Pipeline::new(config, &Roles { role: "gw".into(), instance: "gw-1".into() }, [9; 32])
    }

    fn exchange() -> (Frontend, Outcome) {
        let fe = Frontend::from_headers(HeaderMap::from_serialized(HeaderMap::serialize([
            (&b":method"[..], &b"GET"[..]),
            (&b":path"[..], &b"/x"[..]),
        ])));
        let oc = Outcome { start_unix_nanos: 1_700_000_000_000_000_000, response_code: 200, ..Default::default() };
        (fe, oc)
    }

    #[test]
    fn each_selected_logger_gets_the_item_with_its_own_ikey() {
        let mut p = pipeline(json!({}));
        let (fe, oc) = exchange();
        let op = p.start_operation();
        assert!(p.record_request(&op, &fe, &oc).is_empty());
        let (i, a) = p.next_due(u64::MAX, true).unwrap();
        assert_eq!(p.sink(i).unwrap().cluster, "ca");
        let (j, b) = p.next_due(u64::MAX, true).unwrap();
        assert_eq!(p.sink(j).unwrap().cluster, "cb");
        let a: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
        assert_eq!(a["iKey"], "key-a");
        assert_eq!(b["iKey"], "key-b");
        assert_eq!(a["tags"]["ai.operation.id"], b["tags"]["ai.operation.id"]);
    }

    #[test]
    fn the_diagnostic_selects_loggers() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["b"]}}));
        let (fe, oc) = exchange();
        let op = p.start_operation();
        p.record_request(&op, &fe, &oc);
        let (i, _) = p.next_due(u64::MAX, true).unwrap();
        assert_eq!(p.sink(i).unwrap().id, "b");
        assert!(p.next_due(u64::MAX, true).is_none());
    }

    #[test]
    fn track_requests_go_to_the_endpoint_path_and_authority() {
        let p = pipeline(json!({}));
        let h = p.sink(0).unwrap().request_headers();
        assert_eq!(h[1], (":path", "/v2.1/track"));
        assert_eq!(h[2], (":authority", "127.0.0.1:9001"));
        let h = p.sink(1).unwrap().request_headers();
        assert_eq!(h[2], (":authority", "dc.services.visualstudio.com"));
    }

    #[test]
    fn failures_produce_rate_limited_warnings_that_name_the_logger() {
        let mut p = pipeline(json!({"diagnostic": {"loggers": ["a"]}}));
        let (fe, oc) = exchange();
        for _ in 0..3 {
            let op = p.start_operation();
            p.record_request(&op, &fe, &oc);
        }
        let (i, batch) = p.next_due(u64::MAX, true).unwrap();
        p.sent(i, 11, batch);
        let notes = p.completed(11, Answer { status: Some(400), ..Default::default() }, 0);
        assert_eq!(notes, vec![Notice::Warn("logger a: 3 items rejected with status 400".into())]);
        assert_eq!(p.stats()[0].1.items_rejected, 3);
        let notes = p.completed(99, Answer::default(), 0);
        assert!(matches!(notes[0], Notice::Debug(_)));
    }

    #[test]
    fn operations_get_fresh_ids() {
        let mut p = pipeline(json!({}));
        let a = p.start_operation();
        let b = p.start_operation();
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
    }
}
