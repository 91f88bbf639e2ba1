//! Mutators: strings, bytes and JSON values edited the ways parsers break — control
//! characters, NULs, invalid UTF-8, unicode, quotes and braces, numbers at every edge,
//! wrong types, keys added, removed and renamed, subtrees spliced in, deep nesting.

use crate::runner::Rng;
use serde_json::{json, Map, Value};

/// Strings worth trying anywhere: control and invisible characters, escapes, quotes,
/// braces, separators, unicode, numbers as text, key-shaped hex and the filter's own words.
pub const STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "a\nb",
    "\r\n",
    "\t",
    "\u{1b}[2J",
    "\u{7f}",
    "\u{85}",
    "\u{202e}gnp.exe",
    "\u{200b}",
    "\u{feff}",
    "é",
    "Région d'Europe",
    "🦀",
    "\u{10ffff}",
    "\u{fffd}",
    "\"",
    "\\",
    "'",
    "{",
    "}",
    "{{",
    "}}",
    "{request.method}",
    "{nope}",
    "%",
    "%00",
    "%zz",
    "/",
    "/..",
    ";",
    "=",
    ",",
    ":",
    "|",
    "-",
    "*",
    "null",
    "true",
    "0",
    "-1",
    "1e999",
    "NaN",
    "00000000-0000-0000-0000-000000000000",
    "0123456789abcdef0123456789ABCDEF",
    "InstrumentationKey=11111111-2222-3333-4444-555555555555",
    "SystemAssigned",
    "W3C",
    "Legacy",
    "None",
    "verbose",
    "information",
    "error",
    "Name",
    "Url",
    "Mask",
    "Hide",
    "5xx",
    "GET",
];

/// Byte sequences worth inserting into JSON text and headers.
pub const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\n",
    b"\r",
    b"\t",
    b" ",
    b"\x1b[31m",
    b"\x7f",
    b"\xc2\x85",
    b"\xe2\x80\xae",
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b";",
    b"=",
    b"-",
    b"|",
    b".",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"NaN",
    b"Infinity",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.000000000000000000000000000001",
    b"{request.header.x-tenant}",
    b"{{",
    b"}}",
];

/// A character from anywhere: ASCII, controls, Latin-1, the BMP, the astral planes.
fn any_char(rng: &mut Rng) -> char {
    let code = match rng.below(6) {
        0 => rng.below(0x20) as u32,
        1 => 0x20 + rng.below(0x5f) as u32,
        2 => 0x80 + rng.below(0x180) as u32,
        3 => rng.below(0x1_0000) as u32,
        4 => 0x1_0000 + rng.below(0x10_0000) as u32,
        _ => *rng.pick(&[0x202e, 0x200b, 0xfeff, 0x2028, 0x2029, 0xfffd, 0x10ffff]),
    };
    char::from_u32(code).unwrap_or('\u{fffd}')
}

/// A string: one of [`STRINGS`], a few of them, a long run of one character, or random
/// characters.
pub fn string(rng: &mut Rng) -> String {
    match rng.below(20) {
        0..=12 => rng.pick(STRINGS).to_string(),
        13..=15 => (0..rng.upto(3) + 1).map(|_| *rng.pick(STRINGS)).collect(),
        16 | 17 => {
            let c = if rng.chance(50) { 'x' } else { any_char(rng) };
            c.to_string().repeat(rng.length())
        }
        _ => (0..rng.length().min(200)).map(|_| any_char(rng)).collect(),
    }
}

/// Flips, sets, inserts, deletes, duplicates and truncates bytes, inserts tokens and long
/// runs: one to four edits.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, tokens: &[&[u8]]) {
    for _ in 0..rng.upto(3) + 1 {
        let at = rng.upto(data.len());
        match rng.below(10) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = *rng.pick(&[0, 0x7f, 0xff, 0x80, b'"', b'\\', b'{', b'}', b';', b'=', b' ', b'\n']);
            }
            2 => {
                let n = rng.upto(7) + 1;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                insert(data, at, &bytes);
            }
            3 => {
                let end = (at + rng.upto(16)).min(data.len());
                data.drain(at..end);
            }
            4 if !data.is_empty() => {
                let from = rng.below(data.len());
                let end = (from + rng.upto(32) + 1).min(data.len());
                let piece = data[from..end].to_vec();
                insert(data, at, &piece);
            }
            5 | 6 => {
                let token = *rng.pick(tokens);
                insert(data, at, token);
            }
            7 => {
                let b = *rng.pick(&[b'x', b' ', 0, b'[', b'{', b'9', b'\\', 0xff]);
                let n = rng.length();
                insert(data, at, &vec![b; n]);
            }
            8 => data.truncate(at),
            _ => {
                let s = string(rng);
                insert(data, at, s.as_bytes());
            }
        }
    }
}

/// `bytes` inserted at `at` (copies, not byte by byte: debug builds run these tests).
fn insert(data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    *data = [&data[..at], bytes, &data[at..]].concat();
}

