//! Token counts of LLM responses, read from the response body as it streams through.
//!
//! APIM's `llm-emit-token-metric` reports the prompt, completion and total tokens of every
//! call to an OpenAI-compatible API. The counts are in the body's `usage` object, usually
//! at its end, and in a stream only in the last event; buffering whole bodies to find it
//! would hold every LLM answer in the worker's memory. [`UsageScanner`] instead reads each
//! chunk as it passes, byte by byte, with a few bytes of lexical state (in a string or not,
//! after a backslash or not), and copies only the `usage` object itself, from its `{` to
//! the matching `}`, at most [`UsageScanner::MAX_OBJECT_BYTES`] of it, which serde_json
//! then reads. Chunks may end anywhere, even inside the key or a number: the state carries
//! over, so any split of a body gives the answer one push of it gives.
//!
//! The shapes it reads: Chat Completions (`prompt_tokens`, `completion_tokens`,
//! `total_tokens`), the Responses API (`input_tokens`, `output_tokens`, `total_tokens`),
//! each as one JSON document or as server-sent events (`"usage":null` in every chunk of a
//! Chat Completions stream but the last; the Responses API's usage nested in the
//! `response.completed` event), so a `usage` key counts at any depth, and the last complete
//! one wins. Only a real key counts: text that reads `"usage": {` inside a JSON string does
//! not. JSON strings hold no raw newline, so a newline ends a string: a malformed event
//! cannot leave the next one read inside out. Two choices of the cheap way: a key spelled
//! with escapes (`"usag\u0065"`) is not recognized (no serializer writes one), and a
//! `usage` key inside a usage object is part of that object, not one of its own.

use serde::Deserialize;

/// Token counts of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    pub total: u64,
}

/// The key whose object holds the counts.
const KEY: &[u8] = b"usage";

/// Where the scanner is in the body, apart from strings (see [`Lexer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Looking for a string that may be the key.
    #[default]
    Scan,
    /// In a string whose first `n` bytes are the first `n` of [`KEY`].
    Key(usize),
    /// After the key `"usage"`: a `:` may follow.
    AfterKey,
    /// After `"usage":`: a `{` starts the object.
    AfterColon,
    /// Copying the usage object, `depth` braces deep.
    Capture { depth: u64 },
    /// In a usage object too long to copy, `depth` braces deep: waiting for its end.
    Skip { depth: u64 },
}

/// What a byte is, given the bytes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// The `"` that opens a string.
    Open,
    /// A byte inside a string, escapes as they are (a `\` is a byte like the others).
    Inner(u8),
    /// The `"` that closes a string.
    Close,
    /// A byte outside strings (also the newline that ends a broken string).
    Outside(u8),
}

/// JSON string state: whether the scanner is in a string, and after a backslash.
#[derive(Debug, Clone, Copy, Default)]
struct Lexer {
    in_string: bool,
    escaped: bool,
}

impl Lexer {
    fn token(&mut self, b: u8) -> Token {
        if !self.in_string {
            if b == b'"' {
                self.in_string = true;
                return Token::Open;
            }
            return Token::Outside(b);
        }
        if b == b'\n' {
            // A raw newline cannot be in a JSON string: the string was broken, and SSE
            // framing follows. Start again outside strings.
            self.in_string = false;
            self.escaped = false;
            return Token::Outside(b);
        }
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
            return Token::Close;
        }
        Token::Inner(b)
    }

    /// Whether `b` can change the state outside a usage key (the scanner skips the rest).
    fn matters(&self, b: u8) -> bool {
        self.escaped || matches!(b, b'"' | b'\\' | b'\n')
    }
}

/// Reads a response body chunk by chunk and keeps the last complete `usage` object seen.
///
/// Its memory is bounded whatever the body: a few words of state, plus a buffer of at most
/// [`UsageScanner::MAX_OBJECT_BYTES`] once a usage object starts. Each byte is looked at
/// once; outside a usage key, only quotes, backslashes and newlines cost more than a
/// comparison.
#[derive(Debug, Default)]
pub struct UsageScanner {
    lexer: Lexer,
    phase: Phase,
    /// The usage object being copied (empty outside [`Phase::Capture`]).
    object: Vec<u8>,
    last: Option<Usage>,
}

