//! The Envoy the exchanges run on: [`FakeHost`] with header maps held as bytes (so names
//! and values need not be UTF-8, and a map may be a corrupt buffer), one exchange driven
//! through the filter's callbacks as Envoy calls them, and what the filter sent read back
//! (gzip members checked down to their trailer).

use crate::runner::show;
use envoy_appinsights::headers::HeaderMap;
use envoy_appinsights::host::fake::FakeHost;
use envoy_appinsights::host::{
    Attribute, BufferKind, Callout, CalloutId, HeaderMapKind, Host, LocalResponse, MetricKind,
};
use envoy_appinsights::pipeline::plugin::Plugin;
use serde_json::Value;

/// Envoy for one worker: the fake host, with header maps held as bytes (names and values
/// need not be UTF-8) or, now and then, as a corrupt serialized buffer.
pub struct Envoy {
    pub fake: FakeHost,
    pub maps: [Vec<(Vec<u8>, Vec<u8>)>; 3],
    pub raw: [Option<Vec<u8>>; 3],
}

fn slot(kind: HeaderMapKind) -> usize {
    match kind {
        HeaderMapKind::Request => 0,
        HeaderMapKind::Response => 1,
        HeaderMapKind::CalloutResponse => 2,
    }
}

impl Envoy {
    pub fn new() -> Envoy {
        let mut fake = FakeHost::new();
        fake.recording = false;
        Envoy {
            fake,
            maps: Default::default(),
            raw: Default::default(),
        }
    }

    /// The answer to a callout: its headers (`:status` first) and body.
    pub fn answer_with(&mut self, headers: Vec<(Vec<u8>, Vec<u8>)>, body: Vec<u8>) {
        self.maps[2] = headers;
        self.raw[2] = None;
        self.fake.buffers.insert(BufferKind::CalloutResponseBody, body);
    }
}

impl Host for Envoy {
    fn property(&mut self, attribute: Attribute) -> Option<Vec<u8>> {
        self.fake.property(attribute)
    }
    fn header_map(&mut self, map: HeaderMapKind) -> HeaderMap {
        let i = slot(map);
        match &self.raw[i] {
            Some(buf) => HeaderMap::from_serialized(buf.clone()),
            None => HeaderMap::from_serialized(HeaderMap::serialize(
                self.maps[i].iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            )),
        }
    }
    fn set_header(&mut self, map: HeaderMapKind, name: &str, value: &[u8]) {
        let headers = &mut self.maps[slot(map)];
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
        headers.push((name.as_bytes().to_vec(), value.to_vec()));
    }
    fn remove_header(&mut self, map: HeaderMapKind, name: &str) {
        self.maps[slot(map)].retain(|(k, _)| !k.eq_ignore_ascii_case(name.as_bytes()));
    }
    fn buffer(&mut self, buffer: BufferKind, max: usize) -> Option<Vec<u8>> {
        self.fake.buffer(buffer, max)
    }
    fn now_nanos(&mut self) -> u64 {
        self.fake.now_nanos()
    }
    fn dispatch(&mut self, callout: &Callout<'_>) -> Result<CalloutId, String> {
        self.fake.dispatch(callout)
    }
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.fake.define_metric(kind, name)
    }
    fn increment_metric(&mut self, id: u32, delta: i64) {
        self.fake.increment_metric(id, delta)
    }
    fn set_tick_period(&mut self, millis: u64) -> Result<(), String> {
        self.fake.set_tick_period(millis)
    }
    fn done(&mut self) {
        self.fake.done()
    }
    fn memory_bytes(&mut self) -> u64 {
        self.fake.memory_bytes()
    }
    fn random_seed(&mut self) -> [u8; 32] {
        self.fake.random_seed()
    }
    fn environment(&mut self, name: &str) -> Option<String> {
        self.fake.environment(name)
    }
    fn shared_data(&mut self, key: &str) -> Option<Vec<u8>> {
        self.fake.shared_data(key)
    }
    fn set_shared_data(&mut self, key: &str, value: &[u8]) {
        self.fake.set_shared_data(key, value)
    }
    fn shared_data_cas(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.fake.shared_data_cas(key)
    }
    fn set_shared_data_if(&mut self, key: &str, value: &[u8], cas: u32) -> bool {
        self.fake.set_shared_data_if(key, value, cas)
    }
    fn send_response(&mut self, response: &LocalResponse<'_>) {
        self.fake.send_response(response)
    }
}

