//! Headless Chromium for tests that load a page: the DOM after its scripts ran, and
//! screenshots. Uses `$CHROMIUM`, else `chromium` on PATH (Debian's package, which
//! scripts/setup.sh installs), with `--no-sandbox` so it also runs as root.
//!
//! `wait_ms` is Chromium's virtual time budget: timers and network settle in virtual time,
//! and the page is captured once that budget is used up (or nothing is left to do), so
//! a `setTimeout(…, 500)` has run with a budget of 1000 without waiting half a second.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::envoy::scratch_dir;

/// The browser binary: `$CHROMIUM`, else `chromium`.
pub fn chromium_binary() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"))
}

/// Longest a single browser run may take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn run(args: &[String]) -> Result<Output, String> {
    // A profile per run: parallel tests must not share Chromium's profile lock.
    let profile = scratch_dir("chromium");
    let mut child = Command::new(chromium_binary())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--mute-audio",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e} (run scripts/setup.sh)", chromium_binary().display()))?;
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&profile);
            return Err(format!("chromium ran longer than {RUN_LIMIT:?}: {args:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&profile);
    if !out.status.success() {
        return Err(format!(
            "chromium {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// The serialized DOM of `url` after its scripts ran for up to `wait_ms` of virtual time.
pub fn dump_dom(url: &str, wait_ms: u64) -> Result<String, String> {
    let out = run(&[
        format!("--virtual-time-budget={wait_ms}"),
        "--dump-dom".to_string(),
        url.to_string(),
    ])?;
    String::from_utf8(out.stdout).map_err(|e| format!("the DOM is not UTF-8: {e}"))
}

/// Writes a PNG screenshot of `url` in a `width`×`height` viewport to `path`, after
/// `wait_ms` of virtual time.
pub fn screenshot(url: &str, path: &Path, width: u32, height: u32, wait_ms: u64) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    run(&[
        format!("--virtual-time-budget={wait_ms}"),
        format!("--window-size={width},{height}"),
        format!("--screenshot={}", path.display()),
        url.to_string(),
    ])?;
    match png_size(path) {
        Some(_) => Ok(()),
        None => Err(format!("chromium wrote no PNG at {}", path.display())),
    }
}

/// Width and height from a PNG file's IHDR chunk, `None` if it is not a PNG.
pub fn png_size(path: &Path) -> Option<(u32, u32)> {
    let bytes = std::fs::read(path).ok()?;
    let be = |at: usize| -> Option<u32> { Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?)) };
    if bytes.get(..8)? != b"\x89PNG\r\n\x1a\n" || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    Some((be(16)?, be(20)?))
}
