//! Signing in with a password, refreshing tokens and listing auth methods.

use serde_json::json;

use crate::support::{Api, PASSWORD};

const USERS: &str = "/api/collections/users";

/// `auth-refresh` in `collection` as `token`.
async fn refresh(api: &Api, collection: &str, token: &str) -> (u16, serde_json::Value) {
    let path = format!("/api/collections/{collection}/auth-refresh");
    api.call(axum::http::Method::POST, &path, token, None).await
}

#[tokio::test]
async fn a_user_signs_in_with_a_password() {
    let api = Api::new().await;
    let (id, _) = api.user("ann@example.com").await;
    let (status, body) = api
        .post(
            &format!("{USERS}/auth-with-password"),
            "",
            json!({ "identity": "ann@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().unwrap().split('.').count() == 3);
    assert_eq!(body["record"]["id"], id.as_str());
    assert_eq!(body["record"]["email"], "ann@example.com");
    assert!(body["record"].get("password").is_none());
    assert!(body["record"].get("tokenKey").is_none());
}

#[tokio::test]
async fn a_wrong_password_or_unknown_identity_is_one_400() {
    let api = Api::new().await;
    api.user("ann@example.com").await;
    let path = format!("{USERS}/auth-with-password");
    let (status, wrong) = api
        .post(
            &path,
            "",
            json!({ "identity": "ann@example.com", "password": "not-the-password" }),
        )
        .await;
    assert_eq!(status, 400, "{wrong}");
    let (status, unknown) = api
        .post(
            &path,
            "",
            json!({ "identity": "nobody@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn an_empty_login_body_names_the_missing_fields() {
    let api = Api::new().await;
    let (status, body) = api
        .post(&format!("{USERS}/auth-with-password"), "", json!({}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["identity"]["code"].is_string(), "{body}");
    assert!(body["data"]["password"]["code"].is_string(), "{body}");
}

#[tokio::test]
async fn refresh_gives_a_new_token_for_the_same_record() {
    let api = Api::new().await;
    let (id, token) = api.user("ann@example.com").await;
    let (status, body) = refresh(&api, "users", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], id.as_str());
    let fresh = body["token"].as_str().unwrap();
    let (status, me) = api.get(&format!("{USERS}/records/{id}"), fresh).await;
    assert_eq!(status, 200, "{me}");
}

#[tokio::test]
async fn refresh_without_a_token_is_a_401() {
    let api = Api::new().await;
    let (status, body) = refresh(&api, "users", "").await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn a_users_token_does_not_refresh_in_another_collection() {
    let api = Api::new().await;
    let (_, token) = api.user("ann@example.com").await;
    let (status, body) = refresh(&api, "_superusers", &token).await;
    assert!(status == 401 || status == 403, "{status} {body}");
}

#[tokio::test]
async fn users_see_themselves_and_no_one_else() {
    let api = Api::new().await;
    let (ann, ann_token) = api.user("ann@example.com").await;
    let (bob, _) = api.user("bob@example.com").await;
    let (status, list) = api.get(&format!("{USERS}/records"), &ann_token).await;
    assert_eq!(status, 200);
    assert_eq!(list["totalItems"], 1);
    assert_eq!(list["items"][0]["id"], ann.as_str());
    let (status, _) = api.get(&format!("{USERS}/records/{bob}"), &ann_token).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn auth_methods_offer_the_password() {
    let api = Api::new().await;
    let (status, body) = api.get(&format!("{USERS}/auth-methods"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["password"]["enabled"], true);
    assert_eq!(body["password"]["identityFields"], json!(["email"]));
}

#[tokio::test]
async fn a_password_and_its_confirmation_must_agree() {
    let api = Api::new().await;
    let (status, body) = api
        .post(
            &format!("{USERS}/records"),
            "",
            json!({ "email": "ann@example.com", "password": PASSWORD, "passwordConfirm": "other-password" }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["data"]["passwordConfirm"]["code"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn a_superuser_token_lists_every_user() {
    let api = Api::new().await;
    api.user("ann@example.com").await;
    api.user("bob@example.com").await;
    let (status, list) = api.get(&format!("{USERS}/records"), &api.root).await;
    assert_eq!(status, 200);
    assert_eq!(list["totalItems"], 2);
}
