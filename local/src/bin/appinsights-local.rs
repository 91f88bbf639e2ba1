//! `appinsights-local [--listen 127.0.0.1:9001] [--ikey KEY] [--store items.ndjson]
//!  [--max-items 200000] [--max-bytes 268435456]`
//!
//! Runs the local Application Insights in the foreground: the ingestion endpoint
//! (`/v2/track`, `/v2.1/track`, every item validated against the schema), the query API
//! (`/api/...`) and the viewer page (`/`). Prints `listening on <addr>` when ready; stops
//! on SIGTERM/SIGINT. Items live in a bounded ring buffer (`--max-items`, `--max-bytes`,
//! sizes may end in K, M or G); with `--store` they are appended to an NDJSON file
//! whose newest items are loaded back on start. The context tags the official SDKs send
//! although the schema does not list them (the Python exporter's `ai.user.userAgent`,
//! which the service takes) are accepted; `--tolerate-tag NAME` adds one more.

use std::path::PathBuf;
use std::process::ExitCode;

use appinsights_local::cli;
use appinsights_local::ingest::{IngestConfig, IngestServer, SDK_TAGS};
use appinsights_local::store::Limits;

const USAGE: &str = "usage: appinsights-local [--listen 127.0.0.1:9001] [--ikey KEY] [--store items.ndjson] \
[--max-items 200000] [--max-bytes 256M] [--tolerate-tag NAME]";

/// Items kept in the control API's recorded lists (`/_items`); the store holds the rest.
const RECORDED_KEEP: usize = 1000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match config(&args) {
        Ok(cfg) => cfg,
        Err(msg) => return usage_error(&msg),
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

fn config(args: &[String]) -> Result<IngestConfig, String> {
    let known = ["listen", "ikey", "store", "max-items", "max-bytes", "tolerate-tag"];
    let flags = cli::parse_flags(args, &known)?;
    let defaults = Limits::default();
    let size = |name: &str, default: usize| match cli::flag(&flags, name) {
        None => Ok(default),
        Some(v) => parse_size(v).ok_or_else(|| format!("--{name} needs a number (K, M or G may follow)")),
    };
    Ok(IngestConfig {
        bind: cli::flag(&flags, "listen").unwrap_or("127.0.0.1:9001").to_string(),
        expected_ikey: cli::flag(&flags, "ikey").map(str::to_string),
        store_path: cli::flag(&flags, "store").map(PathBuf::from),
        keep: Some(RECORDED_KEEP),
        limits: Limits {
            max_items: size("max-items", defaults.max_items)?,
            max_bytes: size("max-bytes", defaults.max_bytes)?,
            ..defaults
        },
        tolerated_tags: SDK_TAGS
            .iter()
            .map(|t| t.to_string())
            .chain(cli::flag(&flags, "tolerate-tag").map(str::to_string))
            .collect(),
    })
}

/// `1000`, `64K`, `256M`, `1G` (binary multiples).
fn parse_size(v: &str) -> Option<usize> {
    let (digits, shift) = match v.trim().to_ascii_uppercase() {
        s if s.ends_with('K') => (s.trim_end_matches('K').to_string(), 10),
        s if s.ends_with('M') => (s.trim_end_matches('M').to_string(), 20),
        s if s.ends_with('G') => (s.trim_end_matches('G').to_string(), 30),
        s => (s, 0),
    };
    digits.parse::<usize>().ok()?.checked_mul(1usize << shift)
}

fn usage_error(msg: &str) -> ExitCode {
    if msg.is_empty() {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    eprintln!("appinsights-local: {msg}\n{USAGE}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("64k"), Some(65_536));
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn flags_set_the_limits() {
        let args: Vec<String> = ["--max-items", "5", "--max-bytes", "1K"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cfg = config(&args).unwrap();
        assert_eq!((cfg.limits.max_items, cfg.limits.max_bytes), (5, 1024));
        assert!(config(&["--max-items".to_string(), "many".to_string()]).is_err());
    }
}
