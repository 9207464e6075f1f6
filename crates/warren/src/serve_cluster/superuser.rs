//! The registry's and the console's view of the cluster ([`Owners`]): whether this node serves
//! a tenant with its current data, and running an operator request on a tenant's data on the
//! node that does (see `actions`), which is how the console's actions reach that node.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures_util::future::BoxFuture;
use warren_control_plane::TenantInfo;
use warren_tenant::Error;
use warren_tenant::locality::{Locality, Remote};

use super::{Action, ClusterNode};

/// The most bytes of the owner's answer to a superuser request read.
const ANSWER_LIMIT: usize = 4096;

/// Where tenants are served, for the registry and the console, and how to act there.
#[derive(Clone)]
pub struct Owners {
    node: Arc<ClusterNode>,
    /// The platform's host name, which node-to-node requests are sent to.
    platform_host: String,
    /// The operator API, which runs a request here when this node serves the tenant.
    operator: Router,
}

impl ClusterNode {
    /// This node's [`Owners`], sending node-to-node requests to `platform_host` and running
    /// the ones it serves itself through `operator` (the operator API's router).
    pub fn owners(self: &Arc<Self>, platform_host: &str, operator: Router) -> Owners {
        Owners {
            node: self.clone(),
            platform_host: platform_host.to_string(),
            operator,
        }
    }

    /// Whether this node serves tenant `id` now, claimed under the directory's generation.
    pub(super) fn serves(&self, id: &str) -> bool {
        self.directory.owner(id).is_some_and(|(owner, _)| {
            owner.lease == self.member.lease()
                && self.ownership_generation(id) == Some(owner.generation)
        })
    }
}

impl Owners {
    /// Runs operator request `request` (`/v1/tenants/{slug}/...`) on `tenant` on the node
    /// that serves it (this one included: then through the operator API here); its answer.
    pub async fn run(&self, tenant: TenantInfo, mut request: Request) -> Response {
        if let Ok(host) = HeaderValue::from_str(&self.platform_host) {
            request.headers_mut().insert(header::HOST, host);
        }
        match self.node.on_server(tenant.clone(), request).await {
            Action::Answered(answer) => answer,
            Action::Here(mut request) | Action::Other(mut request) => {
                request
                    .extensions_mut()
                    .insert(warren_operator::Acting(tenant));
                crate::app::forward(self.operator.clone(), request).await
            }
        }
    }
}

impl warren_console::Elsewhere for Owners {
    fn run(&self, tenant: TenantInfo, request: Request) -> BoxFuture<'static, Response> {
        let owners = self.clone();
        Box::pin(async move { owners.run(tenant, request).await })
    }
}

impl Locality for Owners {
    fn elsewhere(&self, id: &str) -> bool {
        !(self.node.serves(id) && self.node.has_data(id))
    }

    fn set_superuser_there<'a>(
        &'a self,
        id: &'a str,
        email: &'a str,
        password: &'a str,
    ) -> Remote<'a, String> {
        Box::pin(async move {
            let tenant = self.node.tenant_by_id(id).ok_or(Error::Elsewhere)?;
            let body = serde_json::to_vec(&serde_json::json!({
                "email": email,
                "password": password,
            }))
            .map_err(|_| Error::Elsewhere)?;
            let request = Request::builder()
                .method(Method::PUT)
                .uri(format!("/v1/tenants/{}/superuser", tenant.slug))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
                .map_err(|_| Error::Elsewhere)?;
            let response = self.run(tenant, request).await;
            let status = response.status();
            let answer = axum::body::to_bytes(response.into_body(), ANSWER_LIMIT)
                .await
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .unwrap_or_default();
            let text = |field: &str| answer[field].as_str().unwrap_or_default().to_string();
            match status {
                StatusCode::OK => Ok(text("email")),
                StatusCode::BAD_REQUEST => Err(Error::Invalid(
                    text("message").trim_end_matches('.').to_string(),
                )),
                _ => {
                    tracing::warn!(tenant = id, %status, "the superuser was not set where the tenant is served");
                    Err(Error::Elsewhere)
                }
            }
        })
    }
}
