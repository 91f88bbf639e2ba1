//! API tests (see also tests/perf.rs in this crate for the 100,000-item bound).
