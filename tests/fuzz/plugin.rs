//! Ingestion answers through the root context ([`Plugin::answer`]), as Envoy delivers them:
//! no HTTP answer, statuses that are not numbers, bodies shorter than Envoy claims, token
//! answers for a logger with managed identity, answers to callouts never started; then a
//! drain. The Envoy stats must add up after every tick, and nothing may be left after
//! the drain.

use crate::answers::{retry_after, status, token_body, track_body};
use crate::configuration::LOCAL_CS;
use crate::envoy::{drive_exchange, loggers_of, Envoy, Exchange, DROP_REASONS, ITEMS_CREATED_BALANCE};
use crate::exchanges::{bytes_of, exchanges_report};
use crate::outbox::outbox_report;
use crate::runner::{fuzz, show, Findings, Report, Rng};
use envoy_appinsights::host::fake::{FakeHost, FAKE_NOW};
use envoy_appinsights::host::{Attribute, BufferKind, CalloutId};
use envoy_appinsights::pipeline::plugin::Plugin;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// One step in the life of a plugin on one worker.
#[derive(Debug, Clone)]
enum PluginStep {
    /// Exchanges answered with this status (failures add Exception items).
    Exchanges { count: usize, status: u16 },
    /// The clock moves on (nanoseconds) and the root context ticks.
    Tick(u64),
    /// The answer to the `pick`-th callout not yet answered: its headers (`None`: no HTTP
    /// answer at all), its body, and the body size Envoy claims.
    Answer {
        pick: usize,
        headers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
        body: Vec<u8>,
        claimed: usize,
    },
    /// An answer to a callout this plugin never started.
    Unknown(CalloutId),
}

/// A configuration and the life of its plugin on one worker.
struct PluginCase {
    config: Value,
    steps: Vec<PluginStep>,
}

/// Small or large batches, a 64 KB or 8 MB budget, now and then a logger with managed
/// identity and captured bodies (large items), and 5 to 25 steps.
fn plugin_case(rng: &mut Rng) -> PluginCase {
    let batch = *rng.pick(&[1024, 16_384, 524_288]);
    let initial = *rng.pick(&[10, 1000]);
    let mut config = json!({
        "loggers": {"main": {"connection_string": LOCAL_CS}},
        "delivery": {"max_batch_items": rng.pick(&[1, 3, 1000]), "max_batch_bytes": batch,
                     "max_buffer_bytes": if batch > 65_536 { 8_388_608 } else { *rng.pick(&[65_536, 8_388_608]) },
                     "max_in_flight": rng.pick(&[1, 2, 4]), "retry_initial_ms": initial,
                     "retry_max_ms": initial * rng.pick(&[1, 60]), "gzip": rng.chance(50),
                     "drain_timeout_ms": rng.pick(&[0, 100, 5000]), "flush_interval_ms": rng.pick(&[10, 1000])}});
    if rng.chance(30) {
        config["loggers"]["audit"] = json!({"instrumentation_key": "00000000-0000-0000-0000-00000000000a",
                                            "identity": "SystemAssigned"});
    }
    if rng.chance(40) {
        // Big items: 8 KB of each body, the request's headers.
        config["diagnostic"] = json!({"frontend": {"request": {"body_bytes": 8192, "headers": ["content-type"]},
                                                   "response": {"body_bytes": 8192}}});
    }
    let steps = (0..rng.upto(20) + 5)
        .map(|_| match rng.below(10) {
            0..=2 => PluginStep::Exchanges {
                count: rng.upto(6) + 1,
                status: *rng.pick(&[200, 200, 404, 500, 503]),
            },
            3 | 4 => PluginStep::Tick(*rng.pick(&[10_000_000, 1_000_000_000, 61_000_000_000, 3_601_000_000_000])),
            5..=8 => {
                let headers = status(rng).map(|s| {
                    let mut h = vec![(b":status".to_vec(), s.to_string().into_bytes())];
                    if rng.chance(5) {
                        h[0].1 = bytes_of(rng, &[b"abc", b"", b"\xff200", b"2000000"]);
                    }
                    if let Some(ra) = retry_after(rng) {
                        h.push((b"retry-after".to_vec(), ra.into_bytes()));
                    }
                    h
                });
                let body = if rng.chance(70) {
                    track_body(rng)
                } else {
                    token_body(rng)
                };
                let claimed = match rng.below(10) {
                    0 => 0,
                    1 => body.len() + 100,
                    2 => usize::MAX,
                    _ => body.len(),
                };
                PluginStep::Answer {
                    pick: rng.below(8),
                    headers,
                    body,
                    claimed,
                }
            }
            _ => PluginStep::Unknown(rng.next() as u32),
        })
        .collect();
    PluginCase { config, steps }
}

