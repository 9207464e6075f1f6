//! Record values, field by field: normalising incoming JSON (or multipart-inferred) values the
//! way PocketBase does, validating them with PocketBase's codes, and converting between the
//! in-memory value (the record JSON value) and the stored SQL value.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use regex::Regex;
use serde_json::{Map, Value};

use crate::datetime::{self, DateTime};
use crate::error::FieldError;
use crate::field::{
    DEFAULT_EDITOR_MAX_SIZE, DEFAULT_JSON_MAX_SIZE, DEFAULT_PASSWORD_MAX, DEFAULT_TEXT_MAX,
    DateOptions, DomainOptions, EditorOptions, Field, FieldKind, FileOptions, JsonOptions,
    NumberOptions, PasswordOptions, RelationOptions, SelectOptions, TextOptions, number_value,
};

/// A value as SQLite stores it; the `store` crate binds these as parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
}

/// A stored value as SQLite hands it over, borrowed from the row being read: text is copied
/// only into the record value it becomes (see [`Field::from_sql_ref`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlRef<'a> {
    /// SQL NULL.
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(&'a str),
}

impl SqlRef<'_> {
    /// The owned value.
    pub fn into_owned(self) -> SqlValue {
        match self {
            SqlRef::Null => SqlValue::Null,
            SqlRef::Integer(i) => SqlValue::Integer(i),
            SqlRef::Real(f) => SqlValue::Real(f),
            SqlRef::Text(s) => SqlValue::Text(s.to_owned()),
        }
    }
}

impl SqlValue {
    /// The text, when this is TEXT.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }
}

static EMAIL_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$").ok()
});

static URL_RE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:[a-z][a-z0-9+.-]*://)?(?:[^\s:@/]+(?::[^\s@/]*)?@)?(?:localhost|(?:[\p{L}\p{N}](?:[\p{L}\p{N}_-]{0,62})?\.)+[\p{L}]{2,63}|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d{1,5})?(?:[/?#]\S*)?$").ok()
});

/// True when `s` looks like an email address (the `email` field's format check).
pub fn is_email(s: &str) -> bool {
    s.len() <= 254 && EMAIL_RE.as_ref().is_some_and(|re| re.is_match(s))
}

/// True when `s` looks like a URL (the `url` field's format check).
pub fn is_url(s: &str) -> bool {
    s.len() >= 3 && s.len() < 2083 && URL_RE.as_ref().is_some_and(|re| re.is_match(s))
}

fn url_host(s: &str) -> String {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or_default()
    };
    host.to_ascii_lowercase()
}

/// Go's `cast.ToString` for JSON values: scalars print, everything else is `""`.
pub fn to_string_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                n.as_f64().map(|f| f.to_string()).unwrap_or_default()
            }
        }
        _ => String::new(),
    }
}

/// Go's `cast.ToFloat64`: numbers, numeric strings and bools; anything else is 0.
pub fn to_float(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::Bool(true) => 1.0,
        Value::String(s) => parse_go_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if body.starts_with("inf") || body == "nan" {
        // Go accepts these and the number validator rejects them later.
        return s.parse::<f64>().ok().or(Some(f64::NAN));
    }
    s.parse::<f64>().ok()
}

/// Go's `cast.ToBool`: `true`, non-zero numbers and `strconv.ParseBool` truthy strings.
pub fn to_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True"),
        _ => false,
    }
}

/// The one item [`to_unique_strings`] makes of `v` when `v` is a plain non-empty string (no
/// JSON array inside), read in place: a single relation, select or file value, as most are.
fn single_string(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) if !s.is_empty() && !s.contains('[') => Some(s),
        _ => None,
    }
}

/// PocketBase's `ToUniqueStringSlice`: a list of non-empty unique strings from a string (a
/// JSON array string is decoded), an array, or a scalar.
pub fn to_unique_strings(v: &Value) -> Vec<String> {
    let raw: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => {
            if s.contains('[') {
                match serde_json::from_str::<Vec<Value>>(s) {
                    Ok(items) => items.iter().map(to_string_value).collect(),
                    Err(_) => vec![s.clone()],
                }
            } else {
                vec![s.clone()]
            }
        }
        Value::Array(items) => items.iter().map(to_string_value).collect(),
        other => vec![to_string_value(other)],
    };
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for s in raw {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The geoPoint `{lon, lat}` of a value (object or JSON string); missing parts are 0.
pub fn to_geo_point(v: &Value) -> (f64, f64) {
    let obj = match v {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => serde_json::from_str::<Map<String, Value>>(s).ok(),
        _ => None,
    };
    obj.map_or((0.0, 0.0), |o| {
        (
            o.get("lon").map_or(0.0, to_float),
            o.get("lat").map_or(0.0, to_float),
        )
    })
}

fn geo_value(lon: f64, lat: f64) -> Value {
    let mut m = Map::new();
    m.insert("lon".into(), number_value(lon));
    m.insert("lat".into(), number_value(lat));
    Value::Object(m)
}

/// Serialises a geoPoint with PocketBase's key order (`lon` first).
pub fn geo_json(lon: f64, lat: f64) -> String {
    format!(
        "{{\"lon\":{},\"lat\":{}}}",
        number_value(lon),
        number_value(lat)
    )
}

/// The json field's string handling: strings that are valid JSON `null/true/false`, numbers,
/// strings, arrays or objects are decoded; other strings are kept as JSON strings.
fn normalize_json(v: &Value) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            let looks_json = matches!(t, "null" | "true" | "false")
                || t.starts_with(|c: char| {
                    c.is_ascii_digit() || matches!(c, '-' | '"' | '[' | '{')
                });
            if looks_json && let Ok(parsed) = serde_json::from_str::<Value>(t) {
                return parsed;
            }
            v.clone()
        }
        other => other.clone(),
    }
}

