//! `backend [--listen 127.0.0.1:8080]`
//!
//! Runs the sample upstream service in the foreground. Prints `listening on <addr>`
//! when ready; stops on SIGTERM/SIGINT. Routes are listed in `harness::backend`.

use std::process::ExitCode;

use harness::backend::Backend;
use harness::cli;

const USAGE: &str = "usage: backend [--listen 127.0.0.1:8080]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match cli::parse_flags(&args, &["listen"]) {
        Ok(flags) => flags,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("backend: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match Backend::start(cli::flag(&flags, "listen").unwrap_or("127.0.0.1:8080")) {
        Ok(backend) => {
            cli::announce(backend.addr());
            cli::serve_forever()
        }
        Err(e) => {
            eprintln!("backend: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}
