//! Query-string parameters of the tenant API, parsed as PocketBase parses them.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The raw query parameters (last value wins; PocketBase reads the first, the SDK sends one).
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Self::parse(parts.uri.query().unwrap_or_default())
    }
}

impl Params {
    /// The decoded pairs of a query string or urlencoded body (undecodable pairs dropped).
    pub fn pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((decode(key)?, decode(value)?))
            })
            .collect()
    }

    /// Parses a query string (without `?`).
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(key), Some(value)) = (decode(key), decode(value)) else {
                return Err(ApiError::bad_request());
            };
            map.entry(key).or_insert(value);
        }
        Ok(Self(map))
    }

    /// A parameter's value, or "".
    pub fn text(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }

    /// A positive integer parameter; missing or `<= 0` gives `default`, garbage a 400.
    pub fn positive(&self, key: &str, default: u64) -> Result<u64, ApiError> {
        match self.0.get(key).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n as u64),
                Ok(_) => Ok(default),
                Err(_) => Err(ApiError::bad_request()),
            },
        }
    }

    /// A boolean parameter as Go's `ParseBool` reads it; garbage is a 400.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.text(key) {
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            _ => Err(ApiError::bad_request()),
        }
    }

    /// The parameters as a JSON map (for `@request.query.*`).
    pub fn to_map(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }
}

/// Percent-decoding with `+` as space; `None` for invalid UTF-8.
fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode("a%20b+c").unwrap(), "a b c");
        assert_eq!(decode("title%3D%27x%27").unwrap(), "title='x'");
        assert_eq!(decode("%").unwrap(), "%");
        assert_eq!(decode("%4").unwrap(), "%4");
        assert!(decode("%ff").is_none());
    }
}
