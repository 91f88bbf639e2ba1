//! OpenAI-compatible answers for the token metrics (APIM's `llm-emit-token-metric`): Chat
//! Completions and Responses API bodies, whole or streamed as server-sent events, whose
//! `usage` object carries the counts the test asked for, so a test knows exactly what the
//! filter must report. The shapes follow what the real APIs send (`"usage":null` in every
//! Chat Completions chunk but the one `stream_options.include_usage` adds; the Responses
//! API's usage nested in `response.completed`), and the answer's text holds a decoy, a
//! quoted `"usage": {…}` inside a JSON string, which must not count.
//!
//! | Route | Answer |
//! |---|---|
//! | `/openai/json?prompt=N&completion=M[&api=responses]` | one JSON answer with that usage |
//! | `/openai/sse?events=K&interval_ms=T&prompt=N&completion=M[&api=responses]` | K chunk events, then the usage |
//! | `/openai/none` | a Chat Completions answer without usage |
//!
//! Defaults: `prompt=12`, `completion=30`, `events=5`, `interval_ms=100`, `api=chat`.

use std::time::Duration;

use serde_json::{json, Value};

use super::{bad_request, MAX_DELAY_MS, MAX_EVENTS};
use crate::http::{Reply, Request, Response};

/// The model every answer names.
const MODEL: &str = "gpt-4o-2024-08-06";
/// When every answer was created (unix seconds), fixed so bodies are deterministic.
const CREATED: u64 = 1_741_569_952;
/// The assistant's whole answer: a model may well quote a usage object.
pub const TEXT: &str = r#"Here is the JSON you asked for: {"usage": {"prompt_tokens": 999}}"#;

/// Which API's shape an answer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/v1/chat/completions`: `prompt_tokens`, `completion_tokens`.
    Chat,
    /// `/v1/responses`: `input_tokens`, `output_tokens`.
    Responses,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy)]
struct Ask {
    api: Api,
    prompt: u64,
    completion: u64,
}

/// The query parameters every OpenAI route shares.
fn ask(req: &Request) -> Result<Ask, Response> {
    let api = match req.query_param("api") {
        None | Some("chat") => Api::Chat,
        Some("responses") => Api::Responses,
        Some(_) => return Err(bad_request("api must be chat or responses")),
    };
    let count = |name, default| req.query_param(name).map_or(Ok(default), str::parse::<u64>);
    match (count("prompt", 12), count("completion", 30)) {
        (Ok(prompt), Ok(completion)) => Ok(Ask {
            api,
            prompt,
            completion,
        }),
        _ => Err(bad_request("prompt and completion must be non-negative integers")),
    }
}

/// The usage object of either API, details included as the real ones send them.
fn usage(ask: &Ask) -> Value {
    let total = ask.prompt.saturating_add(ask.completion);
    match ask.api {
        Api::Chat => json!({
            "prompt_tokens": ask.prompt,
            "completion_tokens": ask.completion,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
            }
        }),
        Api::Responses => json!({
            "input_tokens": ask.prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": ask.completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": total
        }),
    }
}

/// A Chat Completions answer, with `usage` when given (serde_json orders keys, so it comes
/// last, as in the real API).
fn chat_completion(usage: Option<Value>) -> Value {
    let mut answer = json!({
        "id": "chatcmpl-harness",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": TEXT, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "service_tier": "default",
        "system_fingerprint": "fp_harness"
    });
    if let (Some(usage), Value::Object(fields)) = (usage, &mut answer) {
        fields.insert("usage".into(), usage);
    }
    answer
}

/// A Responses API response object: `in_progress` with no output and `"usage":null`, or
/// `completed` with the text and the usage.
fn response_object(usage: Option<Value>) -> Value {
    let (status, output) = match usage {
        None => ("in_progress", json!([])),
        Some(_) => (
            "completed",
            json!([{
                "type": "message",
                "id": "msg_harness",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": TEXT, "annotations": []}]
            }]),
        ),
    };
    json!({
        "id": "resp_harness",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": MODEL,
        "output": output,
        "usage": usage,
        "metadata": {}
    })
}

