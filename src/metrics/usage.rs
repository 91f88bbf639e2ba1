//! Placeholder until the streaming usage reader lands.

/// Token counts of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub total: u64,
}

#[derive(Debug, Default)]
pub struct UsageScanner {}

impl UsageScanner {
    pub fn new() -> Self {
        UsageScanner {}
    }
    pub fn push(&mut self, _chunk: &[u8]) {}
    pub fn usage(&self) -> Option<Usage> {
        None
    }
}