fn utf8_len(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

fn byte_len(s: &str) -> i64 {
    i64::try_from(s.len()).unwrap_or(i64::MAX)
}

impl Field {
    /// Normalises an incoming value into the in-memory record value (which is also the value
    /// the record JSON prints), as PocketBase's field `PrepareValue`s do. Never fails: invalid
    /// input becomes the type's zero value or is caught by [`Field::validate_value`].
    pub fn normalize(&self, raw: &Value) -> Value {
        match &self.kind {
            FieldKind::Text(_)
            | FieldKind::Editor(_)
            | FieldKind::Email(_)
            | FieldKind::Url(_)
            | FieldKind::Password(_) => Value::String(to_string_value(raw)),
            FieldKind::Number(_) => number_value(to_float(raw)),
            FieldKind::Bool => Value::Bool(to_bool(raw)),
            FieldKind::Date(_) | FieldKind::Autodate(_) => match raw {
                Value::String(s) => Value::String(datetime::normalize(s)),
                _ => Value::String(String::new()),
            },
            FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_) => {
                if let Some(one) = single_string(raw).filter(|_| !self.is_multiple()) {
                    return Value::String(one.to_owned());
                }
                let list = to_unique_strings(raw);
                if self.is_multiple() {
                    Value::Array(list.into_iter().map(Value::String).collect())
                } else {
                    Value::String(list.last().cloned().unwrap_or_default())
                }
            }
            FieldKind::Json(_) => normalize_json(raw),
            FieldKind::GeoPoint => {
                let (lon, lat) = to_geo_point(raw);
                geo_value(lon, lat)
            }
        }
    }

    /// The value of a new record before any input (`""`, `0`, `false`, `[]`, `null`, 0/0).
    pub fn zero_value(&self) -> Value {
        match &self.kind {
            FieldKind::Json(_) => Value::Null,
            _ => self.normalize(&Value::Null),
        }
    }

    /// The value as a list of strings (multi-value fields; a single value gives 0 or 1 item).
    pub fn string_list(&self, v: &Value) -> Vec<String> {
        to_unique_strings(v)
    }

    /// Validates a normalised value. For password fields pass the plain password (the stored
    /// hash is not validated). Relation existence and file uploads are checked by the caller.
    pub fn validate_value(&self, v: &Value) -> Result<(), FieldError> {
        match &self.kind {
            FieldKind::Text(o) => validate_text(o, self.required, v),
            FieldKind::Editor(o) => validate_editor(o, self.required, v),
            FieldKind::Number(o) => validate_number(o, self.required, v),
            FieldKind::Bool => validate_bool(self.required, v),
            FieldKind::Email(o) => validate_email(o, self.required, v),
            FieldKind::Url(o) => validate_url(o, self.required, v),
            FieldKind::Date(o) => validate_date(o, self.required, v),
            FieldKind::Autodate(_) => Ok(()),
            FieldKind::Select(o) => validate_select(o, self.required, v),
            FieldKind::Relation(o) => validate_relation(o, self.required, v),
            FieldKind::File(o) => validate_file(o, self.required, v),
            FieldKind::Json(o) => validate_json(o, self.required, v),
            FieldKind::Password(o) => validate_password(o, self.required, v),
            FieldKind::GeoPoint => validate_geo_point(self.required, v),
        }
    }

    /// The SQL value stored for a normalised value.
    pub fn to_sql(&self, v: &Value) -> SqlValue {
        match &self.kind {
            FieldKind::Number(_) => {
                let n = to_float(v);
                if n.fract() == 0.0 && n.abs() < 9.2e18 {
                    #[allow(clippy::cast_possible_truncation)]
                    SqlValue::Integer(n as i64)
                } else {
                    SqlValue::Real(n)
                }
            }
            FieldKind::Bool => SqlValue::Integer(i64::from(to_bool(v))),
            FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_) => {
                if let Some(one) = single_string(v).filter(|_| !self.is_multiple()) {
                    return SqlValue::Text(one.to_owned());
                }
                let list = to_unique_strings(v);
                if self.is_multiple() {
                    SqlValue::Text(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
                } else {
                    SqlValue::Text(list.last().cloned().unwrap_or_default())
                }
            }
            FieldKind::Json(_) => match v {
                Value::Null => SqlValue::Null,
                other => SqlValue::Text(other.to_string()),
            },
            FieldKind::GeoPoint => {
                let (lon, lat) = to_geo_point(v);
                SqlValue::Text(geo_json(lon, lat))
            }
            _ => SqlValue::Text(to_string_value(v)),
        }
    }

    /// [`Field::from_sql`] of a value still in the row: the text of the common kinds is copied
    /// once, into the value, instead of into an owned SQL value first and then again.
    pub fn from_sql_ref(&self, v: SqlRef<'_>) -> Value {
        let SqlRef::Text(s) = v else {
            return self.from_sql(&v.into_owned());
        };
        match &self.kind {
            FieldKind::Text(_)
            | FieldKind::Editor(_)
            | FieldKind::Email(_)
            | FieldKind::Url(_)
            | FieldKind::Password(_) => Value::String(s.to_owned()),
            FieldKind::Json(_) => {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
            }
            FieldKind::Date(_) | FieldKind::Autodate(_) if s.is_empty() => {
                Value::String(String::new())
            }
            FieldKind::Date(_) | FieldKind::Autodate(_) => {
                let n = datetime::normalize(s);
                Value::String(if n.is_empty() { s.to_owned() } else { n })
            }
            // One id or name (a list is stored as JSON, with brackets).
            FieldKind::Select(_) | FieldKind::File(_) | FieldKind::Relation(_)
                if !s.contains('[') =>
            {
                let one = (!s.is_empty()).then(|| Value::String(s.to_owned()));
                match (self.is_multiple(), one) {
                    (true, one) => Value::Array(one.into_iter().collect()),
                    (false, one) => one.unwrap_or_else(|| Value::String(String::new())),
                }
            }
            _ => self.from_sql(&v.into_owned()),
        }
    }

    /// The record JSON value of a stored SQL value (multi-values as arrays, bools as
    /// `true`/`false`, integral numbers without fraction, json decoded).
    pub fn from_sql(&self, v: &SqlValue) -> Value {
        let as_json = match v {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(i) => Value::from(*i),
            SqlValue::Real(f) => number_value(*f),
            SqlValue::Text(s) => Value::String(s.clone()),
        };
        match &self.kind {
            FieldKind::Json(_) => match v {
                SqlValue::Text(s) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
                _ => as_json,
            },
            FieldKind::Date(_) | FieldKind::Autodate(_) => match v {
                SqlValue::Text(s) if !s.is_empty() => {
                    let n = datetime::normalize(s);
                    Value::String(if n.is_empty() { s.clone() } else { n })
                }
                _ => Value::String(String::new()),
            },
            _ => self.normalize(&as_json),
        }
    }
}