/// `/openai/json`: one answer with the usage asked for.
pub fn whole(req: &Request) -> Reply {
    match ask(req) {
        Ok(ask @ Ask { api: Api::Chat, .. }) => Response::json(200, &chat_completion(Some(usage(&ask)))).into(),
        Ok(ask) => Response::json(200, &response_object(Some(usage(&ask)))).into(),
        Err(bad) => bad.into(),
    }
}

/// `/openai/none`: a Chat Completions answer without usage (an API that reports none).
pub fn none() -> Reply {
    Response::json(200, &chat_completion(None)).into()
}

/// The `i`-th piece of [`TEXT`] of `n`, so that the pieces make the whole text.
fn piece(i: usize, n: usize) -> String {
    let chars: Vec<char> = TEXT.chars().collect();
    let size = chars.len().div_ceil(n.max(1));
    chars
        .chunks(size.max(1))
        .nth(i)
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

/// A Chat Completions stream: `events` chunks with `"usage":null` (the last with
/// `finish_reason`), the usage chunk, `[DONE]`.
fn chat_events(ask: &Ask, events: usize) -> Vec<String> {
    let chunk = |choices: Value, usage: Value| {
        let event = json!({
            "id": "chatcmpl-harness",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_harness",
            "choices": choices,
            "usage": usage
        });
        format!("data: {event}\n\n")
    };
    let mut out: Vec<String> = (0..events)
        .map(|i| {
            let delta = match i {
                0 => json!({"role": "assistant", "content": piece(i, events)}),
                _ => json!({"content": piece(i, events)}),
            };
            let finish = if i + 1 == events { json!("stop") } else { Value::Null };
            let choices = json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
            chunk(choices, Value::Null)
        })
        .collect();
    out.push(chunk(json!([]), usage(ask)));
    out.push("data: [DONE]\n\n".into());
    out
}

/// A Responses API stream: `response.created`, `events` text deltas,
/// `response.completed` with the usage.
fn responses_events(ask: &Ask, events: usize) -> Vec<String> {
    let event = |kind: &str, data: Value| format!("event: {kind}\ndata: {data}\n\n");
    let mut out = vec![event(
        "response.created",
        json!({"type": "response.created", "sequence_number": 0, "response": response_object(None)}),
    )];
    out.extend((0..events).map(|i| {
        let delta = json!({
            "type": "response.output_text.delta",
            "sequence_number": i + 1,
            "item_id": "msg_harness",
            "output_index": 0,
            "content_index": 0,
            "delta": piece(i, events)
        });
        event("response.output_text.delta", delta)
    }));
    let completed = json!({
        "type": "response.completed",
        "sequence_number": events + 1,
        "response": response_object(Some(usage(ask)))
    });
    out.push(event("response.completed", completed));
    out
}

/// `/openai/sse`: the stream of either API. The first event goes at once, every other
/// event `interval_ms` after the one before; Chat Completions' `[DONE]` follows its usage
/// chunk at once.
pub fn stream(req: &Request) -> Reply {
    let ask = match ask(req) {
        Ok(ask) => ask,
        Err(bad) => return bad.into(),
    };
    let param = |name, default| req.query_param(name).map_or(Ok(default), str::parse::<usize>);
    let (Ok(events), Ok(interval)) = (param("events", 5), param("interval_ms", 100)) else {
        return bad_request("events and interval_ms must be non-negative integers").into();
    };
    if events > MAX_EVENTS || interval as u64 > MAX_DELAY_MS {
        return bad_request("too many events or too long an interval").into();
    }
    let gap = Duration::from_millis(interval as u64);
    let texts = match ask.api {
        Api::Chat => chat_events(&ask, events),
        Api::Responses => responses_events(&ask, events),
    };
    let chunks = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let at_once = i == 0 || text == "data: [DONE]\n\n";
            (if at_once { Duration::ZERO } else { gap }, text.into_bytes())
        })
        .collect();
    Reply::Stream {
        status: 200,
        headers: vec![
            ("Content-Type".to_string(), "text/event-stream".to_string()),
            ("Cache-Control".to_string(), "no-cache".to_string()),
        ],
        chunks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_appinsights::metrics::usage::{Usage, UsageScanner};

    fn request(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    fn get(path: &str) -> Reply {
        super::super::route(&request("GET", path))
    }

    fn sent(reply: Reply) -> Response {
        match reply {
            Reply::Send(r) => r,
            other => panic!("expected Send, got {other:?}"),
        }
    }

    /// The chunks of a stream: (delay, bytes).
    type Chunks = Vec<(Duration, Vec<u8>)>;

    fn streamed(reply: Reply) -> (Vec<(String, String)>, Chunks) {
        match reply {
            Reply::Stream {
                status: 200,
                headers,
                chunks,
            } => (headers, chunks),
            other => panic!("expected a stream, got {other:?}"),
        }
    }

    /// What the filter's scanner reads from these chunks, pushed as they come and one byte
    /// at a time (the same, or the test fails).
    fn scanned(chunks: &[&[u8]]) -> Option<Usage> {
        let mut scanner = UsageScanner::new();
        chunks.iter().for_each(|c| scanner.push(c));
        let mut bytewise = UsageScanner::new();
        chunks.iter().flat_map(|c| c.chunks(1)).for_each(|b| bytewise.push(b));
        assert_eq!(bytewise.usage(), scanner.usage());
        scanner.usage()
    }

    fn usage(prompt: u64, completion: u64) -> Option<Usage> {
        Some(Usage {
            prompt,
            completion,
            total: prompt + completion,
        })
    }

    /// The `data:` payloads of server-sent events, parsed (`[DONE]` as a string).
    fn data(chunks: &[(Duration, Vec<u8>)]) -> Vec<Value> {
        let text: String = chunks
            .iter()
            .map(|(_, b)| String::from_utf8(b.clone()).unwrap())
            .collect();
        assert!(text.ends_with("\n\n"));
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                serde_json::from_str(data).unwrap_or_else(|_| json!(data))
            })
            .collect()
    }

    #[test]
    fn openai_json_answers_a_chat_completion_with_the_usage_asked_for() {
        for method in ["GET", "POST"] {
            let r = sent(super::super::route(&request(
                method,
                "/openai/json?prompt=7&completion=35",
            )));
            assert_eq!((r.status, r.header("content-type")), (200, Some("application/json")));
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["object"], "chat.completion");
            assert_eq!(body["choices"][0]["message"]["content"], TEXT);
            assert_eq!(body["usage"]["prompt_tokens"], 7);
            assert_eq!(body["usage"]["completion_tokens"], 35);
            assert_eq!(body["usage"]["total_tokens"], 42);
            assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
            assert!(body["usage"]["completion_tokens_details"].is_object());
            assert_eq!(scanned(&[&r.body]), usage(7, 35));
        }
        let r = sent(get("/openai/json"));
        assert_eq!(scanned(&[&r.body]), usage(12, 30), "the defaults");
    }

    #[test]
    fn openai_json_answers_the_responses_api_shape() {
        let r = sent(get("/openai/json?api=responses&prompt=36&completion=87"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["object"], "response");
        assert_eq!(body["status"], "completed");
        assert_eq!(body["output"][0]["content"][0]["text"], TEXT);
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 87,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123})
        );
        assert_eq!(scanned(&[&r.body]), usage(36, 87));
    }

    #[test]
    fn openai_sse_streams_chunks_with_null_usage_then_the_usage_then_done() {
        let (headers, chunks) = streamed(get("/openai/sse?events=4&interval_ms=20&prompt=5&completion=9"));
        assert!(headers.contains(&("Content-Type".into(), "text/event-stream".into())));
        let delays: Vec<Duration> = chunks.iter().map(|(d, _)| *d).collect();
        let gap = Duration::from_millis(20);
        assert_eq!(delays, [Duration::ZERO, gap, gap, gap, gap, Duration::ZERO]);
        let events = data(&chunks);
        assert_eq!(events.len(), 6);
        for event in &events[..4] {
            assert_eq!(event["object"], "chat.completion.chunk");
            assert_eq!(event["usage"], Value::Null);
            assert!(event.as_object().unwrap().contains_key("usage"));
        }
        let text: String = events[..4]
            .iter()
            .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, TEXT);
        assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(events[4]["choices"], json!([]));
        assert_eq!(events[4]["usage"]["total_tokens"], 14);
        assert_eq!(events[5], json!("[DONE]"));
        let bodies: Vec<&[u8]> = chunks.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(scanned(&bodies), usage(5, 9));
        assert_eq!(scanned(&bodies[..4]), None, "before the usage chunk");
    }

    #[test]
    fn openai_sse_streams_the_responses_api_with_usage_in_response_completed() {
        let (_, chunks) = streamed(get(
            "/openai/sse?api=responses&events=3&interval_ms=0&prompt=36&completion=87",
        ));
        let text: String = chunks
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(text.starts_with("event: response.created\ndata: "));
        assert!(text.contains("\n\nevent: response.completed\ndata: "));
        let events = data(&chunks);
        assert_eq!(events.len(), 5);
        assert_eq!(events[0]["response"]["usage"], Value::Null);
        let deltas: String = events[1..4].iter().map(|e| e["delta"].as_str().unwrap()).collect();
        assert_eq!(deltas, TEXT);
        assert_eq!(events[4]["type"], "response.completed");
        assert_eq!(events[4]["sequence_number"], 4);
        assert_eq!(events[4]["response"]["usage"]["total_tokens"], 123);
        let bodies: Vec<&[u8]> = chunks.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(scanned(&bodies), usage(36, 87));
        assert_eq!(scanned(&bodies[..4]), None, "before response.completed");
    }

    #[test]
    fn openai_sse_with_no_events_sends_only_the_usage() {
        let (_, chunks) = streamed(get("/openai/sse?events=0&prompt=1&completion=2"));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].0, Duration::ZERO);
        let bodies: Vec<&[u8]> = chunks.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(scanned(&bodies), usage(1, 2));
    }

    #[test]
    fn openai_none_answers_without_usage() {
        let r = sent(get("/openai/none"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert!(!body.as_object().unwrap().contains_key("usage"));
        assert_eq!(scanned(&[&r.body]), None, "the decoy in the text does not count");
    }

    #[test]
    fn openai_routes_reject_nonsense_parameters() {
        for path in [
            "/openai/json?prompt=-1",
            "/openai/json?completion=1.5",
            "/openai/json?api=completions",
            "/openai/sse?events=x",
            "/openai/sse?prompt=18446744073709551616",
            "/openai/sse?events=100001",
            "/openai/sse?interval_ms=600001",
        ] {
            assert_eq!(sent(get(path)).status, 400, "{path}");
        }
    }

    #[test]
    fn total_saturates_at_the_largest_count() {
        let r = sent(get("/openai/json?prompt=18446744073709551615&completion=1"));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["usage"]["total_tokens"], u64::MAX);
    }

    #[test]
    fn pieces_make_the_whole_text() {
        for n in [0, 1, 2, 7, TEXT.len(), TEXT.len() + 5] {
            let whole: String = (0..n.max(1)).map(|i| piece(i, n)).collect();
            assert_eq!(whole, TEXT, "{n}");
        }
    }
}
