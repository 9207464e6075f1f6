//! One test per construct of the language: parsing, resolution errors,
//! request values, list-rule gating and the evaluator.

use serde_json::json;
use warren_filter::*;

use crate::common::{request_at_fixed_time, schema};

fn sql(text: &str, access: Access) -> Result<String> {
    let q = compile(&schema(), "posts", text, &request_at_fixed_time(), access)?;
    Ok(q.to_sql().select("\"posts\".\"id\""))
}

fn eval(text: &str, record: serde_json::Value, request: &RequestContext) -> bool {
    let q = compile(&schema(), "posts", text, request, Access::Trusted)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    q.matches(record.as_object().expect("object"))
        .expect("evaluates")
}

#[test]
fn every_operator_parses_and_prints_back() {
    for op in Op::ALL {
        let text = format!("title {} 'x'", op.as_str());
        let f = Filter::parse(&text).expect("parses");
        assert_eq!(
            f.expr().expect("expr").to_string(),
            format!("title {} \"x\"", op.as_str())
        );
    }
}

#[test]
fn and_binds_tighter_than_or() {
    let f = Filter::parse("a = 1 || b = 2 && c = 3").expect("parses");
    assert!(matches!(f.expr(), Some(Expr::Or(items)) if matches!(items[1], Expr::And(_))));
    let f = Filter::parse("(a = 1 || b = 2) && c = 3").expect("parses");
    assert!(matches!(f.expr(), Some(Expr::And(_))));
}

#[test]
fn literals_comments_and_strings() {
    let f = Filter::parse(
        "a = 'it\\'s' // note\n && b = \"say \\\"hi\\\"\" && c = -1.5 && d = true && e = null",
    )
    .expect("parses");
    let text = f.expr().expect("expr").to_string();
    assert_eq!(
        text,
        "a = \"it's\" && b = \"say \\\"hi\\\"\" && c = -1.5 && d = true && e = null"
    );
    assert_eq!(
        Filter::parse("  // only a comment").expect("parses").expr(),
        None
    );
    assert_eq!(
        Filter::parse("a = 'x\\\\y'")
            .expect("parses")
            .expr()
            .expect("e")
            .to_string(),
        "a = \"x\\\\y\""
    );
}

