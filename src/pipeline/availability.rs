//! Built-in availability tests (`availability.tests`): each test is an HTTP request to an
//! Envoy cluster, run once per interval by the gateway — not once per worker — whose
//! result becomes an AvailabilityData item ([`crate::telemetry::availability`]) in the
//! chosen loggers' batches, delivered like any other item.
//!
//! # Once per gateway: compare-and-swap on Envoy's shared data
//!
//! Envoy runs one VM per worker thread (and one on the main thread), each with its own
//! root context and tick, and nothing else in common but Envoy's shared data. Each test
//! has a key there, `appinsights.availability.<test name>`, holding when the test is next
//! due (unix nanoseconds, on the interval's boundaries, so restarts of a VM and
//! configuration replacements keep the cadence) and the interval it was set with. On its
//! tick, a worker that believes the test due reads the key with its version (`cas`); if
//! the test is due, it writes the next due time with that version. Envoy writes it only if
//! nobody wrote in between, so exactly one worker's write succeeds per interval, and that
//! worker runs the test. The others learn the next due time from the key and stay quiet
//! (no call at all) until then. A key that does not exist yet cannot be compared and
//! swapped (Envoy writes an absent key whatever the version says), so creating it never
//! runs the test: the first run is at the next boundary, by compare-and-swap. A double
//! run stays possible only if a worker stalled between reading an absent key and
//! creating it, across a whole interval boundary, while another ran the test.
//!
//! The alternatives were a singleton: Envoy's `singleton` bootstrap extension runs a
//! wasm service in one VM on the main thread, or a dedicated filter instance. Both need a
//! second piece of Envoy configuration outside the HTTP filter (and Istio's `WasmPlugin`
//! cannot declare a bootstrap extension), and the main thread's VM would have to deliver
//! the results itself. Coordinating through shared data keeps everything in the one
//! filter configuration and costs a few host calls per test and interval.
//!
//! # Lifecycle of a run
//!
//! The probe is a callout (`dispatch_http_call`) with the test's timeout and a sampled
//! `traceparent` whose trace id is the result's id; its answer comes back to the root
//! context and is told apart from ingestion answers by its callout id. A request Envoy
//! will not start (unknown cluster) is a failed result at once. While the configuration
//! drains no test starts; a run in flight holds the drain until it answers, and one still
//! out at the drain's deadline is written as failed (`gateway draining`) and counted with
//! whatever else the drain could not deliver.

use super::test_verdict::{self, Ending, Verdict};
use super::{Notice, Pipeline, Roles};
use crate::config::{Availability, AvailabilityTest};
use crate::correlation::format_traceparent;
use crate::delivery::Added;
use crate::host::{BufferKind, Callout, CalloutId, HeaderMapKind, Host};
use crate::telemetry::availability::{self, TestResult};
use std::borrow::Cow;

/// Where a test's next due time is shared, before its name.
pub const KEY_PREFIX: &str = "appinsights.availability.";
/// Bytes of a 503 or 504 body read to tell Envoy's own answers apart.
const MAX_BODY_READ: usize = 256;
/// `user-agent` of the probes.
const USER_AGENT: &str = concat!("envoy-appinsights-availability/", env!("CARGO_PKG_VERSION"));
const NANOS_PER_MS: u64 = 1_000_000;

/// The tests on this worker.
#[derive(Debug, Default)]
pub struct Tests {
    runs: Vec<Run>,
    /// `runLocation` of the results.
    location: String,
}

/// One test on this worker.
#[derive(Debug, Default)]
struct Run {
    key: String,
    /// Before this (unix nanoseconds), no worker needs to run the test, as last read from
    /// the shared key; 0: not read yet.
    known_due: u64,
    in_flight: Option<InFlight>,
}

/// A run waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    callout: CalloutId,
    started: u64,
    id: [u8; 32],
}

