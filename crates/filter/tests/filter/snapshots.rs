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
