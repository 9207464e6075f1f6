//! `/v1/tenants/{slug}/superuser`: creates a tenant's superuser, or sets its password.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::{ControlPlane, Error};

/// Bounded password hashing for this API's superusers.
static PASSWORDS: LazyLock<warren_secrets::Passwords> =
    LazyLock::new(warren_secrets::Passwords::default);

/// The body of a `PUT`. No `Debug`: the password is never printed.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuperuserBody {
    /// The superuser's email (at most 254 characters).
    email: String,
    /// Its password (8 to 71 characters).
    password: String,
}

/// `PUT /v1/tenants/{slug}/superuser` `{"email", "password"}`: creates the superuser `email`
/// in the tenant, or sets the password of the existing one.
#[utoipa::path(put, path = "/v1/tenants/{slug}/superuser", tag = "tenants",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    request_body = SuperuserBody,
    responses(
        (status = 200, description = "Saved: `{email}` as stored", body = Object),
        (status = 400, description = "Not an email, or a password too short or too long", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 503, description = "Cluster mode: the tenant is moving between servers; try again shortly", body = ErrorBody),
    ))]
pub async fn set_superuser(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
    JsonBody(body): JsonBody<SuperuserBody>,
) -> Result<Json<Value>> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    if body.email.len() > 254 || body.password.chars().count() > 71 {
        return Err(Error::Invalid("email", "The email or password is too long.".into()).into());
    }
    state.registry.check_here(&tenant.id)?;
    let saved = state
        .registry
        .get(&tenant.id)
        .await?
        .set_superuser(&PASSWORDS, &body.email, &body.password)
        .await?;
    tracing::info!(slug = %tenant.slug, "tenant superuser set through the operator API");
    Ok(Json(json!({ "email": saved.email })))
}
