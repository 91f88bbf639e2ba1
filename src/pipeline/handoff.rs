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
//!   key per line; compare-and-swap, read back until the key is there).
//! - While the VM drains, each answer rewrites its records with what is left (the time
//!   header stays, so nobody takes or forgets a record early); when the drain ends
//!   (delivered, or given up and counted), they are emptied. A VM that lives through its
//!   drain hands nothing over.
//! - Every VM looks at the index of each of its loggers' destinations once a second. A
//!   record past its time is taken by compare-and-swap (emptied), so exactly one VM takes
//!   it, if its memory budget holds it (else it is left for another worker); its batches
//!   are queued like any others and counted in `items_adopted` (they were counted as
//!   created where they were written).
//!
//! Batches in flight when the old VM goes are handed over too: Envoy cancels the old VM's
//! calls, and a request that reached the service before may be stored twice (at least
//! once, rather than lost without a count). Shared data belongs to a `vm_id`: the VMs must
//! share one (the shipped configurations name it `appinsights`). The destination names the
//! cluster, the endpoint and the instrumentation key, so only a logger of the same
//! resource takes a record.

use super::{Notice, Pipeline};
use crate::delivery::handoff;
use crate::host::Host;

const PREFIX: &str = "appinsights.handoff";
const LOOK_EVERY_NANOS: u64 = 1_000_000_000;
/// Compare-and-swap attempts on an index before giving up (each failure is another
/// worker's success: this bounds the workers updating one index at the same moment).
const CAS_TRIES: usize = 64;

/// This VM's part in handoffs.
#[derive(Debug, Default)]
pub struct Handoff {
    /// Names this VM's records.
    token: String,
    /// Each logger's destination index (made once: the tick reads them without allocating).
    indexes: Vec<String>,
    /// While draining: the record key of each logger that handed something over, and what
    /// it last wrote there (items, bytes), not to write the same again.
    keys: Vec<Option<(String, (u64, usize))>>,
    /// When other VMs may take this VM's records.
    take_after: u64,
    next_look: u64,
}

impl Handoff {
    /// `destinations`: each logger's shared pause key (cluster, endpoint) and its
    /// instrumentation key.
    pub fn new<'a>(token: String, destinations: impl Iterator<Item = (&'a str, &'a str)>) -> Handoff {
        Handoff {
            token,
            indexes: destinations.map(|(pause, ikey)| index_key(pause, ikey)).collect(),
            ..Handoff::default()
        }
    }

    fn index(&self, sink: usize) -> &str {
        self.indexes.get(sink).map_or("", String::as_str)
    }
}

impl Pipeline {
    /// At configuration: each destination's index exists, so that every later change to it
    /// is a compare-and-swap (Envoy writes a key that does not exist yet without
    /// comparing: two VMs creating it at once would overwrite each other's keys).
    pub fn prepare_handoff(&mut self, host: &mut impl Host) {
        for index in &self.handoff.indexes {
            if host.shared_data_cas(index).is_none() {
                host.set_shared_data_if(index, b"", 0);
            }
        }
    }

    /// The drain begins: every logger's undelivered telemetry goes to shared data, for
    /// another VM to take after `take_after` if this one does not deliver it first.
    pub fn hand_off(&mut self, host: &mut impl Host, take_after: u64) -> Vec<Notice> {
        self.handoff.take_after = take_after;
        self.handoff.keys = vec![None; self.sinks.len()];
        let mut notices = Vec::new();
        for i in 0..self.sinks.len() {
            let Some(sink) = self.sinks.get(i) else { continue };
            let record = sink.outbox.record(take_after);
            if record.is_empty() {
                continue;
            }
            let index = self.handoff.index(i);
            let key = format!("{index} {}", self.handoff.token);
            host.set_shared_data(&key, &record);
            if !update_index(host, index, |keys| keys.push(key.clone()), |keys| keys.contains(&key)) {
                notices.push(Notice::Warn(format!(
                    "logger {}: could not list its undelivered telemetry for the next VM (shared data busy)",
                    sink.id
                )));
            }
            let held = (sink.outbox.buffered_items(), sink.outbox.buffered_bytes());
            if let Some(slot) = self.handoff.keys.get_mut(i) {
                *slot = Some((key, held));
            }
        }
        notices
    }

