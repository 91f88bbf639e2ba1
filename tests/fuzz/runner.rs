//! The generator and the runner: one SplitMix64 stream per case (a pure function of the
//! seed, the target and the case number), every case under `catch_unwind`, and a report
//! that names each broken property with its first input and how to replay it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Instant;

/// SplitMix64 (Steele, Lea and Flood, 2014): one add and a mix per number, good enough to
/// drive mutations, and every stream is a pure function of its seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

/// SplitMix64's finalizer: also derives each target's and each case's seed.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        self.below(max + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length: mostly short, sometimes long, now and then past every limit the filter
    /// cuts at (64 KB items, 8 KB properties, 32 KB messages).
    pub fn length(&mut self) -> usize {
        match self.below(40) {
            0 => self.upto(70_000),
            1..=4 => self.upto(2_000),
            _ => self.upto(24),
        }
    }
}

/// The seed every target derives its own from, unless `FUZZ_SEED` says otherwise (the
/// issue's number: a default run is always the same run).
const DEFAULT_SEED: u64 = 0x5EED_0011;

/// A number from the environment, decimal or `0x` hexadecimal.
fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// FNV-1a: a target's name as a number, to derive its seed.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The property every case checks without saying so.
const NEVER_PANICS: &str = "never panics";

thread_local! {
    /// Whether this thread runs a case (its panics are recorded, not printed).
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    /// The last panic of a case: message and location.
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic hook that records the panics of cases (a failing target would otherwise print
/// one backtrace per case) and leaves every other panic to the default hook.
fn record_panics_of_cases() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                PANIC.with(|p| *p.borrow_mut() = Some(info.to_string().replace('\n', " ")));
            } else {
                default(info);
            }
        }));
    });
}

/// What one case found: failed properties (with details) and notes (counted, for the
/// summary and for checks on the generators themselves).
#[derive(Default)]
pub struct Findings {
    pub failures: Vec<(&'static str, String)>,
    pub notes: Vec<&'static str>,
}

impl Findings {
    pub fn check(&mut self, property: &'static str, holds: bool, detail: impl FnOnce() -> String) {
        if !holds {
            self.failures.push((property, detail()));
        }
    }

    pub fn note(&mut self, what: &'static str) {
        self.notes.push(what);
    }
}

/// The first case that broke a property, and how often it broke.
struct Found {
    count: usize,
    case: usize,
    detail: String,
    input: String,
}

/// What a target found in all its cases.
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub cases: usize,
    failures: BTreeMap<&'static str, Found>,
    pub notes: BTreeMap<&'static str, usize>,
}

impl Report {
    /// Fails the test if a property `which` selects broke, with everything needed to replay.
    pub fn assert_holds(&self, which: impl Fn(&str) -> bool) {
        let failed: Vec<_> = self.failures.iter().filter(|(p, _)| which(p)).collect();
        if failed.is_empty() {
            return;
        }
        // The test harness names each test's thread after the test.
        let thread = std::thread::current();
        let test = thread.name().unwrap_or(self.target);
        let mut msg = format!(
            "fuzz target `{}`: {} properties broke in {} cases from FUZZ_SEED={:#x}\n",
            self.target,
            failed.len(),
            self.cases,
            self.seed
        );
        for (property, f) in failed {
            let _ = write!(
                msg,
                "\n* {property}: broke in {} cases; first in case {} (replay: FUZZ_SEED={:#x} FUZZ_CASE={} \
                 cargo test --test fuzz {test})\n  {}\n  input: {}\n",
                f.count,
                f.case,
                self.seed,
                f.case,
                cut(&f.detail, 3000),
                f.input
            );
        }
        panic!("{msg}");
    }

    pub fn noted(&self, what: &str) -> usize {
        self.notes.get(what).copied().unwrap_or(0)
    }
}

/// Runs `cases` cases of `target`: each generates an input from its own stream and checks
/// it, under `catch_unwind`.
pub fn fuzz<I>(
    target: &'static str,
    default_cases: usize,
    generate: impl Fn(&mut Rng) -> I,
    show: impl Fn(&I) -> String,
    check: impl Fn(&I, &mut Findings),
) -> Report {
    record_panics_of_cases();
    let seed = env_u64("FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_u64("FUZZ_CASES").map_or(default_cases, |n| n as usize);
    let only = env_u64("FUZZ_CASE").map(|n| n as usize);
    let target_seed = mix(seed ^ fnv1a(target));
    let started = Instant::now();
    let mut report = Report {
        target,
        seed,
        cases,
        failures: BTreeMap::new(),
        notes: BTreeMap::new(),
    };
    let range = match only {
        Some(case) => case..case + 1,
        None => 0..cases,
    };
    for case in range {
        let mut rng = Rng(mix(target_seed.wrapping_add(case as u64)));
        let input = generate(&mut rng);
        let mut findings = Findings::default();
        IN_CASE.with(|c| c.set(true));
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input, &mut findings)));
        IN_CASE.with(|c| c.set(false));
        if outcome.is_err() {
            let panic = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            findings.failures.push((NEVER_PANICS, panic));
        }
        let mut seen = HashSet::new();
        for (property, detail) in findings.failures {
            if !seen.insert(property) {
                continue;
            }
            let found = report.failures.entry(property).or_insert_with(|| Found {
                count: 0,
                case,
                detail,
                input: show(&input),
            });
            found.count += 1;
        }
        for note in findings.notes {
            *report.notes.entry(note).or_default() += 1;
        }
    }
    println!(
        "fuzz {target}: {} cases from FUZZ_SEED={seed:#x} in {:.2?} ({} build); notes {:?}; broken: {:?}",
        if only.is_some() { 1 } else { cases },
        started.elapsed(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        report.notes,
        report.failures.keys().collect::<Vec<_>>()
    );
    report
}

/// At most `max` characters of `s`.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &s[..at], s.len()),
        None => s.to_string(),
    }
}

/// Bytes for a failure report: escaped, runs of one byte as `"x"×70000`, cut at 4000
/// characters (the seed and the case number replay the input exactly).
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut text = String::new();
    let mut i = 0;
    while i < bytes.len() && out.len() + text.len() < 4000 {
        let b = bytes[i];
        let run = bytes[i..].iter().take_while(|&&c| c == b).count();
        if run >= 16 {
            if !text.is_empty() {
                let _ = write!(out, "\"{}\" + ", std::mem::take(&mut text));
            }
            let _ = write!(out, "\"{}\"×{run} + ", [b].escape_ascii());
            i += run;
        } else {
            let _ = write!(text, "{}", [b].escape_ascii());
            i += 1;
        }
    }
    if text.is_empty() && !out.is_empty() {
        out.truncate(out.len() - " + ".len());
    } else {
        let _ = write!(out, "\"{text}\"");
    }
    if i < bytes.len() {
        let _ = write!(out, "… ({} bytes in all)", bytes.len());
    }
    out
}