impl Tests {
    pub fn new(config: &Availability, roles: &Roles) -> Tests {
        Tests {
            runs: config
                .tests
                .iter()
                .map(|t| Run {
                    key: format!("{KEY_PREFIX}{}", t.name),
                    ..Run::default()
                })
                .collect(),
            location: config.location.clone().unwrap_or_else(|| roles.instance.clone()),
        }
    }

    /// Whether a run waits for its answer.
    pub fn in_flight(&self) -> bool {
        self.runs.iter().any(|r| r.in_flight.is_some())
    }

    /// Whether `callout` is a test's request.
    pub fn owns(&self, callout: CalloutId) -> bool {
        self.runs
            .iter()
            .any(|r| r.in_flight.is_some_and(|f| f.callout == callout))
    }
}

/// What the shared key said about a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// This worker runs it now; it is next due then.
    Won { next: u64 },
    /// Not due before then.
    NotDue { due: u64 },
    /// Another worker wrote the key in between: read it again on the next tick.
    Lost,
}

impl Pipeline {
    /// Whether `callout` is an availability test's request (else an ingestion or token
    /// callout).
    pub fn owns_test_callout(&self, callout: CalloutId) -> bool {
        self.tests.owns(callout)
    }

    /// On the tick: runs the tests that are due and that this worker wins. A test believed
    /// not yet due costs no call.
    pub fn run_due_tests(&mut self, host: &mut impl Host, now: u64) -> Vec<Notice> {
        let mut notices = Vec::new();
        for i in 0..self.tests.runs.len() {
            let (Some(run), Some(test)) = (self.tests.runs.get_mut(i), self.config.availability.tests.get(i)) else {
                continue;
            };
            // Quiet until the known due time, unless the clock went back more than an
            // interval since it was read (then the key is read again).
            let interval = test.interval_ms.saturating_mul(NANOS_PER_MS);
            if now < run.known_due && run.known_due <= now.saturating_add(interval) {
                continue;
            }
            match claim(host, &run.key, test.interval_ms, now) {
                Claim::Won { next } => {
                    run.known_due = next;
                    notices.extend(self.start_test(host, i, now));
                }
                Claim::NotDue { due } => run.known_due = due,
                Claim::Lost => {}
            }
        }
        notices
    }

    /// Starts run `i` of its test (a failed result at once if Envoy will not start it).
    fn start_test(&mut self, host: &mut impl Host, i: usize, now: u64) -> Vec<Notice> {
        // A run still out when the next is due: Envoy never reported back in time.
        let mut notices = self.give_up_run(i, now, None);
        let (trace, span) = (self.ids.trace_id(), self.ids.span_id());
        let id = trace.to_hex();
        let Some(test) = self.config.availability.tests.get(i) else {
            return notices;
        };
        let traceparent = format_traceparent(&trace, &span, true);
        let callout = Callout {
            cluster: &test.cluster,
            headers: vec![
                (":method", test.method.clone()),
                (":path", test.path.clone()),
                (":authority", test.authority.clone()),
                ("user-agent", USER_AGENT.to_string()),
                ("traceparent", String::from_utf8_lossy(&traceparent).into_owned()),
            ],
            body: Cow::Borrowed(&[]),
            timeout_ms: test.timeout_ms,
        };
        match host.dispatch(&callout) {
            Ok(callout) => {
                if let Some(run) = self.tests.runs.get_mut(i) {
                    run.in_flight = Some(InFlight {
                        callout,
                        started: now,
                        id,
                    });
                }
            }
            Err(why) => notices.extend(self.record(i, &id, (now, now), Ending::NotStarted(&why), None)),
        }
        notices
    }

    /// Applies the answer to a test's request (`status` `None`: no response headers;
    /// `body`: the start of a 503 or 504 answer).
    pub fn test_answered(&mut self, callout: CalloutId, status: Option<u16>, body: &[u8], now: u64) -> Vec<Notice> {
        let Some(i) = self
            .tests
            .runs
            .iter()
            .position(|r| r.in_flight.is_some_and(|f| f.callout == callout))
        else {
            return vec![Notice::Debug(format!(
                "answer for unknown test callout {callout} ignored"
            ))];
        };
        let Some(run) = self.tests.runs.get_mut(i).and_then(|r| r.in_flight.take()) else {
            return Vec::new();
        };
        let ending = Ending::Answered { status, body };
        self.record(i, &run.id, (run.started, now), ending, status)
    }