impl UsageScanner {
    /// The longest usage object read, in bytes; a longer one is skipped. Real ones are
    /// under 400 bytes, details included.
    pub const MAX_OBJECT_BYTES: usize = 4096;

    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.phase == Phase::Scan {
                // Fast path: bytes that are neither quotes, backslashes nor newlines
                // change nothing while looking for the key.
                let lexer = self.lexer;
                match rest.iter().position(|&b| lexer.matters(b)) {
                    Some(at) => rest = rest.get(at..).unwrap_or_default(),
                    None => return,
                }
            }
            if let Some((&b, tail)) = rest.split_first() {
                self.step(b);
                rest = tail;
            }
        }
    }

    /// The last complete usage object with token counts, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.last
    }

    /// Heap bytes the scanner holds (at most [`UsageScanner::MAX_OBJECT_BYTES`]), for
    /// tests and fuzzing that check its memory stays bounded.
    pub fn retained_bytes(&self) -> usize {
        self.object.capacity()
    }

    fn step(&mut self, b: u8) {
        let token = self.lexer.token(b);
        self.phase = match (self.phase, token) {
            (Phase::Capture { depth }, _) => self.capture(depth, b, token),
            (Phase::Skip { depth }, Token::Outside(c)) => match nest(depth, c) {
                0 => Phase::Scan,
                depth => Phase::Skip { depth },
            },
            (phase @ Phase::Skip { .. }, _) => phase,
            (_, Token::Open) => Phase::Key(0),
            (Phase::Key(n), Token::Inner(c)) if KEY.get(n) == Some(&c) => Phase::Key(n + 1),
            (Phase::Key(n), Token::Close) if n == KEY.len() => Phase::AfterKey,
            (Phase::AfterKey, Token::Outside(b':')) => Phase::AfterColon,
            (Phase::AfterColon, Token::Outside(b'{')) => self.start(),
            (phase @ (Phase::AfterKey | Phase::AfterColon), Token::Outside(c)) if is_space(c) => phase,
            _ => Phase::Scan,
        };
    }

    /// The `{` of a usage object: copy from here.
    fn start(&mut self) -> Phase {
        self.object.clear();
        self.push_byte(b'{');
        Phase::Capture { depth: 1 }
    }

    /// One byte of the usage object: copied, and read once the object closes.
    fn capture(&mut self, depth: u64, b: u8, token: Token) -> Phase {
        let depth = match token {
            Token::Outside(c) => nest(depth, c),
            _ => depth,
        };
        if self.object.len() >= Self::MAX_OBJECT_BYTES {
            self.object.clear();
            return if depth == 0 { Phase::Scan } else { Phase::Skip { depth } };
        }
        self.push_byte(b);
        if depth > 0 {
            return Phase::Capture { depth };
        }
        if let Some(usage) = parse(&self.object) {
            self.last = Some(usage);
        }
        self.object.clear();
        Phase::Scan
    }
}

impl UsageScanner {
    /// Copies one byte of the object (below the limit). The buffer grows by doubling from
    /// 64 bytes up to exactly MAX_OBJECT_BYTES, whatever `Vec`'s own growth policy: a real
    /// usage object costs 512 bytes, and the bound does not rest on the allocator.
    fn push_byte(&mut self, b: u8) {
        let (len, capacity) = (self.object.len(), self.object.capacity());
        if len == capacity {
            let want = capacity.saturating_mul(2).clamp(64, Self::MAX_OBJECT_BYTES);
            self.object.reserve_exact(want.saturating_sub(len));
        }
        self.object.push(b);
    }
}

/// The brace depth after `c`, outside strings.
fn nest(depth: u64, c: u8) -> u64 {
    match c {
        b'{' => depth.saturating_add(1),
        b'}' => depth.saturating_sub(1),
        _ => depth,
    }
}

