//! `/api/crons`: the tenant's cron jobs for its superusers — the list (`{id, expression}` in
//! PocketBase's order) and "run now". The jobs and their running are
//! `warren_tenant::cron`'s; this module parses and renders.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, require_superuser};
use crate::router::Shared;

/// `GET /api/crons`
pub async fn list_crons(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let jobs = state.crons.jobs(&tenant).await;
    let listed = jobs
        .iter()
        .map(|job| json!({ "id": job.id, "expression": job.schedule.expression() }));
    Ok(Json(Value::Array(listed.collect())))
}

/// `POST /api/crons/{id}`: starts the job in the background and answers at once.
pub async fn run_cron(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    let quota = tenant.meter().backup_quota();
    if state.crons.run_now(&tenant, &id, quota).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid cron job.",
        ))
    }
}
