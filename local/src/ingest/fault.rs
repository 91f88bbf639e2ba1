//! Injected faults: how the endpoint misbehaves, set from tests or over `POST /_fault`.

use std::time::Duration;

use serde_json::Value;

use super::payload::{Outcome, Verdict};
use crate::http::{Reply, Response};

/// A way for the endpoint to misbehave on `track` requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave like the real service.
    #[default]
    None,
    /// Answer `code` to every request, accepting nothing (items are not stored),
    /// with `Retry-After` if given.
    Status { code: u16, retry_after: Option<String> },
    /// Refuse the items at these indexes with `code` (206 if others are accepted;
    /// the first item's code if none is); the rest are judged normally.
    Partial { fail_indexes: Vec<usize>, code: u16 },
    /// Wait, then behave normally (items are stored even if the client gave up).
    Slow(Duration),
    /// Close the connection without answering (items are not stored).
    Drop,
    /// Answer `code` with `Location: location` (a redirect; items are not stored).
    Redirect { code: u16, location: String },
    /// Process normally (items are stored) but answer `code` (a 2xx other than 200/206,
    /// say) with no body.
    Stored { code: u16 },
    /// Process normally (items are stored) but answer 200 with a non-JSON body.
    Garbage,
    /// Process normally (items are stored) but answer 200 with a cut-off JSON body.
    Truncated,
}

/// Message carried by items refused by [`Fault::Status`] or [`Fault::Partial`].
pub const FAULT_MESSAGE: &str = "injected fault";

impl Fault {
    /// Applies the item-level part of the fault to a judged request.
    pub(crate) fn apply_to_items(&self, outcome: &mut Outcome) {
        let refuse = |code: u16, v: &mut Verdict| {
            if matches!(v, Verdict::Accepted(_)) {
                *v = Verdict::Faulted(code, FAULT_MESSAGE.to_string());
            }
        };
        match self {
            Fault::Status { code, .. } => outcome.verdicts.iter_mut().for_each(|v| refuse(*code, v)),
            Fault::Partial { fail_indexes, code } => {
                for i in fail_indexes {
                    if let Some(v) = outcome.verdicts.get_mut(*i) {
                        refuse(*code, v);
                    }
                }
            }
            _ => {}
        }
    }

    /// The reply for a judged request under this fault.
    pub(crate) fn reply(&self, outcome: &Outcome) -> Reply {
        let normal = outcome.response();
        let resp = match self {
            Fault::Drop => return Reply::Drop,
            Fault::Status { code, retry_after } => {
                let resp = Response {
                    status: *code,
                    ..normal
                };
                match retry_after {
                    Some(after) => resp.with_header("Retry-After", after),
                    None => resp,
                }
            }
            Fault::Stored { code } => Response::new(*code),
            Fault::Redirect { code, location } => Response::new(*code).with_header("Location", location),
            Fault::Garbage => Response::new(200)
                .with_header("Content-Type", "text/html")
                .with_body(b"<html><body>502 Bad Gateway (not JSON)</body></html>".to_vec()),
            Fault::Truncated => {
                let cut = normal.body.len() / 2;
                let body = normal.body.get(..cut).unwrap_or_default().to_vec();
                Response { status: 200, ..normal }.with_body(body)
            }
            Fault::None | Fault::Partial { .. } | Fault::Slow(_) => normal,
        };
        Reply::Send(resp)
    }

    /// Whether items accepted under this fault are stored.
    pub(crate) fn stores_items(&self) -> bool {
        !matches!(self, Fault::Drop | Fault::Status { .. } | Fault::Redirect { .. })
    }

    /// Parses the control-API form, e.g. `{"mode":"status","code":503,"retry_after":"5","count":3}`.
    /// Returns the fault and how many requests it applies to (`None`: until changed).
    pub fn from_json(v: &Value) -> Result<(Fault, Option<u32>), String> {
        let mode = v
            .get("mode")
            .and_then(Value::as_str)
            .ok_or("\"mode\" (string) is required")?;
        let fault = match mode {
            "none" => Fault::None,
            "status" => Fault::Status {
                code: status_code(v, "code")?,
                retry_after: retry_after(v)?,
            },
            "partial" => Fault::Partial {
                fail_indexes: indexes(v)?,
                code: status_code(v, "code").unwrap_or(500),
            },
            "slow" => Fault::Slow(Duration::from_millis(uint(v, "ms")?)),
            "drop" => Fault::Drop,
            "stored" => Fault::Stored {
                code: status_code(v, "code")?,
            },
            "redirect" => Fault::Redirect {
                code: status_code(v, "code")?,
                location: v
                    .get("location")
                    .and_then(Value::as_str)
                    .ok_or("\"location\" (string) is required")?
                    .into(),
            },
            "garbage" => Fault::Garbage,
            "truncated" => Fault::Truncated,
            other => return Err(format!("unknown mode {other:?}")),
        };
        let count = match v.get("count") {
            None | Some(Value::Null) => None,
            Some(_) => Some(u32::try_from(uint(v, "count")?).map_err(|_| "\"count\" is too large")?),
        };
        Ok((fault, count))
    }

