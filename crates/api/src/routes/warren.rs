//! `/api/warren/*`: Warren's own tenant routes beside PocketBase's: the dashboard's one-time
//! sign-in link from the console, the tenant's metered usage and the index advisor's
//! proposals, for its superusers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

use crate::client::{ClientIp, check_superuser_login};
use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, require_superuser};
use crate::platform::Platform;
use crate::query::Params;
use crate::router::{ApiState, Shared};

/// Longest `from`/`to` accepted.
const MAX_BOUND_LEN: usize = 64;

fn platform(state: &ApiState) -> Result<&Arc<dyn Platform>, ApiError> {
    state.platform.as_ref().ok_or_else(ApiError::not_found)
}

/// `POST /api/warren/dashboard-link` `{code}`: trades a one-time code made by the console's
/// "Open dashboard" button for a superuser session of the project's owner (created with a
/// random password if the project has no superuser with the owner's email). Answers like a
/// password sign-in: `{token, record}`.
pub async fn redeem_dashboard_link(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    ClientIp(ip): ClientIp,
    body: FormBody,
) -> Result<Json<Value>, ApiError> {
    let platform = platform(&state)?;
    let code = body.data.get("code").and_then(Value::as_str).unwrap_or("");
    if code.trim().is_empty() {
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "Missing the sign-in code.").field(
                "code",
                "validation_required",
                "Cannot be blank.",
            ),
        );
    }
    crate::routes::auth::limit(&state, &tenant, &ip)?;
    check_superuser_login(&tenant, warren_tenant::superusers::COLLECTION_NAME, &ip).await?;
    let email = platform.redeem_dashboard_link(tenant.id(), code).await?;
    let superuser = tenant.owner_superuser(&state.passwords, &email).await?;
    let entry =
        crate::routes::auth::auth_collection(&tenant, warren_tenant::superusers::COLLECTION_NAME)?;
    let answer =
        warren_auth::login::vouched(tenant.db(), &tenant.catalog(), &entry, &superuser.id).await?;
    tracing::info!(tenant = %tenant.id(), "dashboard opened by the owner's one-time link");
    Ok(Json(answer))
}

/// `GET /api/warren/usage?from=&to=` (superusers): the tenant's hourly usage and totals.
pub async fn get_usage(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let platform = platform(&state)?;
    let bound = |key: &str| -> Result<Option<String>, ApiError> {
        match params.text(key).trim() {
            "" => Ok(None),
            v if v.len() > MAX_BOUND_LEN => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Invalid {key}: use a date or date-time such as 2026-11-25."),
            )),
            v => Ok(Some(v.to_string())),
        }
    };
    let (from, to) = (bound("from")?, bound("to")?);
    Ok(Json(platform.usage(tenant.id(), from, to).await?))
}

/// `GET /api/warren/indexes/suggestions?collection=` (superusers): the indexes the advisor
/// proposes for this tenant's slow lists, slowest in total first, optionally for one
/// collection (name or id). `{items: [{collection, collectionId, columns, index, filtered,
/// sorted, count, totalMs, maxMs, avgMs, lastSeen}]}`.
pub async fn index_suggestions(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let catalog = tenant.catalog();
    let only = params.text("collection").trim();
    let only = if only.is_empty() {
        None
    } else {
        Some(
            catalog
                .get(only)
                .ok_or_else(ApiError::not_found)?
                .collection
                .id
                .clone(),
        )
    };
    let items: Vec<Value> = tenant
        .advisor()
        .suggestions(|name| catalog.get(name).map(|e| e.collection.clone()))
        .into_iter()
        .filter(|item| {
            only.as_deref()
                .is_none_or(|id| item.get("collectionId").and_then(Value::as_str) == Some(id))
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}