/// A text: required (always, for the primary key), length within min..max, the pattern.
fn validate_text(o: &TextOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let s = v.as_str().unwrap_or_default();
    if (required || o.primary_key) && s.is_empty() {
        return Err(FieldError::required());
    }
    if s.is_empty() {
        return Ok(());
    }
    let len = utf8_len(s);
    if o.min > 0 && len < o.min {
        return Err(FieldError::new(
            "validation_min_text_constraint",
            format!("Must be at least {} character(s)", o.min),
        )
        .param("min", o.min));
    }
    let max = if o.max == 0 { DEFAULT_TEXT_MAX } else { o.max };
    if len > max {
        return Err(FieldError::new(
            "validation_max_text_constraint",
            format!("Must be no more than {max} character(s)"),
        )
        .param("max", max));
    }
    if !o.pattern.is_empty() && !regex_matches(&o.pattern, s) {
        return Err(FieldError::new(
            "validation_invalid_format",
            "Invalid value format",
        ));
    }
    Ok(())
}

/// Rich text: required, content size within maxSize.
fn validate_editor(o: &EditorOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let s = v.as_str().unwrap_or_default();
    if required && s.is_empty() {
        return Err(FieldError::required());
    }
    let max = if o.max_size <= 0 {
        DEFAULT_EDITOR_MAX_SIZE
    } else {
        o.max_size
    };
    if byte_len(s) > max {
        return Err(FieldError::new(
            "validation_content_size_limit",
            format!("The maximum allowed content size is {max} bytes"),
        )
        .param("maxSize", max));
    }
    Ok(())
}

/// A number: finite, required means non-zero, integer-only, within min..max.
fn validate_number(o: &NumberOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let n = v.as_f64().unwrap_or(f64::NAN);
    if !n.is_finite() {
        return Err(FieldError::new(
            "validation_not_a_number",
            "The submitted number is not properly formatted",
        ));
    }
    if n == 0.0 {
        return if required {
            Err(FieldError::required())
        } else {
            Ok(())
        };
    }
    if o.only_int && n.fract() != 0.0 {
        return Err(FieldError::new(
            "validation_only_int_constraint",
            "Decimal numbers are not allowed",
        ));
    }
    if let Some(min) = o.min
        && n < min
    {
        return Err(FieldError::new(
            "validation_min_number_constraint",
            format!("Must be greater or equal than {}", number_value(min)),
        )
        .param("min", number_value(min)));
    }
    if let Some(max) = o.max
        && n > max
    {
        return Err(FieldError::new(
            "validation_max_number_constraint",
            format!("Must be less or equal than {}", number_value(max)),
        )
        .param("max", number_value(max)));
    }
    Ok(())
}