    /// A short description for logs and `/_stats`.
    pub fn describe(&self) -> String {
        match self {
            Fault::Slow(d) => format!("slow {}ms", d.as_millis()),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

fn uint(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("\"{key}\" must be a non-negative integer"))
}

fn status_code(v: &Value, key: &str) -> Result<u16, String> {
    match uint(v, key)? {
        code @ 100..=999 => Ok(code as u16),
        _ => Err(format!("\"{key}\" must be an HTTP status code")),
    }
}

fn retry_after(v: &Value) -> Result<Option<String>, String> {
    match v.get("retry_after") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err("\"retry_after\" must be a string or a number".to_string()),
    }
}

fn indexes(v: &Value) -> Result<Vec<usize>, String> {
    let err = || "\"fail_indexes\" must be an array of non-negative integers".to_string();
    let list = v.get("fail_indexes").and_then(Value::as_array).ok_or_else(err)?;
    list.iter()
        .map(|i| i.as_u64().map(|i| i as usize).ok_or_else(err))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_control_mode_parses() {
        let cases = [
            (
                json!({"mode": "status", "code": 503, "retry_after": "5", "count": 3}),
                Fault::Status {
                    code: 503,
                    retry_after: Some("5".into()),
                },
                Some(3),
            ),
            (
                json!({"mode": "status", "code": 429, "retry_after": 7}),
                Fault::Status {
                    code: 429,
                    retry_after: Some("7".into()),
                },
                None,
            ),
            (
                json!({"mode": "partial", "fail_indexes": [0, 2], "code": 500}),
                Fault::Partial {
                    fail_indexes: vec![0, 2],
                    code: 500,
                },
                None,
            ),
            (
                json!({"mode": "slow", "ms": 2000}),
                Fault::Slow(Duration::from_secs(2)),
                None,
            ),
            (json!({"mode": "drop", "count": 1}), Fault::Drop, Some(1)),
            (json!({"mode": "garbage"}), Fault::Garbage, None),
            (json!({"mode": "truncated"}), Fault::Truncated, None),
            (json!({"mode": "none"}), Fault::None, None),
        ];
        for (input, fault, count) in cases {
            assert_eq!(Fault::from_json(&input), Ok((fault, count)), "{input}");
        }
    }

    #[test]
    fn bad_control_bodies_are_explained() {
        for bad in [
            json!({}),
            json!({"mode": "explode"}),
            json!({"mode": "status"}),
            json!({"mode": "status", "code": 5}),
            json!({"mode": "slow", "ms": -1}),
            json!({"mode": "partial", "fail_indexes": ["a"]}),
            json!({"mode": "drop", "count": "x"}),
        ] {
            assert!(Fault::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_faults_refuse_every_item_and_set_retry_after() {
        let mut outcome = Outcome {
            verdicts: vec![Verdict::Accepted(json!({})), Verdict::Invalid("bad".into())],
            payload_error: None,
        };
        let fault = Fault::Status {
            code: 503,
            retry_after: Some("5".into()),
        };
        fault.apply_to_items(&mut outcome);
        let Reply::Send(resp) = fault.reply(&outcome) else {
            panic!("expected a response")
        };
        assert_eq!((resp.status, resp.header("retry-after")), (503, Some("5")));
        let body: Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["itemsAccepted"], 0);
        assert_eq!(body["errors"][0]["statusCode"], 503);
    }

    #[test]
    fn truncated_and_garbage_bodies_are_not_json() {
        let outcome = Outcome {
            verdicts: vec![Verdict::Accepted(json!({}))],
            payload_error: None,
        };
        for fault in [Fault::Garbage, Fault::Truncated] {
            let Reply::Send(resp) = fault.reply(&outcome) else {
                panic!("expected a response")
            };
            assert_eq!(resp.status, 200);
            assert!(serde_json::from_slice::<Value>(&resp.body).is_err());
        }
    }
}
