//! Seeded, bounded fuzzing of everything the filter reads from outside (issue 11): the
//! plugin configuration, connection strings, the caller's correlation headers, trace rules
//! rendered over whole exchanges, the ingestion service's answers, and LLM response bodies.
//!
//! No fuzzing crate: a SplitMix64 generator drives structure-aware mutators that start from
//! valid inputs (the README's example configuration, real connection strings, valid
//! `traceparent`/`Request-Id`/`Request-Context` headers, real trace templates and
//! TrackResponse bodies) and break them: flipped, inserted and deleted bytes, spliced
//! fields, huge, negative and fractional numbers, wrong JSON types, unicode, control
//! characters, NULs, very long strings, deep nesting. Each target runs a fixed number of
//! cases from a fixed seed, so CI is deterministic and the whole target takes seconds:
//!
//! ```sh
//! cargo test --test fuzz                                   # as CI runs it: fixed seed, seconds
//! FUZZ_CASES=20000 FUZZ_SEED=$RANDOM cargo test --release --test fuzz -- --nocapture
//! FUZZ_SEED=0x5eed0011 FUZZ_CASE=17 cargo test --test fuzz configuration   # replay one case
//! ```
//!
//! `FUZZ_CASES` sets the number of cases of every target (each has its own default, sized
//! so the whole target runs in a few seconds in a debug build), `FUZZ_SEED` the seed
//! (decimal or `0x` hex), `FUZZ_CASE` runs that one case only. A case is a pure function of
//! the seed, the target and its number; a failure names the property, how often it broke,
//! the first case, how to replay it and the input (a run of one byte shown as
//! `"x"×70000`). Every case runs under `catch_unwind`: a panic in the filter is a failure
//! like any other ("never panics"), reported with the input and where it panicked. (A
//! `--release` run skips the overflow checks; add `CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true`
//! to keep them.)
//!
//! The targets, and what they check:
//!
//! - [`configuration`]: `Config::from_json` on mutated configurations: errors are one
//!   bounded line naming a field, without control characters or instrumentation keys; an
//!   accepted configuration runs a plugin through an exchange and a drain;
//! - [`connection_strings`]: accepted endpoints are URLs Envoy can use as they are and parse
//!   back to themselves; errors repeat no key; a configuration agrees with the parser;
//! - [`correlation`]: `traceparent`, `Request-Id`, `Request-Context` (and duplicates) read
//!   directly and through the pipeline: ids valid for their protocol, headers sent upstream
//!   that parse back;
//! - [`templates`]: trace templates parsed on their own: what parses prints back to
//!   itself, errors are one line;
//! - [`exchanges`]: random trace rules, captures and masking over random exchanges (empty,
//!   huge, non-UTF-8 requests; odd statuses and attributes; corrupt header maps) through
//!   the real callbacks; every item that reaches the service is checked ([`items`]), and
//!   no secret the default masking covers reaches it;
//! - [`outbox`] and [`plugin`]: random answers ([`answers`]: statuses, `Retry-After`,
//!   TrackResponse bodies, tokens) to an `Outbox` and to the root context: the accounting
//!   of every item and the memory budget hold at every step;
//! - [`usage`]: the token counts of LLM responses (Chat Completions and Responses API
//!   bodies, JSON and server-sent events, with decoys in their text) mutated and cut into
//!   chunks anywhere: the chunks give what one push gives, memory stays bounded.
//!
//! A property broken on main as of 3f2f3f8 has a test of its own, documented with the
//! cause, so that the other properties keep guarding CI until it is fixed:
//! `exchanges_never_write_an_empty_trace_message`,
//! `exchanges_never_send_a_secret_masked_by_default`,
//! `correlation_request_ids_keep_their_root` and
//! `ingestion_answers_keep_items_created_balanced`. (`ingestion_answers` also fails on main:
//! a `Retry-After` date with a huge year overflows in `delivery/backoff.rs`.)
//!
//! [`runner`] has the generator and the runner, [`mutate`] the mutators, [`envoy`] the host
//! the exchanges run on.

// clippy.toml lets `#[test]` functions unwrap; this crate's helpers are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod answers;
mod configuration;
mod connection_strings;
mod correlation;
mod envoy;
mod exchanges;
mod items;
mod mutate;
mod outbox;
mod plugin;
mod runner;
mod templates;
mod usage;
