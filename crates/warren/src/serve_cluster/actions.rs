//! Platform actions on a tenant's data (backup now, in-place restore, export, import, code
//! deploy and reads, superuser, secrets) run on the node that serves the tenant: the leader finds it as
//! a tenant request would (its owner, or the node that claims it now, restoring it if needed)
//! and sends it the operator request (peer-only `/v1/cluster/act/{id}/...`, the tenant's
//! record in a header); that node acts only if it serves the tenant, and its answer (status,
//! JSON, stream) goes back as it is.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use warren_api::ApiError;
use warren_control_plane::{ControlPlane, TenantInfo};

use super::{ClusterNode, Route};

/// Peer-only: the node serving tenant `{id}` runs the operator action `{rest}` on it
/// (`/v1/cluster/act/{id}/{rest}`, as `/v1/tenants/{slug}/{rest}`).
const ACT: &str = "/v1/cluster/act/";
/// The tenant's record (hex of its JSON) on a request to [`ACT`].
const TENANT_HEADER: &str = "x-warren-tenant";
/// The most bytes of a restore request the leader reads to see whether it is in place.
const RESTORE_BODY_LIMIT: usize = 64 * 1024;

/// What becomes of a platform request.
pub enum Action {
    /// Answered already (by the node serving the tenant, or refused).
    Answered(Response),
    /// Served here by the platform's routes: this node serves the tenant.
    Here(Request),
    /// Not an action on a tenant's data: the platform's usual way.
    Other(Request),
}

