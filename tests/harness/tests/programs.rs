//! The `ingest` and `backend` programs: they announce their address, serve, and
//! the endpoint's store file is complete while the process still runs.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use harness::http;
use harness::schema::example_envelope;

/// Kills the child on drop so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a program and reads its `listening on <addr>` line.
fn launch(program: &str, args: &[&str]) -> (Running, SocketAddr) {
    let mut child = Command::new(program).args(args).stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (running, addr.parse().unwrap())
}

#[test]
fn the_ingest_program_serves_and_stores() {
    let store = std::env::temp_dir().join(format!("harness-program-{}.ndjson", std::process::id()));
    let _ = std::fs::remove_file(&store);
    let ikey = "00000000-0000-0000-0000-000000000000";
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--ikey",
        ikey,
        "--store",
        store.to_str().unwrap(),
    ];
    let (_ingest, addr) = launch(env!("CARGO_BIN_EXE_ingest"), &args);
    let item = example_envelope("EventData", SystemTime::now()).unwrap();
    let resp = http::post(
        addr,
        "/v2/track",
        "application/x-json-stream",
        item.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let stored = std::fs::read_to_string(&store).unwrap();
    assert_eq!(stored, format!("{item}\n"));
    let stats = http::get(addr, "/_stats").unwrap().json().unwrap();
    assert_eq!(stats["items_accepted"], 1);
    let _ = std::fs::remove_file(&store);
}

#[test]
fn the_backend_program_serves() {
    let (_backend, addr) = launch(env!("CARGO_BIN_EXE_backend"), &["--listen", "127.0.0.1:0"]);
    assert_eq!(http::get(addr, "/status/418").unwrap().status, 418);
}

#[test]
fn bad_arguments_exit_with_usage() {
    for program in [env!("CARGO_BIN_EXE_ingest"), env!("CARGO_BIN_EXE_backend")] {
        let out = Command::new(program).arg("--bogus").arg("x").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    }
}
