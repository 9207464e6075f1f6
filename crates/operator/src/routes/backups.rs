//! `/v1/tenants/{slug}/backups`: list and take backups, restore one, run a restore drill.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use warren_backup::Manifest;

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::ControlPlane;
use warren_control_plane::backups::RestoreRequest;

fn render(manifest: &Manifest) -> Value {
    json!({
        "id": manifest.id,
        "tenantId": manifest.tenant_id,
        "slug": manifest.slug,
        "created": manifest.created,
        "finished": manifest.finished,
        "size": manifest.size(),
        "objects": manifest.objects,
        "counts": manifest.counts,
    })
}

/// `GET /v1/tenants/{slug}/backups`: the complete backups, newest first, and the status.
#[utoipa::path(get, path = "/v1/tenants/{slug}/backups", tag = "backups",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "Complete backups, newest first, and the backup status", body = Object),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn list_backups(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let mut items = state.backups.list(&slug).await?;
    items.reverse();
    let status = state.backups.status(&slug).await?;
    let items: Vec<Value> = items.iter().map(render).collect();
    Ok(Json(json!({
        "items": items,
        "totalItems": items.len(),
        "status": status,
    })))
}

/// `POST /v1/tenants/{slug}/backups`: takes a backup now and answers when it is complete.
#[utoipa::path(post, path = "/v1/tenants/{slug}/backups", tag = "backups",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 201, description = "The backup, once complete", body = Object),
        (status = 400, description = "Backups are not configured", body = ErrorBody),
        (status = 409, description = "Cluster mode: the node serving the tenant changed meanwhile; nothing was done, try again", body = ErrorBody),
        (status = 503, description = "Cluster mode: the tenant is moving between servers (or being restored on the one that claimed it); try again shortly", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn create_backup(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
) -> Result<impl IntoResponse> {
    let tenant = super::tenant(&state, &slug, acting).await?;
    let manifest = state
        .backups
        .create_for(&tenant, &warren_backup::quiet)
        .await?;
    tracing::info!(slug = %slug, backup = %manifest.id, bytes = manifest.size(), "backup taken");
    Ok((StatusCode::CREATED, Json(render(&manifest))))
}

/// Body of `POST /v1/tenants/{slug}/backups/restore`.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreBody {
    /// Backup id: that snapshot alone. Without it and without `at`, the latest shipped state
    /// (the newest snapshot and every WAL segment shipped after it).
    #[serde(default)]
    backup: Option<String>,
    /// RFC 3339 moment to restore to.
    #[serde(default)]
    at: Option<String>,
    /// New tenant's slug (default `<slug>-restored`).
    #[serde(default)]
    to: Option<String>,
    /// Replace the tenant itself.
    #[serde(default)]
    in_place: bool,
}

/// `POST /v1/tenants/{slug}/backups/restore`
#[utoipa::path(post, path = "/v1/tenants/{slug}/backups/restore", tag = "backups",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")), request_body = RestoreBody,
    responses(
        (status = 200, description = "Restored in place; `restored` says which state (`latest shipped state`, `point in time` or `snapshot`), `backup` the snapshot it started from, `transactions` the WAL transactions replayed on it and `through` the moment it reaches", body = Object),
        (status = 201, description = "Restored into a new tenant; the same fields as for 200", body = Object),
        (status = 422, description = "The backup is damaged; nothing changed", body = ErrorBody),
        (status = 409, description = "Cluster mode, in place: the node serving the tenant changed meanwhile; nothing was done, try again", body = ErrorBody),
        (status = 503, description = "Cluster mode, in place: the tenant is moving between servers; try again shortly", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn restore_backup(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    acting: Option<axum::Extension<crate::Acting>>,
    JsonBody(body): JsonBody<RestoreBody>,
) -> Result<impl IntoResponse> {
    let request = RestoreRequest {
        backup: body.backup,
        at: body.at,
        to: body.to,
        in_place: body.in_place,
    };
    let outcome = match acting {
        Some(acting) => {
            let tenant = super::tenant(&state, &slug, Some(acting)).await?;
            state
                .lifecycle()
                .restore_tenant(&state.backups, tenant, &request, &warren_backup::quiet)
                .await?
        }
        None => {
            state
                .lifecycle()
                .restore(&state.backups, &slug, &request, &warren_backup::quiet)
                .await?
        }
    };
    let tenant = &outcome.tenant;
    tracing::info!(
        from = %slug,
        to = %tenant.slug,
        in_place = request.in_place,
        restored = outcome.restored.as_str(),
        backup = %outcome.backup,
        through = %outcome.through,
        "backup restored"
    );
    let status = if request.in_place {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({
            "id": tenant.id,
            "slug": tenant.slug,
            "status": tenant.status,
            "created": tenant.created,
            "url": state.urls.tenant_url(&tenant.slug),
            "restored": outcome.restored.as_str(),
            "backup": outcome.backup,
            "transactions": outcome.transactions,
            "through": outcome.through,
        })),
    ))
}

/// Body of `POST /v1/tenants/{slug}/backups/verify`.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// Backup id; the latest when absent.
    #[serde(default)]
    backup: Option<String>,
}

/// `POST /v1/tenants/{slug}/backups/verify`: a restore drill into scratch space.
#[utoipa::path(post, path = "/v1/tenants/{slug}/backups/verify", tag = "backups",
    security(("operator" = [])), params(("slug" = String, Path, description = "The tenant's slug")), request_body = VerifyBody,
    responses(
        (status = 200, description = "Integrity and record counts of the restored copy", body = Object),
        (status = 422, description = "The backup is damaged", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn verify_backup(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<Json<Value>> {
    let drill = state
        .backups
        .verify(&slug, body.backup.as_deref(), &warren_backup::quiet)
        .await?;
    let mismatches: Vec<Value> = drill
        .mismatches
        .iter()
        .map(|(name, expected, found)| json!({ "collection": name, "expected": expected, "found": found }))
        .collect();
    Ok(Json(json!({
        "backup": drill.manifest.id,
        "ok": mismatches.is_empty(),
        "counts": drill.manifest.counts,
        "mismatches": mismatches,
    })))
}
