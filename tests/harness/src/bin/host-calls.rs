//! `host-calls < plugin-config.json`: prints the host-call floor filter's configuration
//! for a plugin configuration — the calls into Envoy the filter makes in each callback of
//! the benchmark's exchange, taken from the filter's own read plan (`harness::floor`) —
//! as one JSON object with `calls_per_request`. Used by `scripts/bench.sh`.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("host-calls: reading the plugin configuration from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let config = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("host-calls: the plugin configuration is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    match harness::floor::floor_config(&config) {
        Ok(floor) => {
            println!("{floor}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("host-calls: {e}");
            ExitCode::FAILURE
        }
    }
}
