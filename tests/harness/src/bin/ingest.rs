//! `ingest [--listen 127.0.0.1:9001] [--ikey KEY] [--store items.ndjson] [--keep N]
//!        [--tolerate-tag ai.user.userAgent]`
//!
//! Runs the local Application Insights ingestion endpoint in the foreground. Prints
//! `listening on <addr>` when ready; stops on SIGTERM/SIGINT (stored lines are
//! written and flushed per request, so nothing is lost). `--keep N` bounds what stays in
//! memory for long runs (counters keep counting; the query API's store keeps N items too).
//! See `harness::ingest`.
//!
//! The test-oriented alias of `appinsights-local` (`local/`): same endpoint, same query
//! API and viewer, but the recorded lists stay unbounded unless `--keep` is given.

use std::path::PathBuf;
use std::process::ExitCode;

use harness::cli;
use harness::ingest::{IngestConfig, IngestServer};

const USAGE: &str =
    "usage: ingest [--listen 127.0.0.1:9001] [--ikey KEY] [--store items.ndjson] [--keep N] [--tolerate-tag TAG]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match cli::parse_flags(&args, &["listen", "ikey", "store", "keep", "tolerate-tag"]) {
        Ok(flags) => flags,
        Err(msg) => return usage_error(&msg),
    };
    let mut cfg = IngestConfig {
        bind: cli::flag(&flags, "listen").unwrap_or("127.0.0.1:9001").to_string(),
        expected_ikey: cli::flag(&flags, "ikey").map(str::to_string),
        store_path: cli::flag(&flags, "store").map(PathBuf::from),
        keep: match cli::flag(&flags, "keep").map(str::parse::<usize>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return usage_error("--keep needs a number"),
        },
        tolerated_tags: cli::flag(&flags, "tolerate-tag")
            .map(str::to_string)
            .into_iter()
            .collect(),
        ..IngestConfig::default()
    };
    // `--keep` bounds the query API's store too (long runs such as the benchmark).
    if let Some(keep) = cfg.keep {
        cfg.limits.max_items = keep.max(1);
    }
    match IngestServer::start(cfg) {
        Ok(server) => {
            cli::announce(server.addr());
            cli::serve_forever()
        }
        Err(e) => {
            eprintln!("ingest: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    if msg.is_empty() {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    eprintln!("ingest: {msg}\n{USAGE}");
    ExitCode::from(2)
}
