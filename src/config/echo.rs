//! Configured values as error messages repeat them: a short prefix, escaped, with nothing
//! shaped like a key.
//!
//! Envoy logs a refused configuration's error as one line. A value repeated whole could
//! make that line a megabyte long, a control character in it would reach the log raw (a
//! NUL, a newline forging a second line, a terminal escape), and an instrumentation key
//! pasted into the wrong field would be logged. So every configured string an error
//! repeats (a field name, a logger name, a path prefix, a template) goes through
//! [`excerpt`], and [`log_line`] bounds the whole message whatever it holds.

/// Characters of a configured value an error message repeats.
const EXCERPT_CHARS: usize = 64;
/// Characters of a whole error message, field and problem together.
const MAX_MESSAGE_CHARS: usize = 1024;
/// Hex digits in a run of hex digits and `-` that make it look like a key (an
/// instrumentation key has 32, a client id too; a word like `cafe-babe` has 8).
const KEY_LIKE_HEX_DIGITS: usize = 16;
/// What a key-like run is shown as.
const REDACTED: &str = "<redacted>";

/// `value` as an error message may repeat it: key-like runs of hex digits replaced by
/// `<redacted>`, cut to 64 characters (with `…` when cut), and escaped
/// as Rust's `{:?}` would (`\0`, `\n`, `\u{202e}`, `\"`; a `'` stays as it is).
pub fn excerpt(value: &str) -> String {
    let redacted = redact_key_like(value);
    let mut out = String::new();
    let mut chars = redacted.chars();
    for c in chars.by_ref().take(EXCERPT_CHARS) {
        if c == '\'' {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// A whole error message bounded for one log line: control characters escaped, cut to
/// [`MAX_MESSAGE_CHARS`]. Messages built from [`excerpt`]s pass through unchanged; this
/// is the guarantee for whatever else a message may hold.
pub(crate) fn log_line(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars();
    for c in chars.by_ref().take(MAX_MESSAGE_CHARS) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `value` with every maximal run of hex digits and `-` that holds at least
/// [`KEY_LIKE_HEX_DIGITS`] hex digits replaced by [`REDACTED`].
fn redact_key_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(4 * EXCERPT_CHARS));
    let mut run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if run.chars().filter(char::is_ascii_hexdigit).count() >= KEY_LIKE_HEX_DIGITS {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in value.chars() {
        if c.is_ascii_hexdigit() || c == '-' {
            run.push(c);
        } else {
            flush(&mut out, &mut run);
            out.push(c);
        }
    }
    flush(&mut out, &mut run);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_printable_value_is_shown_as_it_is() {
        assert_eq!(excerpt("/orders"), "/orders");
        assert_eq!(excerpt("Région d'Europe"), "Région d'Europe");
    }

    #[test]
    fn a_long_value_is_cut_to_64_characters_on_a_char_boundary() {
        assert_eq!(excerpt(&"x".repeat(1 << 20)), format!("{}…", "x".repeat(64)));
        assert_eq!(excerpt(&"x".repeat(64)), "x".repeat(64));
        assert_eq!(excerpt(&"é".repeat(100)), format!("{}…", "é".repeat(64)));
        assert_eq!(excerpt(&"🦀".repeat(65)), format!("{}…", "🦀".repeat(64)));
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(
            excerpt("a\0b\nc\r\t\u{1b}[31m\u{7f}\u{85}\u{202e}\u{200b}\"\\"),
            "a\\0b\\nc\\r\\t\\u{1b}[31m\\u{7f}\\u{85}\\u{202e}\\u{200b}\\\"\\\\"
        );
        let escaped = excerpt(&"\0".repeat(1000));
        assert_eq!(escaped, format!("{}…", "\\0".repeat(64)));
        assert!(!escaped.chars().any(char::is_control));
    }

    #[test]
    fn key_like_hex_runs_are_never_shown() {
        assert_eq!(
            excerpt("InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=https://x/"),
            "InstrumentationKey=<redacted>;IngestionEndpoint=https://x/"
        );
        assert_eq!(excerpt("key 0123456789ABCDEF0123456789abcdef"), "key <redacted>");
        assert_eq!(excerpt("deadbeefdeadbeef"), "<redacted>");
        assert_eq!(
            excerpt("cafe-babe deadbeefdeadbee"),
            "cafe-babe deadbeefdeadbee",
            "under 16 hex digits"
        );
        let long = format!("{}11111111-2222-3333-4444-555555555555", "y".repeat(50));
        assert!(!excerpt(&long).contains("1111"), "{}", excerpt(&long));
    }
}
