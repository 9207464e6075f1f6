//! The usage and backup runs a node records while it does not lead, carried to the leader's
//! control database: the node queues them (see `warren_control_plane::relay`), sends the
//! oldest batch to whichever node leads (`POST /v1/cluster/relay`, peers only), or applies it
//! itself once it leads, and keeps every batch until it is applied.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warren_api::ApiError;
use warren_control_plane::relay::{self, Batch, Relay};
use warren_control_plane::{ControlPlane, TenantInfo};

use super::ClusterNode;

/// Peer-only: the leader applies a batch of another node's records.
pub(super) const RELAY: &str = "/v1/cluster/relay";
/// Largest batch body the leader reads.
const MAX_BODY: usize = 4 << 20;
/// How often the sender looks at its queue when nothing new was queued.
const TICK: Duration = Duration::from_secs(1);
/// Least time between two warnings of a sender that cannot reach the leader.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Why a batch was not applied.
enum NotSent {
    /// Try again later (no leader, the leader is changing, a network error).
    Later(String),
    /// The batch is refused for what it is: dropped.
    Refused(String),
}

impl ClusterNode {
    /// Whether this node leads the control plane and serves the latest control database:
    /// what it writes there is the cluster's record.
    pub(super) fn leads_ready(&self) -> bool {
        self.directory
            .leader()
            .is_some_and(|l| l.lease == self.member.lease())
            && self.platform_ready()
    }

    /// Hands the node's metering and backups a relay to the leader, gives its backups the
    /// tenants only the cluster's directory knows, and starts sending.
    pub fn start_relay(self: &Arc<Self>, control: &ControlPlane) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let relay = Relay::new(
            self.node(),
            Arc::new(move || weak.upgrade().is_some_and(|n| !n.leads_ready())),
        );
        control.metering.set_relay(relay.clone());
        control.backups.set_relay(relay.clone());
        let weak: Weak<Self> = Arc::downgrade(self);
        control.backups.set_tenant_lookup(Arc::new(move |id: &str| {
            weak.upgrade().and_then(|n| n.tenant_by_id(id))
        }));
        if self.relay.set(relay.clone()).is_err() {
            return;
        }
        let (node, control) = (Arc::downgrade(self), control.clone());
        tokio::spawn(async move {
            let mut warned: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = relay.queued() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
                let Some(node) = node.upgrade() else { return };
                if let Err(why) = node.send_relayed(&control, &relay).await
                    && warned.is_none_or(|at| at.elapsed() >= WARN_EVERY)
                {
                    warned = Some(Instant::now());
                    tracing::warn!(waiting = relay.len(), reason = %why, "this node's usage and backup runs wait for the leader");
                }
            }
        });
    }

    /// Sends (or, leading, applies) the queued batches, oldest first, until one is not taken.
    async fn send_relayed(&self, control: &ControlPlane, relay: &Relay) -> Result<(), String> {
        while let Some(batch) = relay.next() {
            let seq = batch.seq;
            match self.send_batch(control, batch).await {
                Ok(()) => relay.applied(seq),
                Err(NotSent::Refused(why)) => {
                    tracing::warn!(seq, reason = %why, "a batch of usage and backup runs was refused: dropped");
                    relay.applied(seq);
                }
                Err(NotSent::Later(why)) => return Err(why),
            }
        }
        Ok(())
    }

    async fn send_batch(&self, control: &ControlPlane, batch: Batch) -> Result<(), NotSent> {
        if self.leads_ready() {
            return match relay::apply(control.tenants.db(), batch).await {
                Ok(_) => Ok(()),
                Err(e @ warren_control_plane::Error::Invalid(..)) => {
                    Err(NotSent::Refused(e.to_string()))
                }
                Err(e) => Err(NotSent::Later(e.to_string())),
            };
        }
        let leader = match self.directory.leader() {
            Some(l) if l.lease != self.member.lease() => l,
            Some(_) => return Err(NotSent::Later("the lead is being taken here".into())),
            None => return Err(NotSent::Later("no node leads".into())),
        };
        let body = serde_json::to_vec(&batch).map_err(|e| NotSent::Refused(e.to_string()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(RELAY)
            .header(header::HOST, control.urls.domain.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .map_err(|e| NotSent::Refused(e.to_string()))?;
        let answer = self.forwarder.forward(&leader.advertise, request).await;
        match answer.status() {
            StatusCode::OK => Ok(()),
            StatusCode::BAD_REQUEST => Err(NotSent::Refused(format!(
                "the leader {} refused it",
                leader.node
            ))),
            status => Err(NotSent::Later(format!(
                "the leader {} answered {status}",
                leader.node
            ))),
        }
    }

    /// The leader's part of `POST /v1/cluster/relay` (a peer's batch): applied once.
    pub(super) async fn receive_relayed(
        &self,
        control: &ControlPlane,
        request: Request,
    ) -> Response {
        if !self.leads_ready() {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "This node does not serve the platform now.",
            )
            .into_response();
        }
        let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_BODY).await else {
            return ApiError::new(StatusCode::BAD_REQUEST, "The batch is too large.")
                .into_response();
        };
        let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
            return ApiError::new(StatusCode::BAD_REQUEST, "The body is not a batch.")
                .into_response();
        };
        let (origin, seq, records) = (batch.origin.clone(), batch.seq, batch.records.len());
        match relay::apply(control.tenants.db(), batch).await {
            Ok(applied) => {
                tracing::debug!(origin, seq, records, applied, "relayed batch");
                (StatusCode::OK, axum::Json(json!({ "applied": applied }))).into_response()
            }
            Err(e @ warren_control_plane::Error::Invalid(..)) => {
                ApiError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response()
            }
            Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
        }
    }

    /// At shutdown: sends what is queued, for at most `limit`.
    pub async fn flush_relay(&self, control: &ControlPlane, limit: Duration) {
        let Some(relay) = self.relay.get() else {
            return;
        };
        let started = Instant::now();
        while !relay.is_empty() && started.elapsed() < limit {
            if self.send_relayed(control, relay).await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if !relay.is_empty() {
            tracing::warn!(
                waiting = relay.len(),
                "usage and backup runs not taken by the leader are lost at shutdown"
            );
        }
    }

    /// Tenant `id` as the cluster's directory mirrors it (from the leader's control database),
    /// or as the leader named it when it asked this node to provision it.
    pub(super) fn tenant_by_id(&self, id: &str) -> Option<TenantInfo> {
        self.directory
            .hosts()
            .into_values()
            .find(|record| record.tenant == id)
            .and_then(|record| serde::Deserialize::deserialize(&record.info).ok())
            .or_else(|| self.new_here(id))
    }
}