    /// The configuration is going and its drain is over: every run still out is written
    /// as failed, `why` saying so.
    pub fn give_up_tests(&mut self, why: &str, now: u64) -> Vec<Notice> {
        (0..self.tests.runs.len())
            .flat_map(|i| self.give_up_run(i, now, Some(why)))
            .collect()
    }

    /// Writes run `i`, if still out, as failed (`why`, else "no answer within its timeout").
    fn give_up_run(&mut self, i: usize, now: u64, why: Option<&str>) -> Vec<Notice> {
        let Some(run) = self.tests.runs.get_mut(i).and_then(|r| r.in_flight.take()) else {
            return Vec::new();
        };
        let ending = match why {
            Some(why) => Ending::GivenUp(why),
            // Judged as no answer at all, the timeout having passed.
            None => Ending::Answered {
                status: None,
                body: &[],
            },
        };
        self.record(i, &run.id, (run.started, now.max(run.started)), ending, None)
    }

    /// Writes the result of run `i` into each of the availability loggers' batches.
    fn record(
        &mut self,
        i: usize,
        id: &[u8; 32],
        (start, end): (u64, u64),
        ending: Ending<'_>,
        status: Option<u16>,
    ) -> Vec<Notice> {
        let Some(test) = self.config.availability.tests.get(i) else {
            return Vec::new();
        };
        let elapsed = end.saturating_sub(start);
        let verdict = test_verdict::judge(ending, test.expected_status, elapsed / NANOS_PER_MS, test.timeout_ms);
        let duration = match verdict.timed_out {
            true => elapsed.max(test.timeout_ms.saturating_mul(NANOS_PER_MS)),
            false => elapsed,
        };
        let facts = Facts::of(test, status, &self.config.diagnostic.masking);
        let properties = facts.properties();
        let result = TestResult {
            id,
            name: &test.name,
            start_unix_nanos: start,
            duration_nanos: duration,
            success: verdict.success,
            run_location: &self.tests.location,
            message: &verdict.message,
            properties: &properties,
        };
        let mut notices = vec![result_notice(test, &verdict)];
        for &l in &self.config.availability.loggers {
            let Some(sink) = self.sinks.get_mut(l) else { continue };
            let sender = &sink.sender;
            let added = sink.outbox.add(end, |out| availability::write(out, sender, &result));
            if added != Added::Queued {
                notices.extend(sink.dropped(added, end));
            }
        }
        notices
    }
}

/// The result's properties, as text.
struct Facts<'t> {
    test: &'t AvailabilityTest,
    target: String,
    expected: String,
    status: Option<String>,
}

