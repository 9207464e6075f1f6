//! `/api/settings`: a tenant's settings, for its superusers.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use warren_records::settings;

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, JsonObject, require_superuser};
use crate::fields::project;
use crate::query::Params;
use crate::router::Shared;

/// `GET /api/settings`
pub async fn get_settings(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let current = tenant.with_public_url(settings::load(tenant.db()).await?);
    Ok(Json(project(
        settings::redact(&current),
        params.text("fields"),
    )?))
}

/// `PATCH /api/settings`: merges the body over the current settings, checks it, stores it.
pub async fn update_settings(
    State(_state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
    JsonObject(patch): JsonObject,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let mut patch = Value::Object(patch);
    if let Some(url) = tenant.public_url() {
        warren_tenant::public_url::unpin(&mut patch, &url);
    }
    let next = settings::update(tenant.db(), patch)
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
    let next = tenant.with_public_url(next);
    Ok(Json(project(
        settings::redact(&next),
        params.text("fields"),
    )?))
}

/// `POST /api/settings/apple/generate-client-secret`: signs the ES256 client secret Sign in
/// with Apple requires, from the developer's team id, key id and `.p8` private key.
pub async fn generate_apple_client_secret(
    Auth(caller): Auth,
    body: crate::extract::FormBody,
) -> Result<Json<Value>, ApiError> {
    use axum::http::StatusCode;
    use warren_oauth::apple;
    require_superuser(&caller)?;
    let text = |key: &str| {
        body.data
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let input = apple::SecretInput {
        client_id: text("clientId"),
        team_id: text("teamId"),
        key_id: text("keyId"),
        private_key: text("privateKey"),
        duration: body
            .data
            .get("duration")
            .and_then(Value::as_i64)
            .unwrap_or(0),
    };
    let mut invalid = ApiError::new(StatusCode::BAD_REQUEST, "Invalid client secret data.");
    let blank =
        |e: ApiError, field: &str| e.field(field, "validation_required", "Cannot be blank.");
    if input.client_id.is_empty() {
        invalid = blank(invalid, "clientId");
    } else if input.client_id.len() > 255 {
        invalid = invalid.field(
            "clientId",
            "validation_length_too_long",
            "The length must be no more than 255.",
        );
    }
    for (field, value) in [("teamId", &input.team_id), ("keyId", &input.key_id)] {
        if value.is_empty() {
            invalid = blank(invalid, field);
        } else if value.chars().count() != 10 {
            invalid = invalid.field(
                field,
                "validation_length_invalid",
                "The length must be exactly 10.",
            );
        }
    }
    let key = input.private_key.trim();
    if key.is_empty() {
        invalid = blank(invalid, "privateKey");
    } else if key.len() > 16 * 1024
        || !(key.contains("-----BEGIN PRIVATE KEY----")
            && key.contains("-----END PRIVATE KEY-----"))
    {
        invalid = invalid.field(
            "privateKey",
            "validation_match_invalid",
            "Must be in a valid format.",
        );
    }
    if input.duration == 0 {
        invalid = blank(invalid, "duration");
    } else if input.duration < 1 {
        invalid = invalid.field(
            "duration",
            "validation_min_greater_equal_than_required",
            "Must be no less than 1.",
        );
    } else if input.duration > apple::MAX_SECRET_SECONDS {
        invalid = invalid.field(
            "duration",
            "validation_max_less_equal_than_required",
            &format!("Must be no greater than {}.", apple::MAX_SECRET_SECONDS),
        );
    }
    if !invalid.data.is_empty() {
        return Err(invalid);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let secret = apple::client_secret(&input, now).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("Failed to generate client secret. Raw error: \n{e}"),
        )
    })?;
    Ok(Json(serde_json::json!({ "secret": secret })))
}