/// JSON's whitespace.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// The fields of a usage object that hold counts (others are ignored). A count that is
/// not a non-negative integer fitting in 64 bits, or a field given twice, fails the parse.
#[derive(Deserialize)]
struct Counts {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

/// The counts of one usage object, if it is valid JSON with at least one count.
fn parse(object: &[u8]) -> Option<Usage> {
    let c: Counts = serde_json::from_slice(object).ok()?;
    let prompt = c.prompt_tokens.or(c.input_tokens);
    let completion = c.completion_tokens.or(c.output_tokens);
    if prompt.is_none() && completion.is_none() && c.total_tokens.is_none() {
        return None;
    }
    let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    Some(Usage {
        prompt,
        completion,
        total: c.total_tokens.unwrap_or(prompt.saturating_add(completion)),
    })
}

/// Whether a response may carry a readable `usage` object: JSON or server-sent events,
/// not compressed.
pub fn may_carry_usage(headers: &crate::headers::HeaderMap) -> bool {
    let has = |name: &[u8], what: &[u8]| {
        headers
            .get(name)
            .is_some_and(|v| v.windows(what.len()).any(|w| w.eq_ignore_ascii_case(what)))
    };
    let identity = headers
        .get(b"content-encoding")
        .is_none_or(|e| e.is_empty() || e.eq_ignore_ascii_case(b"identity"));
    identity && (has(b"content-type", b"json") || has(b"content-type", b"event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Chat Completions answer: a decoy in the message text, usage last.
    const CHAT_JSON: &str = concat!(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1741569952,"model":"gpt-4o-2024-08-06","#,
        r#""choices":[{"index":0,"message":{"role":"assistant","content":"Write \"usage\": {\"prompt_tokens\":999} "#,
        r#"and {braces} \\","refusal":null},"logprobs":null,"finish_reason":"stop"}],"#,
        r#""usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"#,
        r#""prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"#,
        r#""completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"#,
        r#""service_tier":"default","system_fingerprint":"fp_1"}"#
    );

    /// The same answer pretty-printed (as Azure OpenAI sends it), usage first.
    const CHAT_JSON_PRETTY: &str = "{\n  \"usage\" : {\n    \"completion_tokens\": 30,\n    \"prompt_tokens\": 12,\n    \
        \"total_tokens\": 42,\n    \"prompt_tokens_details\": {\n      \"cached_tokens\": 0\n    }\n  },\n  \
        \"choices\": [\n    {\n      \"message\": {\n        \"content\": \"usage: {}\",\n        \"role\": \"assistant\"\n      \
        }\n    }\n  ]\n}\n";

    /// Chat Completions streamed with `stream_options.include_usage`.
    const CHAT_SSE: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":",
        "{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":",
        "{\"content\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":1}\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},",
        "\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,",
        "\"completion_tokens\":7,\"total_tokens\":12,\"prompt_tokens_details\":{\"cached_tokens\":0},",
        "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
        "data: [DONE]\n\n"
    );

    /// A Responses API answer.
    const RESPONSES_JSON: &str = concat!(
        r#"{"id":"resp_1","object":"response","created_at":1741476542,"status":"completed","model":"gpt-4.1","#,
        r#""output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":"#,
        r#"[{"type":"output_text","text":"{\"usage\":{\"input_tokens\":1}}","annotations":[]}]}],"#,
        r#""usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"#,
        r#""output_tokens_details":{"reasoning_tokens":0},"total_tokens":123},"user":null,"metadata":{}}"#
    );

