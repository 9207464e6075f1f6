//! `/v1/tenants`: create, list, get and delete tenants.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::JsonBody;
use crate::tenants::TenantInfo;
use crate::{ControlPlane, Error, Result};

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant's slug.
    slug: String,
}

fn render(state: &ControlPlane, tenant: &TenantInfo) -> Value {
    json!({
        "id": tenant.id,
        "slug": tenant.slug,
        "status": tenant.status,
        "created": tenant.created,
        "url": state.urls.tenant_url(&tenant.slug),
    })
}

/// `POST /v1/tenants`
pub async fn create_tenant(
    State(state): State<ControlPlane>,
    JsonBody(body): JsonBody<NewTenant>,
) -> Result<impl IntoResponse> {
    let tenant = state.tenants.create(&body.slug).await?;
    tracing::info!(slug = %tenant.slug, id = %tenant.id, "tenant created");
    Ok((StatusCode::CREATED, Json(render(&state, &tenant))))
}

/// `GET /v1/tenants`
pub async fn list_tenants(State(state): State<ControlPlane>) -> Result<Json<Value>> {
    let items: Vec<Value> = state
        .tenants
        .list()
        .await?
        .iter()
        .map(|t| render(&state, t))
        .collect();
    Ok(Json(json!({ "items": items, "totalItems": items.len() })))
}

/// `GET /v1/tenants/{slug}`
pub async fn get_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let tenant = state.tenants.find(&slug).await?.ok_or(Error::NotFound)?;
    Ok(Json(render(&state, &tenant)))
}

/// `DELETE /v1/tenants/{slug}`: the host stops answering at once and the data is removed.
pub async fn delete_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<StatusCode> {
    let tenant = state.tenants.delete(&slug).await?;
    state.directory.forget(&tenant.slug);
    state.registry.close(&tenant.id);
    tracing::info!(slug = %tenant.slug, id = %tenant.id, "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}
