//! Subscription strings: `collection`, `collection/*`, `collection/<id>`, each optionally with
//! `?options=<url-encoded JSON>` carrying `query` and `headers`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// What part of a collection a subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every record (`collection` or `collection/*`), checked with the list rule.
    Collection(String),
    /// One record (`collection/<id>`), checked with the view rule.
    Record(String, String),
    /// Anything else: accepted, never delivered to.
    Nothing,
}

/// One parsed subscription.
#[derive(Debug, Clone)]
pub struct Topic {
    /// The subscription exactly as submitted; it is the event name of its messages.
    pub raw: Arc<str>,
    /// What it follows.
    pub target: Target,
    /// `options.query`, values stringified (`filter`, `expand`, `fields`, anything else).
    pub query: BTreeMap<String, String>,
    /// `options.headers`, values stringified.
    pub headers: Vec<(String, String)>,
}

impl Topic {
    /// Parses a subscription string. Malformed options are ignored (as if none were given).
    pub fn parse(raw: &str) -> Topic {
        let (path, query_string) = raw.split_once('?').unwrap_or((raw, ""));
        let target = match path.split_once('/') {
            None if !path.is_empty() => Target::Collection(path.to_string()),
            Some((c, "*")) if !c.is_empty() => Target::Collection(c.to_string()),
            Some((c, id)) if !c.is_empty() && !id.is_empty() && !id.contains('/') => {
                Target::Record(c.to_string(), id.to_string())
            }
            _ => Target::Nothing,
        };
        let mut topic = Topic {
            raw: Arc::from(raw),
            target,
            query: BTreeMap::new(),
            headers: Vec::new(),
        };
        for pair in query_string.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if decode(key) != "options" {
                continue;
            }
            let Ok(Value::Object(options)) = serde_json::from_str::<Value>(&decode(value)) else {
                continue;
            };
            if let Some(Value::Object(query)) = options.get("query") {
                for (k, v) in query {
                    topic.query.insert(k.clone(), stringify(v));
                }
            }
            if let Some(Value::Object(headers)) = options.get("headers") {
                for (k, v) in headers {
                    topic.headers.push((k.clone(), stringify(v)));
                }
            }
        }
        topic
    }

    /// The collection (name or id) this subscription follows, if any.
    pub fn collection(&self) -> Option<&str> {
        match &self.target {
            Target::Collection(c) | Target::Record(c, _) => Some(c),
            Target::Nothing => None,
        }
    }

    /// Whether a change of record `record_id` in the collection with `collection_id` and
    /// `collection_name` concerns this subscription (names match case-insensitively).
    pub fn matches(&self, collection_id: &str, collection_name: &str, record_id: &str) -> bool {
        let collection = match &self.target {
            Target::Collection(c) => c,
            Target::Record(c, id) if id == record_id => c,
            _ => return false,
        };
        collection == collection_id || collection.eq_ignore_ascii_case(collection_name)
    }

    /// An option of `query`, or "".
    pub fn option(&self, key: &str) -> &str {
        self.query.get(key).map(String::as_str).unwrap_or("")
    }
}

fn stringify(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// URL query decoding: `%XX` escapes and `+` as a space (both JS and Dart encodings).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            Topic::parse("posts").target,
            Target::Collection("posts".into())
        );
        assert_eq!(
            Topic::parse("posts/*").target,
            Target::Collection("posts".into())
        );
        assert_eq!(
            Topic::parse("posts/abc").target,
            Target::Record("posts".into(), "abc".into())
        );
        assert_eq!(Topic::parse("posts/a/b").target, Target::Nothing);
        assert_eq!(Topic::parse("").target, Target::Nothing);
        assert_eq!(Topic::parse("/x").target, Target::Nothing);
    }

    #[test]
    fn options_are_decoded_in_both_encodings() {
        let js = "posts/*?options=%7B%22query%22%3A%7B%22filter%22%3A%22views%20%3E%201%22%2C%22perPage%22%3A5%7D%2C%22headers%22%3A%7B%22X-Foo%22%3A%22bar%22%7D%7D";
        let topic = Topic::parse(js);
        assert_eq!(topic.option("filter"), "views > 1");
        assert_eq!(topic.option("perPage"), "5");
        assert_eq!(topic.headers, vec![("X-Foo".into(), "bar".into())]);
        assert_eq!(&*topic.raw, js);
        let dart = "posts?options=%7B%22query%22%3A%7B%22filter%22%3A%22views+%3E+1%22%7D%7D";
        assert_eq!(Topic::parse(dart).option("filter"), "views > 1");
    }

    #[test]
    fn broken_options_are_ignored() {
        let topic = Topic::parse("posts?options=%7Bnot json&options=%");
        assert!(topic.query.is_empty());
        assert_eq!(topic.target, Target::Collection("posts".into()));
    }
}
