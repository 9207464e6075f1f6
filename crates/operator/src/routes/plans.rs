//! `/v1/plans`: list, create and change plans. A change applies to every tenant on the plan at
//! its next request.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::ControlPlane;
use warren_control_plane::plans::{Limits, Plan, Plans, Shipping};

/// Body of `POST /v1/plans`: a name and quotas (missing quotas are 0, no limit; missing code
/// limits are 1 s per call, 64 MiB per runtime and 900,000 CPU ms per hour).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPlan {
    /// Unique name: 1–64 characters of `a-z`, `0-9`, `-` and `_`.
    name: String,
    requests_per_second: Option<u64>,
    request_burst: Option<u64>,
    storage_bytes: Option<u64>,
    max_upload_bytes: Option<u64>,
    max_realtime_connections: Option<u64>,
    max_projects: Option<u64>,
    max_backups: Option<u64>,
    max_backup_bytes: Option<u64>,
    /// CPU milliseconds of one call into the tenant's code (0: the node's default, 1 s).
    hook_cpu_ms: Option<u64>,
    /// Bytes of one JavaScript runtime of the tenant's code (0: the node's default, 64 MiB).
    hook_memory_bytes: Option<u64>,
    /// CPU milliseconds of the tenant's code per hour (0: no budget).
    hook_cpu_ms_per_hour: Option<u64>,
    /// `async` (the default) or `sync`: whether a write is acknowledged only once its WAL is
    /// stored in the backup target.
    shipping: Option<Shipping>,
}

/// Quotas to set; the ones left out keep their value (0, no limit, for a new plan).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsChange {
    requests_per_second: Option<u64>,
    request_burst: Option<u64>,
    storage_bytes: Option<u64>,
    max_upload_bytes: Option<u64>,
    max_realtime_connections: Option<u64>,
    max_projects: Option<u64>,
    max_backups: Option<u64>,
    max_backup_bytes: Option<u64>,
    /// CPU milliseconds of one call into the tenant's code (0: the node's default, 1 s).
    hook_cpu_ms: Option<u64>,
    /// Bytes of one JavaScript runtime of the tenant's code (0: the node's default, 64 MiB).
    hook_memory_bytes: Option<u64>,
    /// CPU milliseconds of the tenant's code per hour (0: no budget).
    hook_cpu_ms_per_hour: Option<u64>,
    /// `async` or `sync`: whether a write is acknowledged only once its WAL is stored in the
    /// backup target.
    shipping: Option<Shipping>,
}

impl LimitsChange {
    fn apply(&self, to: Limits) -> Limits {
        Limits {
            requests_per_second: self.requests_per_second.unwrap_or(to.requests_per_second),
            request_burst: self.request_burst.unwrap_or(to.request_burst),
            storage_bytes: self.storage_bytes.unwrap_or(to.storage_bytes),
            max_upload_bytes: self.max_upload_bytes.unwrap_or(to.max_upload_bytes),
            max_realtime_connections: self
                .max_realtime_connections
                .unwrap_or(to.max_realtime_connections),
            max_projects: self.max_projects.unwrap_or(to.max_projects),
            max_backups: self.max_backups.unwrap_or(to.max_backups),
            max_backup_bytes: self.max_backup_bytes.unwrap_or(to.max_backup_bytes),
            hook_cpu_ms: self.hook_cpu_ms.unwrap_or(to.hook_cpu_ms),
            hook_memory_bytes: self.hook_memory_bytes.unwrap_or(to.hook_memory_bytes),
            hook_cpu_ms_per_hour: self.hook_cpu_ms_per_hour.unwrap_or(to.hook_cpu_ms_per_hour),
            shipping: self.shipping.unwrap_or(to.shipping),
        }
    }
}

/// Every plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanList {
    /// The plans, by name.
    items: Vec<Plan>,
}

fn plans(state: &ControlPlane) -> Plans {
    Plans::new(state.tenants.db().clone())
}

/// `GET /v1/plans`
#[utoipa::path(get, path = "/v1/plans", tag = "plans", security(("operator" = [])),
    responses(
        (status = 200, description = "Every plan", body = PlanList),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
    ))]
pub async fn list_plans(State(state): State<ControlPlane>) -> Result<Json<PlanList>> {
    Ok(Json(PlanList {
        items: plans(&state).list().await?,
    }))
}

/// `POST /v1/plans`
#[utoipa::path(post, path = "/v1/plans", tag = "plans", security(("operator" = [])),
    request_body = NewPlan,
    responses(
        (status = 201, description = "The new plan", body = Plan),
        (status = 400, description = "Invalid name or quotas, or the name exists", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
    ))]
pub async fn create_plan(
    State(state): State<ControlPlane>,
    JsonBody(body): JsonBody<NewPlan>,
) -> Result<impl IntoResponse> {
    let limits = LimitsChange {
        requests_per_second: body.requests_per_second,
        request_burst: body.request_burst,
        storage_bytes: body.storage_bytes,
        max_upload_bytes: body.max_upload_bytes,
        max_realtime_connections: body.max_realtime_connections,
        max_projects: body.max_projects,
        max_backups: body.max_backups,
        max_backup_bytes: body.max_backup_bytes,
        hook_cpu_ms: body.hook_cpu_ms,
        hook_memory_bytes: body.hook_memory_bytes,
        hook_cpu_ms_per_hour: body.hook_cpu_ms_per_hour,
        shipping: body.shipping,
    }
    .apply(Limits::for_new_plan());
    let plan = plans(&state).create(&body.name, limits).await?;
    tracing::info!(plan = %plan.name, "plan created");
    Ok((StatusCode::CREATED, Json(plan)))
}

/// `PATCH /v1/plans/{name}`
#[utoipa::path(patch, path = "/v1/plans/{name}", tag = "plans", security(("operator" = [])),
    params(("name" = String, Path, description = "The plan's name")),
    request_body = LimitsChange,
    responses(
        (status = 200, description = "The changed plan, in force for its tenants at once", body = Plan),
        (status = 400, description = "Invalid quotas", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
    ))]
pub async fn update_plan(
    State(state): State<ControlPlane>,
    Path(name): Path<String>,
    JsonBody(change): JsonBody<LimitsChange>,
) -> Result<Json<Plan>> {
    let plans = plans(&state);
    let current = plans
        .find(&name)
        .await?
        .ok_or(warren_control_plane::Error::NotFound)?;
    let plan = plans.update(&name, change.apply(current.limits)).await?;
    state.directory.refresh().await?;
    tracing::info!(plan = %plan.name, "plan changed");
    Ok(Json(plan))
}
