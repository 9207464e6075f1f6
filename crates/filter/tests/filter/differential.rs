//! PocketBase 0.40.6 as the oracle: the recorded data set is loaded into
//! SQLite with the same layout, every recorded filter is compiled by Warren,
//! and the ids must match; the evaluator must agree wherever it applies.

use std::sync::Arc;

use serde_json::Value;
use warren_filter::*;
use warren_store::sql::Connection;

use crate::common::{create_tables, insert, request_at_fixed_time, run};

fn fixture() -> Value {
    let text = include_str!("../fixtures/pocketbase_filters.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

fn schema_of(fixture: &Value) -> StaticSchema {
    let colls = fixture["collections"].as_array().expect("collections");
    StaticSchema::new(colls.iter().map(|c| {
        CollectionInfo {
            id: c["id"].as_str().unwrap_or_default().into(),
            name: c["name"].as_str().unwrap_or_default().into(),
            collection_type: match c["type"].as_str() {
                Some("auth") => CollectionType::Auth,
                Some("view") => CollectionType::View,
                _ => CollectionType::Base,
            },
            list_rule: c["listRule"].as_str().map(String::from),
            unique_fields: vec![],
            fields: c["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .map(|f| FieldInfo {
                    name: f["name"].as_str().unwrap_or_default().into(),
                    field_type: FieldType::from_name(f["type"].as_str().unwrap_or_default())
                        .expect("known field type"),
                    multiple: f["multiple"].as_bool().unwrap_or(false),
                    relation_collection_id: f["collectionId"].as_str().map(String::from),
                    hidden: f["hidden"].as_bool().unwrap_or(false),
                })
                .collect(),
        }
    }))
}

#[test]
fn compiled_filters_select_the_same_rows_as_pocketbase() {
    let fx = fixture();
    let schema = schema_of(&fx);
    let conn = Connection::open_in_memory().expect("db");
    let names: Vec<&str> = fx["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    create_tables(&conn, &schema, &names);
    for name in &names {
        let c: Arc<CollectionInfo> = schema.collection(name).expect("collection");
        for rec in fx["records"][name].as_array().expect("records") {
            insert(&conn, &c, rec.as_object().expect("record"));
        }
    }

    let request = request_at_fixed_time();
    let mut failures = Vec::new();
    let mut evaluated = 0;
    let mut rejected = 0;
    for case in fx["cases"].as_array().expect("cases") {
        let coll = case["collection"].as_str().expect("collection");
        let text = case["filter"].as_str().expect("filter");
        let Some(expected) = case["ids"].as_array() else {
            // PocketBase refused the filter (400): Warren must refuse it too.
            rejected += 1;
            if let Ok(q) = compile(&schema, coll, text, &request, Access::Trusted) {
                failures.push(format!(
                    "{coll}: {text:?}: pocketbase refused it, warren compiled {}",
                    q.to_sql().where_clause
                ));
            }
            continue;
        };
        let expected: Vec<String> = expected
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let q = match compile(&schema, coll, text, &request, Access::Trusted) {
            Ok(q) => q,
            Err(e) => {
                failures.push(format!("{coll}: {text:?}: compile error {e}"));
                continue;
            }
        };
        match run(&conn, &q) {
            Ok(ids) if ids == expected => {}
            Ok(ids) => failures.push(format!(
                "{coll}: {text:?}: sql gave {ids:?}, pocketbase {expected:?}\n  {}",
                q.to_sql().where_clause
            )),
            Err(e) => failures.push(format!("{coll}: {text:?}: sqlite error {e}")),
        }
        if q.evaluable_in_memory() {
            evaluated += 1;
            let mut ids = Vec::new();
            for rec in fx["records"][coll].as_array().expect("records") {
                let rec = rec.as_object().expect("record");
                match q.matches(rec) {
                    Ok(true) => ids.push(rec["id"].as_str().unwrap_or_default().to_string()),
                    Ok(false) => {}
                    Err(e) => failures.push(format!("{coll}: {text:?}: eval error {e}")),
                }
            }
            ids.sort();
            if ids != expected {
                failures.push(format!(
                    "{coll}: {text:?}: evaluator gave {ids:?}, pocketbase {expected:?}"
                ));
            }
        }
    }
    assert!(evaluated > 30, "evaluator covered only {evaluated} cases");
    assert!(rejected > 0, "no refused filter was checked");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
