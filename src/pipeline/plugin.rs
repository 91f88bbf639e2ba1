//! One plugin configuration on one worker: what the root context does, without knowing it
//! runs in Envoy. It validates the configuration and builds the [`Pipeline`], hands each
//! new exchange a [`Stream`], and on its tick (every flush interval, at least every
//! 100 ms) starts the callouts that are due, applies their answers and publishes the
//! stats. When Envoy replaces the configuration or shuts down, it drains: what is buffered
//! goes out within `delivery.drain_timeout_ms` before the VM is released.

use super::stats::Publisher;
use super::stream::Stream;
use super::{Answer, Notice, Pipeline, Roles, Work};
use crate::config::Config;
use crate::host::{Attribute, BufferKind, CalloutId, HeaderMapKind, Host};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Longest tick: how late a batch may be sent after it became due.
const MAX_TICK_MS: u64 = 100;
/// Largest answer read (ingestion answers and tokens are small JSON documents).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// `ai.cloud.role` when neither the configuration nor Envoy's node names one.
const DEFAULT_ROLE: &str = "envoy";
/// Callouts started per pump at most (each round starts one or stops).
const MAX_CALLOUTS_PER_PUMP: usize = 1024;

/// What the root context shares with its streams.
pub struct Shared {
    pub pipeline: RefCell<Pipeline>,
    /// Calls into the host made while handling exchanges (`appinsights.host_calls`).
    pub host_calls: Cell<u64>,
}

/// The root context's work for one plugin configuration.
pub struct Plugin {
    context_id: u32,
    shared: Option<Rc<Shared>>,
    stats: Publisher,
    /// Draining: flush everything, then tell Envoy we are done (by this time at the
    /// latest, unix nanoseconds).
    draining_until: Option<u64>,
}

impl Plugin {
    pub fn new(context_id: u32) -> Plugin {
        Plugin {
            context_id,
            shared: None,
            stats: Publisher::default(),
            draining_until: None,
        }
    }

    /// Reads and validates the plugin configuration; `false` (logged with the field at
    /// fault) makes Envoy refuse it.
    pub fn configure(&mut self, host: &mut impl Host) -> bool {
        match self.try_configure(host) {
            Ok(()) => true,
            Err(e) => {
                log::error!("appinsights[{}]: invalid plugin configuration: {e}", self.context_id);
                false
            }
        }
    }

    fn try_configure(&mut self, host: &mut impl Host) -> Result<(), String> {
        let bytes = host
            .buffer(BufferKind::PluginConfiguration, usize::MAX)
            .unwrap_or_default();
        let config = Config::from_json(&bytes).map_err(|e| e.to_string())?;
        let roles = resolve_roles(host, &config);
        let tick_ms = config.delivery.flush_interval_ms.min(MAX_TICK_MS);
        let loggers: Vec<String> = config
            .loggers
            .iter()
            .map(|l| {
                format!(
                    "{} -> {} via cluster {}",
                    l.id,
                    l.connection.ingestion_endpoint.url(),
                    l.cluster
                )
            })
            .collect();
        let availability = describe_availability(&config);
        let mut pipeline = Pipeline::new(config, &roles, host.random_seed());
        // Metrics of unsampled exchanges use the tick's clock: start it now.
        pipeline.flush_metrics(host.now_nanos(), false);
        pipeline.prepare_handoff(host);
        self.stats = Publisher::define(host, &pipeline, self.context_id);
        self.shared = Some(Rc::new(Shared {
            pipeline: RefCell::new(pipeline),
            host_calls: Cell::new(0),
        }));
        host.set_tick_period(tick_ms)
            .map_err(|s| format!("could not set the tick period: {s}"))?;
        let (id, role, instance) = (self.context_id, roles.role, roles.instance);
        log::info!(
            "appinsights[{id}]: envoy-appinsights {} configured; role {role:?}, instance {instance:?}; loggers: {}{availability}",
            crate::VERSION,
            loggers.join(", ")
        );
        Ok(())
    }

    /// A new exchange.
    pub fn stream(&self) -> Stream {
        Stream::new(self.context_id, self.shared.clone())
    }

