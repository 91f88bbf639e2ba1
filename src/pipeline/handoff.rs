//! Undelivered telemetry survives a module replacement. Envoy destroys a replaced
//! module's VM as soon as no exchange uses it, without waiting for its drain (seen in
//! Envoy 1.40, `tests/harness/tests/ecds.rs`); a new configuration of the same module does
//! wait. So a draining VM leaves what it still holds in Envoy's shared data, and a VM of
//! the next configuration takes it over if the draining one did not finish.
//!
//! - When the drain begins, each logger's outbox is written as a record
//!   ([`crate::delivery::handoff`]) under `appinsights.handoff <destination> <vm>`, headed
//!   by the time from which another VM may take it: the drain deadline plus a second. The
//!   key is listed in the destination's index, `appinsights.handoff <destination>` (one
//!   key per line, updated by compare-and-swap).
//! - While the VM drains, each answer rewrites its records with what is left; when the
//!   drain ends (delivered, or given up and counted), they are emptied. A VM that lives
//!   through its drain hands nothing over.
//! - A VM in its first minute looks at the index of each of its loggers' destinations once
//!   a second. A record past its time is taken by compare-and-swap (emptied), so exactly
//!   one VM takes it; its batches are queued like any others and counted in
//!   `items_adopted` (they were counted as created where they were written).
//!
//! A batch whose request was on the wire when the old VM went may arrive twice: across a
//! module replacement delivery is at least once. Shared data belongs to a `vm_id`: the
//! VMs must share one (the shipped configurations name it `appinsights`).

use super::{Notice, Pipeline};
use crate::delivery::handoff;
use crate::host::Host;

const PREFIX: &str = "appinsights.handoff";
/// How long a new VM looks for what its predecessors left.
const LOOK_FOR_NANOS: u64 = 60 * 1_000_000_000;
const LOOK_EVERY_NANOS: u64 = 1_000_000_000;
/// Compare-and-swap attempts on an index before giving up (workers rarely collide).
const CAS_TRIES: usize = 8;

/// This VM's part in handoffs.
#[derive(Debug, Default)]
pub struct Handoff {
    /// Names this VM's records.
    token: String,
    /// Each logger's destination index (made once: the tick reads them without allocating).
    indexes: Vec<String>,
    /// While draining: the record key of each logger that handed something over.
    keys: Vec<Option<String>>,
    /// When other VMs may take this VM's records.
    take_after: u64,
    /// Until when, and from when next, to look for other VMs' records.
    look_until: u64,
    next_look: u64,
}

impl Handoff {
    /// `pause_keys`: each logger's shared pause key, which names its destination.
    pub fn new<'a>(token: String, pause_keys: impl Iterator<Item = &'a str>) -> Handoff {
        Handoff {
            token,
            indexes: pause_keys.map(index_key).collect(),
            ..Handoff::default()
        }
    }

    fn index(&self, sink: usize) -> &str {
        self.indexes.get(sink).map_or("", String::as_str)
    }
}

impl Pipeline {
    /// The drain begins: every logger's undelivered telemetry goes to shared data, for
    /// another VM to take after `take_after` if this one does not deliver it first.
    pub fn hand_off(&mut self, host: &mut impl Host, take_after: u64) {
        self.handoff.take_after = take_after;
        self.handoff.keys = vec![None; self.sinks.len()];
        for i in 0..self.sinks.len() {
            let Some(sink) = self.sinks.get(i) else { continue };
            let record = sink.outbox.record();
            if record.is_empty() {
                continue;
            }
            let index = self.handoff.index(i);
            let key = format!("{index} {}", self.handoff.token);
            host.set_shared_data(&key, &with_time(take_after, &record));
            update_index(host, index, |keys| keys.push(key.clone()));
            if let Some(slot) = self.handoff.keys.get_mut(i) {
                *slot = Some(key);
            }
        }
    }

    /// While draining: the records say what is still undelivered.
    pub fn refresh_handoff(&mut self, host: &mut impl Host) {
        for (sink, key) in self.sinks.iter().zip(&self.handoff.keys) {
            let Some(key) = key else { continue };
            let record = sink.outbox.record();
            let value = if record.is_empty() {
                Vec::new()
            } else {
                with_time(self.handoff.take_after, &record)
            };
            host.set_shared_data(key, &value);
        }
    }

