//! The universal `?fields=` projection of successful JSON responses, with `:excerpt`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use warren_filter::{Excerpt, parse_fields};

use crate::error::ApiError;

/// A tree of picked keys.
#[derive(Debug, Default)]
struct Pick {
    /// `*`: every key at this level.
    all: bool,
    /// Keys picked by name, with what to pick below them.
    keys: BTreeMap<String, Pick>,
    /// `:excerpt(...)` on a picked leaf.
    excerpt: Option<Excerpt>,
}

/// Applies `fields` to a response body; an empty parameter leaves it as is. On a list result
/// the projection applies to each item and the paging keys stay.
pub fn project(body: Value, fields: &str) -> Result<Value, ApiError> {
    if fields.trim().is_empty() {
        return Ok(body);
    }
    let mut root = Pick::default();
    for path in parse_fields(fields).map_err(|_| ApiError::bad_request())? {
        let mut node = &mut root;
        for segment in &path.path {
            if segment == "*" {
                node.all = true;
                break;
            }
            node = node.keys.entry(segment.clone()).or_default();
        }
        if path.excerpt.is_some() {
            node.excerpt = path.excerpt;
        }
    }
    let is_list = body.get("items").is_some_and(Value::is_array) && body.get("perPage").is_some();
    Ok(match body {
        Value::Object(mut map) if is_list => {
            if let Some(Value::Array(items)) = map.remove("items") {
                map.insert(
                    "items".into(),
                    Value::Array(items.into_iter().map(|i| apply(i, &root)).collect()),
                );
            }
            Value::Object(map)
        }
        other => apply(other, &root),
    })
}

fn apply(value: Value, pick: &Pick) -> Value {
    if let Some(excerpt) = &pick.excerpt
        && let Value::String(text) = &value
    {
        return Value::String(make_excerpt(text, excerpt));
    }
    if pick.keys.is_empty() && !pick.all {
        return value;
    }
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, inner) in map {
                match pick.keys.get(&key) {
                    Some(child) => {
                        out.insert(key, apply(inner, child));
                    }
                    None if pick.all => {
                        out.insert(key, inner);
                    }
                    None => {}
                }
            }
            Value::Object(out)
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            Value::Array(items.into_iter().map(|i| apply(i, pick)).collect())
        }
        other => other,
    }
}

/// Plain text of HTML, whitespace collapsed, cut to `max` characters (`...` if cut and asked).
fn make_excerpt(html: &str, excerpt: &Excerpt) -> String {
    const DROPPED: &[&str] = &[
        "head", "style", "script", "iframe", "embed", "applet", "object", "svg", "img", "picture",
        "dialog", "template", "button", "form", "textarea", "input", "select", "option",
    ];
    const INLINE: &[&str] = &[
        "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark",
        "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var",
    ];
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    let mut skipping: Option<String> = None;
    while let Some(start) = rest.find('<') {
        if skipping.is_none() {
            text.push_str(&rest[..start]);
        }
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[start + 1..start + end];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match &skipping {
            Some(open) if closing && *open == name => skipping = None,
            Some(_) => {}
            None if !closing && DROPPED.contains(&name.as_str()) && !tag.ends_with('/') => {
                if !matches!(name.as_str(), "img" | "input") {
                    skipping = Some(name);
                }
            }
            None if INLINE.contains(&name.as_str()) => {}
            None => text.push(' '),
        }
        rest = &rest[start + end + 1..];
    }
    if skipping.is_none() {
        text.push_str(rest);
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let decoded = collapsed
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    let chars: Vec<char> = decoded.chars().collect();
    if chars.len() <= excerpt.max {
        return decoded.trim().to_string();
    }
    let cut: String = chars[..excerpt.max]
        .iter()
        .collect::<String>()
        .trim()
        .to_string();
    if excerpt.ellipsis {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::project;

    #[test]
    fn picks_nested_keys_and_keeps_paging() {
        let body = json!({"items": [{"id": "a", "title": "x", "expand": {"author": {"id": "u", "name": "N"}}}], "page": 1, "perPage": 30, "totalItems": 1, "totalPages": 1});
        let out = project(body, "id,expand.author.name").unwrap();
        assert_eq!(
            out["items"][0],
            json!({"id": "a", "expand": {"author": {"name": "N"}}})
        );
        assert_eq!(out["perPage"], 30);
    }

    #[test]
    fn star_keeps_everything_at_its_level() {
        let out = project(json!({"a": 1, "b": {"c": 2, "d": 3}}), "*,b.c").unwrap();
        assert_eq!(out, json!({"a": 1, "b": {"c": 2}}));
    }

    #[test]
    fn excerpts_strip_html() {
        let out = project(
            json!({"body": "<p>Some <b>bold</b> text that goes on</p>"}),
            "body:excerpt(10,true)",
        )
        .unwrap();
        assert_eq!(out, json!({"body": "Some bold..."}));
        let out = project(
            json!({"body": "<script>x()</script>short"}),
            "body:excerpt(100)",
        )
        .unwrap();
        assert_eq!(out, json!({"body": "short"}));
    }
}
