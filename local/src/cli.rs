//! Argument parsing for the `ingest` and `backend` programs (no CLI crate needed for
//! a handful of `--flag value` options), and the "ready" line they print.

// Server code paths handle untrusted network input: no panics (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

use std::io::Write;
use std::net::SocketAddr;

/// Parses `--name value` / `--name=value` pairs. `known` lists the accepted names
/// (without `--`). `--help`/`-h` yields `Err` with an empty message.
pub fn parse_flags(args: &[String], known: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--help" || arg == "-h" {
            return Err(String::new());
        }
        let flag = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = iter.next().ok_or_else(|| format!("--{flag} needs a value"))?;
                (flag.to_string(), value.clone())
            }
        };
        if !known.contains(&name.as_str()) {
            return Err(format!("unknown option --{name}"));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The last value given for `name`.
pub fn flag<'a>(flags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Prints `listening on <addr>` and flushes, so a parent process can wait for it.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Parks the main thread forever; the servers run on their own threads and the
/// process ends on SIGTERM/SIGINT with the default action.
pub fn serve_forever() -> ! {
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_in_both_forms() {
        let flags = parse_flags(&args(&["--listen", "1.2.3.4:5", "--ikey=abc"]), &["listen", "ikey"]).unwrap();
        assert_eq!(flag(&flags, "listen"), Some("1.2.3.4:5"));
        assert_eq!(flag(&flags, "ikey"), Some("abc"));
        assert_eq!(flag(&flags, "store"), None);
    }

    #[test]
    fn bad_flags_are_errors() {
        assert!(parse_flags(&args(&["--nope", "x"]), &["listen"]).is_err());
        assert!(parse_flags(&args(&["--listen"]), &["listen"]).is_err());
        assert!(parse_flags(&args(&["stray"]), &["listen"]).is_err());
        assert_eq!(parse_flags(&args(&["-h"]), &["listen"]), Err(String::new()));
    }
}
