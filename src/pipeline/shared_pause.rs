//! `Retry-After` for the whole gateway. Each worker runs its own VM and sends its own
//! batches; when the service tells one of them to wait, the others should not each find
//! out with a request of their own. The pause is written to Envoy's shared data (seen by
//! every worker of the plugin's VM), keyed by where the telemetry goes, and every worker
//! reads it on its tick (one call per logger per tick, none per request).

use super::Pipeline;
use crate::host::Host;

impl Pipeline {
    /// Shares the pauses the service asked for since the last call (after an answer).
    pub fn share_pauses(&mut self, host: &mut impl Host) {
        for s in &mut self.sinks {
            let Some(until) = s.outbox.take_service_pause() else {
                continue;
            };
            if shared_pause(host, &s.pause_key).is_none_or(|known| until > known) {
                host.set_shared_data(&s.pause_key, &until.to_le_bytes());
            }
        }
    }

    /// Adopts the pauses other workers were asked for (on the tick, before sending).
    pub fn adopt_pauses(&mut self, host: &mut impl Host, now: u64) {
        for s in &mut self.sinks {
            if let Some(until) = shared_pause(host, &s.pause_key).filter(|&u| u > now) {
                s.outbox.pause_until(until);
            }
        }
    }
}

/// The pause stored under `key`, unix nanoseconds.
fn shared_pause(host: &mut impl Host, key: &str) -> Option<u64> {
    let bytes: [u8; 8] = host.shared_data(key)?.as_slice().try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}
