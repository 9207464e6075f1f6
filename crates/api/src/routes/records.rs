//! `/api/collections/{collection}/records`: list, view, create, update, delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use warren_filter::RequestContext;
use warren_records::Caller;
use warren_records::Entry;
use warren_records::read::{self, ListQuery};
use warren_schema::json_out;
use warren_tenant::hooks::{HookRequest, RecordEvent};
use warren_tenant::{Tenant, ops};

use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant, FormBody, RequestHeaders, Who};
use crate::fields::project;
use crate::query::Params;
use crate::router::{ApiState, Shared};

/// The request as the rules see it: caller, method, query and headers.
pub(crate) fn context(
    caller: &Caller,
    method: &Method,
    params: &Params,
    headers: &RequestHeaders,
) -> RequestContext {
    read::context(
        caller,
        method.as_str(),
        &params.to_map(),
        headers.for_rules(),
    )
}

/// `GET /api/collections/{collection}/records`
pub async fn list_records(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    method: Method,
    headers: RequestHeaders,
    params: Params,
) -> Result<Response, ApiError> {
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
    let page = read::list(tenant.db(), catalog, entry.clone(), &caller, ctx, query).await?;
    if let Some((advice, took)) = &page.slow {
        crate::advice::note(&state, &tenant, advice, *took);
    }
    let fields = params.text("fields");
    if plain(&tenant, &entry, RecordEvent::ListRequest, fields).await {
        return Ok(json_bytes(page.to_json_bytes()));
    }
    let request = || hook_request(&caller, &method, &params, &headers, Map::new());
    let page = ops::list_request(&tenant, &entry, page.to_value(), request).await?;
    render(page, fields)
}

/// `GET /api/collections/{collection}/records/{id}`
pub async fn view_record(
    CurrentTenant(tenant): CurrentTenant,
    who: Who,
    Path((collection, id)): Path<(String, String)>,
    method: Method,
    headers: RequestHeaders,
    params: Params,
) -> Result<Response, ApiError> {
    let catalog = tenant.catalog();
    let entry = read::collection(&catalog, &collection)?;
    // The caller completes the context inside the read, once its token is checked.
    let ctx = context(&Caller::Guest, &method, &params, &headers);
    let (caller, record) = read::view_as(
        tenant.db(),
        catalog,
        entry.clone(),
        who.pending.clone(),
        ctx,
        &id,
        params.text("expand"),
    )
    .await;
    if let Some(caller) = &caller {
        who.note(caller);
    }
    let record = record?;
    let fields = params.text("fields");
    if plain(&tenant, &entry, RecordEvent::ViewRequest, fields).await {
        let mut body = Vec::with_capacity(512);
        record.write_json(&mut body);
        return Ok(json_bytes(body));
    }
    let caller = caller.unwrap_or_default();
    let request = || hook_request(&caller, &method, &params, &headers, Map::new());
    let record = ops::view_request(&tenant, &entry, record.to_value(), request).await?;
    render(record, fields)
}

/// A JSON answer whose bytes are written already (as `Json` would have written them).
fn json_bytes(body: Vec<u8>) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Whether a read's answer goes out as it was read: no `fields` projection asked and no hook
/// listening for `event` (either works on the answer as a JSON value).
async fn plain(tenant: &Tenant, entry: &Entry, event: RecordEvent, fields: &str) -> bool {
    fields.trim().is_empty() && !ops::listens(tenant, entry, event).await
}

/// `POST /api/collections/{collection}/records`
pub async fn create_record(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path(collection): Path<String>,
    info: RequestInfo,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    save_record(&state, &tenant, &caller, (collection, None), info, request).await
}

/// `PATCH /api/collections/{collection}/records/{id}`
pub async fn update_record(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path((collection, id)): Path<(String, String)>,
    info: RequestInfo,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    save_record(
        &state,
        &tenant,
        &caller,
        (collection, Some(id)),
        info,
        request,
    )
    .await
}

/// What the rules see of a request besides its body and caller: method, query and headers.
pub(crate) struct RequestInfo {
    /// The request method.
    pub(crate) method: Method,
    /// The request headers.
    pub(crate) headers: RequestHeaders,
    /// The query parameters.
    pub(crate) params: Params,
}

impl RequestInfo {
    /// What a request hook sees of this request made by `caller`.
    pub(crate) fn hook_request(&self, caller: &Caller) -> HookRequest {
        hook_request(
            caller,
            &self.method,
            &self.params,
            &self.headers,
            Map::new(),
        )
    }

