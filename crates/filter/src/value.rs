//! SQL values, PocketBase's storage conventions and the slice of SQLite's
//! value semantics (affinity, comparison, LIKE) the in-memory evaluator needs
//! to agree with SQLite bit for bit.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::schema::{FieldInfo, FieldType};

/// A bound parameter value, in SQLite's storage classes.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

/// Column affinity, as SQLite derives it from a declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// `TEXT` columns.
    Text,
    /// `NUMERIC`, `BOOLEAN` and `JSON` columns.
    Numeric,
    /// Expressions, parameters and `json_each` columns: no affinity.
    None,
}

/// The affinity of the column PocketBase creates for a field.
pub(crate) fn field_affinity(field: &FieldInfo) -> Affinity {
    match field.field_type {
        FieldType::Number | FieldType::Bool | FieldType::Json | FieldType::GeoPoint => {
            Affinity::Numeric
        }
        _ if field.multiple => Affinity::Numeric,
        _ => Affinity::Text,
    }
}

/// The SQL column type PocketBase declares for a field (useful to build test
/// tables with the same affinities).
pub fn column_type(field: &FieldInfo) -> &'static str {
    match field.field_type {
        FieldType::Number => "NUMERIC DEFAULT 0 NOT NULL",
        FieldType::Bool => "BOOLEAN DEFAULT FALSE NOT NULL",
        FieldType::Json => "JSON DEFAULT NULL",
        FieldType::GeoPoint => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
        _ if field.multiple => "JSON DEFAULT '[]' NOT NULL",
        _ if field.name == "id" => "TEXT PRIMARY KEY NOT NULL",
        _ => "TEXT DEFAULT '' NOT NULL",
    }
}

/// A value during in-memory evaluation. `Json` is a column holding JSON text
/// (multi-value, json and geoPoint fields), kept parsed so `json_each` and
/// `json_extract` need not re-parse; compared as the text PocketBase stores.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Json(&'a Value),
}

impl<'a> Val<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// Resolves `Json` to the plain storage class SQLite would hold.
    pub fn plain(self) -> Val<'a> {
        match self {
            Val::Json(v) => stored_json(v),
            other => other,
        }
    }

    /// The value as text, the way SQLite's string functions see it.
    pub fn to_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Val::Null => None,
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::Real(f) => Some(Cow::Owned(sqlite_real_text(*f))),
            Val::Text(s) => Some(s.clone()),
            Val::Json(v) => stored_json(v).to_text(),
        }
    }
}

/// What a JSON column holds after SQLite applied NUMERIC affinity to the text
/// PocketBase wrote: numbers become numbers, everything else stays text.
fn stored_json(v: &Value) -> Val<'static> {
    match v {
        Value::Number(n) => number_val(n),
        other => Val::Text(Cow::Owned(go_json(other))),
    }
}

pub(crate) fn number_val(n: &serde_json::Number) -> Val<'static> {
    if let Some(i) = n.as_i64() {
        Val::Int(i)
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f.fract() == 0.0 && f.abs() < 9.0e18 {
            Val::Int(f as i64)
        } else {
            Val::Real(f)
        }
    }
}

/// The value of a field as SQLite stores it, read from an API-shaped record
/// value (`None` = key absent).
pub(crate) fn column_val<'a>(field: &FieldInfo, value: Option<&'a Value>) -> Val<'a> {
    let value = value.unwrap_or(&Value::Null);
    match field.field_type {
        FieldType::Json | FieldType::GeoPoint => match value {
            Value::Null if field.field_type == FieldType::Json => Val::Null,
            v => Val::Json(v),
        },
        _ if field.multiple => Val::Json(value),
        FieldType::Number | FieldType::Bool => match value {
            Value::Number(n) => number_val(n),
            Value::Bool(b) => Val::Int(i64::from(*b)),
            Value::String(s) => numeric_affinity(Val::Text(Cow::Borrowed(s))),
            _ => Val::Int(0),
        },
        _ => match value {
            Value::String(s) => Val::Text(Cow::Borrowed(s)),
            Value::Null => Val::Text(Cow::Borrowed("")),
            Value::Number(n) => Val::Text(Cow::Owned(n.to_string())),
            Value::Bool(b) => Val::Text(Cow::Borrowed(if *b { "true" } else { "false" })),
            other => Val::Text(Cow::Owned(go_json(other))),
        },
    }
}

