//! `/v1/tenants`: create, list, get, change (status, plan), suspend, resume and delete tenants,
//! and their usage.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::metering::{Usage, totals};
use warren_control_plane::plans::{Limits, Shipping};
use warren_control_plane::tenants::{Filter, TenantInfo};
use warren_control_plane::{ControlPlane, Error};

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant's slug.
    slug: String,
    /// Id of the console account that owns the tenant (none: the operator's own tenant). The
    /// account's plan caps how many tenants it owns, and the tenant starts on that plan.
    #[serde(default)]
    account: Option<String>,
}

/// Body of `PATCH /v1/tenants/{slug}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChange {
    /// `active` or `suspended`.
    status: Option<String>,
    /// Name of an existing plan.
    plan: Option<String>,
    /// The tenant's own WAL shipping over its plan's: `async`, `sync`, or `plan` to follow
    /// the plan again (the mode in force shows in `limits.shipping`).
    shipping: Option<String>,
}

/// A tenant as the operator API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    /// Stable id.
    id: String,
    /// The `<slug>` of its hostname.
    slug: String,
    /// `active` or `suspended`.
    status: String,
    /// Creation time.
    created: String,
    /// Public URL.
    url: String,
    /// The tenant's plan.
    plan: String,
    /// The plan's quotas.
    limits: Limits,
}

/// A page of tenants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantList {
    /// 1-based page number.
    page: u64,
    /// Tenants per page.
    per_page: u64,
    /// Tenants matching the filters.
    total_items: u64,
    /// Pages at this page size.
    total_pages: u64,
    /// The page's tenants, by slug.
    items: Vec<TenantView>,
}

/// Query of `GET /v1/tenants`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// 1-based page number (default 1).
    page: Option<u64>,
    /// Tenants per page, 1–500 (default 100).
    per_page: Option<u64>,
    /// Only tenants with this status.
    status: Option<String>,
    /// Only tenants on this plan.
    plan: Option<String>,
    /// Only tenants whose slug starts with this.
    slug_prefix: Option<String>,
}

/// Query of `GET /v1/tenants/{slug}/usage`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First hour (a date or date-time, UTC); default 31 days ago.
    from: Option<String>,
    /// Last hour (a date or date-time, UTC); default now.
    to: Option<String>,
}

/// A tenant's hourly usage and its totals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// The tenant's slug.
    slug: String,
    /// One row per hour with usage, oldest first.
    items: Vec<Usage>,
    /// Sums of the rows (largest storage and peak).
    totals: Usage,
}

fn render(state: &ControlPlane, tenant: &TenantInfo) -> TenantView {
    TenantView {
        id: tenant.id.clone(),
        slug: tenant.slug.clone(),
        status: tenant.status.as_str().into(),
        created: tenant.created.clone(),
        url: state.urls.tenant_url(&tenant.slug),
        plan: tenant.plan.clone(),
        limits: tenant.limits,
    }
}

/// Longest filter value accepted.
const MAX_FILTER_LEN: usize = 128;

fn filter_value(field: &'static str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(v) if v.len() > MAX_FILTER_LEN => {
            Err(Error::Invalid(field, "The value is too long.".into()).into())
        }
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// `POST /v1/tenants`
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("operator" = [])),
    request_body = NewTenant,
    responses(
        (status = 201, description = "The new tenant", body = TenantView),
        (status = 400, description = "Invalid slug", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 403, description = "The account owns as many tenants as its plan allows", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    ))]
pub async fn create_tenant(
    State(state): State<ControlPlane>,
    JsonBody(body): JsonBody<NewTenant>,
) -> Result<impl IntoResponse> {
    let tenant = match &body.account {
        None => state.tenants.create(&body.slug).await?,
        Some(account) => {
            let owner = match state.console.accounts().get(account).await {
                Err(Error::NotFound) => {
                    return Err(
                        Error::Invalid("account", "There is no such account.".into()).into(),
                    );
                }
                other => other?,
            };
            let max =
                warren_control_plane::projects::max_projects(state.tenants.db(), &owner.id).await?;
            state
                .console
                .projects()
                .create(&owner.id, &body.slug, max)
                .await?
        }
    };
    tracing::info!(slug = %tenant.slug, id = %tenant.id, "tenant created");
    Ok((StatusCode::CREATED, Json(render(&state, &tenant))))
}

/// `GET /v1/tenants`
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("operator" = [])),
    params(TenantQuery),
    responses(
        (status = 200, description = "A page of tenants", body = TenantList),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
    ))]
