//! Property tests: printing round-trips, evaluator/SQLite agreement, and
//! hostile input never panicking nor naming tables outside the schema.

use proptest::prelude::*;
use serde_json::{Value, json};
use warren_filter::*;
use warren_store::sql::Connection;

use crate::common::{create_tables, insert, request_at_fixed_time, run, schema};

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,6}(\\.[a-z][a-z0-9_]{0,4}){0,2}(:lower|:each|:length)?",
        Just("@request.auth.id".to_string()),
        Just("@collection.tags:t.name".to_string()),
        Just("@now".to_string()),
    ]
}

fn operand() -> impl Strategy<Value = Operand> {
    let leaf = prop_oneof![
        ident().prop_map(|name| Operand::Ident { name, pos: Pos(0) }),
        prop_oneof![
            any::<String>(),
            // Dense in what the printer must escape and the lexer unescape.
            "[\\\\\"'nrtud \\n\\r\\t]{0,8}",
        ]
        .prop_map(|value| Operand::Text { value, pos: Pos(0) }),
        (-1.0e6f64..1.0e6).prop_map(|v| Operand::Number {
            value: (v * 100.0).round() / 100.0,
            pos: Pos(0)
        }),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        ("[a-z]{1,6}", prop::collection::vec(inner, 0..3)).prop_map(|(name, args)| Operand::Call {
            name,
            args,
            pos: Pos(0),
        })
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    let cmp = (operand(), prop::sample::select(Op::ALL.to_vec()), operand())
        .prop_map(|(left, op, right)| Expr::Cmp { left, op, right });
    cmp.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

proptest! {
    #[test]
    fn printed_trees_parse_back_to_the_same_tree(e in expr()) {
        let text = e.to_string();
        let parsed = Filter::parse(&text);
        prop_assume!(!matches!(parsed, Err(Error::Limit { .. })));
        let parsed = parsed.map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
        prop_assert_eq!(parsed.expr(), Some(&e), "{}", text);
    }
}

// ---------------------------------------------------------------------------

fn record() -> impl Strategy<Value = Value> {
    let word = prop::sample::select(vec![
        "", "a", "b", "Hello", "hello", "10", "5.0", "x_y", "50%",
    ]);
    (
        word.clone(),
        prop::sample::select(vec![json!(0), json!(5), json!(10), json!(-2.5), json!(10.0)]),
        any::<bool>(),
        word.clone(),
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..3),
        prop::sample::select(vec![
            json!(null), json!(1), json!("a"), json!({"k": 1}), json!({"k": "1", "l": [1, 2]}), json!([1, 2]), json!(true),
        ]),
    )
        .prop_map(|(title, views, published, status, cats, meta)| {
            let mut cats: Vec<&str> = cats;
            cats.dedup();
            json!({"title": title, "views": views, "published": published, "status": status,
                   "categories": cats, "meta": meta, "author": "", "tags": [],
                   "location": {"lon": 1.5, "lat": 2.0}, "created": "2024-01-01 00:00:00.000Z", "secret": ""})
        })
}

fn local_operand() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "title",
        "views",
        "published",
        "status",
        "categories",
        "categories:each",
        "categories:length",
        "meta",
        "meta.k",
        "meta.l.0",
        "title:lower",
        "'a'",
        "'hello'",
        "''",
        "null",
        "true",
        "false",
        "5",
        "10",
        "-2.5",
        "'10'",
        "'%a%'",
        "'5.0'",
        "@request.body.title",
        "@request.query.q",
        "created",
        "location.lat",
        "id",
    ])
    .prop_map(String::from)
}

fn local_filter() -> impl Strategy<Value = String> {
    let ops = prop::sample::select(Op::ALL.to_vec());
    let cmp = (local_operand(), ops, local_operand())
        .prop_map(|(l, op, r)| format!("{l} {} {r}", op.as_str()));
    cmp.prop_recursive(2, 6, 3, |inner| {
        (inner.clone(), prop::sample::select(vec!["&&", "||"]), inner)
            .prop_map(|(a, j, b)| format!("({a}) {j} ({b})"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn evaluator_agrees_with_sqlite(
        records in prop::collection::vec(record(), 1..6),
        filter in local_filter(),
    ) {
        let s = schema();
        let conn = Connection::open_in_memory().expect("db");
        create_tables(&conn, &s, &["posts"]);
        let posts = s.collection("posts").expect("posts");
        let mut recs = Vec::new();
        for (i, mut r) in records.into_iter().enumerate() {
            r["id"] = json!(format!("r{i}"));
            insert(&conn, &posts, r.as_object().expect("object"));
            recs.push(r);
        }
        let mut req = request_at_fixed_time();
        req.body = json!({"title": "hello"}).as_object().cloned().unwrap_or_default();
        req.query.insert("q".into(), "10".into());
        let q = compile(&s, "posts", &filter, &req, Access::Trusted)
            .map_err(|e| TestCaseError::fail(format!("{filter}: {e}")))?;
        prop_assert!(q.evaluable_in_memory(), "{}", filter);
        let sql_ids = run(&conn, &q).map_err(|e| TestCaseError::fail(format!("{filter}: {e}")))?;
        let mut mem_ids = Vec::new();
        for r in &recs {
            if q.matches(r.as_object().expect("object")).map_err(|e| TestCaseError::fail(e.to_string()))? {
                mem_ids.push(r["id"].as_str().unwrap_or_default().to_string());
            }
        }
        mem_ids.sort();
        prop_assert_eq!(mem_ids, sql_ids, "{}\n{}", filter, q.to_sql().where_clause);
    }
}

// ---------------------------------------------------------------------------

fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\0".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("&&".to_string()),
        Just("||".to_string()),
        Just("=".to_string()),
        Just("?!~".to_string()),
        Just("99999999999999999999999999999".to_string()),
        Just("-0.0".to_string()),
        Just("@collection.".to_string()),
        Just("@request.".to_string()),
        Just("secret".to_string()),
        Just("_via_".to_string()),
        Just("sqlite_master".to_string()),
        Just("users_via_author.".to_string()),
        Just("author.".to_string()),
        Just(":each".to_string()),
        Just("\u{202e}é✓".to_string()),
        Just(" ".to_string()),
        Just("//".to_string()),
        Just("\n".to_string()),
        Just("title".to_string()),
        Just("tags.".to_string()),
        Just("strftime(".to_string()),
        "[a-z_.:@#]{1,8}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn hostile_input_never_panics_nor_escapes_the_schema(text in hostile(), depth in 0usize..80) {
        let nested = format!("{}{}{}", "(".repeat(depth), text, ")".repeat(depth));
        let s = schema();
        let allowed = ["\"posts\"", "\"users\"", "\"tags\"", "\"comments\""];
        for access in [Access::Trusted, Access::Client] {
            for t in [&text, &nested] {
                if let Ok(q) = compile(&s, "posts", t, &RequestContext::guest(), access) {
                    let sql = q.to_sql();
                    for part in sql.joins.split("LEFT JOIN ").skip(1) {
                        let table = part.split(' ').next().unwrap_or_default();
                        prop_assert!(table.starts_with("json_each(") || allowed.contains(&table), "{}", table);
                    }
                    prop_assert!(!sql.select("*").contains("sqlite_master"));
                    let _ = q.matches(&serde_json::Map::new());
                }
            }
        }
    }
}
