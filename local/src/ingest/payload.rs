//! Turning one `track` request into per-item verdicts and a `TrackResponse`.
//!
//! Mirrors the service (reference §1.2, §4): the body is a JSON array or NDJSON,
//! optionally gzip-compressed; each item is judged on its own; the answer is 200
//! (all accepted), 206 (some) or the first item's status (none).

use std::io::Read;
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;
use serde_json::{json, Value};

use crate::http::{Request, Response};
use crate::schema;

/// Largest decompressed body: a guard against gzip bombs, far above any real batch.
const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// What happened to one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Valid: stored and counted as accepted.
    Accepted(Value),
    /// Failed validation (schema, size or iKey): per-item 400.
    Invalid(String),
    /// Valid but refused by an injected fault with this status.
    Faulted(u16, String),
}

/// The judgement of one request.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Per item, in payload order (the index in `errors`).
    pub verdicts: Vec<Verdict>,
    /// Set when the payload as a whole is unusable (bad gzip, bad array, empty).
    pub payload_error: Option<String>,
}

impl Outcome {
    fn rejected(msg: String) -> Outcome {
        Outcome {
            verdicts: Vec::new(),
            payload_error: Some(msg),
        }
    }

    pub fn accepted(&self) -> impl Iterator<Item = &Value> {
        self.verdicts.iter().filter_map(|v| match v {
            Verdict::Accepted(value) => Some(value),
            _ => None,
        })
    }

    /// `(index, statusCode, message)` of every item that was not accepted.
    pub fn errors(&self) -> Vec<(usize, u16, &str)> {
        self.verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| error_entry(i, v))
            .collect()
    }

    /// 200 if all accepted, 206 if some, else the first item's status (400 for a bad payload).
    pub fn status(&self) -> u16 {
        let errors = self.errors();
        match (&self.payload_error, errors.first()) {
            (Some(_), _) => 400,
            (None, None) => 200,
            (None, Some(_)) if self.accepted().next().is_some() => 206,
            (None, Some((_, code, _))) => *code,
        }
    }

    /// The `TrackResponse` body (reference §4.1).
    pub fn body(&self) -> Value {
        let mut errors: Vec<Value> = self
            .errors()
            .into_iter()
            .map(|(index, code, message)| json!({"index": index, "statusCode": code, "message": message}))
            .collect();
        if let Some(msg) = &self.payload_error {
            errors.push(json!({"index": 0, "statusCode": 400, "message": msg}));
        }
        json!({
            "itemsReceived": self.verdicts.len(),
            "itemsAccepted": self.accepted().count(),
            "errors": errors,
        })
    }

    /// The HTTP response for this outcome.
    pub fn response(&self) -> Response {
        Response::json(self.status(), &self.body())
    }
}

fn error_entry(i: usize, v: &Verdict) -> Option<(usize, u16, &str)> {
    match v {
        Verdict::Accepted(_) => None,
        Verdict::Invalid(msg) => Some((i, 400, msg.as_str())),
        Verdict::Faulted(code, msg) => Some((i, *code, msg.as_str())),
    }
}

/// The request body with any `Content-Encoding: gzip` removed.
pub fn decode_body(req: &Request) -> Result<Vec<u8>, String> {
    let encoding = req.header("content-encoding").map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(req.body.clone()),
        Some("gzip") | Some("x-gzip") => gunzip(&req.body),
        Some(other) => Err(format!("unsupported content-encoding {other:?}")),
    }
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if out.len() as u64 > MAX_DECODED_BYTES {
        return Err("decompressed body too large".to_string());
    }
    Ok(out)
}

/// [`judge_tolerating`] with no tolerated tags.
#[cfg(test)]
pub fn judge(body: &[u8], expected_ikey: Option<&str>, now: SystemTime) -> Outcome {
    judge_tolerating(body, expected_ikey, &[], now)
}

/// Judges every item of a decoded body. `expected_ikey`, when set, must match each
/// item's `iKey` case-insensitively; the context tags `tolerated` (string values) are
/// accepted beyond the schema.
pub fn judge_tolerating(body: &[u8], expected_ikey: Option<&str>, tolerated: &[String], now: SystemTime) -> Outcome {
    let judged = match first_non_space(body) {
        None => return Outcome::rejected("no telemetry items in the payload".to_string()),
        Some(b'[') => judge_array(body, tolerated, now),
        Some(_) => Ok(judge_ndjson(body, tolerated, now)),
    };
    match judged {
        Ok(verdicts) => Outcome {
            verdicts: check_ikeys(verdicts, expected_ikey),
            payload_error: None,
        },
        Err(msg) => Outcome::rejected(msg),
    }
}

