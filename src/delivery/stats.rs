//! What happened to the items of one outbox: every item created ends in exactly one of
//! accepted or a `dropped_*` counter once it is no longer buffered. The source of the
//! Envoy stats (`crate::pipeline::stats`).

/// Counters of what happened to items, per outbox (the source of the Envoy stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items written for this logger, queued or not: each ends accepted or in exactly one
    /// `dropped_*` counter once it is no longer buffered.
    pub items_created: u64,
    /// Items another VM of this configuration's predecessor handed over undelivered (a
    /// replaced module's VM goes without its drain): counted here, not in
    /// `items_created`; each ends accepted or dropped like the rest.
    pub items_adopted: u64,
    /// Items handed to Envoy in a callout (retries count again).
    pub items_sent: u64,
    /// Items the service stored.
    pub items_accepted: u64,
    /// Items queued again after a transient failure.
    pub items_retried: u64,
    /// Items dropped for the memory budget: new ones that did not fit, or the oldest
    /// waiting ones, dropped to make room.
    pub dropped_buffer_full: u64,
    /// Items the service refused for good (bad data, quota, no access).
    pub dropped_rejected: u64,
    /// Items over the service's 64 KB limit even when written lean.
    pub dropped_too_large: u64,
    /// Items that became too old to be accepted while waiting to be delivered.
    pub dropped_expired: u64,
    /// Items still buffered when the configuration went and the drain could not deliver
    /// them in time (the service kept refusing, or asked to wait past the drain timeout).
    pub dropped_shutdown: u64,
    /// Items that came out over 64 KB and were sent lean (without captured content).
    pub items_trimmed: u64,
    pub batches_sent: u64,
    /// Bytes of request bodies handed to Envoy (after compression).
    pub bytes_sent: u64,
    /// Callouts Envoy refused to start or that got no HTTP answer.
    pub callout_failures: u64,
    /// Answers that asked the gateway to slow down (429, 439, 503).
    pub throttled: u64,
    /// Answers that sent a batch elsewhere (301, 302, 307, 308 with a `Location`).
    pub redirects: u64,
}
