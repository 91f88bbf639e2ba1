//! A local Application Insights ingestion endpoint for tests and the demo.
//!
//! It speaks the `track` protocol of reference §1–§4 on `POST /v2/track` and
//! `POST /v2.1/track`: JSON-array or NDJSON bodies, optionally gzip-compressed; each
//! item strictly validated by [`crate::schema`]; 200/206/400 answers with a
//! `TrackResponse`. Everything is recorded (accepted items, rejection messages and
//! every raw request) so tests can assert on exactly what the filter sent.
//! Faults ([`Fault`]) make it answer errors, slowly, garbled or not at all.
//!
//! The same port serves a control API for other processes (see `control.rs`):
//! `GET /_items`, `GET /_stats`, `GET /_requests`, `DELETE /_items`, `POST /_fault`,
//! `GET /_health`; and the product's query API (`/api/...`, [`crate::api`]) over a
//! bounded [`Store`] of the accepted and rejected items, and the viewer page ([`crate::ui`]).
//!
//! Layout: this file holds the server and the recorded state; `payload.rs` judges a
//! request; `fault.rs` defines faults; `control.rs` routes requests.

// Server code paths handle untrusted network input: no panics (tests may unwrap).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

mod control;
mod fault;
mod payload;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::http::{self, Server};
use crate::store::{Limits, Store};
pub use fault::{Fault, FAULT_MESSAGE};
use payload::Outcome;

/// Context tags official SDKs send that the schema does not list, and the service takes:
/// the Python exporter's `ai.user.userAgent` (reference §2.5, "Not exposed in Swagger").
pub const SDK_TAGS: &[&str] = &["ai.user.userAgent"];

/// How to start an [`IngestServer`].
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Listen address; port 0 picks a free port.
    pub bind: String,
    /// When set, every item's `iKey` must equal it (case-insensitively).
    pub expected_ikey: Option<String>,
    /// When set, accepted items are appended to this file as NDJSON (flushed per request)
    /// and its newest items are loaded into the [`Store`] on start.
    pub store_path: Option<PathBuf>,
    /// When set, only the newest `keep` items and requests stay in the recorded lists
    /// ([`IngestServer::items`], `/_items`; counters go on): for long runs such as the
    /// benchmark and the product. `None` keeps everything (tests).
    pub keep: Option<usize>,
    /// Context tags accepted (as strings) although the schema does not list them, for
    /// SDK output that the real service takes: the Python Azure Monitor exporter's
    /// `ai.user.userAgent` (reference §2.5, "Not exposed in Swagger"). Empty: strict.
    pub tolerated_tags: Vec<String>,
    /// Bounds of the [`Store`] the query API reads (always bounded).
    pub limits: Limits,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            bind: "127.0.0.1:0".to_string(),
            expected_ikey: None,
            store_path: None,
            keep: None,
            tolerated_tags: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Counters over all `track` requests since start (or the last [`IngestServer::clear`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// `track` requests received (control API requests are not counted).
    pub requests: u64,
    /// Items in those requests (0 for an undecodable payload).
    pub items_received: u64,
    /// Items accepted and stored.
    pub items_accepted: u64,
    /// Items that failed validation (schema, size, iKey): a filter bug unless a test
    /// sent them on purpose.
    pub items_rejected: u64,
    /// Valid items refused by an injected fault (not stored).
    pub items_faulted: u64,
    /// The validation messages of rejected items (and of rejected payloads).
    pub rejections: Vec<String>,
    /// Headers of the last `track` request.
    pub last_request_headers: Vec<(String, String)>,
}

/// One `track` request as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedRequest {
    /// Request target, e.g. `/v2.1/track`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body after gzip decoding (the raw body if it could not be decoded).
    pub body: Vec<u8>,
    /// The status answered; 0 when the connection was dropped on purpose.
    pub status_answered: u16,
    /// When it arrived, milliseconds after the endpoint started.
    pub at_ms: u64,
}

/// Everything the endpoint remembers.
#[derive(Default)]
struct Recorded {
    items: Vec<Value>,
    /// MetricData items (aggregates), kept apart: they arrive whenever an interval ends,
    /// so tests that count an exchange's items would see them at random.
    metrics: Vec<Value>,
    stats: IngestStats,
    requests: Vec<ReceivedRequest>,
    fault: Fault,
    /// Requests the current fault still applies to (`None`: until changed).
    fault_left: Option<u32>,
    /// When set, track requests must carry `Authorization: Bearer <one of these>`.
    accepted_tokens: Option<Vec<String>>,
}

