//! Timing of parse+compile and in-memory evaluation (run with `cargo bench -p warren-filter`).

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use warren_filter::*;

fn schema() -> StaticSchema {
    StaticSchema::new([CollectionInfo {
        id: "pbc_posts".into(),
        name: "posts".into(),
        collection_type: CollectionType::Base,
        fields: vec![
            FieldInfo::new("id", FieldType::Text),
            FieldInfo::new("title", FieldType::Text),
            FieldInfo::new("views", FieldType::Number),
            FieldInfo::new("published", FieldType::Bool),
            FieldInfo::new("owner", FieldType::Text),
            FieldInfo::new("categories", FieldType::Select).multiple(),
        ],
        list_rule: Some(String::new()),
        unique_fields: vec![],
    }])
}

fn time<F: FnMut()>(name: &str, iters: u32, mut f: F) {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let per = start.elapsed() / iters;
    println!("{name:<45} {per:>10.2?} per iteration ({iters} iterations)");
}

fn main() {
    let schema = schema();
    let mut req = RequestContext::guest();
    req.auth = json!({"id": "u1", "collectionName": "users"})
        .as_object()
        .cloned()
        .map(Into::into);
    let rule = "owner = @request.auth.id && published = true && views > 10 && title ~ 'hello' && categories:length > 0";

    time("parse + compile (5-clause rule)", 100_000, || {
        let q =
            compile(&schema, "posts", black_box(rule), &req, Access::Trusted).expect("compiles");
        black_box(q);
    });
    let filter = Filter::parse(rule).expect("parses");
    time("compile only (pre-parsed)", 100_000, || {
        let mut q = Query::new(&schema, "posts").expect("collection");
        q.and_where(&schema, &req, black_box(&filter), Access::Trusted)
            .expect("compiles");
        black_box(q);
    });
    let q = compile(&schema, "posts", rule, &req, Access::Trusted).expect("compiles");
    time("to_sql", 100_000, || {
        black_box(q.to_sql());
    });
    let record = json!({"id": "p1", "title": "Hello world", "views": 42, "published": true,
                        "owner": "u1", "categories": ["a", "b"]});
    let record = record.as_object().expect("object");
    time("in-memory evaluation (compiled rule)", 1_000_000, || {
        black_box(q.matches(black_box(record)).expect("evaluates"));
    });
}
