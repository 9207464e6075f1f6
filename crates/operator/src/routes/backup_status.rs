//! `/v1/tenants/{slug}/backups/status` (one tenant's backup status, read from the control
//! database without listing the target) and `/v1/backups/drills` (the latest restore drills).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ErrorBody;
use crate::Result;
use warren_control_plane::{ControlPlane, Error};

/// `GET /v1/tenants/{slug}/backups/status`
#[utoipa::path(get, path = "/v1/tenants/{slug}/backups/status", tag = "backups",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "Latest backup, last success, last failure and its error, latest drill", body = Object),
        (status = 400, description = "Backups are not configured", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn get_backup_status(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let status = state.backups.status(&slug).await?;
    Ok(Json(json!(status)))
}

/// Query of `GET /v1/backups/drills`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrillQuery {
    /// Only this tenant's drills.
    tenant: Option<String>,
    /// Most drills listed, 1–500 (default 50).
    limit: Option<u32>,
}

/// `GET /v1/backups/drills`: the latest restore drills (scheduled and asked for), newest first.
#[utoipa::path(get, path = "/v1/backups/drills", tag = "backups",
    security(("operator" = [])), params(DrillQuery),
    responses(
        (status = 200, description = "Latest drills and how many failed", body = Object),
        (status = 400, description = "Invalid query, or backups are not configured", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn list_drills(
    State(state): State<ControlPlane>,
    query: Result<Query<DrillQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Ok(Query(query)) = query else {
        return Err(Error::Invalid("query", "The query parameters are not valid.".into()).into());
    };
    let tenant = match query.tenant.as_deref() {
        Some(slug) if slug.len() > 63 => return Err(Error::NotFound.into()),
        Some(slug) => Some(state.tenants.find(slug).await?.ok_or(Error::NotFound)?),
        None => None,
    };
    let items = state
        .backups
        .drills(
            tenant.as_ref().map(|t| t.id.as_str()),
            query.limit.unwrap_or(50),
        )
        .await?;
    let summary = state.backups.summary().await?;
    Ok(Json(json!({
        "items": items,
        "totalItems": items.len(),
        "passed": summary.drills_ok,
        "failed": summary.drills_failed,
        "tenantsFailing": summary.drills_failing,
    })))
}
