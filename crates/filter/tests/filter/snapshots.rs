//! Snapshots of the SQL emitted for representative filters.

use warren_filter::*;

use crate::common::{request_at_fixed_time, schema};

fn render(text: &str, access: Access) -> String {
    let q = compile(&schema(), "posts", text, &request_at_fixed_time(), access)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let sql = q.to_sql();
    format!(
        "{}\n-- params: {:?}",
        sql.select("\"posts\".\"id\""),
        sql.params
    )
}

#[test]
fn sql_for_representative_filters() {
    let cases = [
        (
            "plain_equality",
            "title = 'Hello' && views > 10",
            Access::Trusted,
        ),
        (
            "null_equivalence",
            "title = null || status != ''",
            Access::Trusted,
        ),
        ("field_to_field", "title = status", Access::Trusted),
        (
            "like_wrapping",
            "title ~ 'sure_' && title !~ 'Hel%'",
            Access::Trusted,
        ),
        ("multi_each_all", "categories:each = 'a'", Access::Trusted),
        (
            "multi_each_any",
            "categories:each ?= 'a' && categories:length > 1",
            Access::Trusted,
        ),
        ("single_relation", "author.name ~ 'ada'", Access::Trusted),
        ("multi_relation_all", "tags.name = 'news'", Access::Trusted),
        (
            "back_relation",
            "comments_via_post.body ?~ 'nice'",
            Access::Trusted,
        ),
        (
            "collection_alias",
            "@collection.tags:t.name ?= 'news' && @collection.tags:t.id ?= tags.id",
            Access::Trusted,
        ),
        (
            "json_path",
            "meta.a.0.b = 'x' && meta = null",
            Access::Trusted,
        ),
        ("client_list_rule_gate", "author.name = 'x'", Access::Client),
        (
            "macros_and_functions",
            "created > @yesterday && strftime('%Y', created) = '2025'",
            Access::Trusted,
        ),
        (
            "geo_distance",
            "geoDistance(location.lon, location.lat, 23.32, 42.69) < 5",
            Access::Trusted,
        ),
    ];
    for (name, text, access) in cases {
        insta::assert_snapshot!(name, render(text, access), text);
    }
}

/// What the index advisor and the in-memory sort read back from a compiled query.
#[test]
fn compared_and_sorted_columns() {
    let schema = schema();
    let ctx = request_at_fixed_time();
    let q = compile(
        &schema,
        "posts",
        "title = 'a' && views > 1 && (status = 'x' || views < 3) && author.name = 'b' && views >= 2",
        &ctx,
        Access::Trusted,
    )
    .unwrap();
    // The OR group and the joined field give nothing; `views` is listed once.
    assert_eq!(q.compared_columns(), (vec!["title"], vec!["views"]));
    let eq_and_range = compile(
        &schema,
        "posts",
        "views = 3 && views < 9",
        &ctx,
        Access::Trusted,
    )
    .unwrap();
    assert_eq!(eq_and_range.compared_columns(), (vec!["views"], vec![]));
    let sorted = |text: &str| {
        let mut q = Query::new(&schema, "posts").unwrap();
        q.order_by(&schema, &ctx, &parse_sort(text).unwrap(), Access::Trusted)
            .unwrap();
        q.column_order().map(|v| {
            v.into_iter()
                .map(|(c, d)| (c.to_string(), d))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        sorted("-views,title"),
        Some(vec![
            ("views".to_string(), true),
            ("title".to_string(), false)
        ])
    );
    assert_eq!(sorted("-views,author.name"), None);
    assert_eq!(sorted("@random"), None);
    assert_eq!(sorted(""), None);
}