/// A bool: required means true.
fn validate_bool(required: bool, v: &Value) -> Result<(), FieldError> {
    if required && v != &Value::Bool(true) {
        return Err(FieldError::required());
    }
    Ok(())
}

/// An email: required, the address format, the allowed domains.
fn validate_email(o: &DomainOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let s = v.as_str().unwrap_or_default();
    if required && s.is_empty() {
        return Err(FieldError::required());
    }
    if s.is_empty() {
        return Ok(());
    }
    if !is_email(s) {
        return Err(FieldError::new(
            "validation_is_email",
            "Must be a valid email address",
        ));
    }
    let domain = s
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    if domain_rejected(&domain, &o.only_domains, &o.except_domains) {
        return Err(FieldError::new(
            "validation_email_domain_not_allowed",
            "Email domain is not allowed",
        ));
    }
    Ok(())
}

/// A URL: required, the URL format, the allowed domains.
fn validate_url(o: &DomainOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let s = v.as_str().unwrap_or_default();
    if required && s.is_empty() {
        return Err(FieldError::required());
    }
    if s.is_empty() {
        return Ok(());
    }
    if !is_url(s) {
        return Err(FieldError::new(
            "validation_invalid_url",
            "Must be a valid url",
        ));
    }
    if domain_rejected(&url_host(s), &o.only_domains, &o.except_domains) {
        return Err(FieldError::new(
            "validation_url_domain_not_allowed",
            "Url domain is not allowed",
        ));
    }
    Ok(())
}

/// A date: required, within min..max (an unparsable value is left alone).
fn validate_date(o: &DateOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let s = v.as_str().unwrap_or_default();
    if required && s.is_empty() {
        return Err(FieldError::required());
    }
    let Some(d) = DateTime::parse(s) else {
        return Ok(());
    };
    if let Some(min) = DateTime::parse(&o.min)
        && d < min
    {
        return Err(FieldError::new(
            "validation_min_greater_equal_than_required",
            format!("Must be no less than {}", min.format_go()),
        )
        .param("threshold", min.format_rfc3339()));
    }
    if let Some(max) = DateTime::parse(&o.max)
        && d > max
    {
        return Err(FieldError::new(
            "validation_max_less_equal_than_required",
            format!("Must be no greater than {}", max.format_go()),
        )
        .param("threshold", max.format_rfc3339()));
    }
    Ok(())
}

/// A select: required, at most maxSelect values, each one of the listed values.
fn validate_select(o: &SelectOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let list = to_unique_strings(v);
    if required && list.is_empty() {
        return Err(FieldError::required());
    }
    let max = o.max_select.max(1);
    if i64::try_from(list.len()).unwrap_or(i64::MAX) > max {
        return Err(too_many_values(max));
    }
    if let Some(bad) = list.iter().find(|s| !o.values.contains(s)) {
        return Err(
            FieldError::new("validation_invalid_value", format!("Invalid value {bad}"))
                .param("value", bad.clone()),
        );
    }
    Ok(())
}

/// A relation: required, between minSelect and maxSelect ids (existence is the caller's).
fn validate_relation(o: &RelationOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let list = to_unique_strings(v);
    let count = i64::try_from(list.len()).unwrap_or(i64::MAX);
    if required && list.is_empty() {
        return Err(FieldError::required());
    }
    if count == 0 {
        return Ok(());
    }
    if o.min_select > 0 && count < o.min_select {
        return Err(FieldError::new(
            "validation_not_enough_values",
            format!("Select at least {}", o.min_select),
        )
        .param("minSelect", o.min_select));
    }
    let max = o.max_select.max(1);
    if count > max {
        return Err(too_many_values(max));
    }
    Ok(())
}

/// A file field: required, at most maxSelect files (uploads are the caller's).
fn validate_file(o: &FileOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let list = to_unique_strings(v);
    if required && list.is_empty() {
        return Err(FieldError::required());
    }
    let max = o.max_select.max(1);
    if i64::try_from(list.len()).unwrap_or(i64::MAX) > max {
        return Err(FieldError::new(
            "validation_too_many_files",
            format!("The maximum allowed files is {max}"),
        )
        .param("maxSelect", max));
    }
    Ok(())
}

/// A JSON value: required means non-empty, serialised size within maxSize.
fn validate_json(o: &JsonOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let empty = match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    if required && empty {
        return Err(FieldError::required());
    }
    let max = if o.max_size <= 0 {
        DEFAULT_JSON_MAX_SIZE
    } else {
        o.max_size
    };
    let size = serde_json::to_string(v).map_or(0, |s| byte_len(&s));
    if size > max {
        return Err(FieldError::new(
            "validation_json_size_limit",
            format!("The maximum allowed JSON size is {max} bytes"),
        )
        .param("maxSize", max));
    }
    Ok(())
}