    /// Sends what is due (or drains), then publishes the stats.
    pub fn tick(&mut self, host: &mut impl Host) {
        if self.draining_until.is_some() {
            if self.drain_step(host) {
                host.done();
                return;
            }
        } else {
            self.adopt_pauses(host);
            self.adopt_handoffs(host);
            self.flush_metrics(host, false);
            self.run_tests(host);
            self.pump(host, false);
        }
        let Some(shared) = &self.shared else { return };
        if let Ok(p) = shared.pipeline.try_borrow() {
            self.stats.publish(host, &p, shared.host_calls.get());
        }
    }

    /// The answer to `callout` (an availability test's, else a batch's or a token's): read
    /// it, apply it, and send what waited for the slot.
    pub fn answer(&mut self, host: &mut impl Host, callout: CalloutId, num_headers: usize, body_size: usize) {
        let Some(shared) = self.shared.clone() else { return };
        let notices = if shared.pipeline.try_borrow().is_ok_and(|p| p.owns_test_callout(callout)) {
            let (status, body) = super::availability::read_answer(host, num_headers, body_size);
            let now = host.now_nanos();
            let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
                return;
            };
            p.test_answered(callout, status, &body, now)
        } else {
            let Some(notices) = ingestion_answer(&shared, host, callout, num_headers, body_size) else {
                return;
            };
            notices
        };
        self.emit(&notices);
        if self.draining_until.is_some() {
            if let Ok(mut p) = shared.pipeline.try_borrow_mut() {
                p.refresh_handoff(host);
            }
            if self.drain_step(host) {
                host.done();
            }
        } else {
            // A slot is free again (or a token arrived): send what waited for it.
            self.pump(host, false);
        }
    }

    /// Envoy is draining or replacing this configuration: deliver what is buffered,
    /// within the drain timeout and as the service allows, before the VM goes. `false`:
    /// not yet (Envoy waits for [`Host::done`]).
    pub fn done(&mut self, host: &mut impl Host) -> bool {
        let Some(shared) = self.shared.clone() else { return true };
        let timeout_ms = shared
            .pipeline
            .try_borrow()
            .map(|p| p.config().delivery.drain_timeout_ms)
            .unwrap_or(0);
        // The open metric intervals go with the rest of the telemetry.
        self.flush_metrics(host, true);
        // The drain's time counts from its first send, on the next tick (0: no drain).
        let wait_ms = if timeout_ms == 0 { 0 } else { timeout_ms + MAX_TICK_MS };
        let deadline = host.now_nanos().saturating_add(wait_ms * 1_000_000);
        self.draining_until = Some(deadline);
        if let Ok(mut p) = shared.pipeline.try_borrow_mut() {
            // Envoy may destroy this VM at once (a replaced module) instead of waiting for
            // its drain: what it holds waits in shared data for the next VM, and the stats
            // so far are out.
            let notices = p.hand_off(host, deadline.saturating_add(1_000_000_000));
            self.stats.publish(host, &p, shared.host_calls.get());
            self.stats.withdraw_gauges(host);
            drop(p);
            self.emit(&notices);
        }
        // Sending starts on the next tick (in 100 ms at most), if this VM still exists: a
        // request sent now could reach the service and be sent again by the VM that takes
        // over.
        self.drain_step_sending(host, false)
    }

    /// Writes the metric aggregates of ended intervals (`all`: every open one) into the
    /// loggers' batches.
    fn flush_metrics(&self, host: &mut impl Host, all: bool) {
        let Some(shared) = &self.shared else { return };
        let now = host.now_nanos();
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return;
        };
        let notices = p.flush_metrics(now, all);
        drop(p);
        self.emit(&notices);
    }

    /// Runs the availability tests that are due and that this worker wins (none while
    /// draining). Until one is due this costs no call: the clock is the one the metrics
    /// flush just read.
    fn run_tests(&self, host: &mut impl Host) {
        let Some(shared) = &self.shared else { return };
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return;
        };
        if p.config().availability.tests.is_empty() {
            return;
        }
        let now = match p.clock() {
            0 => host.now_nanos(),
            clock => clock,
        };
        let notices = p.run_due_tests(host, now);
        drop(p);
        self.emit(&notices);
    }

    /// In a VM's first minute: takes over what replaced VMs could not deliver.
    fn adopt_handoffs(&self, host: &mut impl Host) {
        let Some(shared) = &self.shared else { return };
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return;
        };
        let now = match p.clock() {
            0 => host.now_nanos(),
            clock => clock,
        };
        let notices = p.adopt_handoffs(host, now);
        drop(p);
        self.emit(&notices);
    }

    /// Pauses the service asked other workers for apply here too.
    fn adopt_pauses(&self, host: &mut impl Host) {
        let Some(shared) = &self.shared else { return };
        let now = host.now_nanos();
        if let Ok(mut p) = shared.pipeline.try_borrow_mut() {
            p.adopt_pauses(host, now);
        }
    }

    /// Starts every callout that is due: token requests, then batches (`draining`: open
    /// batches at once; backoff and `Retry-After` still hold).
    fn pump(&self, host: &mut impl Host, draining: bool) {
        let Some(shared) = &self.shared else { return };
        let now = host.now_nanos();
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return;
        };
        for _ in 0..MAX_CALLOUTS_PER_PUMP {
            let Some(work) = p.next_work(now, draining) else {
                return;
            };
            if let Some(notice) = start_callout(&mut p, host, work, now) {
                notice.emit(self.context_id);
            }
        }
    }

    /// One step of a drain: sends what may go; finished (`true`) once nothing is left, the
    /// deadline passed, or nothing more can be delivered before it (the service asked to
    /// wait longer). What is left then is dropped and counted (`items_dropped_shutdown`),
    /// and the last stats are published: the root context will not tick again.
    fn drain_step(&mut self, host: &mut impl Host) -> bool {
        self.drain_step_sending(host, true)
    }

    /// [`Self::drain_step`]; `send`: whether this step may start callouts.
    fn drain_step_sending(&mut self, host: &mut impl Host, send: bool) -> bool {
        let Some(deadline) = self.draining_until else {
            return false;
        };
        // Exchanges that end while the configuration drains still count.
        self.flush_metrics(host, true);
        if send && host.now_nanos() < deadline {
            self.pump(host, true);
            if let Some(Ok(mut p)) = self.shared.as_ref().map(|s| s.pipeline.try_borrow_mut()) {
                p.refresh_handoff(host); // what went out is no longer to be taken over
            }
        }
        let Some(shared) = self.shared.clone() else { return true };
        let Ok(mut p) = shared.pipeline.try_borrow_mut() else {
            return false;
        };
        let now = host.now_nanos();
        let why = match () {
            _ if p.is_idle() => None,
            _ if now >= deadline => Some(""),
            _ if !p.can_deliver_by(deadline) => {
                Some(" nothing can be sent before it, the service is failing or asked to wait;")
            }
            _ => return false,
        };
        // Tests still out will not be answered in time: their results say so, and are
        // counted with the rest.
        let given_up = p.give_up_tests("gateway draining: no answer before the drain deadline", now);
        // This VM saw its drain through: nothing is left for another to take.
        p.withdraw_handoff(host);
        let dropped = p.abandon();
        if let Some(why) = why {
            let id = self.context_id;
            log::warn!(
                "appinsights[{id}]: shutting down with telemetry not yet delivered (drain timeout):{why} \
                 {dropped} items dropped, counted in items_dropped_shutdown"
            );
        }
        self.stats.retire(host, &p, shared.host_calls.get());
        drop(p);
        self.emit(&given_up);
        self.draining_until = None;
        true
    }

    fn emit(&self, notices: &[Notice]) {
        for n in notices {
            n.emit(self.context_id);
        }
    }
}

