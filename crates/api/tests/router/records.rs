//! Records through the router: create, view, update and delete under the collection's rules;
//! list filters, sorting, paging and field validation.

use serde_json::{Value, json};

use crate::support::{Api, column};

const POSTS: &str = "/api/collections/posts/records";

/// A blog with user ann's published and draft posts; ann's id and token.
async fn blog_with_posts(api: &Api) -> (String, String) {
    api.blog().await;
    let (ann, token) = api.user("ann@example.com").await;
    for (title, views, published) in [("one", 10, true), ("two", 30, true), ("draft", 20, false)] {
        api.create_record(
            "posts",
            &token,
            json!({ "title": title, "views": views, "published": published, "author": ann }),
        )
        .await;
    }
    (ann, token)
}

/// The path of the post titled `title` (found as the superuser).
async fn post_path(api: &Api, title: &str) -> String {
    let (_, list) = api
        .get(&format!("{POSTS}?filter=title%3D%27{title}%27"), &api.root)
        .await;
    format!("{POSTS}/{}", list["items"][0]["id"].as_str().unwrap())
}

fn titles(list: &Value) -> Vec<&str> {
    column(list, "title")
        .into_iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_record_is_created_viewed_updated_and_deleted() {
    let api = Api::new().await;
    api.blog().await;
    let (ann, token) = api.user("ann@example.com").await;
    let created = api
        .create_record(
            "posts",
            &token,
            json!({ "title": "hello", "views": 1, "author": ann }),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 15);
    assert_eq!(created["collectionName"], "posts");
    assert_eq!(created["title"], "hello");
    assert_eq!(created["published"], false);

    let (status, viewed) = api.get(&format!("{POSTS}/{id}"), &token).await;
    assert_eq!(status, 200, "{viewed}");
    assert_eq!(viewed, created);

    let (status, updated) = api
        .patch(&format!("{POSTS}/{id}"), &token, json!({ "views": 2 }))
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["views"], 2);
    assert_eq!(updated["title"], "hello");

    let (status, body) = api.delete(&format!("{POSTS}/{id}"), &token).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(api.get(&format!("{POSTS}/{id}"), &token).await.0, 404);
}

#[tokio::test]
async fn the_list_hides_records_the_rule_rejects() {
    let api = Api::new().await;
    let (_, ann) = blog_with_posts(&api).await;
    let (status, list) = api.get(&format!("{POSTS}?sort=title"), "").await;
    assert_eq!(status, 200);
    assert_eq!(titles(&list), ["one", "two"]);
    let (_, list) = api.get(&format!("{POSTS}?sort=title"), &ann).await;
    assert_eq!(titles(&list), ["draft", "one", "two"]);
    let (_, list) = api.get(&format!("{POSTS}?sort=title"), &api.root).await;
    assert_eq!(titles(&list), ["draft", "one", "two"]);
}

#[tokio::test]
async fn a_record_the_view_rule_rejects_is_a_404() {
    let api = Api::new().await;
    let (_, ann) = blog_with_posts(&api).await;
    let path = post_path(&api, "draft").await;
    assert_eq!(api.get(&path, "").await.0, 404);
    let (_, bob) = api.user("bob@example.com").await;
    assert_eq!(api.get(&path, &bob).await.0, 404);
    assert_eq!(api.get(&path, &ann).await.0, 200);
}