    /// While draining: the records say what is still undelivered (rewritten only when
    /// that changed).
    pub fn refresh_handoff(&mut self, host: &mut impl Host) {
        let take_after = self.handoff.take_after;
        for (sink, slot) in self.sinks.iter().zip(self.handoff.keys.iter_mut()) {
            let Some((key, written)) = slot else { continue };
            let held = (sink.outbox.buffered_items(), sink.outbox.buffered_bytes());
            if held == *written {
                continue;
            }
            *written = held;
            // Empty or not, the time header stays: the record is not taken or delisted early.
            let mut record = sink.outbox.record(take_after);
            if record.is_empty() {
                record = take_after.to_le_bytes().to_vec();
            }
            host.set_shared_data(key, &record);
        }
    }

    /// The drain ended: nothing is left for another VM.
    pub fn withdraw_handoff(&mut self, host: &mut impl Host) {
        let keys = std::mem::take(&mut self.handoff.keys);
        for (i, slot) in keys.into_iter().enumerate() {
            let Some((key, _)) = slot else { continue };
            host.set_shared_data(&key, &[]);
            update_index(
                host,
                self.handoff.index(i),
                |keys| keys.retain(|k| *k != key),
                |keys| !keys.contains(&key),
            );
        }
    }

    /// Once a second: takes over what replaced VMs left for this VM's loggers'
    /// destinations (one read per logger while nothing is listed).
    pub fn adopt_handoffs(&mut self, host: &mut impl Host, now: u64) -> Vec<Notice> {
        if now < self.handoff.next_look {
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
                let room = sink.outbox.room();
                match take(host, key, now, room) {
                    Taken::Wait | Taken::NoRoom => continue,
                    Taken::Nothing => {}
                    Taken::Batches(batches) => {
                        let items: u64 = batches.iter().map(|b| u64::from(b.items)).sum();
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
                update_index(
                    host,
                    index,
                    |keys| keys.retain(|k| !done.contains(k)),
                    |keys| keys.iter().all(|k| !done.contains(k)),
                );
            }
        }
        notices
    }
}

enum Taken {
    /// Its VM may still deliver it.
    Wait,
    /// More than this VM's buffer can hold now: another worker, or a later look, takes it.
    NoRoom,
    /// Empty, unreadable, or another VM took it.
    Nothing,
    Batches(Vec<handoff::HandedBatch>),
}

/// Takes the record at `key` if its time has come and `room` bytes hold it
/// (compare-and-swap: one taker).
fn take(host: &mut impl Host, key: &str, now: u64, room: usize) -> Taken {
    let Some((value, cas)) = host.shared_data_cas(key) else {
        return Taken::Nothing;
    };
    let Some((head, record)) = value.split_first_chunk::<8>() else {
        return Taken::Nothing;
    };
    if now < u64::from_le_bytes(*head) {
        return Taken::Wait;
    }
    if record.len() > room {
        return Taken::NoRoom;
    }
    if !host.set_shared_data_if(key, &[], cas) {
        return Taken::Nothing;
    }
    match handoff::decode(record) {
        Some(batches) => Taken::Batches(batches),
        None => Taken::Nothing,
    }
}

/// `appinsights.handoff <destination> <instrumentation key>`, made once per configuration:
/// the destination from a logger's shared pause key (cluster, authority and path).
fn index_key(pause_key: &str, ikey: &str) -> String {
    let destination = pause_key.split_once(' ').map_or(pause_key, |(_, d)| d);
    format!("{PREFIX} {destination} {ikey}")
}

/// Changes the list of keys at `index` by compare-and-swap until `holds` says the change
/// is there (a key that does not exist yet is written without comparison by Envoy, so
/// two first writers can overwrite each other: reading back catches that). `false`: it
/// could not be made.
fn update_index(
    host: &mut impl Host,
    index: &str,
    change: impl Fn(&mut Vec<String>),
    holds: impl Fn(&[String]) -> bool,
) -> bool {
    let read = |host: &mut _| -> (Vec<String>, u32) {
        let (value, cas) = Host::shared_data_cas(host, index).unwrap_or_default();
        let keys = String::from_utf8_lossy(&value)
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        (keys, cas)
    };
    for _ in 0..CAS_TRIES {
        let (mut keys, cas) = read(host);
        if holds(&keys) {
            return true;
        }
        change(&mut keys);
        host.set_shared_data_if(index, keys.join("\n").as_bytes(), cas);
    }
    holds(&read(host).0)
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
        host.seed = role.bytes().fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
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
        assert_eq!(
            old_host.stat("appinsights.a.items_created"),
            Some(8),
            "its stats are out (3 exchanges, 2 aggregates)"
        );
        assert_eq!(
            old_host.stat("appinsights.a.buffered_items"),
            Some(0),
            "no gauge left behind by a VM Envoy destroys"
        );
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

    fn settle(vms: &mut [(&mut Plugin, &mut FakeHost)], seconds: u64) {
        for _ in 0..seconds * 10 {
            for (p, h) in vms.iter_mut() {
                h.now += S / 10;
                p.tick(&mut **h);
            }
        }
    }

    #[test]
    fn a_record_left_long_after_the_new_vm_started_is_taken_all_the_same() {
        let store = SharedStore::default();
        let (mut new, mut host) = vm(&store, "new");
        new.tick(&mut host);
        let (mut old, mut old_host) = vm(&store, "old");
        old_host.now = host.now + 70 * S; // a long-lived stream kept it 70 s longer
        drive(&mut old.stream(), &mut old_host, FakeHost::BENCHMARK_BODIES);
        assert!(!old.done(&mut old_host));
        drop(old);
        host.now = old_host.now;
        settle(&mut [(&mut new, &mut host)], 5);
        new.done(&mut host);
        assert_eq!(sent_roles(&host), ["old"]);
    }

    #[test]
    fn several_workers_handing_off_are_all_listed() {
        let store = SharedStore::default();
        let mut olds: Vec<(Plugin, FakeHost)> = ["w1", "w2", "w3"].iter().map(|r| vm(&store, r)).collect();
        for (p, h) in &mut olds {
            drive(&mut p.stream(), h, FakeHost::BENCHMARK_BODIES);
        }
        // Each worker lists its record by compare-and-swap on an index that exists from
        // configuration on (so a stale read fails and is read again).
        for (p, h) in &mut olds {
            assert!(!p.done(h));
        }
        let at = olds[0].1.now;
        drop(olds);
        let (mut new, mut host) = vm(&store, "new");
        host.now = at;
        settle(&mut [(&mut new, &mut host)], 5);
        new.done(&mut host);
        let mut roles = sent_roles(&host);
        roles.sort();
        assert_eq!(roles, ["w1", "w2", "w3"]);
    }

    #[test]
    fn a_record_emptied_while_its_batches_fly_is_not_forgotten_when_they_come_back() {
        let store = SharedStore::default();
        let (mut old, mut old_host) = vm(&store, "old");
        drive(&mut old.stream(), &mut old_host, FakeHost::BENCHMARK_BODIES);
        assert!(!old.done(&mut old_host));
        let (mut new, mut host) = vm(&store, "new");
        host.now = old_host.now;
        old.tick(&mut old_host); // sent: in flight
        settle(&mut [(&mut new, &mut host)], 1); // the new VM looks meanwhile
        let id = old_host.callouts.last().unwrap().id;
        old_host.callout_response_headers = vec![(":status".into(), "503".into())];
        old.answer(&mut old_host, id, 1, 0); // back in the queue
        drop(old); // and then Envoy destroys it
        settle(&mut [(&mut new, &mut host)], 5);
        new.done(&mut host);
        assert_eq!(sent_roles(&host), ["old"]);
    }

    #[test]
    fn a_short_drain_still_sends_before_its_deadline() {
        let store = SharedStore::default();
        let (mut p, mut h) = vm(&store, "old");
        let config = json!({"loggers": {"a": {"connection_string":
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/", "cluster": "ingest"}},
            "delivery": {"gzip": false, "flush_interval_ms": 60000, "drain_timeout_ms": 50}});
        assert!(h.configure(&mut p, &config.to_string()));
        drive(&mut p.stream(), &mut h, FakeHost::BENCHMARK_BODIES);
        assert!(!p.done(&mut h));
        h.now += 100_000_000; // the next tick
        p.tick(&mut h);
        assert_eq!(h.callouts.len(), 1, "sent on the first tick, within the drain's time");
    }
}