    /// The drain ended: nothing is left for another VM.
    pub fn withdraw_handoff(&mut self, host: &mut impl Host) {
        let keys = std::mem::take(&mut self.handoff.keys);
        for (i, key) in keys.into_iter().enumerate() {
            let Some(key) = key else { continue };
            host.set_shared_data(&key, &[]);
            update_index(host, self.handoff.index(i), |keys| keys.retain(|k| *k != key));
        }
    }

    /// In a VM's first minute, once a second: takes over what replaced VMs left for its
    /// loggers' destinations.
    pub fn adopt_handoffs(&mut self, host: &mut impl Host, now: u64) -> Vec<Notice> {
        if self.handoff.look_until == 0 {
            self.handoff.look_until = now.saturating_add(LOOK_FOR_NANOS);
        }
        if now >= self.handoff.look_until || now < self.handoff.next_look {
            return Vec::new();
        }
        self.handoff.next_look = now.saturating_add(LOOK_EVERY_NANOS);
        let mut notices = Vec::new();
        for (i, sink) in self.sinks.iter_mut().enumerate() {
            let index = self.handoff.index(i);
            let Some((listed, _)) = host.shared_data_cas(index) else {
                continue;
            };
            let mut done = Vec::new();
            for key in String::from_utf8_lossy(&listed).lines().filter(|k| !k.is_empty()) {
                match take(host, key, now) {
                    Taken::Wait => continue,
                    Taken::Nothing => {}
                    Taken::Batches(batches) => {
                        let items: u32 = batches.iter().map(|b| b.items).sum();
                        sink.outbox.adopt(batches);
                        notices.push(Notice::Info(format!(
                            "logger {}: took over {items} undelivered items from a replaced VM",
                            sink.id
                        )));
                    }
                }
                done.push(key.to_string());
            }
            if !done.is_empty() {
                update_index(host, index, |keys| keys.retain(|k| !done.contains(k)));
            }
        }
        notices
    }
}

enum Taken {
    /// Its VM may still deliver it.
    Wait,
    /// Empty, unreadable, or another VM took it.
    Nothing,
    Batches(Vec<handoff::HandedBatch>),
}

/// Takes the record at `key` if its time has come (compare-and-swap: one taker).
fn take(host: &mut impl Host, key: &str, now: u64) -> Taken {
    let Some((value, cas)) = host.shared_data_cas(key) else {
        return Taken::Nothing;
    };
    let Some((head, record)) = value.split_first_chunk::<8>() else {
        return Taken::Nothing;
    };
    if now < u64::from_le_bytes(*head) {
        return Taken::Wait;
    }
    if !host.set_shared_data_if(key, &[], cas) {
        return Taken::Nothing;
    }
    match handoff::decode(record) {
        Some(batches) => Taken::Batches(batches),
        None => Taken::Nothing,
    }
}

/// `appinsights.handoff <destination>` for a logger's shared pause key (cluster, authority
/// and path: the same for every configuration sending to the same place).
fn index_key(pause_key: &str) -> String {
    let destination = pause_key.split_once(' ').map_or(pause_key, |(_, d)| d);
    format!("{PREFIX} {destination}")
}

fn with_time(take_after: u64, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + record.len());
    value.extend_from_slice(&take_after.to_le_bytes());
    value.extend_from_slice(record);
    value
}