/// A plain password: required, length within min..max, the pattern.
fn validate_password(o: &PasswordOptions, required: bool, v: &Value) -> Result<(), FieldError> {
    let s = v.as_str().unwrap_or_default();
    if required && s.is_empty() {
        return Err(FieldError::required());
    }
    if s.is_empty() {
        return Ok(());
    }
    let len = utf8_len(s);
    if o.min > 0 && len < o.min {
        return Err(FieldError::new(
            "validation_min_text_constraint",
            format!("Must be at least {} character(s)", o.min),
        ));
    }
    let max = if o.max <= 0 {
        DEFAULT_PASSWORD_MAX
    } else {
        o.max
    };
    if len > max {
        return Err(FieldError::new(
            "validation_max_text_constraint",
            format!("Must be less than {max} character(s)"),
        ));
    }
    if !o.pattern.is_empty() && !regex_matches(&o.pattern, s) {
        return Err(FieldError::new(
            "validation_invalid_format",
            "Invalid value format",
        ));
    }
    Ok(())
}

/// A geo point: required means not 0/0, latitude and longitude in range.
fn validate_geo_point(required: bool, v: &Value) -> Result<(), FieldError> {
    let (lon, lat) = to_geo_point(v);
    if required && lon == 0.0 && lat == 0.0 {
        return Err(FieldError::required());
    }
    if !(-90.0..=90.0).contains(&lat) {
        return Err(FieldError::new(
            "validation_invalid_latitude",
            "Latitude must be between -90 and 90 degrees",
        ));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(FieldError::new(
            "validation_invalid_longitude",
            "Longitude must be between -180 and 180 degrees",
        ));
    }
    Ok(())
}

fn too_many_values(max: i64) -> FieldError {
    FieldError::new(
        "validation_too_many_values",
        format!("Select no more than {max}"),
    )
    .param("maxSelect", max)
}

fn domain_rejected(domain: &str, only: &[String], except: &[String]) -> bool {
    let hit = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(domain));
    (!only.is_empty() && !hit(only)) || (!except.is_empty() && hit(except))
}

/// Matches a field pattern (Go RE2 syntax is close to Rust's `regex`); an invalid pattern
/// matches nothing, so the value is rejected rather than accepted unchecked.
pub fn regex_matches(pattern: &str, s: &str) -> bool {
    compiled(pattern).is_some_and(|re| re.is_match(s))
}

/// Most compiled patterns kept; the memo starts afresh when full.
const PATTERNS: usize = 512;

