//! Runs `tests/otel-backend/app.py`, a backend instrumented with the official Azure Monitor
//! OpenTelemetry distro for Python, as a child process (killed on drop).

use crate::envoy::{repo_root, scratch_dir};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Python with the distro: `$PYTHON`, else the `.venv/` scripts/setup.sh fills.
pub fn python_binary() -> PathBuf {
    std::env::var_os("PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// A running instrumented backend.
pub struct OtelBackend {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl OtelBackend {
    /// Starts the app on a free loopback port, sending its telemetry per
    /// `connection_string` as cloud role `role`. `downstream` is the base URL its orders
    /// route calls (`None`: itself). Waits until it serves (at most 30 s).
    pub fn start(connection_string: &str, role: &str, downstream: Option<&str>) -> Result<OtelBackend, String> {
        let log = scratch_dir("otel-backend").join("app.log");
        let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(python_binary());
        cmd.arg(repo_root().join("tests/otel-backend/app.py"))
            .args(["--connection-string", connection_string, "--role", role])
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(d) = downstream {
            cmd.args(["--downstream", d]);
        }
        let mut child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {}: {e} (run scripts/setup.sh)", python_binary().display()))?;
        // The first stdout line is `listening on HOST:PORT`; read it on a thread so a
        // silent child cannot hang the test.
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {} // keep draining
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let addr = line
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "))
            .and_then(|a| a.trim().parse().ok());
        match addr {
            Some(addr) => Ok(OtelBackend { child, addr, log }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the instrumented backend did not start (run scripts/setup.sh); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the app wrote to stderr (its access log, Python errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OtelBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