/// Whether `method` on `/v1/tenants/{slug}/{rest}` acts on (or reads) the tenant's data.
/// A restore qualifies only in place (checked with its body).
fn on_data(method: &Method, rest: &str) -> bool {
    matches!(
        (method, rest),
        (&Method::POST, "backups")
            | (&Method::POST, "backups/restore")
            | (&Method::GET | &Method::POST, "import")
            | (&Method::GET, "export")
            | (&Method::GET | &Method::PUT, "code")
            | (&Method::GET, "code/archive")
            | (&Method::PUT, "superuser")
            | (&Method::GET, "secrets")
    ) || (matches!(method, &Method::PUT | &Method::DELETE)
        && rest
            .strip_prefix("secrets/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/')))
}

/// `path` and `query` of `uri` joined again.
fn with_query(path: &str, uri: &Uri) -> String {
    match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    }
}

/// `request` sent to `path_and_query` instead (`None` when that is no URI).
fn rewritten(mut request: Request, path_and_query: &str) -> Option<Request> {
    *request.uri_mut() = path_and_query.parse::<Uri>().ok()?;
    Some(request)
}

impl ClusterNode {
    /// The leader's part (operator requests on a tenant's data, sent on to the node serving
    /// the tenant) and that node's (`/v1/cluster/act/...` from a peer).
    pub async fn tenant_action(
        &self,
        control: &ControlPlane,
        request: Request,
        from_peer: bool,
    ) -> Action {
        let path = request.uri().path().to_string();
        if let Some(rest) = path.strip_prefix(ACT) {
            if !from_peer {
                return Action::Answered(ApiError::not_found().into_response());
            }
            return self.act_for_leader(rest, request).await;
        }
        let Some((slug, rest)) = path
            .strip_prefix("/v1/tenants/")
            .and_then(|p| p.split_once('/'))
            .filter(|(slug, rest)| !slug.is_empty() && on_data(request.method(), rest))
        else {
            return Action::Other(request);
        };
        let (slug, rest) = (slug.to_string(), rest.to_string());
        if !self.leads_ready() {
            // The leader answers it (or this new leader's platform refuses it meanwhile).
            return Action::Other(request);
        }
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !control.operator_token.accepts(authorization) {
            return Action::Answered(
                ApiError::new(StatusCode::UNAUTHORIZED, "Missing or wrong operator token.")
                    .into_response(),
            );
        }
        let request = if rest == "backups/restore" {
            match in_place(request).await {
                Ok((true, request)) => request,
                Ok((false, request)) => return Action::Other(request),
                Err(answer) => return Action::Answered(answer),
            }
        } else {
            request
        };
        let info = match control.directory.resolve(&slug).await {
            Ok(Some(info)) => info,
            Ok(None) => return Action::Answered(ApiError::not_found().into_response()),
            Err(e) => return Action::Answered(ApiError::internal(e).into_response()),
        };
        self.on_server(TenantInfo::clone(&info), request).await
    }

    /// Operator request `request` (`/v1/tenants/{slug}/...`) on tenant `info`, where the
    /// tenant is served: back as [`Action::Here`] when that is this node (claimed now if it was
    /// free and belongs here), else answered by that node (or 503 "moving" meanwhile).
    pub(super) async fn on_server(&self, info: TenantInfo, request: Request) -> Action {
        if self.serves(&info.id) && self.has_data(&info.id) {
            return Action::Here(request);
        }
        let Some(rest) = request
            .uri()
            .path()
            .strip_prefix("/v1/tenants/")
            .and_then(|p| p.split_once('/'))
            .map(|(_, rest)| rest.to_string())
        else {
            return Action::Answered(ApiError::not_found().into_response());
        };
        let Ok(record) = serde_json::to_vec(&info) else {
            return Action::Answered(ApiError::internal("the tenant's record").into_response());
        };
        let Ok(record) = HeaderValue::from_str(&hex::encode(record)) else {
            return Action::Answered(ApiError::internal("the tenant's record").into_response());
        };
        let to = with_query(&format!("{ACT}{}/{rest}", info.id), request.uri());
        let Some(mut request) = rewritten(request, &to) else {
            return Action::Answered(ApiError::not_found().into_response());
        };
        let headers = request.headers_mut();
        // The operator's token stays here; the peer trusts the cluster secret. A request a
        // peer forwarded to this leader is a new one to the owner (who never sends it on).
        headers.remove(header::AUTHORIZATION);
        headers.remove(warren_edge::forward::FORWARDED_BY);
        headers.insert(TENANT_HEADER, record);
        match self.route(info, request, false).await {
            Route::Answered(answer) => Action::Answered(answer),
            Route::Here(here) => {
                let (info, request) = *here;
                match back_to_operator(&info, request) {
                    Some(request) => Action::Here(request),
                    None => Action::Answered(ApiError::not_found().into_response()),
                }
            }
        }
    }

    /// A peer's `/v1/cluster/act/{id}/{rest}`: served here as the operator's request when this
    /// node serves tenant `{id}` (claiming it when it is free: the leader sent it here), else
    /// 503 "moving"; never sent on.
    async fn act_for_leader(&self, rest: &str, request: Request) -> Action {
        let Some((id, _)) = rest.split_once('/') else {
            return Action::Answered(ApiError::not_found().into_response());
        };
        let info = request
            .headers()
            .get(TENANT_HEADER)
            .and_then(|v| hex::decode(v.as_bytes()).ok())
            .and_then(|json| serde_json::from_slice::<TenantInfo>(&json).ok())
            .filter(|info| info.id == id && warren_cluster::valid_id(id));
        let Some(info) = info else {
            return Action::Answered(ApiError::bad_request().into_response());
        };
        match self.route(info, request, true).await {
            Route::Answered(answer) => Action::Answered(answer),
            Route::Here(here) => {
                let (info, request) = *here;
                if !self.serves(&info.id) {
                    return Action::Answered(
                        ApiError::new(
                            StatusCode::CONFLICT,
                            "This node does not serve the project.",
                        )
                        .into_response(),
                    );
                }
                match back_to_operator(&info, request) {
                    Some(mut request) => {
                        request
                            .extensions_mut()
                            .insert(warren_operator::Acting(info));
                        Action::Here(request)
                    }
                    None => Action::Answered(ApiError::not_found().into_response()),
                }
            }
        }
    }
}

/// A request to [`ACT`] as the operator's `/v1/tenants/{slug}/{rest}` again.
fn back_to_operator(info: &TenantInfo, mut request: Request) -> Option<Request> {
    request.headers_mut().remove(TENANT_HEADER);
    let rest = request
        .uri()
        .path()
        .strip_prefix(ACT)
        .and_then(|p| p.split_once('/'))
        .map(|(_, rest)| rest.to_string())?;
    let to = with_query(&format!("/v1/tenants/{}/{rest}", info.slug), request.uri());
    rewritten(request, &to)
}

/// Whether restore request `request` is in place (its body read, and put back).
async fn in_place(request: Request) -> Result<(bool, Request), Response> {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, RESTORE_BODY_LIMIT).await else {
        return Err(
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The body is too large.").into_response(),
        );
    };
    let in_place = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|body| body.get("inPlace").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    Ok((
        in_place,
        Request::from_parts(parts, axum::body::Body::from(bytes)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_actions_on_a_tenants_data_go_to_its_server() {
        assert!(on_data(&Method::POST, "backups"));
        assert!(on_data(&Method::PUT, "code"));
        assert!(on_data(&Method::GET, "code/archive"));
        assert!(on_data(&Method::PUT, "superuser"));
        assert!(on_data(&Method::GET, "secrets"));
        assert!(on_data(&Method::PUT, "secrets/API_KEY"));
        assert!(on_data(&Method::DELETE, "secrets/API_KEY"));
        assert!(!on_data(&Method::GET, "secrets/API_KEY"));
        assert!(!on_data(&Method::PUT, "secrets/a/b"));
        assert!(
            !on_data(&Method::GET, "backups"),
            "the list is the leader's"
        );
        assert!(!on_data(&Method::POST, "backups/verify"));
        assert!(!on_data(&Method::POST, "move"));
        assert!(!on_data(&Method::GET, "usage"));
    }
}