/// State shared by the request handler and the test-facing API.
struct Shared {
    started: Instant,
    expected_ikey: Option<String>,
    keep: Option<usize>,
    tolerated_tags: Vec<String>,
    recorded: Mutex<Recorded>,
    items_changed: Condvar,
    /// The product's bounded store (its own lock: queries do not hold up the recorder).
    store: Mutex<Store>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running ingestion endpoint; dropping it stops it.
pub struct IngestServer {
    shared: Arc<Shared>,
    server: Server,
}

impl IngestServer {
    /// Starts the endpoint (loading `store_path` and opening it for appending first).
    pub fn start(cfg: IngestConfig) -> io::Result<IngestServer> {
        let store = match &cfg.store_path {
            Some(path) => Store::open(cfg.limits, path)?,
            None => Store::new(cfg.limits),
        };
        let shared = Arc::new(Shared {
            started: Instant::now(),
            expected_ikey: cfg.expected_ikey,
            keep: cfg.keep,
            tolerated_tags: cfg.tolerated_tags,
            recorded: Mutex::new(Recorded::default()),
            items_changed: Condvar::new(),
            store: Mutex::new(store),
        });
        let handler_state = shared.clone();
        let handler: http::Handler = Arc::new(move |req| control::route(&handler_state, req));
        let server = Server::start(&cfg.bind, handler)?;
        Ok(IngestServer { shared, server })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://<addr>`, handy for building connection strings.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// A connection string that sends to this endpoint:
    /// `InstrumentationKey=<ikey>;IngestionEndpoint=http://<addr>/`.
    pub fn connection_string(&self, ikey: &str) -> String {
        format!("InstrumentationKey={ikey};IngestionEndpoint={}/", self.url())
    }

    /// Accepted items, in arrival order, metric aggregates apart ([`IngestServer::metrics`]).
    pub fn items(&self) -> Vec<Value> {
        self.shared.lock().items.clone()
    }

    /// Accepted MetricData items, in arrival order.
    pub fn metrics(&self) -> Vec<Value> {
        self.shared.lock().metrics.clone()
    }

    /// Waits until `done(metrics)` holds for the stored MetricData items (or the timeout).
    pub fn wait_for_metrics(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_on(timeout, |rec| &rec.metrics, done)
    }

    /// Waits until at least `n` items are stored or `timeout` passes; returns what is stored.
    pub fn wait_for_items(&self, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_until(timeout, |items| items.len() >= n)
    }

    /// Waits until at least `n` stored items have `data.baseType == base_type` (or the
    /// timeout); returns all stored items.
    pub fn wait_for_kind(&self, base_type: &str, n: usize, timeout: Duration) -> Vec<Value> {
        self.wait_until(timeout, |items| of_kind(items, base_type).len() >= n)
    }

    /// Waits until `done(items)` holds for the stored items (or the timeout); returns them.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_on(timeout, |rec| &rec.items, done)
    }