#[tokio::test]
async fn a_view_follows_the_collection_as_it_changes() {
    let api = Api::new().await;
    let (ann, token) = blog_with_posts(&api).await;
    let draft = post_path(&api, "draft").await;
    let (_, bob) = api.user("bob@example.com").await;
    // Each caller's compiled rule is kept: ann sees her draft, bob does not, repeatedly.
    for _ in 0..2 {
        assert_eq!(api.get(&draft, &token).await.0, 200);
        assert_eq!(api.get(&draft, &bob).await.0, 404);
    }
    // A rule change is seen by the very next view.
    let (status, body) = api
        .patch(
            "/api/collections/posts",
            &api.root,
            json!({ "viewRule": format!("author != '{ann}'") }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get(&draft, &token).await.0, 404);
    assert_eq!(api.get(&draft, &bob).await.0, 404);
    let (status, body) = api
        .patch(
            "/api/collections/posts",
            &api.root,
            json!({ "viewRule": "" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get(&draft, &bob).await.0, 200);
    // Renamed: the old name is gone, the new one answers under the same rule.
    let (status, body) = api
        .patch(
            "/api/collections/posts",
            &api.root,
            json!({ "name": "articles", "viewRule": null }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get(&draft, &bob).await.0, 404);
    let renamed = draft.replace("/posts/", "/articles/");
    assert_eq!(api.get(&renamed, &bob).await.0, 403);
    assert_eq!(api.get(&renamed, &api.root).await.0, 200);
    // Deleted: nothing kept answers for it.
    let (status, body) = api.delete("/api/collections/articles", &api.root).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(api.get(&renamed, &api.root).await.0, 404);
    assert_eq!(api.get(&draft, &api.root).await.0, 404);
}

#[tokio::test]
async fn guests_cannot_create_where_the_rule_wants_a_user() {
    let api = Api::new().await;
    api.blog().await;
    let (status, body) = api.post(POSTS, "", json!({ "title": "spam" })).await;
    assert_eq!(status, 400, "{body}");
    let (_, list) = api.get(POSTS, &api.root).await;
    assert_eq!(list["totalItems"], 0);
}

#[tokio::test]
async fn a_superuser_only_collection_refuses_everyone_else() {
    let api = Api::new().await;
    api.create_collection(json!({ "name": "secrets", "fields": [{"name": "v", "type": "text"}] }))
        .await;
    let path = "/api/collections/secrets/records";
    let (status, body) = api.get(path, "").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = api.post(path, "", json!({ "v": "x" })).await;
    assert_eq!(status, 403);
    let (status, _) = api.post(path, &api.root, json!({ "v": "x" })).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn only_the_author_updates_or_deletes() {
    let api = Api::new().await;
    let (_, ann) = blog_with_posts(&api).await;
    let (_, bob) = api.user("bob@example.com").await;
    let path = post_path(&api, "one").await;
    let (status, _) = api.patch(&path, &bob, json!({ "title": "mine" })).await;
    assert_eq!(status, 404);
    let (status, _) = api.delete(&path, &bob).await;
    assert_eq!(status, 404);
    let (status, _) = api.patch(&path, "", json!({ "title": "mine" })).await;
    assert_eq!(status, 404);
    let (_, post) = api.get(&path, "").await;
    assert_eq!(post["title"], "one");
    let (status, post) = api.patch(&path, &ann, json!({ "title": "uno" })).await;
    assert_eq!(status, 200);
    assert_eq!(post["title"], "uno");
}

#[tokio::test]
async fn lists_filter_and_sort() {
    let api = Api::new().await;
    let (_, ann) = blog_with_posts(&api).await;
    let (status, list) = api
        .get(&format!("{POSTS}?filter=views%3E15&sort=-views"), &ann)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(titles(&list), ["two", "draft"]);
    let (_, list) = api
        .get(&format!("{POSTS}?filter=title~%27o%27&sort=views"), &ann)
        .await;
    assert_eq!(titles(&list), ["one", "two"]);
    let (_, list) = api
        .get(&format!("{POSTS}?sort=-published,title"), &ann)
        .await;
    assert_eq!(titles(&list), ["one", "two", "draft"]);
}

#[tokio::test]
async fn lists_page_and_count() {
    let api = Api::new().await;
    let (_, ann) = blog_with_posts(&api).await;
    let (status, list) = api
        .get(&format!("{POSTS}?sort=views&perPage=2&page=2"), &ann)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["page"], 2);
    assert_eq!(list["perPage"], 2);
    assert_eq!(list["totalItems"], 3);
    assert_eq!(list["totalPages"], 2);
    assert_eq!(titles(&list), ["two"]);
    let (_, list) = api
        .get(
            &format!("{POSTS}?sort=views&perPage=1&skipTotal=true"),
            &ann,
        )
        .await;
    assert_eq!(list["totalItems"], -1);
    assert_eq!(list["totalPages"], -1);
    assert_eq!(titles(&list), ["one"]);
}

#[tokio::test]
async fn fields_picks_what_comes_back() {
    let api = Api::new().await;
    let (_, ann) = blog_with_posts(&api).await;
    let (status, list) = api
        .get(
            &format!("{POSTS}?fields=id,title&sort=title&perPage=1"),
            &ann,
        )
        .await;
    assert_eq!(status, 200);
    let item = list["items"][0].as_object().unwrap();
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    assert_eq!(keys, ["id", "title"]);
}

#[tokio::test]
async fn invalid_values_are_refused_per_field() {
    let api = Api::new().await;
    api.blog().await;
    let (ann, token) = api.user("ann@example.com").await;
    let (status, body) = api
        .post(POSTS, &token, json!({ "views": 1, "author": ann }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"]["title"]["code"], "validation_required");
    let (status, body) = api
        .post(
            POSTS,
            &token,
            json!({ "title": "x".repeat(51), "views": 1.5, "author": ann }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["title"]["code"].is_string(), "{body}");
    assert!(body["data"]["views"]["code"].is_string(), "{body}");
    let (_, list) = api.get(POSTS, &api.root).await;
    assert_eq!(list["totalItems"], 0);
}

#[tokio::test]
async fn expand_follows_a_relation_the_caller_may_see() {
    let api = Api::new().await;
    let (ann, token) = blog_with_posts(&api).await;
    let (status, list) = api
        .get(&format!("{POSTS}?expand=author&perPage=1"), &token)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["expand"]["author"]["id"], ann.as_str());
    // A guest may not view ann, so nothing is expanded for it.
    let (_, list) = api
        .get(&format!("{POSTS}?expand=author&perPage=1"), "")
        .await;
    assert!(list["items"][0]["expand"]["author"].is_null(), "{list}");
}

#[tokio::test]
async fn a_record_with_a_chosen_id_keeps_it_and_a_taken_id_is_refused() {
    let api = Api::new().await;
    api.blog().await;
    let body = json!({ "id": "abcdefghijklmno", "title": "mine" });
    let created = api.create_record("posts", &api.root, body.clone()).await;
    assert_eq!(created["id"], "abcdefghijklmno");
    let (status, answer) = api.post(POSTS, &api.root, body).await;
    assert_eq!(status, 400, "{answer}");
}
