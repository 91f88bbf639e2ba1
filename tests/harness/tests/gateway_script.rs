//! `scripts/gateway.sh` as a user runs it: environment in, Envoy in the foreground,
//! one schema-valid Request item per request at the track endpoint with the host name as
//! the role instance, clean exit on SIGTERM; and with `WATCH_CONFIG=1`, an edit of the
//! `PLUGIN_CONFIG` file applied without a restart (a refused one reported and ignored).

use harness::backend::Backend;
use harness::envoy::repo_root;
use harness::http;
use harness::ingest::{of_kind, IngestConfig, IngestServer};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IKEY: &str = "00000000-0000-0000-0000-0000000000ab";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Stops the gateway if the test fails before it sends SIGTERM.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The machine's host name, as `hostname` prints it.
fn host_name() -> String {
    let out = Command::new("uname").arg("-n").output().unwrap();
    let name = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!name.is_empty());
    name
}

#[test]
fn gateway_script_delivers_one_valid_item_per_request_and_stops_on_sigterm() {
    let ingest = IngestServer::start(IngestConfig::default()).unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let (port, admin) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!("gateway-script-{}.log", std::process::id()));
    let mut gateway_process = Gateway(
        Command::new(repo_root().join("scripts/gateway.sh"))
            .env(
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                format!("InstrumentationKey={IKEY};IngestionEndpoint=http://{}", ingest.addr()),
            )
            .env("BACKEND", backend.addr().to_string())
            // As a login shell leaves it: bash sets HOSTNAME but does not export it.
            .env_remove("HOSTNAME")
            .env("LISTEN_ADDRESS", "127.0.0.1")
            .env("LISTEN_PORT", port.to_string())
            .env("ADMIN_PORT", admin.to_string())
            .env("CONCURRENCY", "1")
            // Built by the test run already; no nested cargo build while cargo test runs.
            .env("SKIP_BUILD", "1")
            .env("ENVOY_CONFIG_BIN", env!("CARGO_BIN_EXE_envoy-config"))
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()))
            .spawn()
            .unwrap(),
    );
    let child = &mut gateway_process.0;
    let gateway = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http::get(gateway, "/ready-check").is_err() {
        assert!(
            Instant::now() < deadline,
            "gateway did not start: {}",
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "gateway exited: {}",
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The readiness probes were requests too: let their items arrive, then start counting.
    assert!(!ingest.wait_for_items(1, Duration::from_secs(5)).is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    ingest.clear();
    let sent = Instant::now();
    for i in 0..5 {
        assert_eq!(http::get(gateway, &format!("/via-script/{i}")).unwrap().status, 200);
    }
    let all = ingest.wait_for_kind("RequestData", 5, Duration::from_secs(5));
    let items = of_kind(&all, "RequestData");
    assert_eq!(items.len(), 5, "five Request items within a few seconds");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(ingest.stats().items_rejected, 0, "{:?}", ingest.stats().rejections);
    let host = host_name();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(
            item["tags"]["ai.cloud.roleInstance"], host,
            "{i}: no --service-node, so the role instance is the host name"
        );
        assert_eq!(item["data"]["baseType"], "RequestData");
        assert_eq!(item["iKey"], IKEY);
        let name = item["data"]["baseData"]["name"].as_str().unwrap();
        assert!(name.starts_with("GET /via-script/"), "{i}: {name}");
    }

    // SIGTERM: Envoy (exec'd by the script) shuts down cleanly.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gateway did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "clean exit, got {status}");
}

/// Starts the gateway with `WATCH_CONFIG=1` and waits until it serves.
fn start_watching(
    plugin_config: &std::path::Path,
    backend: &Backend,
    port: u16,
    admin: u16,
    log: &std::path::Path,
) -> Gateway {
    let mut gateway = Gateway(
        Command::new(repo_root().join("scripts/gateway.sh"))
            .env("WATCH_CONFIG", "1")
            .env("PLUGIN_CONFIG", plugin_config)
            .env("BACKEND", backend.addr().to_string())
            .env("LISTEN_ADDRESS", "127.0.0.1")
            .env("LISTEN_PORT", port.to_string())
            .env("ADMIN_PORT", admin.to_string())
            .env("CONCURRENCY", "1")
            .env("SKIP_BUILD", "1")
            .env("ENVOY_CONFIG_BIN", env!("CARGO_BIN_EXE_envoy-config"))
            .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()))
            .spawn()
            .unwrap(),
    );
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http::get(address, "/ready-check").is_err() {
        let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
        assert!(Instant::now() < deadline, "gateway did not start: {err}");
        assert!(gateway.0.try_wait().unwrap().is_none(), "gateway exited: {err}");
        std::thread::sleep(Duration::from_millis(100));
    }
    gateway
}

/// Sends requests until a Request item with `ai.cloud.role == role` arrives.
fn wait_for_role(gateway: std::net::SocketAddr, ingest: &IngestServer, role: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        assert_eq!(http::get(gateway, "/watched").unwrap().status, 200);
        let items = ingest.wait_for_items(1, Duration::from_millis(300));
        if of_kind(&items, "RequestData")
            .iter()
            .any(|i| i["tags"]["ai.cloud.role"] == role)
        {
            return true;
        }
    }
    false
}

#[test]
fn with_watch_config_an_edit_of_plugin_config_applies_without_a_restart() {
    let ingest = IngestServer::start(IngestConfig::default()).unwrap();
    let backend = Backend::start("127.0.0.1:0").unwrap();
    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gateway-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin_config = dir.join("plugin.json");
    let config = |role: &str| {
        serde_json::json!({"cloud_role": role, "delivery": {"flush_interval_ms": 100}, "loggers": {"main": {
            "connection_string": format!("InstrumentationKey={IKEY};IngestionEndpoint=http://{}", ingest.addr())}}})
        .to_string()
    };
    std::fs::write(&plugin_config, config("before")).unwrap();
    let log = dir.join("gateway.log");
    let mut gateway_process = start_watching(&plugin_config, &backend, port, admin, &log);
    let gateway = format!("127.0.0.1:{port}").parse().unwrap();
    let admin = format!("127.0.0.1:{admin}").parse().unwrap();
    let ecds_updates = || {
        let stats = http::get(admin, "/stats?filter=extension_config_discovery.*update_success")
            .map(|r| String::from_utf8_lossy(&r.body).to_string())
            .unwrap_or_default();
        stats
            .lines()
            .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
            .sum::<u64>()
    };
    assert!(wait_for_role(gateway, &ingest, "before"));
    assert_eq!(ecds_updates(), 1);

    // An edit: the next requests carry the new role, from the same Envoy.
    std::fs::write(&plugin_config, config("after")).unwrap();
    ingest.clear();
    assert!(
        wait_for_role(gateway, &ingest, "after"),
        "{}",
        std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
    );
    assert_eq!(ecds_updates(), 2, "applied through ECDS, no restart");

    // A refused edit: the script says why and Envoy keeps the last good configuration.
    std::fs::write(&plugin_config, config("x").replace("cloud_role", "cloud_rol")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
        if err.contains("cloud_rol: unknown field") || Instant::now() > deadline {
            break err;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        err.contains("cloud_rol: unknown field") && err.contains("Envoy keeps the last good configuration"),
        "{err}"
    );
    ingest.clear();
    assert!(wait_for_role(gateway, &ingest, "after"));
    assert_eq!(ecds_updates(), 2);

    let child = &mut gateway_process.0;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gateway did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "clean exit, got {status}");
}
