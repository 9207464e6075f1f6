//! The control plane's answers to the tenant API's `/api/warren/*` routes: one-time dashboard
//! links minted by the console, and the tenant's metered usage; in a cluster, a node that
//! does not lead asks the leader.

use std::sync::Arc;

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use warren_api::ApiError;
use warren_control_plane::ControlPlane;
use warren_control_plane::metering::totals;

use crate::serve_cluster::ClusterNode;

/// [`warren_api::Platform`] over the control plane.
pub struct ControlPlatform {
    /// Accounts' dashboard links and the metering.
    control: ControlPlane,
    /// This node's cluster, whose leader answers while this node does not lead.
    cluster: Option<Arc<ClusterNode>>,
}

impl ControlPlatform {
    /// Answers from `control`, or, in `cluster` while this node does not lead, from the
    /// leader's.
    pub fn new(control: ControlPlane, cluster: Option<Arc<ClusterNode>>) -> Self {
        Self { control, cluster }
    }

    /// The cluster node to ask instead, when this node does not answer the platform.
    fn leader(&self) -> Option<&ClusterNode> {
        self.cluster
            .as_deref()
            .filter(|node| !node.answers_platform())
    }
}

/// A control-plane error as the tenant API shows it: its envelope, with a refused field's
/// reason as the message (the dashboard shows the message).
fn api_error(e: warren_control_plane::Error) -> ApiError {
    let envelope = e.envelope();
    if envelope.status >= 500 {
        return ApiError::internal(e);
    }
    let status = StatusCode::from_u16(envelope.status).unwrap_or(StatusCode::BAD_REQUEST);
    let message = match &e {
        warren_control_plane::Error::Invalid(_, reason) => reason.clone(),
        _ => envelope.message,
    };
    let mut error = ApiError::new(status, message);
    if let Value::Object(data) = envelope.data {
        error.data = data;
    }
    error
}

impl warren_api::Platform for ControlPlatform {
    fn redeem_dashboard_link<'a>(
        &'a self,
        tenant_id: &'a str,
        code: &'a str,
    ) -> BoxFuture<'a, Result<String, ApiError>> {
        Box::pin(async move {
            if let Some(node) = self.leader() {
                let domain = &self.control.urls.domain;
                return node.redeem_at_leader(domain, tenant_id, code).await;
            }
            self.control
                .console
                .dashboard_links()
                .redeem(tenant_id, code)
                .map_err(api_error)
        })
    }

    fn usage<'a>(
        &'a self,
        tenant_id: &'a str,
        from: Option<String>,
        to: Option<String>,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            if let Some(node) = self.leader() {
                let domain = &self.control.urls.domain;
                return node.usage_at_leader(domain, tenant_id, from, to).await;
            }
            let items = self
                .control
                .metering
                .usage(tenant_id, from, to)
                .await
                .map_err(api_error)?;
            Ok(json!({ "totals": totals(&items), "items": items }))
        })
    }
}
