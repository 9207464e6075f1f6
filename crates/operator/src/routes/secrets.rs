//! `/v1/tenants/{slug}/secrets`: the secrets a tenant's code reads with `$os.getenv`. Values
//! go in and never come out; listing shows names only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::ControlPlane;
use warren_control_plane::secrets::{self, SecretNames};

/// The body of a `PUT`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SecretValue {
    /// The value (at most 8 KiB).
    pub value: String,
}

/// `GET /v1/tenants/{slug}/secrets`: the names of the tenant's secrets.
#[utoipa::path(get, path = "/v1/tenants/{slug}/secrets", tag = "secrets",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The names (never the values)", body = SecretNames),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn list_secrets(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<Json<SecretNames>> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    Ok(Json(secrets::list_for(&state, &tenant).await?))
}

/// `PUT /v1/tenants/{slug}/secrets/{name}` `{"value": "…"}`: sets a secret; the tenant's
/// running code reads the new value at its next `$os.getenv`. A shipped tenant's answer comes
/// once the secrets are stored in the backup target too.
#[utoipa::path(put, path = "/v1/tenants/{slug}/secrets/{name}", tag = "secrets",
    security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug"),
        ("name" = String, Path, description = "Letters, digits and _, not starting with a digit, at most 64")),
    request_body = SecretValue,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "An invalid name, a value over 8 KiB, or more than 64 secrets", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn set_secret(
    State(state): State<ControlPlane>,
    Path((slug, name)): Path<(String, String)>,
    acting: Option<axum::Extension<crate::Acting>>,
    JsonBody(body): JsonBody<SecretValue>,
) -> Result<StatusCode> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    secrets::set_for(&state, &tenant, &name, &body.value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/tenants/{slug}/secrets/{name}`: removes a secret.
#[utoipa::path(delete, path = "/v1/tenants/{slug}/secrets/{name}", tag = "secrets",
    security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug"),
        ("name" = String, Path, description = "The secret's name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant, or no such secret", body = ErrorBody),
    ))]
pub async fn unset_secret(
    State(state): State<ControlPlane>,
    Path((slug, name)): Path<(String, String)>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<StatusCode> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    secrets::unset_for(&state, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