/// Changes the list of keys at `index` by compare-and-swap (a few tries).
fn update_index(host: &mut impl Host, index: &str, change: impl Fn(&mut Vec<String>)) {
    for _ in 0..CAS_TRIES {
        let (value, cas) = host.shared_data_cas(index).unwrap_or_default();
        let mut keys: Vec<String> = String::from_utf8_lossy(&value)
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        change(&mut keys);
        if host.set_shared_data_if(index, keys.join("\n").as_bytes(), cas) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::host::fake::{drive, FakeHost};
    use crate::host::shared_store::SharedStore;
    use crate::host::BufferKind;
    use crate::pipeline::plugin::Plugin;
    use serde_json::json;

    const S: u64 = 1_000_000_000;

    /// A worker of a gateway whose shared data is `store` (gzip off: bodies readable).
    fn vm(store: &SharedStore, role: &str) -> (Plugin, FakeHost) {
        let config = json!({"loggers": {"a": {"connection_string":
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/", "cluster": "ingest"}},
            "cloud_role": role, "delivery": {"gzip": false, "flush_interval_ms": 60000, "drain_timeout_ms": 2000}});
        let mut host = FakeHost::benchmark_exchange();
        host.shared = store.clone();
        let mut plugin = Plugin::new(1);
        assert!(host.configure(&mut plugin, &config.to_string()));
        (plugin, host)
    }

    fn sent_roles(host: &FakeHost) -> Vec<String> {
        host.callouts
            .iter()
            .flat_map(|c| {
                String::from_utf8_lossy(&c.body)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter(|i| i["data"]["baseType"] == "RequestData")
            .map(|i| i["tags"]["ai.cloud.role"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn answer_all(plugin: &mut Plugin, host: &mut FakeHost) {
        let ids: Vec<u32> = host.callouts.iter().map(|c| c.id).collect();
        let body = br#"{"itemsReceived":1,"itemsAccepted":1,"errors":[]}"#;
        for id in ids {
            host.callout_response_headers = vec![(":status".into(), "200".into())];
            host.buffers.insert(BufferKind::CalloutResponseBody, body.to_vec());
            plugin.answer(host, id, 1, body.len());
        }
    }

    #[test]
    fn what_a_destroyed_vm_held_is_taken_over_once_after_its_drain_deadline() {
        let store = SharedStore::default();
        let (mut old, mut old_host) = vm(&store, "old");
        for _ in 0..3 {
            drive(&mut old.stream(), &mut old_host, FakeHost::BENCHMARK_BODIES);
        }
        assert!(!old.done(&mut old_host), "draining: its batch waits a tick");
        assert!(old_host.callouts.is_empty());
        drop(old); // Envoy destroyed it at once

        let (mut a, mut host_a) = vm(&store, "new");
        let (mut b, mut host_b) = vm(&store, "new");
        host_a.now = old_host.now + S;
        host_b.now = old_host.now + S;
        a.tick(&mut host_a);
        b.tick(&mut host_b);
        assert!(
            host_a.callouts.is_empty() && host_b.callouts.is_empty(),
            "not before the old drain's deadline"
        );
        for _ in 0..4 {
            host_a.now += S;
            host_b.now += S;
            a.tick(&mut host_a);
            b.tick(&mut host_b);
        }
        // Taken over by one of the two, sent at the new VM's next flush (draining now).
        let idle = [a.done(&mut host_a), b.done(&mut host_b)];
        assert_eq!(
            idle.iter().filter(|i| **i).count(),
            1,
            "one took it over, one has nothing"
        );
        let mut roles = sent_roles(&host_a);
        roles.extend(sent_roles(&host_b));
        assert_eq!(roles, ["old", "old", "old"], "each item once");
    }

    #[test]
    fn what_a_living_vm_gave_up_at_its_deadline_is_counted_there_not_taken_over() {
        let store = SharedStore::default();
        let (mut old, mut old_host) = vm(&store, "old");
        drive(&mut old.stream(), &mut old_host, FakeHost::BENCHMARK_BODIES);
        assert!(!old.done(&mut old_host));
        old.tick(&mut old_host);
        // The service fails until the deadline: the drain gives up and counts the item.
        let id = old_host.callouts.last().unwrap().id;
        old_host.callout_response_headers = vec![(":status".into(), "503".into())];
        old.answer(&mut old_host, id, 1, 0);
        old_host.now += 3 * S;
        old.tick(&mut old_host);
        assert!(old_host.done_called, "the drain ended");

        let (mut new, mut host) = vm(&store, "new");
        host.now = old_host.now;
        for _ in 0..10 {
            host.now += S;
            new.tick(&mut host);
        }
        new.done(&mut host);
        assert!(
            sent_roles(&host).is_empty(),
            "counted as dropped by the old VM: not sent again"
        );
    }

    #[test]
    fn a_vm_that_finishes_its_drain_leaves_nothing_behind() {
        let store = SharedStore::default();
        let (mut old, mut old_host) = vm(&store, "old");
        drive(&mut old.stream(), &mut old_host, FakeHost::BENCHMARK_BODIES);
        assert!(!old.done(&mut old_host));
        old.tick(&mut old_host);
        answer_all(&mut old, &mut old_host);
        assert_eq!(sent_roles(&old_host), ["old"]);

        let (mut new, mut host) = vm(&store, "new");
        host.now = old_host.now;
        for _ in 0..10 {
            host.now += S;
            new.tick(&mut host);
        }
        assert!(new.done(&mut host), "nothing taken over, nothing to deliver");
        assert!(sent_roles(&host).is_empty(), "delivered by the old VM: not again");
    }
}