#[test]
fn syntax_errors_name_their_position() {
    for (text, pos) in [
        ("a == 1", 2),
        ("a = 1e5", 4),
        ("a = .5", 4),
        ("a = 1.", 4),
        ("a = 'open", 4),
        ("a = 1 and b = 2", 6),
        ("(a = 1", 0),
        ("a = 1\r", 5),
        ("a =", 3),
        ("a = 1 &&", 8),
        ("@ = 1", 0),
    ] {
        match Filter::parse(text) {
            Err(Error::Syntax { pos: p, .. }) => assert_eq!(p, pos, "{text:?}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn bounds_are_enforced() {
    let long = format!("title = '{}'", "x".repeat(4000));
    assert!(matches!(Filter::parse(&long), Err(Error::Limit { .. })));
    let deep = format!("{}a = 1{}", "(".repeat(40), ")".repeat(40));
    assert!(matches!(Filter::parse(&deep), Err(Error::Limit { .. })));
    let many = vec!["a = 1"; 201].join(" && ");
    assert!(matches!(Filter::parse(&many), Err(Error::Limit { .. })));
    assert!(matches!(
        Filter::parse("f(g(h(i(1)))) = 1"),
        Err(Error::Limit { .. })
    ));
    let rel = "author.name = 1";
    assert!(sql(rel, Access::Trusted).is_ok());
}

#[test]
fn unknown_fields_and_modifiers_are_named() {
    match sql("nope = 1", Access::Trusted) {
        Err(Error::UnknownField { token, pos, .. }) => {
            assert_eq!((token.as_str(), pos), ("nope", 0))
        }
        other => panic!("{other:?}"),
    }
    match sql("title = 1 && title:upper = 2", Access::Trusted) {
        Err(Error::InvalidField { token, pos, .. }) => {
            assert_eq!((token.as_str(), pos), ("title:upper", 13))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sql("title.name = 1", Access::Trusted),
        Err(Error::InvalidField { .. })
    ));
    assert!(matches!(
        sql("@request.query.x:length = 1", Access::Trusted),
        Err(Error::InvalidField { .. })
    ));
    assert!(matches!(
        sql("nope(title) = 1", Access::Trusted),
        Err(Error::InvalidFunction { .. })
    ));
    assert!(matches!(
        sql("geoDistance(1,2,3) = 1", Access::Trusted),
        Err(Error::InvalidFunction { .. })
    ));
    // Known modifiers on fields that do not support them are ignored.
    assert!(sql("title:length = 1", Access::Trusted).is_ok());
}

#[test]
fn client_filters_are_restricted() {
    assert!(matches!(
        sql("secret = 'x'", Access::Client),
        Err(Error::InvalidField { .. })
    ));
    assert!(sql("secret = 'x'", Access::Trusted).is_ok());
    assert!(matches!(
        sql("@request.auth.id = ''", Access::Client),
        Err(Error::SuperuserOnly(_))
    ));
    assert!(matches!(
        sql("title = '@collection.x'", Access::Client),
        Err(Error::SuperuserOnly(_))
    ));
    // comments have a null list rule: superusers only.
    let s = schema();
    let q = compile(
        &s,
        "posts",
        "comments_via_post.body = 'x'",
        &RequestContext::guest(),
        Access::Client,
    );
    assert!(matches!(q, Err(Error::InvalidField { .. })));
}

#[test]
fn joined_collection_list_rule_gates_client_filters() {
    let text = sql("author.name = 'x'", Access::Client).expect("compiles");
    assert!(text.contains("\"posts_author\".\"id\" = ''"), "{text}");
    // Auth emails are only matched where visible.
    let text = sql("author.email = 'a@b.c'", Access::Client).expect("compiles");
    assert!(text.contains("\"emailVisibility\" = TRUE"), "{text}");
    let text = sql("author.email = 'a@b.c'", Access::Trusted).expect("compiles");
    assert!(!text.contains("emailVisibility"), "{text}");
}

#[test]
fn values_are_never_spliced_into_sql() {
    let text = sql(
        "title = 'x\\' OR 1=1 --' && meta.a = \"b\"",
        Access::Trusted,
    )
    .expect("compiles");
    assert!(!text.contains("OR 1=1"), "{text}");
    assert!(!text.contains("\"b\""), "{text}");
}

#[test]
fn request_values_are_bound() {
    let mut req = request_at_fixed_time();
    req.auth = Some(json!({"id": "u1", "collectionId": "_pb_users_auth_", "collectionName": "users", "verified": true}).as_object().cloned().unwrap_or_default().into());
    req.body = json!({"title": "New", "views": "12", "categories": ["a", "b"]})
        .as_object()
        .cloned()
        .unwrap_or_default();
    req.query.insert("q".into(), "hello".into());
    req.set_header("X-Token", "abc");
    req.method = "POST".into();
    let rec = json!({"id": "p1", "title": "Old", "views": 12, "author": "u1", "categories": ["a"]});
    let t = |text: &str| eval(text, rec.clone(), &req);
    assert!(t("author = @request.auth.id"));
    assert!(t("@request.auth.verified = true"));
    assert!(t("@request.auth.collectionName = 'users'"));
    assert!(t(
        "@request.method = 'POST' && @request.context = 'default'"
    ));
    assert!(t(
        "@request.query.q = 'hello' && @request.headers.x_token = 'abc'"
    ));
    assert!(t("@request.body.views = views"));
    assert!(t(
        "@request.body.title:isset = true && @request.body.status:isset = false"
    ));
    assert!(t("@request.body.title:changed = true"));
    assert!(!t("@request.body.views:changed = true"));
    assert!(t("@request.body.categories:length = 2"));
    assert!(t("@request.body.categories:each ?= 'b'"));
    assert!(!t("@request.body.categories:each = 'b'"));
    assert!(t("@request.body.title:lower = 'new'"));
    assert!(t(
        "@request.body.missing = null && @request.body.missing.deep = ''"
    ));
    let guest = request_at_fixed_time();
    assert!(eval("@request.auth.id = ''", rec.clone(), &guest));
    assert!(!eval("@request.auth.id != ''", rec, &guest));
}

#[test]
fn request_auth_fields_beyond_the_static_ones_join_the_auth_collection() {
    let mut req = request_at_fixed_time();
    req.auth = Some(
        json!({"id": "u1", "collectionName": "users"})
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into(),
    );
    let q = compile(
        &schema(),
        "posts",
        "@request.auth.role = 'admin'",
        &req,
        Access::Trusted,
    )
    .expect("compiles");
    assert!(q.needs_join());
    assert!(q.to_sql().joins.contains("\"__auth_users\""));
}

#[test]
fn date_macros_and_functions() {
    let req = request_at_fixed_time();
    let rec = json!({"id": "p1", "created": "2025-12-31 10:00:00.000Z", "location": {"lon": 23.32, "lat": 42.69}});
    assert!(eval(
        "created < @now && created > @yesterday && created < @todayStart",
        rec.clone(),
        &req
    ));
    assert!(eval(
        "@year = 2026 && @month = 1 && @day = 1 && @weekday = 4 && @hour = 0",
        rec.clone(),
        &req
    ));
    assert!(eval(
        "created < @monthStart && created < @yearStart && @monthEnd > @tomorrow && @yearEnd > @todayEnd",
        rec.clone(),
        &req
    ));
    assert!(eval("@second = 0 && @minute = 0", rec.clone(), &req));
    assert!(eval(
        "geoDistance(location.lon, location.lat, 23.32, 42.69) < 1",
        rec.clone(),
        &req
    ));
    assert!(eval("location.lat > 40", rec.clone(), &req));
    let q = compile(
        &schema(),
        "posts",
        "strftime('%Y', created) = '2025'",
        &req,
        Access::Trusted,
    )
    .expect("compiles");
    assert!(!q.evaluable_in_memory());
    assert!(matches!(
        q.matches(rec.as_object().expect("o")),
        Err(Error::NeedsSql(_))
    ));
}

#[test]
fn relation_paths_need_joins_and_own_columns_do_not() {
    let s = schema();
    let req = RequestContext::guest();
    for (text, join) in [
        ("title = 'x'", false),
        ("categories:each = 'a'", false),
        ("author.id = 'x'", false),
        ("author.name = 'x'", true),
        ("tags.name ?= 'x'", true),
        ("@collection.tags.name = 'x'", true),
    ] {
        let q = compile(&s, "posts", text, &req, Access::Trusted).expect("compiles");
        assert_eq!(q.needs_join(), join, "{text}");
    }
    // users_via_... does not exist; comments_via_post does.
    assert!(
        compile(
            &s,
            "posts",
            "comments_via_post.body ?= 'x'",
            &req,
            Access::Trusted
        )
        .is_ok()
    );
    assert!(
        compile(
            &s,
            "posts",
            "users_via_post.name = 'x'",
            &req,
            Access::Trusted
        )
        .is_err()
    );
}

#[test]
fn too_deep_relation_paths_are_rejected() {
    let s = StaticSchema::new([CollectionInfo {
        id: "n".into(),
        name: "nodes".into(),
        collection_type: CollectionType::Base,
        fields: vec![
            FieldInfo::new("id", FieldType::Text),
            FieldInfo::relation("next", "n"),
        ],
        list_rule: Some(String::new()),
        unique_fields: vec![],
    }]);
    let req = RequestContext::guest();
    assert!(
        compile(
            &s,
            "nodes",
            "next.next.next.next.next.next.id = ''",
            &req,
            Access::Trusted
        )
        .is_ok()
    );
    assert!(matches!(
        compile(
            &s,
            "nodes",
            "next.next.next.next.next.next.next.id = ''",
            &req,
            Access::Trusted
        ),
        Err(Error::Limit {
            what: "relation depth",
            ..
        })
    ));
}

#[test]
fn sort_compiles_to_order_by() {
    let s = schema();
    let req = RequestContext::guest();
    let mut q = Query::new(&s, "posts").expect("collection");
    q.order_by(
        &s,
        &req,
        &parse_sort("-created,+title,author.name,@rowid,@random").expect("sort"),
        Access::Client,
    )
    .expect("valid");
    let sql = q.to_sql();
    assert_eq!(
        sql.order_by,
        "\"posts\".\"created\" DESC, \"posts\".\"title\" ASC, \"posts_author\".\"name\" ASC, \"posts\"._rowid_ ASC, RANDOM()"
    );
    let mut q = Query::new(&s, "posts").expect("collection");
    assert!(
        q.order_by(&s, &req, &parse_sort("nope").expect("sort"), Access::Client)
            .is_err()
    );
    assert!(
        q.order_by(
            &s,
            &req,
            &parse_sort("secret").expect("sort"),
            Access::Client
        )
        .is_err()
    );
    assert!(
        q.order_by(
            &s,
            &req,
            &parse_sort("@request.auth.id").expect("sort"),
            Access::Client
        )
        .is_err()
    );
}

#[test]
fn null_and_empty_string_are_equivalent() {
    let req = RequestContext::guest();
    let rec = json!({"id": "p", "title": "", "status": "", "meta": null});
    assert!(eval(
        "title = null && title = '' && status = null",
        rec.clone(),
        &req
    ));
    assert!(!eval("title != null", rec.clone(), &req));
    assert!(eval("meta = null", rec.clone(), &req));
    assert!(eval("'' = null", rec, &req));
}

#[test]
fn rules_with_many_aliases_evaluate() {
    // The negated `:each` comparisons add multi-match sub-queries, each with
    // aliases of its own: more than the evaluator's inline row slots.
    let text = [
        "categories:each ?= 'a'",
        "categories:each != 'x'",
        "categories:each ?!= 'c'",
        "categories:each !~ 'z'",
        "categories:each ?~ 'a'",
        "categories:each != 'y'",
    ]
    .join(" && ");
    let q = compile(
        &schema(),
        "posts",
        &text,
        &RequestContext::guest(),
        Access::Trusted,
    )
    .expect("compiles");
    assert!(q.evaluable_in_memory());
    // Sub-query aliases are numbered by alias id.
    let sql = q.to_sql().select("1");
    let highest = sql
        .split("\"__sm")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse::<usize>().ok())
        .max();
    assert!(highest > Some(8), "{sql}");
    for (categories, expected) in [
        (json!(["a", "b"]), true),
        (json!(["b", "c"]), false),
        (json!(["a", "x"]), false),
    ] {
        let rec = json!({"id": "p1", "categories": categories});
        assert_eq!(
            q.matches(rec.as_object().expect("o")).expect("evaluates"),
            expected,
            "{rec}"
        );
    }
}