fn show_plugin(c: &PluginCase) -> String {
    let steps: Vec<String> = c
        .steps
        .iter()
        .map(|s| match s {
            PluginStep::Answer {
                pick,
                headers,
                body,
                claimed,
            } => {
                let headers = headers.as_ref().map(|h| {
                    h.iter()
                        .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                format!(
                    "Answer {{ pick: {pick}, headers: {headers:?}, body: {}, claimed: {claimed} }}",
                    show(body)
                )
            }
            other => format!("{other:?}"),
        })
        .collect();
    format!("configuration {}, steps:\n    {}", c.config, steps.join("\n    "))
}

/// The Envoy stats of every logger add up: created = accepted + dropped + buffered, and
/// the buffer holds at most max_buffer_bytes.
fn check_stats(f: &mut Findings, envoy: &Envoy, config: &Value, when: &str) {
    let budget = config["delivery"]["max_buffer_bytes"].as_i64().unwrap_or(i64::MAX);
    for logger in loggers_of(config) {
        let stat = |name: &str| envoy.fake.stat(&format!("appinsights.{logger}.{name}")).unwrap_or(0);
        let dropped: i64 = DROP_REASONS.iter().map(|r| stat(&format!("items_dropped_{r}"))).sum();
        f.check(
            ITEMS_CREATED_BALANCE,
            stat("items_created") == stat("items_accepted") + dropped + stat("buffered_items"),
            || format!("{when}, {logger}: {:?}", envoy.fake.stats),
        );
        f.check(
            "buffered_bytes stay within max_buffer_bytes",
            stat("buffered_bytes") <= budget,
            || format!("{when}, {logger}: {} bytes", stat("buffered_bytes")),
        );
    }
}

/// Runs the steps on the benchmark's exchange, checking the stats after each tick, then
/// drains with the service accepting everything.
fn check_plugin(c: &PluginCase, f: &mut Findings) {
    let mut envoy = Envoy::new();
    let bench = FakeHost::benchmark_exchange();
    let bytes = |list: &[(String, String)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    };
    envoy.maps[0] = bytes(&bench.request_headers);
    envoy.fake.properties = bench.properties.clone();
    envoy
        .fake
        .buffers
        .insert(BufferKind::PluginConfiguration, serde_json::to_vec(&c.config).unwrap());
    let mut plugin = Plugin::new(1);
    if !plugin.configure(&mut envoy) {
        return f.check("the generated configuration is accepted", false, String::new);
    }
    let mut pending = Vec::new();
    for (i, step) in c.steps.iter().enumerate() {
        match step {
            PluginStep::Exchanges { count, status } => {
                let mut response = bench.response_headers.clone();
                response[0].1 = status.to_string();
                envoy.maps[1] = bytes(&response);
                envoy
                    .fake
                    .properties
                    .insert(Attribute::ResponseCode, u64::from(*status).to_le_bytes().to_vec());
                for _ in 0..*count {
                    let exchange = Exchange {
                        request: envoy.maps[0].clone(),
                        response: envoy.maps[1].clone(),
                        properties: envoy.fake.properties.clone().into_iter().collect(),
                        request_body: vec![vec![b'q'; 8192]],
                        response_body: vec![vec![b'r'; 8192]],
                        takes: 1_000_000,
                        ..Exchange::default()
                    };
                    drive_exchange(&plugin, &mut envoy, &exchange);
                }
            }
            PluginStep::Tick(nanos) => {
                envoy.fake.now += nanos;
                plugin.tick(&mut envoy);
                check_stats(f, &envoy, &c.config, &format!("after step {i}"));
            }
            PluginStep::Answer {
                pick,
                headers,
                body,
                claimed,
            } => {
                pending.append(&mut envoy.fake.callouts);
                if pending.is_empty() {
                    continue;
                }
                let sent = pending.remove(pick % pending.len());
                envoy.answer_with(headers.clone().unwrap_or_default(), body.clone());
                let claimed = if body.is_empty() { 0 } else { *claimed };
                plugin.answer(&mut envoy, sent.id, headers.as_ref().map_or(0, Vec::len), claimed);
            }
            PluginStep::Unknown(id) => {
                envoy.answer_with(vec![(b":status".to_vec(), b"200".to_vec())], Vec::new());
                plugin.answer(&mut envoy, *id, 1, 0);
            }
        }
    }
    // The configuration goes: the drain delivers what it can, the service accepting all.
    let done = plugin.done(&mut envoy);
    for _ in 0..200 {
        if done || envoy.fake.done_called {
            break;
        }
        pending.append(&mut envoy.fake.callouts);
        for sent in std::mem::take(&mut pending) {
            let body = if sent.cluster == "imds" {
                let expires = FAKE_NOW / 1_000_000_000 + 86_399_000;
                format!(r#"{{"access_token":"tok","expires_on":"{expires}"}}"#).into_bytes()
            } else {
                b"{}".to_vec()
            };
            let size = body.len();
            envoy.answer_with(vec![(b":status".to_vec(), b"200".to_vec())], body);
            plugin.answer(&mut envoy, sent.id, 1, size);
        }
        envoy.fake.now += 50_000_000;
        plugin.tick(&mut envoy);
    }
    f.check("a drain ends", done || envoy.fake.done_called, String::new);
    check_stats(f, &envoy, &c.config, "after the drain");
    for logger in loggers_of(&c.config) {
        let stat = |name: &str| envoy.fake.stat(&format!("appinsights.{logger}.{name}")).unwrap_or(0);
        f.check(
            "nothing is left buffered after a drain",
            stat("buffered_items") == 0 && stat("buffered_bytes") == 0,
            || format!("{logger}: {:?}", envoy.fake.stats),
        );
    }
}

/// The plugin cases are run once for the tests of both properties.
fn plugin_report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(|| {
        fuzz(
            "ingestion_answers_through_the_plugin",
            200,
            plugin_case,
            show_plugin,
            check_plugin,
        )
    })
}

#[test]
fn ingestion_answers_through_the_plugin() {
    plugin_report().assert_holds(|p| p != ITEMS_CREATED_BALANCE);
}

/// Broken on main as of 3f2f3f8: an item dropped as it arrives — the memory budget is full
/// of batches in flight and the open batch, or it is over 64 KB even written lean — is
/// counted in `items_dropped_buffer_full` / `items_dropped_too_large` but never in
/// `items_created` (`delivery/mod.rs`, `Outbox::add_or_trim`: `items_created` counts only
/// queued items), so accepted + dropped + buffered exceeds created: in the `Outbox`'s stats,
/// in Envoy's after answers ([`check_stats`]), and after whole exchanges (an Exception
/// whose `stack` names a long route or cluster is over 64 KB even lean).
#[test]
fn ingestion_answers_keep_items_created_balanced() {
    outbox_report().assert_holds(|p| p == ITEMS_CREATED_BALANCE);
    plugin_report().assert_holds(|p| p == ITEMS_CREATED_BALANCE);
    exchanges_report().assert_holds(|p| p == ITEMS_CREATED_BALANCE);
}