/// Reads the answer to an ingestion or token callout and applies it (`None`: the pipeline
/// is busy, which cannot happen in a callback of its own).
fn ingestion_answer(
    shared: &Shared,
    host: &mut impl Host,
    callout: CalloutId,
    num_headers: usize,
    body_size: usize,
) -> Option<Vec<Notice>> {
    let headers = if num_headers > 0 {
        host.header_map(HeaderMapKind::CalloutResponse)
    } else {
        Default::default()
    };
    let status = headers
        .get(b":status")
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok());
    let text = |name: &[u8]| headers.get(name).and_then(|v| std::str::from_utf8(v).ok());
    let (retry_after, location) = (text(b"retry-after"), text(b"location"));
    let body = match body_size {
        0 => Vec::new(),
        n => host
            .buffer(BufferKind::CalloutResponseBody, n.min(MAX_ANSWER_BYTES))
            .unwrap_or_default(),
    };
    let answer = Answer {
        status,
        retry_after,
        location,
        body: &body,
    };
    let mut p = shared.pipeline.try_borrow_mut().ok()?;
    let notices = p.completed(callout, answer, host.now_nanos());
    p.share_pauses(host);
    Some(notices)
}

/// Starts one callout and records whether Envoy took it.
fn start_callout(p: &mut Pipeline, host: &mut impl Host, work: Work, now: u64) -> Option<Notice> {
    match work {
        Work::Token { sink } => {
            let callout = p.token_request(sink).and_then(|req| host.dispatch(&req).ok());
            p.token_started(sink, callout, now)
        }
        Work::Ingest { sink, batch } => {
            let started = p
                .ingest_request(sink, &batch, now)
                .map(|req| (host.dispatch(&req), req.body.len()));
            match started {
                Some((Ok(callout), wire)) => {
                    p.sent(sink, callout, batch, wire);
                    None
                }
                Some((Err(why), _)) => p.send_failed(sink, batch, &why, now),
                // Cannot happen: `next_work` just took the batch from this very logger.
                None => None,
            }
        }
    }
}

