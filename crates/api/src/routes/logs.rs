//! `/api/logs`: a tenant's request logs, for its superusers.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::Value;
use warren_logs::ListQuery;

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, require_superuser};
use crate::fields::project;
use crate::query::Params;

/// A logs failure: bad `filter`/`sort` is a 400 with `message`, the rest a 500.
fn failure(e: warren_logs::Error, message: &str) -> ApiError {
    match e {
        warren_logs::Error::Filter(_) => ApiError::new(StatusCode::BAD_REQUEST, message),
        other => ApiError::internal(other),
    }
}

/// `GET /api/logs`
pub async fn list_logs(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let query = ListQuery {
        page: params.positive("page", 1)?,
        per_page: params
            .positive("perPage", 30)?
            .min(warren_logs::MAX_PER_PAGE),
        sort: params.text("sort").to_string(),
        filter: params.text("filter").to_string(),
        skip_total: params.flag("skipTotal")?,
    };
    let page = tenant
        .logs()
        .list(query)
        .await
        .map_err(|e| failure(e, "Something went wrong while processing your request."))?;
    Ok(Json(project(page.to_value(), params.text("fields"))?))
}

/// `GET /api/logs/stats`
pub async fn log_stats(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let stats = tenant
        .logs()
        .stats(params.text("filter"))
        .await
        .map_err(|e| failure(e, "Invalid filter format."))?;
    Ok(Json(project(Value::Array(stats), params.text("fields"))?))
}

/// `GET /api/logs/{id}`
pub async fn view_log(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    if id.len() > 255 {
        return Err(ApiError::not_found());
    }
    let log = tenant
        .logs()
        .view(&id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(project(log, params.text("fields"))?))
}

/// `DELETE /api/logs`: deletes every log of the tenant.
pub async fn delete_logs(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    tenant.logs().truncate().await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT)
}
