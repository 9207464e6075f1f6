//! JSON written straight into bytes, byte for byte what `serde_json::to_writer` writes for the
//! same values: a string without anything to escape (nearly every key and value of a record)
//! is copied between its quotes at once, instead of going through the serializer's escaping
//! and its writer calls; numbers and strings that need escaping are handed to `serde_json`.

use serde_json::Value;

/// Whether `serde_json` writes `s` between quotes as it is: no `"`, no `\` and no control
/// character below 0x20 (it escapes nothing else).
fn plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
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
        Value::Number(n) => write_serde(out, n),
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
            json!("text \"quoted\"\n"),
            json!(["a", 1, null, {"k\"ey": "v\\al"}]),
            json!({"b": 1, "a": [true, false], "nested": {"x": "y\u{1}"}}),
            json!([]),
            json!({}),
            json!([[], {}, [{"a": [{"b\n": "c\"d"}]}]]),
        ];
        for v in values {
            let mut out = Vec::new();
            write_value(&mut out, &v);
            assert_eq!(out, serde_json::to_vec(&v).unwrap(), "{v}");
        }
    }
}
