//! `/api/collections`: the superuser-only collections API (list, view, create, update,
//! delete, truncate, import, scaffolds). Changes go through the tenant's write pipeline.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use warren_records::Caller;
use warren_records::collections::{self, CollectionError, ListParams};
use warren_schema::Collection;
use warren_tenant::Tenant;
use warren_tenant::ops::{self, CollectionChange};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, JsonObject};
use crate::fields::project;
use crate::query::Params;
use crate::router::{ApiState, Shared};

/// Guests get 401, auth records 403; only superusers pass.
fn require_superuser(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Superuser { .. } => Ok(()),
        Caller::Guest => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request requires valid record authorization token.",
        )),
        Caller::Record { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The authorized record is not allowed to perform this action.",
        )),
    }
}

impl From<CollectionError> for ApiError {
    fn from(e: CollectionError) -> Self {
        match e {
            CollectionError::NotFound => ApiError::not_found(),
            CollectionError::Invalid { message, errors } => {
                let data = match errors.to_value() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                ApiError {
                    status: StatusCode::BAD_REQUEST,
                    message: message.to_string(),
                    data,
                }
            }
            CollectionError::Rejected(message) => ApiError::new(StatusCode::BAD_REQUEST, message),
            CollectionError::Records(e) => e.into(),
        }
    }
}

/// The collection JSON (projected by `?fields=`).
fn render(value: impl serde::Serialize, params: &Params) -> Result<Json<Value>, ApiError> {
    let value = serde_json::to_value(value).map_err(ApiError::internal)?;
    Ok(Json(project(value, params.text("fields"))?))
}

/// Applies a collection change through the tenant's write pipeline.
async fn change(
    state: &ApiState,
    tenant: &Tenant,
    change: ops::CollectionChange,
) -> Result<Option<Collection>, ApiError> {
    Ok(ops::change_collection(tenant, &crate::uploads::services(state), change).await?)
}

/// `GET /api/collections`
pub async fn list_collections(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let query = ListParams {
        page: i64::try_from(params.positive("page", 1)?).unwrap_or(1),
        per_page: i64::try_from(params.positive("perPage", 30)?)
            .unwrap_or(collections::MAX_PER_PAGE),
        filter: params.text("filter").to_string(),
        sort: params.text("sort").to_string(),
        skip_total: params.flag("skipTotal")?,
    };
    let page = collections::list(tenant.db(), query).await?;
    Ok(Json(project(page.to_json(), params.text("fields"))?))
}

/// `GET /api/collections/{collection}`
pub async fn view_collection(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let catalog = tenant.catalog();
    let entry = catalog.get(&collection).ok_or_else(ApiError::not_found)?;
    render(&entry.collection, &params)
}

/// `POST /api/collections`
pub async fn create_collection(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    params: Params,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let created = change(
        &state,
        &tenant,
        CollectionChange::Create(Value::Object(body)),
    )
    .await?;
    render(&created, &params)
}

/// `PATCH /api/collections/{collection}`
pub async fn update_collection(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    params: Params,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let patch = Value::Object(body);
    let updated = change(
        &state,
        &tenant,
        CollectionChange::Update { collection, patch },
    )
    .await?;
    render(&updated, &params)
}

/// `DELETE /api/collections/{collection}`
pub async fn delete_collection(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    change(&state, &tenant, CollectionChange::Delete(collection)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/collections/{collection}/truncate`
pub async fn truncate_collection(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    change(&state, &tenant, CollectionChange::Truncate(collection)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/collections/import`
pub async fn import_collections(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    body: JsonObject,
) -> Result<StatusCode, ApiError> {
    require_superuser(&caller)?;
    // The form's keys match case-insensitively, like every fixed PocketBase form.
    let mut form = Map::new();
    for key in ["collections", "deleteMissing"] {
        if let Some(value) = body.get(key) {
            form.insert(key.to_string(), value.clone());
        }
    }
    change(
        &state,
        &tenant,
        CollectionChange::Import(Value::Object(form)),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/collections/meta/oauth2-providers`: every provider name with its display name,
/// in PocketBase's order (logos are not served: `""`).
pub async fn get_oauth2_providers(Auth(caller): Auth) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let list = warren_oauth::providers::NAMES
        .iter()
        .filter_map(|name| {
            let kind = warren_oauth::Kind::from_name(name)?;
            Some(serde_json::json!({
                "name": name, "displayName": kind.spec().display, "logo": "",
            }))
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

/// `GET /api/collections/meta/scaffolds`
pub async fn get_scaffolds(Auth(caller): Auth, params: Params) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    render(collections::scaffolds(), &params)
}

/// `POST /api/collections/meta/dry-run-view` `{query}`: the fields a view collection with this
/// query would have and a sample of its records, nothing saved.
pub async fn dry_run_view(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    body: crate::extract::FormBody,
) -> Result<Json<Value>, ApiError> {
    require_superuser(&caller)?;
    let query = crate::routes::sql::query_text(&body)?;
    let result = collections::dry_run_view(tenant.db(), query)
        .await
        .map_err(|raw| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                crate::routes::sql::sentence(format!("Invalid view query. Raw error: \n{raw}")),
            )
        })?;
    Ok(Json(result.to_value()))
}
