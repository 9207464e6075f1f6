//! `POST /api/collections/{collection}/auth-with-password` for the tenant's superusers.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use warren_auth::{Claims, TokenKind};
use warren_tenant::superusers::{self, Superuser};

use crate::error::ApiError;
use crate::extract::{CurrentTenant, JsonObject};
use crate::router::ApiState;

/// A fixed argon2id hash compared against when no record matches, so that an unknown email
/// costs the same time as a wrong password.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

fn failed() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "Failed to authenticate.")
}

/// Authenticates a superuser by email and password and returns `{record, token}`.
pub async fn auth_with_password(
    State(state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Path(collection): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    if collection != superusers::COLLECTION_ID
        && !collection.eq_ignore_ascii_case(superusers::COLLECTION_NAME)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid collection context.",
        ));
    }
    let (identity, password) = (body.text("identity"), body.text("password"));
    let mut invalid = ApiError::new(
        StatusCode::BAD_REQUEST,
        "An error occurred while validating the submitted data.",
    );
    for (name, value) in [("identity", identity), ("password", password)] {
        if value.is_empty() {
            invalid = invalid.field(name, "validation_required", "Cannot be blank.");
        } else if value.chars().count() > 255 {
            invalid = invalid.field(
                name,
                "validation_length_out_of_range",
                "The length must be between 1 and 255.",
            );
        }
    }
    if !invalid.data.is_empty() {
        return Err(invalid);
    }
    let record = superusers::find_by_email(tenant.db(), identity).await?;
    let Some(record) = record else {
        let dummy = match DUMMY_HASH.get() {
            Some(hash) => hash.clone(),
            None => {
                let hash = state.passwords.hash("warren-dummy-password").await?;
                DUMMY_HASH.get_or_init(|| hash).clone()
            }
        };
        let _ = state.passwords.verify(password, &dummy).await;
        return Err(failed());
    };
    if !state
        .passwords
        .verify(password, &record.password_hash)
        .await
        .unwrap_or(false)
    {
        return Err(failed());
    }
    let settings = superusers::token_settings(tenant.db()).await?;
    let claims = Claims {
        collection_id: superusers::COLLECTION_ID.into(),
        email: None,
        exp: warren_auth::token::now() + settings.duration,
        id: record.id.clone(),
        new_email: None,
        refreshable: Some(true),
        kind: TokenKind::Auth,
    };
    let token = warren_auth::token::sign(&claims, &record.token_key, &settings.secret)?;
    Ok(Json(json!({ "record": render(&record), "token": token })))
}

/// A superuser record as PocketBase renders it to its owner (keys in alphabetical order).
fn render(record: &Superuser) -> Value {
    json!({
        "collectionId": superusers::COLLECTION_ID,
        "collectionName": superusers::COLLECTION_NAME,
        "created": record.created,
        "email": record.email,
        "emailVisibility": record.email_visibility,
        "id": record.id,
        "updated": record.updated,
        "verified": record.verified,
    })
}
