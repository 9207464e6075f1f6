//! `/api/collections/{collection}/records`: list, view, create, update, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use warren_filter::RequestContext;
use warren_records::read::{self, ListQuery};
use warren_records::{Caller, write};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, Who};
use crate::fields::project;
use crate::query::Params;
use crate::router::ApiState;

/// The request as the rules see it: caller, method, query and headers.
pub(crate) fn context(
    caller: &Caller,
    method: &Method,
    params: &Params,
    headers: &HeaderMap,
) -> RequestContext {
    let headers = headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_string(), v.to_string()))
        })
        .collect();
    read::context(caller, method.as_str(), &params.to_map(), headers)
}

/// `GET /api/collections/{collection}/records`
pub async fn list_records(
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    method: Method,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, &collection)?;
    let query = ListQuery {
        page: params.positive("page", 1)?,
        per_page: params.positive("perPage", 30)?.min(read::MAX_PER_PAGE),
        sort: params.text("sort").to_string(),
        filter: params.text("filter").to_string(),
        expand: params.text("expand").to_string(),
        skip_total: params.flag("skipTotal")?,
    };
    let ctx = context(&caller, &method, &params, &headers);
    let page = read::list(tenant.db(), catalog, entry, &caller, ctx, query).await?;
    Ok(Json(project(page.to_value(), params.text("fields"))?))
}

/// `GET /api/collections/{collection}/records/{id}`
pub async fn view_record(
    CurrentTenant(tenant): CurrentTenant,
    who: Who,
    Path((collection, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, &collection)?;
    // The caller completes the context inside the read, once its token is checked.
    let ctx = context(&Caller::Guest, &method, &params, &headers);
    let (caller, record) = read::view_as(
        tenant.db(),
        catalog,
        entry,
        who.pending.clone(),
        ctx,
        &id,
        params.text("expand"),
    )
    .await;
    if let Some(caller) = &caller {
        who.note(caller);
    }
    Ok(Json(project(record?, params.text("fields"))?))
}

/// `POST /api/collections/{collection}/records`
pub async fn create_record(
    State(state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    method: Method,
    headers: HeaderMap,
    params: Params,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let request_info = RequestInfo {
        method,
        headers,
        params,
    };
    save_record(
        state,
        tenant,
        caller,
        collection,
        None,
        request_info,
        request,
    )
    .await
}

/// `PATCH /api/collections/{collection}/records/{id}`
#[allow(clippy::too_many_arguments)]
pub async fn update_record(
    State(state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path((collection, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    params: Params,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let request_info = RequestInfo {
        method,
        headers,
        params,
    };
    save_record(
        state,
        tenant,
        caller,
        collection,
        Some(id),
        request_info,
        request,
    )
    .await
}

/// What the rules see of a request besides its body.
struct RequestInfo {
    method: Method,
    headers: HeaderMap,
    params: Params,
}

/// Creates (`id` = `None`) or updates a record: reads the body (uploads staged to storage
/// first), writes through the record engine, then keeps or removes the staged files and
/// publishes the changes.
async fn save_record(
    state: ApiState,
    tenant: warren_tenant::Tenant,
    caller: Caller,
    collection: String,
    id: Option<String>,
    info: RequestInfo,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let catalog = tenant.catalog();
    let entry = catalog.get(&collection).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid collection context.",
        )
    })?;
    let form = FormBody::read_limited(request, crate::uploads::body_limit(&entry)).await?;
    let mut body = form.data;
    let pending = crate::uploads::stage(
        &state.files,
        &tenant,
        &entry,
        &mut body,
        form.files,
        id.as_deref(),
    )
    .await?;
    let RequestInfo {
        method,
        headers,
        params,
    } = info;
    let ctx = context(&caller, &method, &params, &headers);
    let (db, names, expand) = (tenant.db(), pending.names.clone(), params.text("expand"));
    let save = write::Save {
        db,
        catalog: catalog.clone(),
        entry,
        caller: &caller,
        ctx,
        body,
        uploads: names,
        passwords: &state.passwords,
        expand,
    };
    let written = match &id {
        None => write::create(save).await,
        Some(id) => write::update(save, id).await,
    };
    let (record, changes) = match written {
        Ok(done) => done,
        Err(e) => {
            pending.rollback().await;
            return Err(e.into());
        }
    };
    pending.commit(&state.files, &tenant, &changes).await;
    super::realtime::publish(&tenant, catalog, changes);
    Ok(Json(project(record, params.text("fields"))?))
}

/// `DELETE /api/collections/{collection}/records/{id}`
pub async fn delete_record(
    State(state): State<ApiState>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path((collection, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, &collection)?;
    let ctx = context(&caller, &method, &params, &headers);
    let changes = write::delete(tenant.db(), catalog.clone(), entry, &caller, ctx, &id).await?;
    crate::uploads::remove_deleted(&state.files, &tenant, &changes).await;
    super::realtime::publish(&tenant, catalog, changes);
    Ok(StatusCode::NO_CONTENT)
}