    /// The Responses API streamed: usage nested in the final `response.completed` event.
    const RESPONSES_SSE: &str = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",",
        "\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",",
        "\"delta\":\"usage\\\": {\"}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",",
        "\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",",
        "\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":0},",
        "\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":123}}}\n\n"
    );

    fn usage(prompt: u64, completion: u64, total: u64) -> Option<Usage> {
        Some(Usage {
            prompt,
            completion,
            total,
        })
    }

    fn scan(chunks: &[&[u8]]) -> Option<Usage> {
        let mut s = UsageScanner::new();
        for chunk in chunks {
            s.push(chunk);
        }
        s.usage()
    }

    /// What one push gives, after checking that every split gives the same: two chunks
    /// split at every position, one byte at a time, and three chunks around every position.
    fn scan_every_split(body: &[u8]) -> Option<Usage> {
        let whole = scan(&[body]);
        for at in 0..=body.len() {
            let (a, b) = body.split_at(at);
            assert_eq!(scan(&[a, b]), whole, "split at {at}");
            let (b, c) = b.split_at(b.len().min(3));
            assert_eq!(scan(&[a, b, c]), whole, "split at {at} and {}", at + 3);
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan(&bytes), whole, "one byte at a time");
        for size in [2, 5, 7, 64] {
            let chunks: Vec<&[u8]> = body.chunks(size).collect();
            assert_eq!(scan(&chunks), whole, "chunks of {size}");
        }
        whole
    }

    #[test]
    fn chat_completions_json_gives_its_usage_at_every_split() {
        assert_eq!(scan_every_split(CHAT_JSON.as_bytes()), usage(12, 30, 42));
        assert_eq!(scan_every_split(CHAT_JSON_PRETTY.as_bytes()), usage(12, 30, 42));
    }

    #[test]
    fn chat_completions_stream_gives_the_final_usage_not_the_nulls() {
        assert_eq!(scan_every_split(CHAT_SSE.as_bytes()), usage(5, 7, 12));
        let first_events = CHAT_SSE.split("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],");
        let before_usage = first_events.into_iter().next().unwrap();
        assert_eq!(scan_every_split(before_usage.as_bytes()), None);
    }

    #[test]
    fn responses_api_json_and_stream_give_their_usage() {
        assert_eq!(scan_every_split(RESPONSES_JSON.as_bytes()), usage(36, 87, 123));
        assert_eq!(scan_every_split(RESPONSES_SSE.as_bytes()), usage(36, 87, 123));
    }

    #[test]
    fn usage_inside_a_string_or_a_longer_key_does_not_count() {
        for body in [
            r#"{"text":"\"usage\": {\"prompt_tokens\":1,\"completion_tokens\":2}"}"#,
            r#"{"text \"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"usage \"":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"usages":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"my_usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"Usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"["usage",{"prompt_tokens":1,"completion_tokens":2}]"#,
            r#"{"usage":"{\"prompt_tokens\":1}"}"#,
            r#"{"usage":[{"prompt_tokens":1}]}"#,
        ] {
            assert_eq!(scan_every_split(body.as_bytes()), None, "{body}");
        }
    }

    /// `"usag\u0065"` is the key `usage` to a JSON parser, but no serializer escapes ASCII
    /// letters, and decoding escapes would cost every string of every body: not recognized.
    #[test]
    fn a_key_spelled_with_escapes_is_not_recognized() {
        let body = r#"{"usag\u0065":{"prompt_tokens":1,"completion_tokens":2}}"#;
        assert_eq!(scan_every_split(body.as_bytes()), None);
    }

    #[test]
    fn escaped_backslashes_and_quotes_keep_the_string_state_right() {
        let body = r#"{"a":"\\","b":"x\\\"y\\","usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        assert_eq!(scan_every_split(body.as_bytes()), usage(1, 2, 3));
        // The braces of strings inside the usage object do not end it.
        let body = r#"{"usage":{"note":"}}}{\"","prompt_tokens":1,"completion_tokens":2}}"#;
        assert_eq!(scan_every_split(body.as_bytes()), usage(1, 2, 3));
    }

    #[test]
    fn a_newline_ends_a_string_so_a_broken_event_does_not_desynchronize_the_next() {
        let body = "data: {\"a\":\"cut off\n\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
        assert_eq!(scan_every_split(body.as_bytes()), usage(1, 2, 3));
        let body = "data: {\"a\":\"cut off \\\n\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
        assert_eq!(scan_every_split(body.as_bytes()), usage(1, 2, 3));
    }

    #[test]
    fn whitespace_around_the_colon_is_allowed() {
        let body = "{\"usage\" \t\r\n:\n {\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}";
        assert_eq!(scan_every_split(body.as_bytes()), usage(1, 2, 3));
    }

    #[test]
    fn usage_null_does_not_count_and_does_not_erase_an_earlier_usage() {
        assert_eq!(scan_every_split(br#"{"usage":null}"#), None);
        let body = r#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}{"usage":null}"#;
        assert_eq!(scan_every_split(body.as_bytes()), usage(1, 2, 3));
    }

    #[test]
    fn the_last_usage_object_wins() {
        let body = concat!(
            r#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"response":{"usage":{"input_tokens":10,"output_tokens":20,"total_tokens":31}}}"#,
            r#"{"usage":{"prompt_tokens":"x"}}"#,
        );
        assert_eq!(scan_every_split(body.as_bytes()), usage(10, 20, 31));
    }

    #[test]
    fn fields_fall_back_from_chat_names_to_responses_names_and_total_to_the_sum() {
        for (object, expected) in [
            (
                r#"{"prompt_tokens":1,"input_tokens":9,"completion_tokens":2,"output_tokens":9}"#,
                usage(1, 2, 3),
            ),
            (r#"{"input_tokens":4,"output_tokens":5}"#, usage(4, 5, 9)),
            (r#"{"total_tokens":7}"#, usage(0, 0, 7)),
            (r#"{"prompt_tokens":3}"#, usage(3, 0, 3)),
            (r#"{"completion_tokens":3,"total_tokens":2}"#, usage(0, 3, 2)),
            (
                r#"{"prompt_tokens":18446744073709551615,"completion_tokens":1}"#,
                usage(u64::MAX, 1, u64::MAX),
            ),
            (
                r#"{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}"#,
                usage(0, 0, 0),
            ),
            (r#"{"prompt_tokens":null,"completion_tokens":2}"#, usage(0, 2, 2)),
            (r#"{}"#, None),
            (
                r#"{"cached_tokens":5,"prompt_tokens_details":{"cached_tokens":5}}"#,
                None,
            ),
            (r#"{"prompt_tokens":null}"#, None),
        ] {
            let body = format!(r#"{{"usage":{object}}}"#);
            assert_eq!(scan(&[body.as_bytes()]), expected, "{object}");
        }
    }

    #[test]
    fn a_count_that_is_not_a_non_negative_integer_spoils_its_object() {
        for value in [
            "1.0",
            "1e3",
            "-1",
            "\"12\"",
            "18446744073709551616",
            "true",
            "[1]",
            "{}",
            "0x10",
            "01",
        ] {
            let body = format!(r#"{{"usage":{{"prompt_tokens":{value},"completion_tokens":2}}}}"#);
            assert_eq!(scan(&[body.as_bytes()]), None, "{value}");
        }
        let body = r#"{"usage":{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens":3}}"#;
        assert_eq!(scan(&[body.as_bytes()]), None, "duplicate fields are ambiguous");
    }

    /// `{"usage":{…}}` whose usage object is exactly `len` bytes long.
    fn usage_of_length(len: usize) -> String {
        let head = r#"{"prompt_tokens":1,"completion_tokens":2,"pad":""#;
        let object = format!("{head}{}\"}}", "x".repeat(len - head.len() - 2));
        assert_eq!(object.len(), len);
        format!(r#"{{"usage":{object}}}"#)
    }

    #[test]
    fn an_object_over_the_limit_is_skipped_and_one_at_the_limit_counts() {
        let max = UsageScanner::MAX_OBJECT_BYTES;
        assert_eq!(scan(&[usage_of_length(max).as_bytes()]), usage(1, 2, 3));
        assert_eq!(scan(&[usage_of_length(max + 1).as_bytes()]), None);
        let before = r#"{"usage":{"prompt_tokens":5,"completion_tokens":5}}"#;
        let after = r#"{"usage":{"prompt_tokens":7,"completion_tokens":7}}"#;
        let big = usage_of_length(max + 1);
        assert_eq!(scan(&[before.as_bytes(), big.as_bytes()]), usage(5, 5, 10));
        assert_eq!(scan(&[big.as_bytes(), after.as_bytes()]), usage(7, 7, 14));
        // Split everywhere: the limit does not depend on where the chunks end.
        let body = format!("{before}{big}");
        let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
        assert_eq!(scan(&bytes), usage(5, 5, 10));
        let at_limit = usage_of_length(max);
        let bytes: Vec<&[u8]> = at_limit.as_bytes().chunks(1).collect();
        assert_eq!(scan(&bytes), usage(1, 2, 3));
    }

    #[test]
    fn an_unfinished_usage_object_does_not_count() {
        assert_eq!(scan(&[br#"{"usage":{"prompt_tokens":1,"completion_tokens":2"#]), None);
        assert_eq!(scan(&[br#"{"usage""#]), None);
        assert_eq!(scan(&[br#"{"usage":"#]), None);
    }

    #[test]
    fn garbage_and_binary_give_nothing() {
        let all: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        assert_eq!(scan_every_split(&all[..600]), None);
        assert_eq!(scan(&[&all]), None);
        // A fixed pseudo-random stream, with the key sprinkled in.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut noise = Vec::new();
        for i in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push(x as u8);
            if i % 5000 == 0 {
                noise.extend_from_slice(br#""usage":{"#);
            }
        }
        let mut s = UsageScanner::new();
        s.push(&noise);
        assert_eq!(s.usage(), None);
        assert!(s.retained_bytes() <= UsageScanner::MAX_OBJECT_BYTES);
        assert_eq!(scan(&[b"", b"\xff\xfe\x00", b"{{{{}}}}", b"\"\\\"\\"]), None);
    }

    #[test]
    fn state_stays_bounded_whatever_the_body() {
        let max = UsageScanner::MAX_OBJECT_BYTES;
        let ten_mb = 10 * 1024 * 1024;
        for (start, filler) in [
            (&br#"{"usage":"#[..], b'{'),
            (&br#"{"usage":{"a":""#[..], b'x'),
            (&br#"{"usage":{"a":["#[..], b'['),
            (&b""[..], b'{'),
            (&br#"{"a":""#[..], b'x'),
        ] {
            let mut s = UsageScanner::new();
            s.push(start);
            let block = vec![filler; 64 * 1024];
            for _ in 0..ten_mb / block.len() {
                s.push(&block);
                assert!(s.retained_bytes() <= max, "{} bytes", s.retained_bytes());
            }
            for _ in 0..ten_mb / block.len() {
                s.push(b"}");
            }
            assert_eq!(s.usage(), None);
            assert!(std::mem::size_of::<UsageScanner>() <= 128);
        }
        // After a usage object that never ends, in a million nested objects, one more is
        // still found once they close.
        let mut s = UsageScanner::new();
        s.push(br#"{"usage":"#);
        s.push(&vec![b'{'; 1_000_000]);
        s.push(&vec![b'}'; 1_000_000]);
        s.push(br#","x":{"usage":{"prompt_tokens":1,"completion_tokens":2}}}"#);
        assert_eq!(s.usage(), usage(1, 2, 3));
        assert!(s.retained_bytes() <= max);
    }

    #[test]
    fn a_real_usage_object_costs_at_most_512_bytes() {
        for body in [CHAT_JSON, CHAT_SSE, RESPONSES_JSON, RESPONSES_SSE] {
            let mut s = UsageScanner::new();
            s.push(body.as_bytes());
            assert!(s.usage().is_some());
            assert!(s.retained_bytes() <= 512, "{} bytes", s.retained_bytes());
        }
        let mut s = UsageScanner::new();
        s.push(b"no usage here");
        assert_eq!(
            s.retained_bytes(),
            0,
            "nothing is allocated before a usage object starts"
        );
    }

    #[test]
    fn default_is_new() {
        assert_eq!(UsageScanner::default().usage(), None);
    }
}