/// A string edited: replaced, with something inserted or removed, case-flipped, or its
/// bytes mutated (invalid UTF-8 then becomes U+FFFD, as `&str` inputs need).
pub fn mutate_string(rng: &mut Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let at = rng.upto(chars.len());
    match rng.below(6) {
        0 => string(rng),
        1 => {
            let mut out: String = chars[..at].iter().collect();
            out.push_str(&string(rng));
            out.extend(&chars[at..]);
            out
        }
        2 => {
            let end = (at + rng.upto(8)).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        3 => s
            .chars()
            .map(|c| {
                if c.is_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        _ => {
            let mut bytes = s.as_bytes().to_vec();
            mutate_bytes(rng, &mut bytes, TOKENS);
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

/// A JSON number at an edge: limits of the configuration's ranges, huge, negative,
/// fractional, beyond `u64` and `f64` precision.
pub fn number(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!(*rng.pick(&[
            0u64,
            1,
            9,
            10,
            99,
            100,
            101,
            1023,
            1024,
            8192,
            8193,
            32_768,
            60_000,
            64_000,
            64_001,
            65_536,
            3_600_000,
            3_600_001,
            86_400_000,
            16_777_216,
            268_435_456,
            268_435_457,
            u64::from(u32::MAX),
            1 << 53,
            (1 << 53) + 1,
            u64::MAX
        ])),
        1 => json!(*rng.pick(&[-1i64, -100, i64::MIN, -(1 << 53)])),
        2 => json!(*rng.pick(&[
            0.5,
            12.5,
            99.999,
            100.000_000_000_001,
            1e-300,
            1e308,
            -1e308,
            5.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            18_446_744_073_709_551_616.0
        ])),
        _ => json!(rng.next() >> rng.below(64)),
    }
}

/// A random JSON value (objects keyed with `keys` or random strings).
fn value(rng: &mut Rng, keys: &[&str], depth: usize) -> Value {
    match rng.below(if depth > 2 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 | 3 => number(rng),
        4 => Value::String(string(rng)),
        5 => (0..rng.upto(3)).map(|_| value(rng, keys, depth + 1)).collect(),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.upto(3) {
                let key = if rng.chance(70) {
                    rng.pick(keys).to_string()
                } else {
                    string(rng)
                };
                map.insert(key, value(rng, keys, depth + 1));
            }
            Value::Object(map)
        }
    }
}

/// Nodes of a JSON value, itself included.
fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `n`-th node of `v` in pre-order.
fn node_at(v: &mut Value, n: usize) -> &mut Value {
    fn go<'a>(v: &'a mut Value, left: &mut usize) -> Option<&'a mut Value> {
        if *left == 0 {
            return Some(v);
        }
        *left -= 1;
        match v {
            Value::Array(a) => a.iter_mut().find_map(|x| go(x, left)),
            Value::Object(m) => m.values_mut().find_map(|x| go(x, left)),
            _ => None,
        }
    }
    let mut left = n.min(count_nodes(v) - 1);
    go(v, &mut left).expect("a node below the count")
}

/// Edits one node of `root`: replaces it (with a random value or a subtree of a `donor`),
/// nests it deeply, or edits it by type (keys added, removed or renamed; elements removed,
/// duplicated or added; strings and numbers mutated; booleans flipped or made strings).
pub fn mutate_value(rng: &mut Rng, root: &mut Value, donors: &[Value], keys: &[&str]) {
    let n = count_nodes(root);
    let pick = rng.below(n);
    let donor = {
        let d = rng.pick(donors);
        let mut d = d.clone();
        let at = rng.below(count_nodes(&d));
        node_at(&mut d, at).take()
    };
    let node = node_at(root, pick);
    match rng.below(12) {
        0 => *node = value(rng, keys, 0),
        1 => *node = donor,
        2 => {
            let depth = *rng.pick(&[2, 10, 126, 127, 128, 129, 600]);
            let mut v = node.take();
            for i in 0..depth {
                // Not `json!`: it would copy the whole value at every level.
                v = if i % 2 == 0 {
                    Value::Array(vec![v])
                } else {
                    Value::Object(Map::from_iter([(rng.pick(keys).to_string(), v)]))
                };
            }
            *node = v;
        }
        _ => match node {
            Value::Object(map) => match rng.below(4) {
                0 => {
                    let key = if rng.chance(70) {
                        rng.pick(keys).to_string()
                    } else {
                        string(rng)
                    };
                    let v = if rng.chance(50) { donor } else { value(rng, keys, 0) };
                    map.insert(key, v);
                }
                1 if !map.is_empty() => {
                    let key = map.keys().nth(rng.below(map.len())).cloned().unwrap();
                    map.remove(&key);
                }
                2 if !map.is_empty() => {
                    let key = map.keys().nth(rng.below(map.len())).cloned().unwrap();
                    let v = map.remove(&key).unwrap();
                    map.insert(mutate_string(rng, &key), v);
                }
                _ if !map.is_empty() => {
                    let key = map.keys().nth(rng.below(map.len())).cloned().unwrap();
                    map.insert(key, value(rng, keys, 1));
                }
                _ => {
                    map.insert(rng.pick(keys).to_string(), donor);
                }
            },
            Value::Array(list) => match rng.below(4) {
                0 if !list.is_empty() => {
                    list.remove(rng.below(list.len()));
                }
                1 if !list.is_empty() => {
                    let i = rng.below(list.len());
                    let copy = list[i].clone();
                    list.insert(i, copy);
                }
                2 => list.push(donor),
                _ => list.push(value(rng, keys, 1)),
            },
            Value::String(s) => *s = mutate_string(rng, s),
            Value::Number(_) => *node = number(rng),
            Value::Bool(b) if rng.chance(50) => *b = !*b,
            Value::Bool(b) => *node = Value::String(b.to_string()),
            Value::Null => *node = value(rng, keys, 0),
        },
    }
}

/// How many edits a case makes: none now and then (the valid seed itself), mostly one,
/// sometimes several.
pub fn edits(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0 => 0,
        1..=5 => 1,
        _ => rng.upto(4) + 1,
    }
}