pub async fn list_tenants(
    State(state): State<ControlPlane>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<TenantList>> {
    let Ok(Query(query)) = query else {
        return Err(Error::Invalid("query", "The query parameters are not valid.".into()).into());
    };
    let page = query.page.unwrap_or(1).max(1);
    let per_page = query.per_page.unwrap_or(100).clamp(1, 500);
    let filter = Filter {
        status: filter_value("status", query.status)?,
        plan: filter_value("plan", query.plan)?,
        slug_prefix: filter_value("slugPrefix", query.slug_prefix)?,
    };
    let found = state.tenants.page(filter, page, per_page).await?;
    Ok(Json(TenantList {
        page,
        per_page,
        total_items: found.total,
        total_pages: found.total.div_ceil(per_page),
        items: found.items.iter().map(|t| render(&state, t)).collect(),
    }))
}

/// `GET /v1/tenants/{slug}`
#[utoipa::path(get, path = "/v1/tenants/{slug}", tag = "tenants", security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn get_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<TenantView>> {
    let tenant = state.tenants.find(&slug).await?.ok_or(Error::NotFound)?;
    Ok(Json(render(&state, &tenant)))
}

/// `PATCH /v1/tenants/{slug}`: sets the status, the plan and/or the tenant's own shipping
/// mode; each applies at the tenant's next request.
#[utoipa::path(patch, path = "/v1/tenants/{slug}", tag = "tenants", security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug")),
    request_body = TenantChange,
    responses(
        (status = 200, description = "The changed tenant", body = TenantView),
        (status = 400, description = "Unknown plan, status or shipping mode", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn update_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<TenantChange>,
) -> Result<Json<TenantView>> {
    let mut tenant = state.tenants.find(&slug).await?.ok_or(Error::NotFound)?;
    let shipping = match body.shipping.as_deref() {
        None => None,
        Some("plan") => Some(None),
        Some(mode) => Some(Some(Shipping::parse(mode).ok_or_else(|| {
            Error::Invalid(
                "shipping",
                "The shipping mode is async, sync or plan.".into(),
            )
        })?)),
    };
    if let Some(plan) = &body.plan {
        tenant = state.lifecycle().set_plan(&slug, plan).await?;
    }
    if let Some(status) = &body.status {
        tenant = state.lifecycle().set_status(&slug, status.parse()?).await?;
    }
    if let Some(shipping) = shipping {
        tenant = state.lifecycle().set_shipping(&slug, shipping).await?;
    }
    Ok(Json(render(&state, &tenant)))
}

/// `POST /v1/tenants/{slug}/suspend`
#[utoipa::path(post, path = "/v1/tenants/{slug}/suspend", tag = "tenants",
    security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The suspended tenant: every request gets 503", body = TenantView),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn suspend_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<TenantView>> {
    let tenant = state.lifecycle().suspend(&slug).await?;
    tracing::info!(slug = %tenant.slug, "tenant suspended");
    Ok(Json(render(&state, &tenant)))
}

/// `POST /v1/tenants/{slug}/resume`
#[utoipa::path(post, path = "/v1/tenants/{slug}/resume", tag = "tenants",
    security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 200, description = "The active tenant", body = TenantView),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn resume_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<Json<TenantView>> {
    let tenant = state.lifecycle().resume(&slug).await?;
    tracing::info!(slug = %tenant.slug, "tenant resumed");
    Ok(Json(render(&state, &tenant)))
}

/// `DELETE /v1/tenants/{slug}`: the host stops answering at once and the data is removed.
#[utoipa::path(delete, path = "/v1/tenants/{slug}", tag = "tenants", security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn delete_tenant(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
) -> Result<StatusCode> {
    let tenant = state.lifecycle().delete(&slug).await?;
    tracing::info!(slug = %tenant.slug, id = %tenant.id, "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/tenants/{slug}/usage`
#[utoipa::path(get, path = "/v1/tenants/{slug}/usage", tag = "usage",
    security(("operator" = [])),
    params(("slug" = String, Path, description = "The tenant's slug"), UsageQuery),
    responses(
        (status = 200, description = "Hourly usage as of the last flush", body = UsageReport),
        (status = 400, description = "Invalid from or to", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
pub async fn get_usage(
    State(state): State<ControlPlane>,
    Path(slug): Path<String>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>> {
    let Ok(Query(query)) = query else {
        return Err(Error::Invalid("query", "The query parameters are not valid.".into()).into());
    };
    let tenant = state.tenants.find(&slug).await?.ok_or(Error::NotFound)?;
    let from = filter_value("from", query.from)?;
    let to = filter_value("to", query.to)?;
    let items = state.metering.usage(&tenant.id, from, to).await?;
    Ok(Json(UsageReport {
        slug: tenant.slug,
        totals: totals(&items),
        items,
    }))
}