/// `pattern` compiled, from a process-wide memo: compiling costs far more than matching (the
/// `id` field's pattern is checked on every create), and a pattern compiles the same for every
/// tenant. Shared, not cloned: a cloned `Regex` starts with an empty pool of match caches and
/// builds one on its first match, which costs more than the match. `None` for an invalid
/// pattern.
fn compiled(pattern: &str) -> Option<Arc<Regex>> {
    type Memo = HashMap<String, Option<Arc<Regex>>>;
    static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(Default::default);
    // A poisoned memo holds only finished compilations: still consistent.
    let lock = || MEMO.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = lock().get(pattern) {
        return found.clone();
    }
    let re = Regex::new(pattern).ok().map(Arc::new);
    let mut memo = lock();
    if memo.len() >= PATTERNS {
        memo.clear();
    }
    memo.insert(pattern.to_string(), re.clone());
    re
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::*;
    use serde_json::json;

    fn f(kind: FieldKind) -> Field {
        Field::new("f", kind)
    }

    fn code(field: &Field, raw: Value) -> Option<String> {
        field
            .validate_value(&field.normalize(&raw))
            .err()
            .map(|e| e.code)
    }

    #[test]
    fn a_value_read_in_place_is_the_value_read_owned() {
        let many = |max_select| SelectOptions {
            max_select,
            ..Default::default()
        };
        let kinds = [
            FieldKind::Text(TextOptions::default()),
            FieldKind::Editor(EditorOptions::default()),
            FieldKind::Number(NumberOptions::default()),
            FieldKind::Bool,
            FieldKind::Email(DomainOptions::default()),
            FieldKind::Url(DomainOptions::default()),
            FieldKind::Date(DateOptions::default()),
            FieldKind::Autodate(AutodateOptions::default()),
            FieldKind::Select(many(1)),
            FieldKind::Select(many(3)),
            FieldKind::File(FileOptions::default()),
            FieldKind::File(FileOptions {
                max_select: 2,
                ..Default::default()
            }),
            FieldKind::Relation(RelationOptions::default()),
            FieldKind::Relation(RelationOptions {
                max_select: 5,
                ..Default::default()
            }),
            FieldKind::Json(JsonOptions::default()),
            FieldKind::Password(PasswordOptions::default()),
            FieldKind::GeoPoint,
        ];
        let texts = [
            "",
            "abc",
            "true",
            "12.5",
            "[]",
            r#"["a","b","a",""]"#,
            "[not json",
            r#"{"lon":1.5,"lat":-2}"#,
            "2024-01-02 03:04:05.678Z",
            "2024-01-02T03:04:05Z",
            "not a date",
            " spaced ",
        ];
        let mut values: Vec<SqlRef<'_>> = texts.iter().map(|t| SqlRef::Text(t)).collect();
        values.extend([
            SqlRef::Null,
            SqlRef::Integer(0),
            SqlRef::Integer(-42),
            SqlRef::Real(2.5),
            SqlRef::Real(3.0),
        ]);
        for kind in kinds {
            let field = f(kind);
            for v in &values {
                assert_eq!(
                    field.from_sql_ref(*v),
                    field.from_sql(&v.into_owned()),
                    "{} from {v:?}",
                    field.type_name()
                );
            }
        }
    }

    #[test]
    fn a_single_value_read_in_place_is_the_last_of_its_unique_strings() {
        let single = Field::new(
            "f",
            FieldKind::Relation(RelationOptions {
                max_select: 1,
                ..Default::default()
            }),
        );
        let inputs = [
            json!("abc"),
            json!(""),
            json!("a[b"),
            json!("[\"x\",\"y\"]"),
            json!(["p", "q", "p"]),
            json!(7),
            json!(null),
        ];
        for raw in inputs {
            let last = to_unique_strings(&raw).last().cloned().unwrap_or_default();
            assert_eq!(single.normalize(&raw), Value::String(last.clone()), "{raw}");
            assert_eq!(single.to_sql(&raw), SqlValue::Text(last), "{raw}");
        }
    }

    #[test]
    fn a_pattern_compiles_once_and_is_shared() {
        let first = compiled("^[a-z]{3}[0-9]+$").unwrap();
        let again = compiled("^[a-z]{3}[0-9]+$").unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the memo hands out one shared regex"
        );
        assert!(first.is_match("abc123") && !again.is_match("ab123"));
        assert!(compiled("([a-z").is_none());
    }

    #[test]
    fn patterns_answer_the_same_from_the_memo() {
        for _ in 0..2 {
            assert!(regex_matches("^[a-z0-9]+$", "abc123"));
            assert!(!regex_matches("^[a-z0-9]+$", "ABC"));
            assert!(
                !regex_matches("([a-z", "([a-z"),
                "an invalid pattern matches nothing"
            );
        }
    }

    #[test]
    fn text_casts_scalars_and_checks_bounds_and_pattern() {
        let t = f(FieldKind::Text(TextOptions {
            min: 3,
            max: 5,
            pattern: "^[a-z]+$".into(),
            ..Default::default()
        }));
        assert_eq!(t.normalize(&json!(123)), json!("123"));
        assert_eq!(t.normalize(&json!(1.5)), json!("1.5"));
        assert_eq!(t.normalize(&json!(true)), json!("true"));
        assert_eq!(t.normalize(&json!(null)), json!(""));
        assert_eq!(t.normalize(&json!(["a"])), json!(""));
        let e = t.validate_value(&json!("AB")).unwrap_err();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"validation_min_text_constraint","message":"Must be at least 3 character(s).","params":{"min":3}}"#
        );
        assert_eq!(
            code(&t, json!("abcdefg")).as_deref(),
            Some("validation_max_text_constraint")
        );
        assert_eq!(
            code(&t, json!("abc1")).as_deref(),
            Some("validation_invalid_format")
        );
        assert_eq!(code(&t, json!("")), None);
        assert_eq!(
            code(&t.clone().required(), json!("")).as_deref(),
            Some("validation_required")
        );
        let plain = f(FieldKind::Text(TextOptions::default()));
        assert_eq!(
            code(&plain, json!("x".repeat(5001))).as_deref(),
            Some("validation_max_text_constraint")
        );
        assert_eq!(
            code(&Field::primary_key(), json!("")).as_deref(),
            Some("validation_required")
        );
    }

    #[test]
    fn editor_limits_bytes() {
        let e = f(FieldKind::Editor(EditorOptions {
            max_size: 10,
            ..Default::default()
        }));
        let err = e
            .validate_value(&json!("<p>too long text</p>"))
            .unwrap_err();
        assert_eq!(err.code, "validation_content_size_limit");
        assert_eq!(err.message, "The maximum allowed content size is 10 bytes.");
        assert_eq!(code(&e, json!("<p>x</p>")), None);
    }

    #[test]
    fn numbers_parse_like_pocketbase() {
        let n = f(FieldKind::Number(NumberOptions {
            min: Some(2.0),
            max: Some(9.0),
            only_int: true,
        }));
        assert_eq!(n.normalize(&json!("12.5e1")), json!(125));
        assert_eq!(n.normalize(&json!("abc")), json!(0));
        assert_eq!(n.normalize(&json!("")), json!(0));
        assert_eq!(n.normalize(&json!(true)), json!(1));
        assert_eq!(n.normalize(&json!(null)), json!(0));
        assert_eq!(
            code(&n, json!(1.5)).as_deref(),
            Some("validation_only_int_constraint")
        );
        let e = n.validate_value(&json!(1)).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            (
                "validation_min_number_constraint",
                "Must be greater or equal than 2."
            )
        );
        let e = n.validate_value(&json!(20)).unwrap_err();
        assert_eq!(e.message, "Must be less or equal than 9.");
        assert_eq!(e.params["max"], json!(9));
        assert_eq!(code(&n, json!(0)), None);
        assert_eq!(
            code(&n.clone().required(), json!(0)).as_deref(),
            Some("validation_required")
        );
        assert_eq!(
            code(&n, json!("NaN")).as_deref(),
            Some("validation_not_a_number")
        );
        assert_eq!(n.to_sql(&json!(7)), SqlValue::Integer(7));
        assert_eq!(n.to_sql(&json!(7.5)), SqlValue::Real(7.5));
        assert_eq!(n.from_sql(&SqlValue::Real(10.0)).to_string(), "10");
    }

    #[test]
    fn bools_follow_go_casting() {
        let b = f(FieldKind::Bool);
        for yes in [
            json!(true),
            json!("true"),
            json!("1"),
            json!(1),
            json!("TRUE"),
        ] {
            assert_eq!(b.normalize(&yes), json!(true), "{yes}");
        }
        for no in [
            json!(false),
            json!("yes"),
            json!("on"),
            json!(0),
            json!(null),
            json!(""),
        ] {
            assert_eq!(b.normalize(&no), json!(false), "{no}");
        }
        assert_eq!(
            code(&b.clone().required(), json!(false)).as_deref(),
            Some("validation_required")
        );
        assert_eq!(b.to_sql(&json!(true)), SqlValue::Integer(1));
        assert_eq!(b.from_sql(&SqlValue::Integer(0)), json!(false));
    }

    #[test]
    fn emails_and_urls_check_format_and_domains() {
        let e = f(FieldKind::Email(DomainOptions {
            only_domains: vec!["x.com".into()],
            ..Default::default()
        }));
        assert_eq!(
            code(&e, json!("nope")).as_deref(),
            Some("validation_is_email")
        );
        assert_eq!(
            code(&e, json!("a@y.com")).as_deref(),
            Some("validation_email_domain_not_allowed")
        );
        assert_eq!(code(&e, json!("q@x.com")), None);
        let u = f(FieldKind::Url(DomainOptions {
            except_domains: vec!["bad.com".into()],
            ..Default::default()
        }));
        assert_eq!(
            code(&u, json!("x")).as_deref(),
            Some("validation_invalid_url")
        );
        assert_eq!(
            code(&u, json!("https://bad.com/x")).as_deref(),
            Some("validation_url_domain_not_allowed")
        );
        assert_eq!(code(&u, json!("https://ok.com")), None);
        assert_eq!(code(&u, json!("http://localhost:8090/a?b=c")), None);
    }

    #[test]
    fn dates_normalise_and_check_bounds() {
        let d = f(FieldKind::Date(DateOptions {
            min: "2024-01-01 00:00:00.000Z".into(),
            max: "2024-12-31 00:00:00.000Z".into(),
        }));
        assert_eq!(
            d.normalize(&json!("2024-02-03T04:05:06+02:00")),
            json!("2024-02-03 02:05:06.000Z")
        );
        assert_eq!(d.normalize(&json!(1_700_000_000)), json!(""));
        assert_eq!(d.normalize(&json!("garbage")), json!(""));
        let e = d
            .validate_value(&d.normalize(&json!("2023-05-05")))
            .unwrap_err();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"validation_min_greater_equal_than_required","message":"Must be no less than 2024-01-01 00:00:00 +0000 UTC.","params":{"threshold":"2024-01-01T00:00:00Z"}}"#
        );
        assert_eq!(
            code(&d, json!("2025-05-05")).as_deref(),
            Some("validation_max_less_equal_than_required")
        );
        assert_eq!(
            code(&d.clone().required(), json!("")).as_deref(),
            Some("validation_required")
        );
        assert_eq!(d.from_sql(&SqlValue::Text(String::new())), json!(""));
        let a = Field::autodate("created", false);
        assert_eq!(a.validate_value(&json!("")), Ok(()));
    }

    #[test]
    fn selects_are_single_or_unique_lists() {
        let single = f(FieldKind::Select(SelectOptions {
            max_select: 1,
            values: vec!["a".into(), "b".into()],
        }));
        assert_eq!(single.normalize(&json!(["a", "b"])), json!("b"));
        assert_eq!(single.normalize(&json!(null)), json!(""));
        let multi = f(FieldKind::Select(SelectOptions {
            max_select: 2,
            values: vec!["a".into(), "b".into(), "c".into()],
        }));
        assert_eq!(multi.normalize(&json!("a")), json!(["a"]));
        assert_eq!(multi.normalize(&json!("a,b")), json!(["a,b"]));
        assert_eq!(
            multi.normalize(&json!(r#"["a","b","a",""]"#)),
            json!(["a", "b"])
        );
        assert_eq!(multi.normalize(&json!("")), json!([]));
        let e = multi.validate_value(&json!(["a", "z"])).unwrap_err();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"validation_invalid_value","message":"Invalid value z.","params":{"value":"z"}}"#
        );
        assert_eq!(
            code(&multi, json!(["a", "b", "c"])).as_deref(),
            Some("validation_too_many_values")
        );
        assert_eq!(
            code(&multi.clone().required(), json!([])).as_deref(),
            Some("validation_required")
        );
        assert_eq!(
            multi.to_sql(&json!(["a", "c"])),
            SqlValue::Text(r#"["a","c"]"#.into())
        );
        assert_eq!(multi.from_sql(&SqlValue::Text("[]".into())), json!([]));
        assert_eq!(single.to_sql(&json!("a")), SqlValue::Text("a".into()));
    }

    #[test]
    fn relations_check_counts() {
        let r = f(FieldKind::Relation(RelationOptions {
            min_select: 2,
            max_select: 3,
            collection_id: "x".into(),
            ..Default::default()
        }));
        let e = r.validate_value(&json!(["a"])).unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("validation_not_enough_values", "Select at least 2.")
        );
        assert_eq!(
            code(&r, json!(["a", "b", "c", "d"])).as_deref(),
            Some("validation_too_many_values")
        );
        assert_eq!(code(&r, json!([])), None);
        assert_eq!(
            code(&r.clone().required(), json!([])).as_deref(),
            Some("validation_required")
        );
    }

    #[test]
    fn files_check_counts() {
        let fl = f(FieldKind::File(FileOptions {
            max_select: 2,
            ..Default::default()
        }));
        let e = fl.validate_value(&json!(["a", "b", "c"])).unwrap_err();
        assert_eq!(e.message, "The maximum allowed files is 2.");
        assert_eq!(
            code(&fl.clone().required(), json!([])).as_deref(),
            Some("validation_required")
        );
        let single = f(FieldKind::File(FileOptions::default()));
        assert_eq!(single.normalize(&json!(["a.png"])), json!("a.png"));
    }

    #[test]
    fn json_strings_are_decoded_when_they_look_like_json() {
        let j = f(FieldKind::Json(JsonOptions { max_size: 10 }));
        assert_eq!(j.normalize(&json!("[1]")), json!([1]));
        assert_eq!(j.normalize(&json!("null")), json!(null));
        assert_eq!(j.normalize(&json!("abc")), json!("abc"));
        assert_eq!(j.normalize(&json!("{bad")), json!("{bad"));
        assert_eq!(j.normalize(&json!("")), json!(""));
        assert_eq!(
            code(&j, json!({"k": "long value"})).as_deref(),
            Some("validation_json_size_limit")
        );
        let req = f(FieldKind::Json(JsonOptions::default())).required();
        for empty in [json!(null), json!(""), json!([]), json!({})] {
            assert_eq!(code(&req, empty).as_deref(), Some("validation_required"));
        }
        assert_eq!(j.to_sql(&json!(null)), SqlValue::Null);
        assert_eq!(j.from_sql(&SqlValue::Text("[1,2]".into())), json!([1, 2]));
        assert_eq!(j.from_sql(&SqlValue::Null), json!(null));
    }

    #[test]
    fn passwords_validate_plain_text_without_params() {
        let p = f(FieldKind::Password(PasswordOptions {
            min: 8,
            ..Default::default()
        }));
        let e = p.validate_value(&json!("short")).unwrap_err();
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":"validation_min_text_constraint","message":"Must be at least 8 character(s)."}"#
        );
        let e = p.validate_value(&json!("x".repeat(72))).unwrap_err();
        assert_eq!(e.message, "Must be less than 71 character(s).");
        let pat = f(FieldKind::Password(PasswordOptions {
            pattern: "\\d".into(),
            ..Default::default()
        }));
        assert_eq!(
            code(&pat, json!("abcdefgh")).as_deref(),
            Some("validation_invalid_format")
        );
        assert_eq!(
            code(&p.clone().required(), json!("")).as_deref(),
            Some("validation_required")
        );
    }

    #[test]
    fn geo_points_accept_objects_and_strings() {
        let g = f(FieldKind::GeoPoint);
        assert_eq!(
            g.normalize(&json!(r#"{"lon":1.5}"#)),
            json!({"lon": 1.5, "lat": 0})
        );
        assert_eq!(g.normalize(&json!(null)), json!({"lon": 0, "lat": 0}));
        assert_eq!(
            code(&g, json!({"lat": 100, "lon": 200})).as_deref(),
            Some("validation_invalid_latitude")
        );
        assert_eq!(
            code(&g, json!({"lat": 1, "lon": -200})).as_deref(),
            Some("validation_invalid_longitude")
        );
        assert_eq!(
            code(&g.clone().required(), json!({})).as_deref(),
            Some("validation_required")
        );
        assert_eq!(
            g.to_sql(&json!({"lat": 2, "lon": 1.5})),
            SqlValue::Text(r#"{"lon":1.5,"lat":2}"#.into())
        );
    }
}