/// Role and instance: the configuration's, else Envoy's node cluster and id
/// (`--service-cluster`, `--service-node`), else `$HOSTNAME`, else defaults.
fn resolve_roles(host: &mut impl Host, config: &Config) -> Roles {
    let role = config
        .cloud_role
        .clone()
        .or_else(|| node(host, Attribute::NodeCluster))
        .unwrap_or_else(|| DEFAULT_ROLE.into());
    let instance = config
        .cloud_role_instance
        .clone()
        .or_else(|| node(host, Attribute::NodeId));
    let instance = instance
        .or_else(|| host.environment("HOSTNAME").filter(|h| !h.is_empty()))
        .unwrap_or_else(|| role.clone());
    let region = config
        .service
        .region
        .clone()
        .or_else(|| node(host, Attribute::NodeRegion));
    Roles {
        role,
        instance,
        location: region.clone().unwrap_or_else(|| "Unknown".into()),
        region,
    }
}

/// The health endpoint and the availability tests, for the configuration's log line.
fn describe_availability(config: &Config) -> String {
    let a = &config.availability;
    let mut out = String::new();
    if let Some(path) = &a.health_path {
        out.push_str(&format!("; health endpoint {}", crate::config::excerpt(path)));
    }
    if !a.tests.is_empty() {
        out.push_str(&format!(
            "; availability tests: {}",
            crate::config::test_names(&a.tests)
        ));
    }
    out
}