impl<'t> Facts<'t> {
    /// `masking`: what hides secret query parameters of the probed path (`?code=…`).
    fn of(test: &'t AvailabilityTest, status: Option<u16>, masking: &crate::masking::Masking) -> Facts<'t> {
        let path = masking.path_and_query(test.path.as_bytes());
        Facts {
            test,
            target: format!("{}{}", test.authority, String::from_utf8_lossy(&path)),
            expected: test.expected_status.to_string(),
            status: status.map(|s| s.to_string()),
        }
    }

    fn properties(&self) -> Vec<(&str, &str)> {
        let mut p = vec![
            ("Envoy Cluster", self.test.cluster.as_str()),
            ("Method", self.test.method.as_str()),
            ("Target", self.target.as_str()),
            ("Expected Status", self.expected.as_str()),
        ];
        if let Some(s) = &self.status {
            p.push(("Status", s.as_str()));
        }
        p
    }
}

/// A debug line per result (failures show in Application Insights, not as warnings here).
fn result_notice(test: &AvailabilityTest, verdict: &Verdict) -> Notice {
    let name = crate::config::excerpt(&test.name);
    let outcome = if verdict.success { "passed" } else { "failed" };
    Notice::Debug(format!("availability test {name} {outcome}: {}", verdict.message))
}

/// Reads whether this worker runs the test at `key` now (see the module's doc).
fn claim(host: &mut impl Host, key: &str, interval_ms: u64, now: u64) -> Claim {
    let interval = interval_ms.saturating_mul(NANOS_PER_MS).max(1);
    let next = (now / interval).saturating_add(1).saturating_mul(interval);
    let Some((value, cas)) = host.shared_data_cas(key) else {
        // Nobody ran it yet. Creating a key cannot be compared and swapped: creating never
        // runs the test, the first run is at the next boundary.
        host.set_shared_data_if(key, &encode(next, interval_ms), 0);
        return Claim::NotDue { due: next };
    };
    let due = match decode(&value) {
        // More than an interval beyond our own next boundary (a worker whose clock is a
        // tick behind sees the next boundary as one interval off): set with a longer
        // interval (an earlier configuration), or before the clock was stepped back.
        // Waiting for it could stop the test for as long: it is due now.
        Some((due, _)) if due > next.saturating_add(interval) => 0,
        Some((due, _)) => due,
        None => 0,
    };
    if due > now {
        return Claim::NotDue { due };
    }
    if host.set_shared_data_if(key, &encode(next, interval_ms), cas) {
        Claim::Won { next }
    } else {
        Claim::Lost
    }
}

/// The shared value: next due time (unix nanoseconds), then the interval (ms), both u64
/// little-endian.
fn encode(due: u64, interval_ms: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    let (a, b) = out.split_at_mut(8);
    a.copy_from_slice(&due.to_le_bytes());
    b.copy_from_slice(&interval_ms.to_le_bytes());
    out
}

fn decode(value: &[u8]) -> Option<(u64, u64)> {
    let due: [u8; 8] = value.get(..8)?.try_into().ok()?;
    let interval: [u8; 8] = value.get(8..16)?.try_into().ok()?;
    Some((u64::from_le_bytes(due), u64::from_le_bytes(interval)))
}

/// Reads a test's answer from Envoy: the status from the response headers (if any), and
/// the start of the body only for a 503 or 504 (Envoy's own answers say why there).
pub fn read_answer(host: &mut impl Host, num_headers: usize, body_size: usize) -> (Option<u16>, Vec<u8>) {
    if num_headers == 0 {
        return (None, Vec::new());
    }
    let headers = host.header_map(HeaderMapKind::CalloutResponse);
    let status: Option<u16> = headers
        .get(b":status")
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok());
    let body = match status {
        Some(503 | 504) if body_size > 0 => host
            .buffer(BufferKind::CalloutResponseBody, body_size.min(MAX_BODY_READ))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::{encode, KEY_PREFIX};
    use crate::host::fake::{Call, FakeHost, SentCallout, FAKE_NOW};
    use crate::host::shared_store::SharedStore;
    use crate::host::BufferKind;
    use crate::host::Host;
    use crate::pipeline::plugin::Plugin;
    use serde_json::{json, Value};

    const MS: u64 = 1_000_000;
    const CS: &str = "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/";

    /// One worker of a gateway whose shared data is `store`, with `availability`.
    fn worker(store: &SharedStore, availability: Value) -> (Plugin, FakeHost) {
        let config = json!({"loggers": {"a": {"connection_string": CS, "cluster": "ingest"}},
                            "delivery": {"gzip": false}, "availability": availability});
        let mut host = FakeHost::new();
        host.shared = store.clone();
        host.now = FAKE_NOW + 250 * MS;
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        (plugin, host)
    }

    fn one_test(interval_ms: u64) -> Value {
        json!({"tests": [{"name": "orders", "cluster": "orders", "path": "/health", "interval_ms": interval_ms,
                          "timeout_ms": 500}]})
    }

    fn probes(host: &FakeHost) -> Vec<&SentCallout> {
        host.callouts.iter().filter(|c| c.cluster != "ingest").collect()
    }

    /// Answers the last probe `host` sent with `status` (`None`: no headers) after `ms`.
    fn answer_probe(plugin: &mut Plugin, host: &mut FakeHost, status: Option<&str>, body: &[u8], ms: u64) {
        let id = probes(host).last().unwrap().id;
        host.now += ms * MS;
        host.callout_response_headers = status.map(|s| vec![(":status".into(), s.into())]).unwrap_or_default();
        host.buffers.insert(BufferKind::CalloutResponseBody, body.to_vec());
        plugin.answer(host, id, host.callout_response_headers.len(), body.len());
    }

    /// The items every ingestion callout so far carried.
    fn items(host: &FakeHost) -> Vec<Value> {
        host.callouts
            .iter()
            .filter(|c| c.cluster == "ingest")
            .flat_map(|c| c.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()))
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    /// Ticks every 100 ms until `until`; the batches the ticks send are answered 200.
    fn run_until(plugin: &mut Plugin, host: &mut FakeHost, until: u64) {
        while host.now < until {
            host.now += 100 * MS;
            let before = host.callouts.len();
            plugin.tick(host);
            let sent: Vec<SentCallout> = host
                .callouts
                .iter()
                .skip(before)
                .filter(|c| c.cluster == "ingest")
                .cloned()
                .collect();
            for batch in sent {
                let n = batch.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
                let answer = format!(r#"{{"itemsReceived":{n},"itemsAccepted":{n},"errors":[]}}"#);
                host.callout_response_headers = vec![(":status".into(), "200".into())];
                host.buffers
                    .insert(BufferKind::CalloutResponseBody, answer.clone().into_bytes());
                plugin.answer(host, batch.id, 1, answer.len());
            }
        }
    }

    #[test]
    fn four_workers_run_a_test_once_per_interval_between_them() {
        let store = SharedStore::default();
        let mut workers: Vec<(Plugin, FakeHost)> = (0..4).map(|_| worker(&store, one_test(1000))).collect();
        // Ticks at slightly different moments on each worker, for 10 intervals.
        for (n, (_, host)) in workers.iter_mut().enumerate() {
            host.now += n as u64 * 23 * MS;
        }
        let mut runs: Vec<u64> = Vec::new();
        for _ in 0..100 {
            for (plugin, host) in &mut workers {
                host.now += 100 * MS;
                let before = probes(host).len();
                plugin.tick(host);
                if probes(host).len() > before {
                    runs.push(host.now);
                    answer_probe(plugin, host, Some("200"), b"", 3);
                }
            }
        }
        let intervals: Vec<u64> = runs.iter().map(|t| t / (1000 * MS)).collect();
        let first = FAKE_NOW / (1000 * MS) + 1;
        assert_eq!(
            intervals,
            (first..first + 10).collect::<Vec<_>>(),
            "one run per interval, none before the first boundary after the key was created"
        );
        let by_worker: Vec<usize> = workers.iter().map(|(_, h)| probes(h).len()).collect();
        assert_eq!(by_worker.iter().sum::<usize>(), 10, "{by_worker:?}");
    }

    #[test]
    fn of_workers_that_all_read_the_due_test_only_the_first_to_write_runs_it() {
        let store = SharedStore::default();
        let mut workers: Vec<(Plugin, FakeHost)> = (0..4).map(|_| worker(&store, one_test(1000))).collect();
        for (plugin, host) in &mut workers {
            plugin.tick(host); // the key is created, due at the next boundary
        }
        for round in 1..=3 {
            // At the boundary every worker reads before any writes, as threads would.
            store.hold_reads();
            for (plugin, host) in &mut workers {
                host.now = FAKE_NOW + round * 1000 * MS + 10 * MS;
                plugin.tick(host);
            }
            store.release_reads();
            let runs: usize = workers.iter().map(|(_, h)| probes(h).len()).sum();
            assert_eq!(runs as u64, round, "one run per interval, whoever wins");
            for (plugin, host) in &mut workers {
                host.now += 100 * MS;
                plugin.tick(host);
            }
            let runs: usize = workers.iter().map(|(_, h)| probes(h).len()).sum();
            assert_eq!(runs as u64, round, "the losers read the next due time and wait");
        }
    }

    #[test]
    fn a_worker_that_knows_the_next_due_time_makes_no_call_until_then() {
        let store = SharedStore::default();
        let (mut a, mut host_a) = worker(&store, one_test(60_000));
        a.tick(&mut host_a);
        let key = format!("{KEY_PREFIX}orders");
        assert!(host_a.calls.contains(&Call::SharedData(key.clone())));
        let (mut b, mut host_b) = worker(&store, one_test(60_000));
        b.tick(&mut host_b);
        let (mut plain, mut host_plain) = worker(&SharedStore::default(), json!({}));
        plain.tick(&mut host_plain);
        for _ in 0..10 {
            host_b.now += 100 * MS;
            host_plain.now += 100 * MS;
            host_b.take_calls();
            b.tick(&mut host_b);
            host_plain.take_calls();
            plain.tick(&mut host_plain);
            assert_eq!(
                host_b.calls, host_plain.calls,
                "a tick with tests not due costs nothing more"
            );
            assert!(!host_b.calls.contains(&Call::SharedData(key.clone())));
        }
    }

    #[test]
    fn a_due_time_left_far_ahead_by_a_clock_stepped_back_does_not_stop_the_test() {
        let store = SharedStore::default();
        let (mut plugin, mut host) = worker(&store, one_test(1000));
        let key = format!("{KEY_PREFIX}orders");
        let a_day_ahead = FAKE_NOW + 86_400_000 * MS;
        let (_, cas) = host.shared_data_cas(&key).unwrap_or_default();
        assert!(host.set_shared_data_if(&key, &encode(a_day_ahead, 1000), cas));
        run_until(&mut plugin, &mut host, FAKE_NOW + 2100 * MS);
        assert!(!probes(&host).is_empty(), "runs at the next boundary all the same");
    }

    #[test]
    fn a_worker_whose_clock_went_back_reads_the_key_again() {
        let store = SharedStore::default();
        let (mut plugin, mut host) = worker(&store, one_test(1000));
        run_until(&mut plugin, &mut host, FAKE_NOW + 2100 * MS);
        let ran = probes(&host).len();
        assert!(ran >= 1);
        // Stepped back an hour: the worker's own idea of the next due time is far off.
        host.now -= 3_600_000 * MS;
        let back = host.now;
        run_until(&mut plugin, &mut host, back + 2100 * MS);
        assert!(probes(&host).len() > ran, "runs within two intervals of the new clock");
    }

    #[test]
    fn the_probed_target_has_its_secret_query_parameters_masked() {
        let store = SharedStore::default();
        let test = json!({"tests": [{"name": "fn", "cluster": "func", "path": "/api/health?code=SUPERSECRET&x=1",
                                     "interval_ms": 1000, "timeout_ms": 500}]});
        let (mut plugin, mut host) = worker(&store, test);
        run_until(&mut plugin, &mut host, FAKE_NOW + 2100 * MS);
        answer_probe(&mut plugin, &mut host, Some("200"), b"", 1);
        host.now += 2_000 * MS;
        plugin.tick(&mut host);
        let sent: Vec<String> = host
            .callouts
            .iter()
            .filter(|c| c.cluster == "ingest")
            .map(|c| String::from_utf8_lossy(&c.body).into_owned())
            .collect();
        let all = sent.join("\n");
        assert!(all.contains("AvailabilityData"), "{all}");
        assert!(!all.contains("SUPERSECRET"), "{all}");
        assert!(all.contains("/api/health?code=***&x=1"), "{all}");
    }

    #[test]
    fn a_configuration_without_tests_ticks_as_before() {
        let ticks = |availability: Value| {
            let (mut plugin, mut host) = worker(&SharedStore::default(), availability);
            host.take_calls();
            plugin.tick(&mut host);
            host.take_calls()
        };
        assert_eq!(ticks(json!({"health_path": "/healthz"})), ticks(json!({})));
        assert!(ticks(one_test(1000)).contains(&Call::SharedData(format!("{KEY_PREFIX}orders"))));
    }

    #[test]
    fn a_replaced_configuration_keeps_the_cadence() {
        let store = SharedStore::default();
        let (mut old, mut host) = worker(&store, one_test(1000));
        run_until(&mut old, &mut host, FAKE_NOW + 1050 * MS);
        assert_eq!(probes(&host).len(), 1);
        answer_probe(&mut old, &mut host, Some("200"), b"", 1);
        // The new configuration's worker, same gateway, half-way through the interval.
        let (mut new, mut host2) = worker(&store, one_test(1000));
        host2.now = FAKE_NOW + 1500 * MS;
        new.tick(&mut host2);
        assert!(probes(&host2).is_empty(), "not due again before the next boundary");
        run_until(&mut new, &mut host2, FAKE_NOW + 2150 * MS);
        assert_eq!(probes(&host2).len(), 1, "due at the boundary");
    }

    fn result_of(status: Option<&str>, body: &[u8], ms: u64) -> Value {
        let (mut plugin, mut host) = worker(&SharedStore::default(), one_test(1000));
        run_until(&mut plugin, &mut host, FAKE_NOW + 1050 * MS);
        let probe = probes(&host)[0].clone();
        answer_probe(&mut plugin, &mut host, status, body, ms);
        run_until(&mut plugin, &mut host, FAKE_NOW + 2500 * MS);
        let items = items(&host);
        let results: Vec<&Value> = items
            .iter()
            .filter(|i| i["data"]["baseType"] == "AvailabilityData")
            .collect();
        assert_eq!(results.len(), 1, "{items:?}");
        let item = results[0].clone();
        let tp = &probe.headers.iter().find(|(k, _)| k == "traceparent").unwrap().1;
        let id = item["data"]["baseData"]["id"].as_str().unwrap();
        assert_eq!(&tp[3..35], id, "the probe carried the result's id as its trace id");
        assert!(tp.starts_with("00-") && tp.ends_with("-01"), "sampled: {tp}");
        item
    }

    #[test]
    fn an_answer_becomes_a_result_with_its_duration_and_reason() {
        let ok = result_of(Some("200"), b"", 12);
        let d = &ok["data"]["baseData"];
        assert_eq!(ok["name"], "Microsoft.ApplicationInsights.Availability");
        assert_eq!(ok["tags"]["ai.operation.id"], d["id"]);
        assert_eq!(ok["tags"]["ai.operation.name"], "orders");
        assert_eq!(
            ok["tags"]["ai.cloud.roleInstance"], d["runLocation"],
            "the role instance by default"
        );
        assert_eq!(
            (d["name"].as_str(), d["success"].as_bool()),
            (Some("orders"), Some(true))
        );
        assert!(d["duration"].as_str().unwrap().starts_with("00:00:00.012"), "{d}");
        assert_eq!(d["properties"]["Envoy Cluster"], "orders");
        assert_eq!(d["properties"]["Target"], "orders/health");
        assert_eq!(d["properties"]["Status"], "200");
        assert_eq!(d["properties"]["Expected Status"], "200");
        let failed = result_of(Some("503"), br#"{"status":503}"#, 4);
        assert_eq!(failed["data"]["baseData"]["success"], false);
        assert_eq!(failed["data"]["baseData"]["message"], "expected status 200, got 503");
        let timeout = result_of(Some("504"), b"upstream request timeout", 500);
        assert_eq!(timeout["data"]["baseData"]["message"], "no answer within 500 ms");
        let reset = result_of(None, b"", 2);
        assert_eq!(
            reset["data"]["baseData"]["message"],
            "no answer (connection failed or reset)"
        );
    }

    #[test]
    fn a_request_envoy_will_not_start_is_a_failed_result_at_once() {
        let store = SharedStore::default();
        let (mut plugin, mut host) = worker(&store, one_test(1000));
        host.unknown_clusters.push("orders".into());
        run_until(&mut plugin, &mut host, FAKE_NOW + 2500 * MS);
        let items = items(&host);
        assert_eq!(items.len(), 2, "one per interval: {items:?}");
        let d = &items[0]["data"]["baseData"];
        assert_eq!(d["success"], false);
        assert_eq!(d["message"], "could not start the request: unknown cluster orders");
        assert_eq!(d["duration"], "00:00:00.0000000");
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(2));
    }

    #[test]
    fn test_answers_and_ingestion_answers_are_never_confused() {
        let (mut plugin, mut host) = worker(&SharedStore::default(), one_test(1000));
        run_until(&mut plugin, &mut host, FAKE_NOW + 1050 * MS);
        let probe = probes(&host)[0].id;
        answer_probe(&mut plugin, &mut host, Some("200"), b"", 1);
        host.now += 2000 * MS;
        plugin.tick(&mut host);
        let batch = host.callouts.iter().find(|c| c.cluster == "ingest").unwrap().id;
        assert_ne!(batch, probe);
        // A late duplicate of the probe's answer is not taken for the batch's.
        host.callout_response_headers = vec![(":status".into(), "200".into())];
        plugin.answer(&mut host, probe, 1, 0);
        plugin.tick(&mut host);
        assert_eq!(
            host.stat("appinsights.a.items_accepted"),
            Some(0),
            "the batch is still out"
        );
        // The batch's answer is not a test's.
        let body = br#"{"itemsReceived":1,"itemsAccepted":1,"errors":[]}"#;
        host.buffers.insert(BufferKind::CalloutResponseBody, body.to_vec());
        plugin.answer(&mut host, batch, 1, body.len());
        plugin.tick(&mut host);
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(1));
        assert_eq!(items(&host).len(), 1, "one result, written once");
    }

    #[test]
    fn a_drain_starts_no_test_and_waits_for_the_one_in_flight() {
        let (mut plugin, mut host) = worker(&SharedStore::default(), one_test(1000));
        run_until(&mut plugin, &mut host, FAKE_NOW + 1050 * MS);
        assert_eq!(probes(&host).len(), 1);
        assert!(!plugin.done(&mut host), "a test waits for its answer");
        answer_probe(&mut plugin, &mut host, Some("200"), b"", 20);
        // Its result went out at once, as everything does while draining.
        let batch = host.callouts.last().unwrap().clone();
        assert_eq!(batch.cluster, "ingest");

        let body = br#"{"itemsReceived":1,"itemsAccepted":1,"errors":[]}"#;
        host.buffers.insert(BufferKind::CalloutResponseBody, body.to_vec());
        plugin.answer(&mut host, batch.id, 1, body.len());
        assert!(host.done_called);
        assert_eq!(host.stat("appinsights.a.items_accepted"), Some(1));
        // Draining, with a run still out: the boundaries that pass start nothing.
        let (mut plugin, mut host) = worker(&SharedStore::default(), one_test(1000));
        run_until(&mut plugin, &mut host, FAKE_NOW + 1050 * MS);
        assert!(!plugin.done(&mut host));
        run_until(&mut plugin, &mut host, FAKE_NOW + 4050 * MS);
        assert!(!host.done_called);
        assert_eq!(probes(&host).len(), 1, "no test starts once draining");
    }

    #[test]
    fn a_test_still_out_at_the_drain_deadline_is_written_failed_and_counted() {
        let (mut plugin, mut host) = worker(&SharedStore::default(), one_test(1000));
        run_until(&mut plugin, &mut host, FAKE_NOW + 1050 * MS);
        assert!(!plugin.done(&mut host));
        host.now += 6000 * MS; // past the 5 s drain timeout
        plugin.tick(&mut host);
        assert!(host.done_called);
        assert_eq!(host.stat("appinsights.a.items_created"), Some(1));
        assert_eq!(host.stat("appinsights.a.items_dropped_shutdown"), Some(1));
        crate::pipeline::testing::created_is_accepted_plus_dropped(&host);
    }
}
