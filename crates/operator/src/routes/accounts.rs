//! `/v1/accounts`: the operator lists, inspects, disables and enables console accounts.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ErrorBody, JsonBody};
use crate::Result;
use warren_control_plane::accounts::Account;
use warren_control_plane::{ControlPlane, Error};

/// Largest page of `GET /v1/accounts`.
const MAX_PER_PAGE: u32 = 500;

/// Query of `GET /v1/accounts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// 1-based page number.
    page: Option<u32>,
    /// Items per page (1–500, default 30).
    per_page: Option<u32>,
    /// Only the account with this email.
    email: Option<String>,
}

fn render(account: &Account) -> Value {
    json!({
        "id": account.id,
        "email": account.email,
        "verified": account.verified,
        "disabled": account.disabled,
        "created": account.created,
        "updated": account.updated,
        "plan": account.plan,
    })
}

/// `GET /v1/accounts?page=&perPage=&email=`
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", security(("operator" = [])),
    params(Paging),
    responses(
        (status = 200, description = "A page of accounts", body = Object),
        (status = 400, description = "Invalid paging", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
    ))]
pub async fn list_accounts(
    State(state): State<ControlPlane>,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<Value>> {
    let (page, per_page, paging) =
        super::paging(query, |p: &Paging| (p.page, p.per_page), MAX_PER_PAGE)?;
    if paging.email.as_ref().is_some_and(|e| e.len() > 254) {
        return Err(Error::Invalid("email", "The email is too long.".into()).into());
    }
    let (items, total) = state
        .console
        .accounts()
        .list(page, per_page, paging.email.as_deref())
        .await?;
    Ok(Json(json!({
        "page": page,
        "perPage": per_page,
        "totalItems": total,
        "totalPages": total.div_ceil(u64::from(per_page)),
        "items": items.iter().map(render).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/accounts/{id}`: the account and its projects.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", security(("operator" = [])),
    params(("id" = String, Path, description = "The account's id")),
    responses((status = 200, description = "The account and its projects", body = Object), (status = 401, description = "Missing or wrong operator token", body = ErrorBody), (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn get_account(
    State(state): State<ControlPlane>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let account = state.console.accounts().get(&id).await?;
    let projects: Vec<Value> = state
        .console
        .projects()
        .list(&account.id)
        .await?
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "slug": p.slug,
                "status": p.status,
                "created": p.created,
                "url": state.urls.tenant_url(&p.slug),
            })
        })
        .collect();
    let mut body = render(&account);
    body["projects"] = Value::Array(projects);
    body["maxProjects"] = max_projects(&state, &account.id).await?;
    Ok(Json(body))
}

/// The account's project cap as the API shows it: a number, or 0 for no limit.
async fn max_projects(state: &ControlPlane, id: &str) -> Result<Value> {
    let max = warren_control_plane::projects::max_projects(state.tenants.db(), id).await?;
    Ok(json!(if max == u32::MAX { 0 } else { max }))
}

/// Body of `PATCH /v1/accounts/{id}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountChange {
    /// Name of an existing plan. Its `maxProjects` caps the account's projects; the account's
    /// projects move onto it and its new projects start on it.
    plan: Option<String>,
}

/// `PATCH /v1/accounts/{id}`: sets the account's plan; the cap and its projects' quotas apply
/// at once.
#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "accounts", security(("operator" = [])),
    params(("id" = String, Path, description = "The account's id")),
    request_body = AccountChange,
    responses(
        (status = 200, description = "The changed account and its projects", body = Object),
        (status = 400, description = "Unknown plan", body = ErrorBody),
        (status = 401, description = "Missing or wrong operator token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ))]
pub async fn update_account(
    State(state): State<ControlPlane>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<AccountChange>,
) -> Result<Json<Value>> {
    if let Some(plan) = &change.plan {
        if plan.len() > 64 {
            return Err(Error::Invalid("plan", "There is no such plan.".into()).into());
        }
        let account = state.console.accounts().set_plan(&id, plan).await?;
        state.directory.refresh().await?;
        tracing::info!(account = %account.id, plan = %account.plan, "account plan changed");
    }
    get_account(State(state), Path(id)).await
}

/// `POST /v1/accounts/{id}/disable`: the account can no longer sign in; its sessions end.
#[utoipa::path(post, path = "/v1/accounts/{id}/disable", tag = "accounts",
    security(("operator" = [])), params(("id" = String, Path, description = "The account's id")),
    responses((status = 200, description = "The disabled account", body = Object), (status = 401, description = "Missing or wrong operator token", body = ErrorBody), (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn disable_account(
    State(state): State<ControlPlane>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let account = state.console.accounts().set_disabled(&id, true).await?;
    tracing::info!(account = %account.id, "account disabled");
    Ok(Json(render(&account)))
}

/// `POST /v1/accounts/{id}/enable`
#[utoipa::path(post, path = "/v1/accounts/{id}/enable", tag = "accounts",
    security(("operator" = [])), params(("id" = String, Path, description = "The account's id")),
    responses((status = 200, description = "The enabled account", body = Object), (status = 401, description = "Missing or wrong operator token", body = ErrorBody), (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn enable_account(
    State(state): State<ControlPlane>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let account = state.console.accounts().set_disabled(&id, false).await?;
    tracing::info!(account = %account.id, "account enabled");
    Ok(Json(render(&account)))
}

/// `POST /v1/accounts/{id}/verify`: marks the email verified (e.g. confirmed by support).
#[utoipa::path(post, path = "/v1/accounts/{id}/verify", tag = "accounts",
    security(("operator" = [])), params(("id" = String, Path, description = "The account's id")),
    responses((status = 200, description = "The account, verified", body = Object), (status = 401, description = "Missing or wrong operator token", body = ErrorBody), (status = 404, description = "No such account", body = ErrorBody)))]
pub async fn verify_account(
    State(state): State<ControlPlane>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let account = state.console.accounts().mark_verified(&id).await?;
    Ok(Json(render(&account)))
}
