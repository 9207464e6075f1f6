//! `/api/settings`: a tenant's settings, for its superusers.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use warren_records::settings;

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, JsonObject, require_superuser};
use crate::fields::project;
use crate::query::Params;
use crate::router::ApiState;

/// `GET /api/settings`
pub async fn get_settings(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let current = settings::load(tenant.db()).await?;
    Ok(Json(project(
        settings::redact(&current),
        params.text("fields"),
    )?))
}

/// `PATCH /api/settings`: merges the body over the current settings, checks it, stores it.
pub async fn update_settings(
    State(_state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
    JsonObject(patch): JsonObject,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let next = settings::update(tenant.db(), Value::Object(patch))
        .await
        .map_err(|e| match e {
            settings::UpdateError::Invalid(errors) => {
                let mut error = ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "An error occurred while saving the new settings.",
                );
                if let Value::Object(map) = errors.to_value() {
                    error.data = map;
                }
                error
            }
            settings::UpdateError::Failed(e) => e.into(),
        })?;
    tenant.forget_settings();
    Ok(Json(project(
        settings::redact(&next),
        params.text("fields"),
    )?))
}