/// One exchange as Envoy reports it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub request: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request carries secrets the default masking covers (see `exchanges::SECRET`).
    pub secrets: bool,
    /// A corrupt serialized request map, handed over instead of `request`.
    pub corrupt_request: Option<Vec<u8>>,
    pub response: Vec<(Vec<u8>, Vec<u8>)>,
    /// A corrupt serialized response map, handed over instead of `response`.
    pub corrupt_response: Option<Vec<u8>>,
    pub properties: Vec<(Attribute, Vec<u8>)>,
    pub request_body: Vec<Vec<u8>>,
    pub response_body: Vec<Vec<u8>>,
    /// An earlier filter answered: no request headers callback.
    pub no_request_headers: bool,
    /// The client went away: no response callbacks.
    pub no_response: bool,
    pub trailers: bool,
    /// How long the exchange takes (the clock moves on), and whether the root context
    /// ticks after it.
    pub takes: u64,
    pub tick: bool,
}

/// Runs one exchange through the filter's callbacks as Envoy calls them.
pub fn drive_exchange(plugin: &Plugin, envoy: &mut Envoy, e: &Exchange) {
    envoy.maps[0] = e.request.clone();
    envoy.raw[0] = e.corrupt_request.clone();
    envoy.maps[1] = e.response.clone();
    envoy.raw[1] = e.corrupt_response.clone();
    envoy.fake.properties = e.properties.iter().cloned().collect();
    let mut stream = plugin.stream();
    if !e.no_request_headers {
        stream.on_request_headers(envoy, e.request_body.is_empty());
    }
    for (i, chunk) in e.request_body.iter().enumerate() {
        envoy.fake.buffers.insert(BufferKind::RequestBody, chunk.clone());
        stream.on_request_body(envoy, chunk.len(), i + 1 == e.request_body.len());
    }
    if !e.no_response {
        stream.on_response_headers(envoy, e.response_body.is_empty() && !e.trailers);
        for (i, chunk) in e.response_body.iter().enumerate() {
            envoy.fake.buffers.insert(BufferKind::ResponseBody, chunk.clone());
            stream.on_response_body(envoy, chunk.len(), i + 1 == e.response_body.len() && !e.trailers);
        }
        if e.trailers {
            stream.on_response_trailers();
        }
    }
    envoy.fake.now += e.takes;
    stream.on_log(envoy);
}

/// CRC-32 (IEEE), as the gzip trailer holds it: the test's own, table-driven.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |crc, &b| {
        TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// The NDJSON inside a gzip member, its header and trailer checked.
pub fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 18 || body[..4] != [0x1f, 0x8b, 8, 0] {
        return Err(format!(
            "not a gzip member without options: {}",
            show(&body[..body.len().min(16)])
        ));
    }
    let (deflated, trailer) = body[10..].split_at(body.len() - 18);
    let plain = miniz_oxide::inflate::decompress_to_vec(deflated).map_err(|e| format!("inflate: {e:?}"))?;
    let crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
    let len = u32::from_le_bytes(trailer[4..].try_into().unwrap());
    if crc != crc32(&plain) || len != plain.len() as u32 {
        return Err(format!(
            "trailer {crc:#x}/{len} for {} bytes of CRC {:#x}",
            plain.len(),
            crc32(&plain)
        ));
    }
    Ok(plain)
}

/// The logger ids of a configuration.
pub fn loggers_of(config: &Value) -> Vec<String> {
    config["loggers"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The reasons of the `items_dropped_*` stats.
pub const DROP_REASONS: &[&str] = &["buffer_full", "rejected", "too_large", "expired", "shutdown"];

/// What every item becomes, as the Envoy stats say it (the README: "every created item
/// ends up accepted or in one of the `items_dropped_*` counters"). Broken on main as of
/// 3f2f3f8: see `ingestion_answers_keep_items_created_balanced`.
pub const ITEMS_CREATED_BALANCE: &str =
    "items_created = items_accepted + items_dropped_* + buffered_items (README, Envoy stats)";
