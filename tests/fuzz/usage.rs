//! The token counts of LLM responses: `UsageScanner` over real response shapes (Chat
//! Completions and the Responses API, as JSON and as server-sent events) whose text holds
//! decoys (`"usage": {…}` inside strings, braces, escapes, unicode, control characters),
//! and events cut short, then mutated, and fed in chunks cut at random places. Whatever the body: the chunks give
//! what one push gives, the scanner keeps at most `MAX_OBJECT_BYTES`, and it never panics;
//! an unmutated body gives exactly the counts it was built with.

use crate::mutate::{edits, mutate_bytes, string, TOKENS};
use crate::runner::{show, Findings, Rng};
use envoy_appinsights::metrics::usage::{Usage, UsageScanner};

/// Byte sequences worth inserting into a response body, besides the JSON ones.
const USAGE_TOKENS: &[&[u8]] = &[
    b"\"usage\"",
    b"\"usage\":",
    b"\"usage\":{",
    b"\"usage\":null",
    b"\\\"usage\\\":{",
    b"\"prompt_tokens\":",
    b"\"input_tokens\":7,",
    b"\"total_tokens\":18446744073709551615",
    b"data: ",
    b"\n\n",
    b"data: [DONE]\n\n",
    b"event: response.completed\n",
];

/// Text of a message or a delta: anything, or a decoy that reads like a usage object.
fn text(rng: &mut Rng) -> String {
    const DECOYS: &[&str] = &[
        r#""usage": {"prompt_tokens": 999, "completion_tokens": 999}"#,
        r#"{"usage":{"input_tokens":1}}"#,
        "\"usage\":null",
        "usage",
        "\\",
        "{{{",
        "}}}",
        "\n\ndata: {\"usage\":{\"prompt_tokens\":5}}\n\n",
    ];
    let s = match rng.below(4) {
        0 => rng.pick(DECOYS).to_string(),
        1 => (0..rng.upto(3) + 1).map(|_| *rng.pick(DECOYS)).collect(),
        _ => string(rng),
    };
    serde_json::to_string(&s).unwrap()
}

/// A token count: mostly small, sometimes any `u64`.
fn count(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.next() >> rng.below(64),
        _ => rng.below(5000) as u64,
    }
}

/// A usage object of either API, with JSON whitespace `ws` between its tokens, sometimes
/// padded past the limit; and the counts it gives (none when too long).
fn usage_object(rng: &mut Rng, responses: bool, ws: &str) -> (String, Option<Usage>) {
    let (prompt, completion) = (count(rng), count(rng));
    let total = rng.chance(80).then(|| prompt.saturating_add(completion));
    let (p, c) = if responses {
        ("input_tokens", "output_tokens")
    } else {
        ("prompt_tokens", "completion_tokens")
    };
    let mut fields = vec![format!("\"{p}\":{ws}{prompt}"), format!("\"{c}\":{ws}{completion}")];
    if let Some(total) = total {
        fields.push(format!("\"total_tokens\":{ws}{total}"));
    }
    if rng.chance(70) {
        fields.push(format!("\"{p}_details\":{ws}{{\"cached_tokens\":{ws}0}}"));
        fields.push(format!(
            "\"{c}_details\":{ws}{{\"reasoning_tokens\":{ws}{}}}",
            count(rng)
        ));
    }
    if rng.chance(10) {
        let pad = *rng.pick(&[3900, 4000, 4100, 10_000]);
        fields.push(format!("\"note\":{ws}\"{}\"", "x".repeat(pad)));
    }
    let n = fields.len();
    for _ in 0..n {
        let (i, j) = (rng.below(n), rng.below(n));
        fields.swap(i, j);
    }
    let object = format!("{{{ws}{}{ws}}}", fields.join(&format!(",{ws}")));
    let usage = Usage {
        prompt,
        completion,
        total: total.unwrap_or(prompt.saturating_add(completion)),
    };
    let fits = object.len() <= UsageScanner::MAX_OBJECT_BYTES;
    (object, fits.then_some(usage))
}

/// A Chat Completions answer, with its usage first, last or absent.
fn chat_json(rng: &mut Rng, ws: &str) -> (String, Option<Usage>) {
    let choices = format!(
        r#""choices":[{{"index":0,"message":{{"role":"assistant","content":{}}},"finish_reason":"stop"}}]"#,
        text(rng)
    );
    let head = r#""id":"chatcmpl-1","object":"chat.completion","created":1741569952,"model":"gpt-4o""#;
    if rng.chance(10) {
        return (format!("{{{head},{choices}}}"), None);
    }
    let (object, usage) = usage_object(rng, false, ws);
    let usage_field = format!("\"usage\"{ws}:{ws}{object}");
    let body = if rng.chance(20) {
        format!("{{{ws}{usage_field},{ws}{head},{choices}}}")
    } else {
        format!("{{{head},{choices},{ws}{usage_field}{ws}}}")
    };
    (body, usage)
}

/// Now and then, `event` cut short (inside a string, after a backslash, anywhere) as a
/// broken upstream or proxy might send it: it must not hide the usage of later events.
fn maybe_broken(rng: &mut Rng, event: String) -> String {
    if !rng.chance(15) {
        return event;
    }
    let mut at = rng.below(event.len());
    while !event.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}\n\n", &event[..at])
}