    /// The request context of `caller`.
    pub(crate) fn context(&self, caller: &Caller) -> RequestContext {
        context(caller, &self.method, &self.params, &self.headers)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestInfo {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            method: parts.method.clone(),
            headers: RequestHeaders::new(&parts.headers),
            params: Params::from_request_parts(parts, state).await?,
        })
    }
}

/// Creates (no id) or updates a record of `collection`: reads the body within the
/// collection's limit, hands it to the tenant's write pipeline and projects the answer.
async fn save_record(
    state: &ApiState,
    tenant: &Tenant,
    caller: &Caller,
    (collection, id): (String, Option<String>),
    info: RequestInfo,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let catalog = tenant.catalog();
    let entry = catalog.get(&collection).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "Missing or invalid collection context.",
        )
    })?;
    let form = FormBody::read_limited(request, crate::uploads::body_limit(&entry)).await?;
    let save = ops::SaveRecord {
        entry,
        id,
        caller,
        ctx: info.context(caller),
        body: form.data,
        uploads: form.files,
        expand: info.params.text("expand"),
    };
    let services = crate::uploads::services(state);
    let request = || info.hook_request(caller);
    let record = ops::save_record_request(tenant, &services, save, request).await?;
    render(record, info.params.text("fields"))
}

/// `DELETE /api/collections/{collection}/records/{id}`
pub async fn delete_record(
    State(state): State<Shared>,
    CurrentTenant(tenant): CurrentTenant,
    Auth(caller): Auth,
    Path((collection, id)): Path<(String, String)>,
    info: RequestInfo,
) -> Result<Response, ApiError> {
    let entry = read::collection(&tenant.catalog(), &collection)?;
    let delete = ops::DeleteRecord {
        entry,
        id: &id,
        caller: &caller,
        ctx: info.context(&caller),
    };
    let services = crate::uploads::services(&state);
    let request = || info.hook_request(&caller);
    match ops::delete_record_request(&tenant, &services, delete, request).await? {
        ops::Handled::Done(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        ops::Handled::Answered(answer) => Ok(crate::routes::custom::route_response(answer)),
    }
}

/// What a request hook sees of the request (`e.auth`, `e.requestInfo()`); built only when
/// the tenant's code listens.
pub(crate) fn hook_request(
    caller: &Caller,
    method: &Method,
    params: &Params,
    headers: &HeaderMap,
    body: Map<String, Value>,
) -> HookRequest {
    let mut names = Map::new();
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            names
                .entry(name.as_str().to_string())
                .or_insert_with(|| Value::String(value.to_string()));
        }
    }
    HookRequest {
        method: method.as_str().to_string(),
        query: params.to_map(),
        headers: names,
        body,
        auth: caller.record().cloned(),
        superuser: caller.is_superuser(),
    }
}

/// The answer of a request that ran through request hooks: the usual JSON (projected by
/// `fields`), or what a hook wrote.
pub(crate) fn render(handled: ops::Handled<Value>, fields: &str) -> Result<Response, ApiError> {
    match handled {
        ops::Handled::Done(value) => {
            let mut body = Vec::with_capacity(512);
            json_out::write_value(&mut body, &project(value, fields)?);
            Ok(json_bytes(body))
        }
        ops::Handled::Answered(answer) => Ok(crate::routes::custom::route_response(answer)),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    /// The size of the future an async handler of six arguments returns, without calling it.
    fn future_of_6<A, B, C, D, E, G, F: Future>(_: impl FnOnce(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The same for five arguments.
    fn future_of_5<A, B, C, D, E, F: Future>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// axum boxes each request's future as it is made, which copies it whole (its largest
    /// state, whatever it holds at the start). A write's future held an S3 upload's (from the
    /// AWS SDK) inline and was 30 KB; rare, large steps are boxed where they are awaited.
    #[test]
    fn record_handlers_futures_stay_small() {
        let sizes = [
            ("create", future_of_6(super::create_record)),
            ("update", future_of_6(super::update_record)),
            ("delete", future_of_5(super::delete_record)),
            ("view", future_of_6(super::view_record)),
        ];
        for (handler, size) in sizes {
            assert!(
                size <= 12 * 1024,
                "{handler}_record's future is {size} bytes"
            );
        }
    }
}
