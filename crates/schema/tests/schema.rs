//! Warren's schema crate against captures of the real PocketBase 0.40.6
//! (`tests/fixtures/capture.sh` regenerates them).

use serde_json::Value;
use warren_schema::system::system_collections;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn without_timestamps(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("created");
        o.remove("updated");
    }
    v
}

#[test]
fn system_collections_match_pocketbase_api_output() {
    let listed = fixture("pocketbase-collections.json");
    let theirs: Vec<Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] != "kinds")
        .cloned()
        .collect();
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/pocketbase-collections.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let raw_items = top_level_items(&text);
    let ours = system_collections();
    assert_eq!(ours.len(), theirs.len());
    for (c, expected) in ours.iter().zip(theirs) {
        let json = c.to_api_json();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            without_timestamps(value),
            without_timestamps(expected.clone()),
            "{}",
            c.name
        );
        // Byte-for-byte, key order included, timestamps aside.
        let theirs_text = raw_items
            .iter()
            .find(|raw| raw.starts_with(&format!("{{\"id\":\"{}\"", c.id)))
            .unwrap();
        assert_eq!(
            strip_timestamps(&json),
            strip_timestamps(theirs_text),
            "{}",
            c.name
        );
    }
}

#[test]
fn collection_json_round_trips_through_the_collections_row() {
    for c in system_collections() {
        let back = warren_schema::Collection::from_row(&c.to_row()).unwrap();
        assert_eq!(back, c);
    }
}

/// The raw text of each object inside the list response's `items` array.
fn top_level_items(text: &str) -> Vec<String> {
    let start = text.find("\"items\":[").unwrap() + 9;
    let mut items = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut begin) = (0, false, false, 0);
    for (i, ch) in text[start..].char_indices() {
        if in_str {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '{' => {
                if depth == 0 {
                    begin = start + i;
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    items.push(text[begin..=start + i].to_owned());
                }
            }
            ']' if depth == 0 => break,
            _ => {}
        }
    }
    items
}

fn strip_timestamps(json: &str) -> String {
    let re = regex::Regex::new(r#""(created|updated)":"[^"]*","#).unwrap();
    re.replace_all(json, "").into_owned()
}
