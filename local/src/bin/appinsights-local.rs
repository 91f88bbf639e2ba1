//! `appinsights-local [--listen 127.0.0.1:9001] [--ikey KEY] [--store items.ndjson]`
//!
//! Runs the local Application Insights in the foreground. Prints `listening on <addr>`
//! when ready; stops on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use appinsights_local::cli;
use appinsights_local::ingest::{IngestConfig, IngestServer};

const USAGE: &str = "usage: appinsights-local [--listen 127.0.0.1:9001] [--ikey KEY] [--store items.ndjson]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match cli::parse_flags(&args, &["listen", "ikey", "store"]) {
        Ok(flags) => flags,
        Err(msg) => return usage_error(&msg),
    };
    let cfg = IngestConfig {
        bind: cli::flag(&flags, "listen").unwrap_or("127.0.0.1:9001").to_string(),
        expected_ikey: cli::flag(&flags, "ikey").map(str::to_string),
        store_path: cli::flag(&flags, "store").map(PathBuf::from),
        keep: Some(1000),
    };
    match IngestServer::start(cfg) {
        Ok(server) => {
            cli::announce(server.addr());
            cli::serve_forever()
        }
        Err(e) => {
            eprintln!("appinsights-local: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    if msg.is_empty() {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    eprintln!("appinsights-local: {msg}\n{USAGE}");
    ExitCode::from(2)
}
