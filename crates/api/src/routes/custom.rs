//! The tenant's own routes (`routerAdd` in its `pb_hooks`): tried for every request the
//! built-in routes do not answer, so PocketBase's `/api/...` routes keep precedence; what they
//! do not answer either goes to the tenant's `pb_public`.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use warren_tenant::hooks::{HookError, RouteRequest, RouteResponse};

use crate::client::ClientIp;
use crate::error::ApiError;
use crate::extract::{Auth, CurrentTenant};

/// Answers through the tenant's routes; when none matches (or the tenant has no code), from
/// its `pb_public`, else with PocketBase's 404.
pub async fn dispatch_custom_route(
    tenant: Result<CurrentTenant, ApiError>,
    auth: Result<Auth, ApiError>,
    ClientIp(remote_ip): ClientIp,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let CurrentTenant(tenant) = tenant?;
    let Some(code) = tenant.code().await else {
        return Ok(public_file(tenant, method, uri, headers).await);
    };
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let caller = auth.map(|Auth(caller)| caller).unwrap_or_default();
    let request = RouteRequest {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: body.to_vec(),
        superuser: caller.is_superuser(),
        auth: caller.record().cloned(),
        remote_ip,
    };
    match code.route(&tenant, request).await {
        None => Ok(public_file(tenant, method, uri, headers).await),
        Some(Err(refusal)) => Err(refusal.into()),
        Some(Ok(answer)) => Ok(route_response(answer)),
    }
}

/// The HTTP response of an answer the tenant's code wrote (a route's, or a hook's `e.json`).
pub(crate) fn route_response(answer: RouteResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = status;
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response.into_response()
}

/// The tenant's `pb_public` answer for a request no route took (its body is not needed).
async fn public_file(
    tenant: warren_tenant::Tenant,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut request = axum::extract::Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request.extensions_mut().insert(tenant);
    crate::routes::public::serve_public(request).await
}

impl From<HookError> for ApiError {
    fn from(e: HookError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError {
            status,
            message: e.message,
            data: e.data,
        }
    }
}
