//! A batch of items: NDJSON lines on their way to the service, with what the outbox needs
//! to know to send it again, and the memory it holds kept to about its bytes.

/// A batch of serialized items.
#[derive(Debug, Default)]
pub struct Batch {
    /// NDJSON, uncompressed (kept for a retry, which may need single lines).
    pub body: Vec<u8>,
    pub items: u32,
    /// When the first item was added (caller's clock, nanoseconds).
    pub(super) opened_at: u64,
    /// Not to be sent before this time (a partial retry's backoff).
    pub(super) not_before: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Redirects followed in a row.
    pub(super) redirects: u32,
}

/// Gives back the spare capacity of a buffer that will wait in the queue, so the memory a
/// batch holds is about the bytes the budget counts.
pub(super) fn fit(body: &mut Vec<u8>) {
    if body.capacity() > body.len() + body.len() / 8 + 4096 {
        body.shrink_to_fit();
    }
}