/// The value to bind when writing `value` into the column of `field`, following
/// PocketBase's table layout. The evaluator reads records the same way, which is
/// what makes the two agree.
pub fn storage_value(field: &FieldInfo, value: Option<&Value>) -> SqlValue {
    match column_val(field, value) {
        Val::Json(v) if field.field_type == FieldType::GeoPoint => SqlValue::Text(geo_json(v)),
        v => match v.plain() {
            Val::Null => SqlValue::Null,
            Val::Int(i) => SqlValue::Integer(i),
            Val::Real(f) => SqlValue::Real(f),
            Val::Text(s) => SqlValue::Text(s.into_owned()),
            Val::Json(_) => SqlValue::Null,
        },
    }
}

/// `{"lon":x,"lat":y}` in PocketBase's key order.
fn geo_json(v: &Value) -> String {
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    format!(
        "{{\"lon\":{},\"lat\":{}}}",
        go_number(num("lon")),
        go_number(num("lat"))
    )
}

/// Formats a float the way Go's `encoding/json` does for ordinary magnitudes.
fn go_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i128)
    } else {
        format!("{f}")
    }
}

/// JSON text as Go's `encoding/json` writes it (PocketBase stores arrays this
/// way): compact, with `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn go_json(v: &Value) -> String {
    if let Value::Object(map) = v
        && map.len() == 2
        && map.contains_key("lon")
        && map.contains_key("lat")
    {
        return geo_json(v);
    }
    let s = v.to_string();
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// SQLite's REAL → TEXT conversion (`%!.15g`).
pub(crate) fn sqlite_real_text(f: f64) -> String {
    if f.is_nan() {
        return String::new();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{f:.14e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..15).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// SQLite's NUMERIC affinity applied to a value about to be compared.
#[inline]
pub(crate) fn numeric_affinity(v: Val<'_>) -> Val<'_> {
    match v {
        Val::Text(s) => match parse_sqlite_number(&s) {
            Some(n) => n,
            None => Val::Text(s),
        },
        Val::Json(j) => numeric_affinity(stored_json(j)),
        other => other,
    }
}

fn parse_sqlite_number(s: &str) -> Option<Val<'static>> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return None;
    }
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    if !body.as_bytes()[0].is_ascii_digit() && body.as_bytes()[0] != b'.' {
        return None;
    }
    if body.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = t.parse::<i64>()
    {
        return Some(Val::Int(i));
    }
    let f = t.parse::<f64>().ok()?;
    if f.fract() == 0.0 && f.abs() < 9.0e18 && !body.contains(['e', 'E']) && body.contains('.') {
        return Some(Val::Real(f));
    }
    Some(Val::Real(f))
}

/// SQLite's TEXT affinity applied to a value about to be compared.
pub(crate) fn text_affinity(v: Val<'_>) -> Val<'_> {
    match v {
        Val::Int(_) | Val::Real(_) | Val::Json(_) => match v.to_text() {
            Some(t) => Val::Text(t),
            None => Val::Null,
        },
        other => other,
    }
}

/// Applies the affinity rules SQLite uses before a comparison.
pub(crate) fn with_affinity<'a>(
    l: Val<'a>,
    la: Affinity,
    r: Val<'a>,
    ra: Affinity,
) -> (Val<'a>, Val<'a>) {
    let (l, r) = (l.plain(), r.plain());
    match (la, ra) {
        (Affinity::Numeric, Affinity::Text | Affinity::None) => (l, numeric_affinity(r)),
        (Affinity::Text | Affinity::None, Affinity::Numeric) => (numeric_affinity(l), r),
        (Affinity::Text, Affinity::None) => (l, text_affinity(r)),
        (Affinity::None, Affinity::Text) => (text_affinity(l), r),
        _ => (l, r),
    }
}

/// SQLite's ordering of two non-NULL values: numbers before text, text bytewise.
pub(crate) fn compare(l: &Val<'_>, r: &Val<'_>) -> Ordering {
    fn rank(v: &Val<'_>) -> u8 {
        match v {
            Val::Null => 0,
            Val::Int(_) | Val::Real(_) => 1,
            _ => 2,
        }
    }
    match (l, r) {
        (Val::Int(a), Val::Int(b)) => a.cmp(b),
        (Val::Int(a), Val::Real(b)) => (*a as f64).partial_cmp(b).unwrap_or(Ordering::Equal),
        (Val::Real(a), Val::Int(b)) => a.partial_cmp(&(*b as f64)).unwrap_or(Ordering::Equal),
        (Val::Real(a), Val::Real(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
        (Val::Text(a), Val::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
        _ => rank(l).cmp(&rank(r)),
    }
}

/// `text LIKE pattern ESCAPE '\'`, ASCII case-insensitive like SQLite's built-in.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    if text.is_ascii() && pattern.is_ascii() {
        // Every character is one byte: match the bytes in place.
        like_at(text.as_bytes(), pattern.as_bytes())
    } else {
        let t: Vec<char> = text.chars().collect();
        let p: Vec<char> = pattern.chars().collect();
        like_at(&t, &p)
    }
}

/// One character of a LIKE operand: a byte of ASCII text, or a `char`.
trait LikeUnit: Copy + Eq {
    const PERCENT: Self;
    const UNDERSCORE: Self;
    const BACKSLASH: Self;
    /// Equal, ignoring ASCII case only (SQLite's default LIKE).
    fn eq_fold(self, other: Self) -> bool;
}

impl LikeUnit for u8 {
    const PERCENT: u8 = b'%';
    const UNDERSCORE: u8 = b'_';
    const BACKSLASH: u8 = b'\\';
    fn eq_fold(self, other: u8) -> bool {
        self.eq_ignore_ascii_case(&other)
    }
}

impl LikeUnit for char {
    const PERCENT: char = '%';
    const UNDERSCORE: char = '_';
    const BACKSLASH: char = '\\';
    fn eq_fold(self, other: char) -> bool {
        self == other || (self.is_ascii() && other.is_ascii() && self.eq_ignore_ascii_case(&other))
    }
}

fn like_at<U: LikeUnit>(t: &[U], p: &[U]) -> bool {
    let (mut ti, mut pi) = (0, 0);
    // Positions to resume from after the most recent `%` (classic wildcard
    // backtracking: only the last star needs remembering).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            let c = p[pi];
            if c == U::PERCENT {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            if c == U::UNDERSCORE {
                if ti < t.len() {
                    ti += 1;
                    pi += 1;
                    continue;
                }
            } else if c == U::BACKSLASH {
                // An escape must be followed by the character it escapes.
                if pi + 1 >= p.len() {
                    return false;
                }
                if ti < t.len() && p[pi + 1].eq_fold(t[ti]) {
                    ti += 1;
                    pi += 2;
                    continue;
                }
            } else if ti < t.len() && c.eq_fold(t[ti]) {
                ti += 1;
                pi += 1;
                continue;
            }
        } else if ti == t.len() {
            return true;
        }
        match star {
            Some((sp, st)) if st < t.len() => {
                star = Some((sp, st + 1));
                pi = sp;
                ti = st + 1;
            }
            _ => return false,
        }
    }
}

/// A JSON value (an element or an extracted path) as SQLite's JSON functions
/// return it.
pub(crate) fn json_scalar(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Int(i64::from(*b)),
        Value::Number(n) => number_val(n),
        Value::String(s) => Val::Text(Cow::Borrowed(s)),
        other => Val::Text(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_print_like_sqlite() {
        assert_eq!(sqlite_real_text(5.0), "5.0");
        assert_eq!(sqlite_real_text(1.5), "1.5");
        assert_eq!(sqlite_real_text(-0.25), "-0.25");
        assert_eq!(sqlite_real_text(0.0001), "0.0001");
        assert_eq!(sqlite_real_text(1e20), "1.0e+20");
        assert_eq!(sqlite_real_text(123456789012345.0), "123456789012345.0");
    }

    #[test]
    fn like_matches_sqlite() {
        assert!(like("Hello", "%ell%"));
        assert!(like("hello", "HEL%"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(like("axb", "a_b"));
        assert!(like("50%", "%0\\%"));
        assert!(!like("abc", "abc\\"));
        assert!(like("", "%"));
        assert!(!like("x", ""));
        assert!(like("ÄÖ", "ÄÖ"));
        assert!(!like("ä", "Ä"));
        assert!(like("Ünïcode ✓", "%CODE _"));
        assert!(like("x✓y", "x_y"));
        assert!(!like("x✓y", "x__y"));
        assert!(like("back\\slash", "%k\\\\s%"));
    }

    #[test]
    fn like_reads_ascii_bytes_as_it_reads_chars() {
        let words = [
            "", "a", "A", "ab", "aB_", "%", "_", "\\", "a%b", "a\\%", "\\_x", "%a%", "a_c", "abc",
            "ABC", "x\\", "%%", "__", "a\\b", "50%",
        ];
        for t in words {
            for p in words {
                let chars = |s: &str| s.chars().collect::<Vec<_>>();
                assert_eq!(
                    like_at(t.as_bytes(), p.as_bytes()),
                    like_at(&chars(t), &chars(p)),
                    "{t:?} LIKE {p:?}"
                );
            }
        }
    }

    #[test]
    fn go_json_escapes_html() {
        assert_eq!(
            go_json(&serde_json::json!(["<a>&"])),
            r#"["\u003ca\u003e\u0026"]"#
        );
    }
}