/// A text attribute of Envoy's node, if it has one.
fn node(host: &mut impl Host, attribute: Attribute) -> Option<String> {
    host.property(attribute)
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{drive, FakeHost};
    use serde_json::json;

    const ANSWER: &[u8] = br#"{"itemsReceived":2,"itemsAccepted":2,"errors":[]}"#;

    fn configured(extra: serde_json::Value) -> (Plugin, FakeHost) {
        let mut config = json!({"loggers": {"a": {"connection_string":
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/", "cluster": "ingest"}}});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let mut host = FakeHost::benchmark_exchange();
        let mut plugin = Plugin::new(7);
        assert!(host.configure(&mut plugin, &config.to_string()));
        (plugin, host)
    }

    /// One exchange, then the flush interval passes and the tick sends its batch.
    fn one_batch(plugin: &mut Plugin, host: &mut FakeHost) {
        drive(&mut plugin.stream(), host, FakeHost::BENCHMARK_BODIES);
        host.now += 2_000_000_000;
        plugin.tick(host);
    }

    fn answer(plugin: &mut Plugin, host: &mut FakeHost, status: &str, body: &[u8]) {
        host.callout_response_headers = vec![(":status".into(), status.into())];
        host.buffers.insert(BufferKind::CalloutResponseBody, body.to_vec());
        let id = host.callouts.last().unwrap().id;
        plugin.answer(host, id, 1, body.len());
    }

    #[test]
    fn the_tick_sends_due_batches_and_the_answer_is_published() {
        let (mut plugin, mut host) = configured(json!({}));
        assert_eq!(host.tick_period_ms, Some(100));
        one_batch(&mut plugin, &mut host);
        let sent = &host.callouts[0];
        assert_eq!(sent.cluster, "ingest");
        assert!(sent.headers.contains(&(":path".into(), "/v2.1/track".into())));
        assert_eq!(&sent.body[..2], [0x1f, 0x8b], "gzip");
        answer(&mut plugin, &mut host, "200", ANSWER);
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(2));
        assert_eq!(host.stat("appinsights.a.buffered_items"), Some(0));
    }

    #[test]
    fn a_stat_envoy_refuses_does_not_shift_the_others() {
        let mut host = FakeHost::benchmark_exchange();
        host.refused_stats.push("appinsights.a.items_created".into());
        let config = json!({"loggers": {"a": {"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/"}}});
        let mut plugin = Plugin::new(7);
        assert!(host.configure(&mut plugin, &config.to_string()));
        one_batch(&mut plugin, &mut host);
        answer(&mut plugin, &mut host, "200", ANSWER);
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.items_created"), None);
        assert_eq!(host.stat("appinsights.a.items_sent"), Some(2));
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(2));
        assert_eq!(host.stat("appinsights.a.items_retried"), Some(0));
        assert_eq!(host.stat("appinsights.a.batches_sent"), Some(1));
    }

    #[test]
    fn a_refused_callout_is_retried_with_backoff() {
        let (mut plugin, mut host) = configured(json!({}));
        host.unknown_clusters.push("ingest".into());
        one_batch(&mut plugin, &mut host);
        assert!(host.callouts.is_empty());
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.callout_failures"), Some(1));
        assert_eq!(host.stat("appinsights.a.items_retried"), Some(2));
        assert_eq!(
            host.stat("appinsights.a.buffered_items"),
            Some(2),
            "kept for the next try"
        );
        host.unknown_clusters.clear();
        host.now += 120_000_000_000; // past any backoff
        plugin.tick(&mut host);
        assert_eq!(host.callouts.len(), 1, "retried once the cluster is known");
    }

    #[test]
    fn an_idle_plugin_is_done_at_once_and_says_so_only_by_returning_true() {
        let (mut plugin, mut host) = configured(json!({}));
        assert!(plugin.done(&mut host));
        assert!(!host.done_called, "Envoy is not told twice");
        let (mut plugin, mut host) = configured(json!({"delivery": {"drain_timeout_ms": 0}}));
        drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
        assert!(plugin.done(&mut host), "no drain wanted");
        assert!(host.callouts.is_empty() && !host.done_called);
    }

    #[test]
    fn draining_waits_for_the_answers_then_says_done() {
        let (mut plugin, mut host) = configured(json!({}));
        drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
        assert!(!plugin.done(&mut host), "a batch waits");
        assert!(
            host.callouts.is_empty(),
            "held a tick: a VM Envoy destroys at once hands it over"
        );
        plugin.tick(&mut host);
        assert_eq!(
            host.callouts.len(),
            1,
            "sent on the next tick, before the flush interval"
        );
        assert!(!host.done_called);
        answer(&mut plugin, &mut host, "200", ANSWER);
        assert!(host.done_called, "done once delivered");
    }

    #[test]
    fn a_drain_respects_retry_after_and_counts_what_it_cannot_deliver() {
        let (mut plugin, mut host) = configured(json!({}));
        one_batch(&mut plugin, &mut host);
        host.callout_response_headers = vec![(":status".into(), "429".into()), ("retry-after".into(), "60".into())];
        let id = host.callouts[0].id;
        plugin.answer(&mut host, id, 2, 0);
        assert!(
            plugin.done(&mut host),
            "nothing can go before the drain timeout: done at once"
        );
        assert_eq!(host.callouts.len(), 1, "no request while the service said to wait");
        assert_eq!(
            host.stat("appinsights.a.items_dropped_shutdown"),
            Some(4),
            "the Request and Dependency, and the two standard metric aggregates the drain flushed"
        );
        crate::pipeline::testing::created_is_accepted_plus_dropped(&host);
    }

    #[test]
    fn exchanges_that_end_while_the_configuration_drains_are_measured_too() {
        let (mut plugin, mut host) = configured(json!({"delivery": {"gzip": false}}));
        drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
        assert!(!plugin.done(&mut host), "the first batch waits a tick");
        plugin.tick(&mut host);
        drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for _ in 0..10 {
            if host.done_called {
                break;
            }
            for sent in std::mem::take(&mut host.callouts) {
                let n = sent.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
                let answer = format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#);
                host.callout_response_headers = vec![(":status".into(), "200".into())];
                host.buffers
                    .insert(BufferKind::CalloutResponseBody, answer.clone().into_bytes());
                bodies.push(sent.body.clone());
                plugin.answer(&mut host, sent.id, 1, answer.len());
            }
            host.now += 50_000_000;
            plugin.tick(&mut host);
        }
        assert!(host.done_called);
        let requests: u64 = bodies
            .iter()
            .flat_map(|b| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()))
            .map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap())
            .filter(|i| i["data"]["baseData"]["metrics"][0]["name"] == "Server response time")
            .map(|i| i["data"]["baseData"]["metrics"][0]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(requests, 2, "both exchanges, the second after the drain began");
        crate::pipeline::testing::created_is_accepted_plus_dropped(&host);
    }

    #[test]
    fn the_last_stats_are_published_when_a_drain_ends() {
        let (mut plugin, mut host) = configured(json!({}));
        drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
        assert!(!plugin.done(&mut host));
        plugin.tick(&mut host);
        let all_four = br#"{"itemsReceived":4,"itemsAccepted":4,"errors":[]}"#;
        answer(&mut plugin, &mut host, "200", all_four);
        assert!(host.done_called);
        assert_eq!(
            host.stat("appinsights.a.items_accepted"),
            Some(4),
            "the Request, the Dependency and their metric aggregates (flushed by the drain), without another tick"
        );
        crate::pipeline::testing::created_is_accepted_plus_dropped(&host);
    }

    #[test]
    fn vm_memory_is_reported_once_per_vm_and_leaves_with_its_configuration() {
        let (mut old, mut host) = configured(json!({}));
        host.memory_bytes = 3 << 20;
        old.tick(&mut host);
        assert_eq!(host.stat("appinsights.vm_memory_bytes"), Some(3 << 20));
        let mut new = Plugin::new(8);
        let config = json!({"loggers": {"a": {"instrumentation_key": "00000000-0000-0000-0000-000000000000"}}});
        assert!(host.configure(&mut new, &config.to_string()));
        new.tick(&mut host);
        assert_eq!(
            host.stat("appinsights.vm_memory_bytes"),
            Some(3 << 20),
            "the same VM, not twice"
        );
        assert!(old.done(&mut host));
        new.tick(&mut host);
        assert_eq!(
            host.stat("appinsights.vm_memory_bytes"),
            Some(3 << 20),
            "the new one took over"
        );
        assert!(new.done(&mut host));
        assert_eq!(host.stat("appinsights.vm_memory_bytes"), Some(0), "nothing left behind");
    }

    #[test]
    fn a_retry_after_one_worker_gets_holds_for_every_worker() {
        // Two workers (two plugins on one host: Envoy's shared data is the host's).
        let (mut first, mut host) = configured(json!({}));
        let (mut second, _) = configured(json!({}));
        one_batch(&mut first, &mut host);
        host.callout_response_headers = vec![(":status".into(), "429".into()), ("retry-after".into(), "60".into())];
        let id = host.callouts[0].id;
        first.answer(&mut host, id, 2, 0);
        one_batch(&mut second, &mut host);
        assert_eq!(host.callouts.len(), 1, "the second worker waits too, without asking");
        host.now += 61_000_000_000;
        second.tick(&mut host);
        assert_eq!(host.callouts.len(), 2, "and sends once the pause is over");
    }

    fn redirect(plugin: &mut Plugin, host: &mut FakeHost, location: &str) {
        host.callout_response_headers = vec![(":status".into(), "308".into()), ("location".into(), location.into())];
        let id = host.callouts.last().unwrap().id;
        plugin.answer(host, id, 2, 0);
    }

    fn path_of(sent: &crate::host::fake::SentCallout) -> &str {
        &sent.headers.iter().find(|(k, _)| k == ":path").unwrap().1
    }

    #[test]
    fn a_redirect_is_followed_at_once_and_kept_for_the_next_batches() {
        let (mut plugin, mut host) = configured(json!({}));
        one_batch(&mut plugin, &mut host);
        redirect(&mut plugin, &mut host, "/v2/track");
        assert_eq!(host.callouts.len(), 2, "sent again at once");
        assert_eq!(path_of(&host.callouts[1]), "/v2/track");
        answer(&mut plugin, &mut host, "200", ANSWER);
        one_batch(&mut plugin, &mut host);
        assert_eq!(path_of(&host.callouts[2]), "/v2/track", "the new place is kept");
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(2));
    }

    #[test]
    fn a_redirect_to_another_host_goes_through_the_redirect_cluster() {
        let cs = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/";
        let config =
            json!({"loggers": {"a": {"connection_string": cs, "cluster": "ingest", "redirect_cluster": "any_host"}}});
        let mut host = FakeHost::benchmark_exchange();
        let mut plugin = Plugin::new(7);
        assert!(host.configure(&mut plugin, &config.to_string()));
        one_batch(&mut plugin, &mut host);
        redirect(
            &mut plugin,
            &mut host,
            "https://westeurope-5.in.applicationinsights.azure.com/v2.1/track",
        );
        let again = &host.callouts[1];
        assert_eq!(again.cluster, "any_host");
        let authority = again.headers.iter().find(|(k, _)| k == ":authority").unwrap();
        assert_eq!(authority.1, "westeurope-5.in.applicationinsights.azure.com");
    }

    #[test]
    fn draining_gives_up_at_the_deadline() {
        let (mut plugin, mut host) = configured(json!({"delivery": {"drain_timeout_ms": 100}}));
        drive(&mut plugin.stream(), &mut host, FakeHost::BENCHMARK_BODIES);
        assert!(!plugin.done(&mut host));
        plugin.tick(&mut host);
        assert!(!host.done_called);
        host.now += 200_000_000;
        plugin.tick(&mut host);
        assert!(host.done_called);
    }

    #[test]
    fn roles_come_from_the_configuration_else_the_node_else_hostname() {
        let mut host = FakeHost::new();
        let config = Config::from_value(
            &json!({"loggers": {"a": {"instrumentation_key": "00000000-0000-0000-0000-000000000001"}}}),
        )
        .unwrap();
        let roles = resolve_roles(&mut host, &config);
        assert_eq!((roles.role.as_str(), roles.instance.as_str()), ("envoy", "envoy"));
        host.environment.insert("HOSTNAME".into(), "pod-1".into());
        assert_eq!(resolve_roles(&mut host, &config).instance, "pod-1");
        host.properties.insert(Attribute::NodeCluster, b"gateway".to_vec());
        host.properties
            .insert(Attribute::NodeId, b"router~10.0.0.1~gw-1.ns~ns.svc".to_vec());
        let roles = resolve_roles(&mut host, &config);
        assert_eq!(
            (roles.role.as_str(), roles.instance.as_str()),
            ("gateway", "router~10.0.0.1~gw-1.ns~ns.svc")
        );
        let config = Config::from_value(
            &json!({"loggers": {"a": {"instrumentation_key": "00000000-0000-0000-0000-000000000001"}},
            "cloud_role": "edge", "cloud_role_instance": "edge-1"}),
        )
        .unwrap();
        let roles = resolve_roles(&mut host, &config);
        assert_eq!((roles.role.as_str(), roles.instance.as_str()), ("edge", "edge-1"));
    }
}