    /// Waits until `done` holds for the list `which` picks (or the timeout); returns it.
    fn wait_on(
        &self,
        timeout: Duration,
        which: impl Fn(&Recorded) -> &Vec<Value>,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut rec = self.shared.lock();
        while !done(which(&rec)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            rec = match self.shared.items_changed.wait_timeout(rec, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        which(&rec).clone()
    }

    /// Requires `Authorization: Bearer <token>` with one of `tokens` (`None`: no check).
    pub fn set_accepted_tokens(&self, tokens: Option<Vec<String>>) {
        self.shared.lock().accepted_tokens = tokens;
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> IngestStats {
        self.shared.lock().stats.clone()
    }

    /// Milliseconds since the endpoint started (the clock of [`ReceivedRequest::at_ms`]).
    pub fn elapsed_ms(&self) -> u64 {
        self.shared.started.elapsed().as_millis() as u64
    }

    /// Every `track` request received, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Runs `f` on the product's store (what the query API reads).
    pub fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.shared.store())
    }

    /// Forgets items, requests and counters (the fault and the store file are kept).
    pub fn clear(&self) {
        clear(&self.shared);
    }

    /// Sets a fault until changed.
    pub fn set_fault(&self, fault: Fault) {
        self.set_fault_for(fault, None);
    }

    /// Sets a fault for the next `count` `track` requests (`None`: until changed),
    /// after which the endpoint behaves normally again.
    pub fn set_fault_for(&self, fault: Fault, count: Option<u32>) {
        set_fault(&self.shared, fault, count);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.shared.lock().fault.clone()
    }
}

fn clear(shared: &Shared) {
    let mut rec = shared.lock();
    rec.items.clear();
    rec.metrics.clear();
    rec.requests.clear();
    rec.stats = IngestStats::default();
    drop(rec);
    shared.store().clear();
}

fn set_fault(shared: &Shared, fault: Fault, count: Option<u32>) {
    let mut rec = shared.lock();
    rec.fault = if count == Some(0) { Fault::None } else { fault };
    rec.fault_left = count;
}

/// Takes the fault for one request, counting down a limited fault.
fn take_fault(shared: &Shared) -> Fault {
    let mut rec = shared.lock();
    let fault = rec.fault.clone();
    if let Some(left) = rec.fault_left {
        let left = left.saturating_sub(1);
        rec.fault_left = Some(left);
        if left == 0 {
            rec.fault = Fault::None;
            rec.fault_left = None;
        }
    }
    fault
}

/// Records one judged `track` request: counters, request log, items, store file.
fn record(shared: &Shared, request: ReceivedRequest, outcome: &Outcome, store: bool) {
    let mut rec = shared.lock();
    let rec = &mut *rec;
    let stats = &mut rec.stats;
    stats.requests += 1;
    stats.items_received += outcome.verdicts.len() as u64;
    for verdict in &outcome.verdicts {
        match verdict {
            payload::Verdict::Accepted(_) if !store => stats.items_faulted += 1,
            payload::Verdict::Accepted(_) => stats.items_accepted += 1,
            payload::Verdict::Invalid(msg) => {
                stats.items_rejected += 1;
                stats.rejections.push(msg.clone());
            }
            payload::Verdict::Faulted(..) => stats.items_faulted += 1,
        }
    }
    stats.rejections.extend(outcome.payload_error.iter().cloned());
    stats.last_request_headers = request.headers.clone();
    keep_rejected(shared, &request.body, outcome);
    rec.requests.push(request);
    if store {
        let accepted: Vec<Value> = outcome.accepted().cloned().collect();
        shared.store().push_all(&accepted, now_ms());
        let (metrics, items): (Vec<Value>, Vec<Value>) = accepted
            .into_iter()
            .partition(|i| i.pointer("/data/baseType").and_then(Value::as_str) == Some("MetricData"));
        rec.items.extend(items);
        rec.metrics.extend(metrics);
        shared.items_changed.notify_all();
    }
    if let Some(keep) = shared.keep {
        trim_front(&mut rec.items, keep);
        trim_front(&mut rec.metrics, keep);
        trim_front(&mut rec.requests, keep);
    }
    trim_front(&mut rec.stats.rejections, MAX_REJECTIONS_KEPT);
}

/// Rejection messages kept (the counter counts them all).
const MAX_REJECTIONS_KEPT: usize = 1000;

fn trim_front<T>(v: &mut Vec<T>, keep: usize) {
    if v.len() > keep {
        v.drain(..v.len() - keep);
    }
}

/// The items with `data.baseType == base_type`.
pub fn of_kind<'a>(items: &'a [Value], base_type: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|i| i.pointer("/data/baseType").and_then(Value::as_str) == Some(base_type))
        .collect()
}

/// Now in milliseconds since the epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Keeps the items that failed validation (and an unusable payload) in the store.
fn keep_rejected(shared: &Shared, body: &[u8], outcome: &Outcome) {
    let invalid = outcome.verdicts.iter().enumerate().filter_map(|(i, v)| match v {
        payload::Verdict::Invalid(msg) => Some((i, msg)),
        _ => None,
    });
    let mut invalid = invalid.peekable();
    if invalid.peek().is_none() && outcome.payload_error.is_none() {
        return;
    }
    let texts = payload::item_texts(body);
    let now = now_ms();
    let mut store = shared.store();
    for (i, msg) in invalid {
        store.reject(now, i, msg, texts.get(i).map_or("", String::as_str));
    }
    if let Some(msg) = &outcome.payload_error {
        store.reject(now, 0, msg, &String::from_utf8_lossy(body));
    }
}
