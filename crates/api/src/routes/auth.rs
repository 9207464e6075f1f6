//! `POST /api/collections/{collection}/auth-with-password` for any auth collection.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{CurrentTenant, JsonObject};
use crate::fields::project;
use crate::query::Params;
use crate::router::ApiState;

/// Authenticates a record by identity and password and returns `{record, token}`.
pub async fn auth_with_password(
    State(state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Path(collection): Path<String>,
    params: Params,
    body: JsonObject,
) -> Result<Json<Value>, ApiError> {
    let catalog = tenant.catalog();
    let entry = catalog.get(&collection).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid collection context.",
        )
    })?;
    if !entry.collection.is_auth() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid auth collection context.",
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
    let auth = warren_records::auth::with_password(
        tenant.db(),
        &catalog,
        &entry,
        identity,
        body.text("identityField"),
        password,
        &state.passwords,
    )
    .await?;
    Ok(Json(project(
        json!({ "record": auth.record, "token": auth.token }),
        params.text("fields"),
    )?))
}