/// A Chat Completions stream: chunks with `"usage":null`, then (with `include_usage`) one
/// with the usage, then `[DONE]`.
fn chat_sse(rng: &mut Rng) -> (String, Option<Usage>) {
    let head = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o""#;
    let mut body = String::new();
    for _ in 0..rng.upto(12) {
        let event = format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}],\"usage\":null}}\n\n",
            text(rng)
        );
        body += &maybe_broken(rng, event);
    }
    let mut usage = None;
    if rng.chance(85) {
        let (object, u) = usage_object(rng, false, "");
        usage = u;
        body += &format!("data: {{{head},\"choices\":[],\"usage\":{object}}}\n\n");
    }
    body += "data: [DONE]\n\n";
    (body, usage)
}

/// A Responses API answer.
fn responses_json(rng: &mut Rng, ws: &str) -> (String, Option<Usage>) {
    let (object, usage) = usage_object(rng, true, ws);
    let body = format!(
        r#"{{"id":"resp_1","object":"response","status":"completed","output":[{{"type":"message","content":[{{"type":"output_text","text":{}}}]}}],"usage"{ws}:{ws}{object},"metadata":{{}}}}"#,
        text(rng)
    );
    (body, usage)
}

/// A Responses API stream: usage null when created, nested in `response.completed`.
fn responses_sse(rng: &mut Rng) -> (String, Option<Usage>) {
    let mut body = String::from(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\
         \"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
    );
    let deltas = rng.upto(12);
    for i in 0..deltas {
        let event = format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\
             \"sequence_number\":{},\"item_id\":\"msg_1\",\"delta\":{}}}\n\n",
            i + 1,
            text(rng)
        );
        body += &maybe_broken(rng, event);
    }
    let (object, usage) = usage_object(rng, true, "");
    body += &format!(
        "event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":{},\
         \"response\":{{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[{{\"type\":\"message\",\
         \"content\":[{{\"type\":\"output_text\",\"text\":{}}}]}}],\"usage\":{object}}}}}\n\n",
        deltas + 1,
        text(rng)
    );
    (body, usage)
}

/// How a case cuts its body into chunks.
#[derive(Debug)]
enum Split {
    /// One byte at a time.
    Bytes,
    /// Chunks of this many bytes.
    Every(usize),
    /// At these positions (sorted; may repeat, giving empty chunks).
    At(Vec<usize>),
}

struct Case {
    body: Vec<u8>,
    /// What an unmutated body must give.
    expected: Option<Option<Usage>>,
    split: Split,
}

fn case(rng: &mut Rng) -> Case {
    let ws = *rng.pick(&["", "", " ", "\n  ", "\r\n\t "]);
    let (body, usage) = match rng.below(5) {
        0 => chat_json(rng, ws),
        1 => chat_sse(rng),
        2 => responses_json(rng, ws),
        _ => responses_sse(rng),
    };
    let mut body = body.into_bytes();
    let edits = edits(rng);
    let tokens: Vec<&[u8]> = TOKENS.iter().chain(USAGE_TOKENS).copied().collect();
    for _ in 0..edits {
        mutate_bytes(rng, &mut body, &tokens);
    }
    let split = match rng.below(4) {
        0 if body.len() <= 20_000 => Split::Bytes,
        0 | 1 => Split::Every(rng.upto(63) + 1),
        _ => {
            let mut at: Vec<usize> = (0..rng.upto(8) + 1).map(|_| rng.upto(body.len())).collect();
            at.sort_unstable();
            Split::At(at)
        }
    };
    Case {
        body,
        expected: (edits == 0).then_some(usage),
        split,
    }
}

/// The chunks of a body under a split.
fn chunks<'a>(body: &'a [u8], split: &Split) -> Vec<&'a [u8]> {
    match split {
        Split::Bytes => body.chunks(1).collect(),
        Split::Every(n) => body.chunks(*n).collect(),
        Split::At(at) => {
            let mut out = Vec::new();
            let mut from = 0;
            for &to in at.iter().chain([&body.len()]) {
                out.push(&body[from..to]);
                from = to;
            }
            out
        }
    }
}

fn check(c: &Case, f: &mut Findings) {
    let max = UsageScanner::MAX_OBJECT_BYTES;
    let mut whole = UsageScanner::new();
    whole.push(&c.body);
    let found = whole.usage();
    f.note(if found.is_some() { "usage found" } else { "no usage" });
    let mut split = UsageScanner::new();
    let mut retained = whole.retained_bytes();
    for chunk in chunks(&c.body, &c.split) {
        split.push(chunk);
        retained = retained.max(split.retained_bytes());
    }
    f.check(
        "any split of a body gives what one push gives",
        split.usage() == found,
        || format!("one push: {found:?}; in chunks ({:?}): {:?}", c.split, split.usage()),
    );
    f.check("the scanner keeps at most MAX_OBJECT_BYTES", retained <= max, || {
        format!("{retained} bytes")
    });
    if let Some(expected) = c.expected {
        f.note("unmutated");
        f.check(
            "an unmutated body gives the counts it was built with",
            found == expected,
            || format!("expected {expected:?}, found {found:?}"),
        );
    }
    f.check(
        "counts come from a usage key",
        found.is_none() || c.body.windows(7).any(|w| w == b"\"usage\""),
        || format!("{found:?}"),
    );
}

#[test]
fn usage_scanner() {
    let report = crate::runner::fuzz(
        "usage_scanner",
        3000,
        case,
        |c| format!("{} split {:?}", show(&c.body), c.split),
        check,
    );
    report.assert_holds(|_| true);
    assert!(
        report.noted("usage found") * 3 >= report.cases
            && report.noted("no usage") * 10 >= report.cases
            && report.noted("unmutated") * 20 >= report.cases,
        "the generator should produce all three: {:?}",
        report.notes
    );
}
