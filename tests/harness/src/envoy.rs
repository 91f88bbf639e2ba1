//! Runs the real Envoy binary for tests: renders a configuration, starts Envoy on
//! ephemeral ports, waits until it serves, and stops it (also on drop).

use crate::envoy_config::{render, Settings};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root (tests run from tests/harness).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// The Envoy binary: `$ENVOY`, else the one scripts/setup.sh installs in `.venv/`.
pub fn envoy_binary() -> PathBuf {
    std::env::var_os("ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

/// The built filter: `$WASM`, else `dist/envoy_appinsights.wasm` (scripts/build.sh).
pub fn filter_wasm() -> PathBuf {
    std::env::var_os("WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist/envoy_appinsights.wasm"))
}

/// A fresh directory for one Envoy's files.
pub fn scratch_dir(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "appinsights-it-{}-{}-{label}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A running Envoy.
pub struct Envoy {
    child: Child,
    pub admin: SocketAddr,
    pub listener: SocketAddr,
    pub dir: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `settings` (ports are replaced by ephemeral ones) and one worker.
    pub fn start(settings: &Settings, extra_args: &[&str]) -> Result<Envoy, String> {
        Envoy::start_yaml(&render(&ephemeral(settings))?, extra_args)
    }

    /// Starts Envoy with a rendered configuration (use [`ephemeral`] ports).
    pub fn start_yaml(yaml: &str, extra_args: &[&str]) -> Result<Envoy, String> {
        Envoy::start_yaml_env(yaml, extra_args, &[])
    }

    /// As [`Envoy::start`], with extra environment variables for the Envoy process.
    pub fn start_env(settings: &Settings, extra_args: &[&str], env: &[(&str, &str)]) -> Result<Envoy, String> {
        Envoy::start_yaml_env(&render(&ephemeral(settings))?, extra_args, env)
    }

    fn start_yaml_env(yaml: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Result<Envoy, String> {
        let dir = scratch_dir("envoy");
        let mut child = spawn(yaml, &dir, extra_args, env)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let admin = loop {
            if let Some(addr) = std::fs::read_to_string(dir.join("admin"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break addr;
            }
            check_alive(&mut child, &dir, deadline)?;
            std::thread::sleep(Duration::from_millis(50));
        };
        let listener = loop {
            if admin_get(admin, "/ready").map(|b| b.trim() == "LIVE").unwrap_or(false) {
                if let Some(addr) = listener_address(admin) {
                    break addr;
                }
            }
            check_alive(&mut child, &dir, deadline)?;
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(Envoy {
            child,
            admin,
            listener,
            dir,
        })
    }

    /// Starts Envoy expecting it to refuse the configuration: returns its exit status and
    /// log, or an error if it was still running after `within`.
    pub fn expect_refusal(yaml: &str, within: Duration) -> Result<(ExitStatus, String), String> {
        let dir = scratch_dir("refusal");
        let mut child = spawn(yaml, &dir, &[], &[])?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok((status, read_log(&dir)));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "Envoy was still running after {within:?}; log:\n{}",
                    read_log(&dir)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    /// GET on the admin interface.
    pub fn admin_get(&self, path: &str) -> Option<String> {
        admin_get(self.admin, path)
    }

    /// POST on the admin interface.
    pub fn admin_post(&self, path: &str) -> Option<String> {
        admin_request(self.admin, "POST", path)
    }

    /// Asks Envoy to exit and waits for it (kills it after 10 s).
    pub fn stop(mut self) -> String {
        self.shutdown();
        self.log()
    }

    fn shutdown(&mut self) {
        let _ = admin_request(self.admin, "POST", "/quitquitquit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.shutdown();
        }
    }
}

/// `settings` with ephemeral listener and admin ports (Envoy reports the real ones).
pub fn ephemeral(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    s.listen_port = 0;
    s.admin_port = 0;
    s
}

fn spawn(yaml: &str, dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Result<Child, String> {
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, yaml).map_err(|e| format!("writing {}: {e}", config.display()))?;
    let log = std::fs::File::create(dir.join("envoy.log")).map_err(|e| e.to_string())?;
    // One worker unless the test asks for more (`--concurrency N` in `extra_args`).
    let concurrency: &[&str] = if extra_args.contains(&"--concurrency") {
        &[]
    } else {
        &["--concurrency", "1"]
    };
    Command::new(envoy_binary())
        .arg("-c")
        .arg(&config)
        .args(concurrency)
        .args(["--use-dynamic-base-id", "-l", "info"])
        .arg("--admin-address-path")
        .arg(dir.join("admin"))
        .args(extra_args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {}: {e} (run scripts/setup.sh)", envoy_binary().display()))
}

fn check_alive(child: &mut Child, dir: &Path, deadline: Instant) -> Result<(), String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Err(format!(
            "Envoy exited ({status}) before serving; log:\n{}",
            read_log(dir)
        ));
    }
    if Instant::now() > deadline {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("Envoy did not become ready in time; log:\n{}", read_log(dir)));
    }
    Ok(())
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default()
}

fn listener_address(admin: SocketAddr) -> Option<SocketAddr> {
    let body = admin_get(admin, "/listeners?format=json")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let sa = &v["listener_statuses"][0]["local_address"]["socket_address"];
    format!("{}:{}", sa["address"].as_str()?, sa["port_value"].as_u64()?)
        .parse()
        .ok()
}

fn admin_get(admin: SocketAddr, path: &str) -> Option<String> {
    admin_request(admin, "GET", path)
}

/// A minimal HTTP/1.1 request to the admin interface (body of a 200 answer).
fn admin_request(admin: SocketAddr, method: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some(dechunk(body));
    }
    Some(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
