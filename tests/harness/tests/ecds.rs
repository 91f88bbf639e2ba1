//! The filter delivered through extension config discovery (ECDS), as Istio delivers a
//! WasmPlugin, and replaced three times while traffic flows: (a) a new plugin
//! configuration (another sampling percentage, a second logger), (b) an invalid one
//! (Envoy keeps the last good one and the log names the field), (c) a new module. No
//! request fails through any of them. A new configuration drains the old one: every
//! request it served is a delivered Request item or counted as sampled out. A new module
//! does not drain: Envoy destroys the old VM as soon as no exchange uses it, without
//! waiting for its drain; what it had not sent yet waits in shared data and the new VM
//! takes it over (`src/pipeline/handoff.rs`), so nothing is lost there either.

mod common;

use common::{envoy_stats, logger_for, IKEY};
use harness::backend::Backend;
use harness::envoy::{filter_wasm, scratch_dir, Envoy};
use harness::envoy_config::{ecds_resource_yaml, render_ecds, FilterKind, Settings};
use harness::http;
use harness::ingest::{of_kind, IngestConfig, IngestServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PHASES: usize = 4;

/// Requests sent continuously, counted per phase (the phase when each was sent).
struct Traffic {
    phase: Arc<AtomicUsize>,
    ok: Arc<[AtomicU64; PHASES]>,
    failed: Arc<[AtomicU64; PHASES]>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Traffic {
    fn start(gateway: std::net::SocketAddr) -> Traffic {
        let phase = Arc::new(AtomicUsize::new(0));
        let ok: Arc<[AtomicU64; PHASES]> = Arc::new(Default::default());
        let failed: Arc<[AtomicU64; PHASES]> = Arc::new(Default::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, o, f, s) = (phase.clone(), ok.clone(), failed.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut n = 0u64;
            while !s.load(Ordering::SeqCst) {
                let at = p.load(Ordering::SeqCst);
                match http::request(gateway, "GET", &format!("/phase{at}/{n}"), &[], b"") {
                    Ok(r) if r.status == 200 => o[at].fetch_add(1, Ordering::SeqCst),
                    other => {
                        failures.push(format!("phase {at}, request {n}: {:?}", other.map(|r| r.status)));
                        f[at].fetch_add(1, Ordering::SeqCst)
                    }
                };
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            failures
        });
        Traffic {
            phase,
            ok,
            failed,
            stop,
            thread: Some(thread),
        }
    }

    fn next_phase(&self) {
        self.phase.fetch_add(1, Ordering::SeqCst);
    }

    fn finish(mut self) -> ([u64; PHASES], [u64; PHASES], Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.thread.take().unwrap().join().unwrap();
        let read = |a: &[AtomicU64; PHASES]| std::array::from_fn(|i| a[i].load(Ordering::SeqCst));
        (read(&self.ok), read(&self.failed), failures)
    }
}

/// Writes the ECDS resource next to the watched one, then renames it over it: Envoy sees
/// one complete file (the way file-based xDS is updated).
fn publish(path: &Path, resource: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, resource).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An ECDS counter of the filter (`update_success`, `update_rejected`, `config_fail`).
fn ecds_counter(envoy: &Envoy, counter: &str) -> u64 {
    let text = envoy
        .admin_get("/stats?filter=extension_config_discovery")
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| k.contains("appinsights") && k.ends_with(&format!(".{counter}")))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

fn wait_for(what: &str, envoy: &Envoy, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; log:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A copy of the module with a custom section appended (id 0, LEB128 size, name,
/// payload): the same code, different bytes, so Envoy loads it as a new module.
fn module_copy(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(filter_wasm()).unwrap();
    let (name, payload) = (b"ecds-test", b"second module");
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128, "one-byte LEB128 sizes");
    bytes.extend([0u8, size as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(payload);
    let path = dir.join("appinsights-2.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The request numbers (`/phase<p>/<n>`) of the Request items with `ai.cloud.role == role`.
fn numbers(items: &[Value], role: &str) -> Vec<u64> {
    let mut ns: Vec<u64> = of_kind(items, "RequestData")
        .iter()
        .filter(|i| i["tags"]["ai.cloud.role"] == role)
        .map(|i| {
            let url = i["data"]["baseData"]["url"].as_str().unwrap();
            url.rsplit('/').next().unwrap().parse().unwrap()
        })
        .collect();
    ns.sort_unstable();
    ns
}

fn requests_of(items: &[Value], role: &str) -> usize {
    numbers(items, role).len()
}

#[test]
fn live_ecds_updates_fail_no_request_and_lose_telemetry_only_with_the_module() {
    let main = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let second = IngestServer::start(IngestConfig {
        expected_ikey: Some(IKEY.into()),
        ..Default::default()
    })
    .unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let dir = scratch_dir("ecds");
    let ecds = dir.join("appinsights.yaml");
    let config = |role: &str, sampling: f64, loggers: Value| {
        json!({"cloud_role": role, "loggers": loggers, "diagnostic": {"sampling_percentage": sampling},
               "delivery": {"flush_interval_ms": 200, "drain_timeout_ms": 1000}})
    };
    let one_logger = json!({"main": logger_for(&main, "appinsights")});
    let two_loggers = json!({"main": logger_for(&main, "appinsights"), "second": logger_for(&second, "second")});
    let mut s = Settings::local(
        &backend.addr().to_string(),
        filter_wasm().to_str().unwrap(),
        config("v0", 50.0, one_logger),
    );
    // Istio declares the clusters apart from the plugin (ServiceEntry): so does the test,
    // for the logger the first update adds.
    s.extra_clusters.push(("second".into(), second.addr().to_string()));
    s.ecds_path = Some(ecds.to_str().unwrap().into());
    publish(&ecds, &render_ecds(&s).unwrap());
    let envoy = Envoy::start(&s, &["--service-cluster", "ecds", "--service-node", "ecds-0"]).unwrap();
    assert_eq!(
        ecds_counter(&envoy, "update_success"),
        1,
        "the first resource, from the file"
    );

    let traffic = Traffic::start(envoy.listener);
    main.wait_until(Duration::from_secs(10), |i| requests_of(i, "v0") >= 40);

    // (a) A new plugin configuration: 100% sampling and a second logger.
    s.plugin_config = config("v1", 100.0, two_loggers.clone());
    publish(&ecds, &render_ecds(&s).unwrap());
    wait_for("update (a) applied", &envoy, Duration::from_secs(10), || {
        ecds_counter(&envoy, "update_success") == 2
    });
    traffic.next_phase();
    second.wait_until(Duration::from_secs(10), |i| requests_of(i, "v1") >= 50);

    // (b) An invalid configuration: Envoy refuses it, says why, and keeps the last good one.
    let bad = json!({"cloud_rol": "v-bad", "loggers": two_loggers.clone()});
    publish(
        &ecds,
        &ecds_resource_yaml(FilterKind::AppInsights, &s.wasm_path, &bad.to_string()),
    );
    wait_for("update (b) refused", &envoy, Duration::from_secs(10), || {
        ecds_counter(&envoy, "update_rejected") == 1
    });
    let log = envoy.log();
    assert!(
        log.contains("invalid plugin configuration: cloud_rol: unknown field"),
        "the log names the field; log:\n{log}"
    );
    assert!(
        log.contains("config update rejected: Unable to create Wasm plugin appinsights"),
        "{log}"
    );
    assert_eq!(ecds_counter(&envoy, "config_fail"), 1);
    assert_eq!(ecds_counter(&envoy, "update_success"), 2, "nothing new applied");
    traffic.next_phase();
    let v1_at_refusal = requests_of(&second.items(), "v1");
    second.wait_until(Duration::from_secs(10), |i| requests_of(i, "v1") >= v1_at_refusal + 50);

    // (c) A new module (same code, different bytes).
    s.wasm_path = module_copy(&dir).to_str().unwrap().into();
    s.plugin_config = config("v2", 100.0, two_loggers);
    publish(&ecds, &render_ecds(&s).unwrap());
    wait_for("update (c) applied", &envoy, Duration::from_secs(15), || {
        ecds_counter(&envoy, "update_success") == 3
    });
    traffic.next_phase();
    second.wait_until(Duration::from_secs(10), |i| requests_of(i, "v2") >= 50);
    // What the replaced module's VM held is taken over a second after its drain deadline.
    std::thread::sleep(Duration::from_millis(3000));
    let (ok, failed, failures) = traffic.finish();

    // Everything deliverable is delivered: wait until the endpoints stop receiving.
    let main_items = common::settled(&main, 1);
    let second_items = common::settled(&second, 1);
    let [v0, v1, v2] = ["v0", "v1", "v2"].map(|r| numbers(&main_items, r));
    let on_second = ["v0", "v1", "v2"].map(|r| requests_of(&second_items, r));
    let sampled_out = envoy_stats(&envoy, "appinsights.")["appinsights.operations_sampled_out"] as u64;
    let total_ok: u64 = ok.iter().sum();
    let gap = |from: u64, to: u64, seen: &[u64]| {
        (from..to)
            .filter(|n| seen.binary_search(n).is_err())
            .collect::<Vec<u64>>()
    };
    // At 100%, every request v1 served has an item; what is missing before v2 starts is
    // what the module replacement lost.
    let lost = gap(v1[0], v2[0], &v1);
    eprintln!(
        "requests ok per phase {ok:?}, failed {failed:?}; Request items v0/v1/v2: main {:?}, second {on_second:?}; \
         v0 sampled out {sampled_out}; lost when the module was replaced: {} {lost:?}",
        [v0.len(), v1.len(), v2.len()],
        lost.len(),
    );
    assert_eq!(failed, [0; PHASES], "no request failed: {failures:?}");
    assert!(ok.iter().all(|&n| n >= 30), "traffic in every phase: {ok:?}");
    assert!(!v0.is_empty() && !v1.is_empty() && !v2.is_empty());
    assert_eq!(
        of_kind(&main_items, "RequestData").len(),
        v0.len() + v1.len() + v2.len(),
        "no v-bad"
    );

    // (a) drained: every request before v1 took over is a v0 item or sampled out (the old
    // configuration's last stats included), and its sampling applied.
    assert_eq!(gap(0, v1[0], &v0).len() as u64, sampled_out, "v0: items + sampled out");
    assert!(sampled_out > 0, "50% sampling applied");
    // (b) changed nothing: v1 served on, and v2 took over for good.
    assert_eq!(*v2.last().unwrap() + 1, total_ok, "v2 served to the end");
    assert!(gap(v2[0], total_ok, &v2).is_empty(), "v2 lost nothing");
    // (c) Envoy destroys the replaced module's VM as soon as no exchange uses it, without
    // waiting for its drain: the new VM took over what it had not sent.
    assert!(lost.is_empty(), "the module replacement lost {lost:?}");
    assert_eq!(on_second[0], 0, "the second logger came with update (a)");
    assert_eq!(on_second[2], v2.len(), "both loggers got v2's operations");
    assert!(on_second[1] + 60 >= v1.len() && on_second[1] <= v1.len());
}

/// What a drain does per kind of update, with nothing sent before (a minute's flush
/// interval): the old module's VM goes without its drain, and the new one takes over what
/// it buffered a second after the drain's deadline; a new configuration of the same module
/// flushes the old one's items at once.
#[test]
fn a_new_module_takes_over_what_the_old_vm_buffered_a_new_configuration_drains_it() {
    let main = IngestServer::start(IngestConfig::default()).unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let dir = scratch_dir("ecds-drain");
    let ecds = dir.join("appinsights.yaml");
    let config = |role: &str| {
        json!({"cloud_role": role, "loggers": {"main": logger_for(&main, "appinsights")},
               "delivery": {"flush_interval_ms": 60000, "drain_timeout_ms": 1000}})
    };
    let mut s = Settings::local(
        &backend.addr().to_string(),
        filter_wasm().to_str().unwrap(),
        config("old"),
    );
    s.ecds_path = Some(ecds.to_str().unwrap().into());
    publish(&ecds, &render_ecds(&s).unwrap());
    let envoy = Envoy::start(&s, &["--service-cluster", "ecds", "--service-node", "ecds-0"]).unwrap();
    let send = |path: &str| {
        for i in 0..3 {
            let r = http::request(envoy.listener, "GET", &format!("/{path}/{i}"), &[], b"").unwrap();
            assert_eq!(r.status, 200);
        }
    };
    send("old");
    std::thread::sleep(Duration::from_millis(300));
    assert!(main.items().is_empty(), "nothing sent before the update");

    // A new module: the old VM goes as soon as no exchange uses it, drain or not.
    s.wasm_path = module_copy(&dir).to_str().unwrap().into();
    s.plugin_config = config("mid");
    publish(&ecds, &render_ecds(&s).unwrap());
    wait_for("the new module", &envoy, Duration::from_secs(15), || {
        ecds_counter(&envoy, "update_success") == 2
    });
    // Three exchanges: a Request and a Dependency each.
    main.wait_for_items(6, Duration::from_secs(8));
    std::thread::sleep(Duration::from_millis(500)); // and nothing more
    let taken_over = main.items();
    assert_eq!(
        taken_over.len(),
        6,
        "what the old VM held arrived, once: {taken_over:?}"
    );
    assert!(taken_over.iter().all(|i| i["tags"]["ai.cloud.role"] == "old"));
    let stats = envoy_stats(&envoy, "appinsights.");
    // Everything the old VM created (the six items and its metric aggregates) was taken
    // over and delivered.
    let stat = |name: &str| stats[&format!("appinsights.main.{name}")];
    assert!(stat("items_created") > 6, "{stats:?}");
    assert_eq!(stat("items_adopted"), stat("items_created"), "{stats:?}");
    assert_eq!(stat("items_accepted"), stat("items_created"), "{stats:?}");
    main.clear();

    // A new configuration of the same module: the old one drains at once.
    send("mid");
    s.plugin_config = config("new");
    publish(&ecds, &render_ecds(&s).unwrap());
    let items = main.wait_for_items(6, Duration::from_secs(5));
    assert_eq!(items.len(), 6, "the old configuration drained at once");
    assert!(items.iter().all(|i| i["tags"]["ai.cloud.role"] == "mid"));
}
