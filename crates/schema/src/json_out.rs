//! JSON written straight into bytes, byte for byte what `serde_json::to_writer` writes for the
//! same values: a string without anything to escape (nearly every key and value of a record)
//! is copied between its quotes at once, instead of going through the serializer's escaping
//! and its writer calls, and an integer is written digit by digit; strings that need escaping
//! and other numbers are handed to `serde_json`.

use serde_json::Value;

/// Whether `serde_json` writes `s` between quotes as it is: no `"`, no `\` and no control
/// character below 0x20 (it escapes nothing else). Eight bytes are checked at a time; the last
/// word overlaps the one before it, or is padded with a plain byte when `s` is shorter.
fn plain(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    if b.len() < 8 {
        let mut bytes = [b'a'; 8];
        bytes[..b.len()].copy_from_slice(b);
        return !escapes(u64::from_le_bytes(bytes));
    }
    let last = b.len() - 8;
    (0..last).step_by(8).all(|at| !escapes(word(at))) && !escapes(word(last))
}

/// Every byte of a word set to 1.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `word` is below 0x20, `"` or `\`. A byte's high bit
/// survives `byte - n` and `!byte` together only if the byte was below `n` (n ≤ 0x80), and the
/// first such byte is found exactly (a borrow only reaches the bytes after it); a byte equal to
/// `c` is a zero byte of `word ^ c`.
fn escapes(word: u64) -> bool {
    let below = |n: u64| word.wrapping_sub(ONES * n) & !word & HIGHS;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    below(0x20) | quote | backslash != 0
}

/// Writes `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    if plain(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        write_serde(out, s);
    }
}

/// Writes `key` as an object key, with its colon.
pub fn write_key(out: &mut Vec<u8>, key: &str) {
    write_str(out, key);
    out.push(b':');
}

/// Writes `value` as JSON.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_str(out, s),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => write_u64(out, u),
            (None, Some(i)) => write_i64(out, i),
            _ => write_serde(out, n),
        },
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        // In the map's own order, as serde_json iterates it.
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_key(out, key);
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// Writes `n` in decimal.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes `n` in decimal.
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Writes `value` through `serde_json`.
pub fn write_serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing into a `Vec` cannot fail, and a map key that is no string (which would) does not
    // occur in the values written here.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_come_out_as_serde_json_writes_them() {
        let mut every_byte = String::new();
        for c in (0u8..0x80).map(char::from) {
            every_byte.push(c);
        }
        let cases = [
            "",
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "line\nbreak\ttab\r\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "/slash and ünïcödé ✓ 🦀",
            &every_byte,
        ];
        for s in cases {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn any_byte_anywhere_in_a_word_is_escaped_as_serde_json_escapes_it() {
        let chars = (0u8..0x80)
            .map(char::from)
            .chain(['é', '✓', '🦀', '\u{80}', '\u{7ff}']);
        for c in chars {
            for (len, at) in (1..=17).flat_map(|len| (0..len).map(move |at| (len, at))) {
                let mut s = "a".repeat(len);
                s.replace_range(at..=at, c.encode_utf8(&mut [0; 4]));
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(
                    out,
                    serde_json::to_vec(&s).unwrap(),
                    "{c:?} at {at} of {len}"
                );
            }
        }
    }

    #[test]
    fn values_come_out_as_serde_json_writes_them() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-12),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.000_001),
            json!(1e300),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(-1),
            json!(9),
            json!(10),
            json!(1_000_000_007),
            json!(-1e-7),
            json!(2.0),
            json!("text \"quoted\"\n"),
            json!(["a", 1, null, {"k\"ey": "v\\al"}]),
            json!({"b": 1, "a": [true, false], "nested": {"x": "y\u{1}"}}),
            json!([]),
            json!({}),
            json!([[], {}, [{"a": [{"b\n": "c\"d"}]}]]),
        ];
        let powers = (0..19).flat_map(|k| {
            let p = 10i64.pow(k);
            [
                json!(p - 1),
                json!(p),
                json!(p + 1),
                json!(-p),
                json!(1 - p),
            ]
        });
        for v in values.into_iter().chain(powers) {
            let mut out = Vec::new();
            write_value(&mut out, &v);
            assert_eq!(out, serde_json::to_vec(&v).unwrap(), "{v}");
        }
    }
}