fn first_non_space(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Validates `item` as if the tolerated tags (where strings) were not there.
fn validate(item: &Value, tolerated: &[String], now: SystemTime) -> Result<(), String> {
    let has_tolerated = item
        .get("tags")
        .and_then(Value::as_object)
        .is_some_and(|tags| tolerated.iter().any(|t| tags.get(t).is_some_and(Value::is_string)));
    if !has_tolerated {
        return schema::validate_envelope(item, now);
    }
    let mut stripped = item.clone();
    if let Some(tags) = stripped.get_mut("tags").and_then(Value::as_object_mut) {
        tags.retain(|k, v| !(v.is_string() && tolerated.iter().any(|t| t == k)));
    }
    schema::validate_envelope(&stripped, now)
}

fn judge_array(body: &[u8], tolerated: &[String], now: SystemTime) -> Result<Vec<Verdict>, String> {
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| format!("invalid JSON array: {e}"))?;
    let judge_one = |item: Value| {
        let size = item.to_string().len();
        if size > schema::MAX_ITEM_BYTES {
            return Verdict::Invalid(format!(
                "item is {size} bytes, over the {}-byte limit",
                schema::MAX_ITEM_BYTES
            ));
        }
        match validate(&item, tolerated, now) {
            Ok(()) => Verdict::Accepted(item),
            Err(msg) => Verdict::Invalid(msg),
        }
    };
    Ok(items.into_iter().map(judge_one).collect())
}

/// One item per non-empty line; the index counts items, not blank lines.
fn judge_ndjson(body: &[u8], tolerated: &[String], now: SystemTime) -> Vec<Verdict> {
    let judge_line = |line: &[u8]| {
        if tolerated.is_empty() {
            return schema::validate_line(line, now);
        }
        if line.len() > schema::MAX_ITEM_BYTES {
            return schema::validate_line(line, now); // the size verdict
        }
        let item: Value = serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
        validate(&item, tolerated, now).map(|()| item)
    };
    body.split(|b| *b == b'\n')
        .map(|line| line.trim_ascii())
        .filter(|line| !line.is_empty())
        .map(|line| match judge_line(line) {
            Ok(item) => Verdict::Accepted(item),
            Err(msg) => Verdict::Invalid(msg),
        })
        .collect()
}

/// The text of each item of a decoded body, by index (for keeping rejected items).
pub fn item_texts(body: &[u8]) -> Vec<String> {
    if first_non_space(body) == Some(b'[') {
        return match serde_json::from_slice::<Vec<Value>>(body) {
            Ok(items) => items.iter().map(Value::to_string).collect(),
            Err(_) => Vec::new(),
        };
    }
    body.split(|b| *b == b'\n')
        .map(|line| line.trim_ascii())
        .filter(|line| !line.is_empty())
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect()
}

fn check_ikeys(verdicts: Vec<Verdict>, expected: Option<&str>) -> Vec<Verdict> {
    let Some(expected) = expected else { return verdicts };
    let matches = |item: &Value| {
        item.get("iKey")
            .and_then(Value::as_str)
            .is_some_and(|k| k.eq_ignore_ascii_case(expected))
    };
    verdicts
        .into_iter()
        .map(|v| match v {
            Verdict::Accepted(item) if !matches(&item) => Verdict::Invalid("invalid instrumentation key".to_string()),
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn item(ikey: &str) -> String {
        let mut item = crate::schema::example_envelope("EventData", SystemTime::now()).unwrap();
        item["iKey"] = json!(ikey);
        item.to_string()
    }

    #[test]
    fn ndjson_skips_blank_lines_and_indexes_items() {
        let body = format!("{}\n\n{{bad\r\n{}\n", item("k"), item("k"));
        let out = judge(body.as_bytes(), None, SystemTime::now());
        assert_eq!(out.verdicts.len(), 3);
        assert_eq!(out.status(), 206);
        assert_eq!(out.errors().first().map(|e| (e.0, e.1)), Some((1, 400)));
    }

    #[test]
    fn arrays_are_accepted_and_a_broken_array_is_a_payload_error() {
        let body = format!("[{},{}]", item("k"), item("k"));
        assert_eq!(judge(body.as_bytes(), None, SystemTime::now()).status(), 200);
        let broken = judge(b"[{", None, SystemTime::now());
        assert_eq!(
            (broken.status(), broken.body()["itemsReceived"].as_u64()),
            (400, Some(0))
        );
    }

    #[test]
    fn empty_bodies_and_text_are_400() {
        assert_eq!(judge(b" \n ", None, SystemTime::now()).status(), 400);
        let text = judge(b"hello", None, SystemTime::now());
        assert_eq!(text.status(), 400);
        assert_eq!(text.body()["errors"][0]["index"], 0);
    }

    #[test]
    fn ikeys_compare_case_insensitively() {
        let body = format!("{}\n{}", item("ABC-def"), item("other"));
        let out = judge(body.as_bytes(), Some("abc-DEF"), SystemTime::now());
        assert_eq!(out.errors(), vec![(1, 400, "invalid instrumentation key")]);
    }

    #[test]
    fn gzip_is_decoded_and_garbage_gzip_is_an_error() {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"hello").unwrap();
        let req = Request {
            headers: vec![("Content-Encoding".into(), "GZIP".into())],
            body: enc.finish().unwrap(),
            ..Request::default()
        };
        assert_eq!(decode_body(&req), Ok(b"hello".to_vec()));
        let bad = Request {
            body: b"nope".to_vec(),
            ..req
        };
        assert!(decode_body(&bad).unwrap_err().starts_with("invalid gzip body"));
    }

    #[test]
    fn when_nothing_is_accepted_the_first_items_status_wins() {
        let out = Outcome {
            verdicts: vec![Verdict::Faulted(503, "x".into()), Verdict::Invalid("y".into())],
            payload_error: None,
        };
        assert_eq!(out.status(), 503);
        assert_eq!(out.body()["itemsAccepted"], 0);
    }
}
