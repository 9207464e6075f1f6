//! New tenants made directly on their placed node: the leader asks that node
//! (`/v1/cluster/provision/{id}`, peers only) to provision the tenant and claim it, and that
//! node answers once the tenant's first snapshot is in the backup target.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use warren_api::ApiError;
use warren_cluster::ownership;
use warren_control_plane::new_tenants::{PlaceNew, Provisioned};
use warren_control_plane::{ControlPlane, TenantInfo, TenantStatus};

use super::ClusterNode;

/// Peer-only: this node provisions new tenant `{id}` and claims it (`/v1/cluster/provision/{id}`).
const PROVISION: &str = "/v1/cluster/provision/";
/// How long the placed node may take to provision a tenant and store its first snapshot
/// before it gives the tenant up.
const THERE_LIMIT: Duration = Duration::from_secs(8);
/// How long the leader waits for the placed node's answer before it provisions the tenant
/// itself (a little longer than the placed node's own limit).
const ASK_LIMIT: Duration = Duration::from_secs(10);
/// How often the placed node looks for the first snapshot.
const POLL: Duration = Duration::from_millis(25);
/// The request body's limit (`{"slug": …}`).
const BODY_LIMIT: usize = 1024;
/// How long the leader keeps looking for a claim it gave up on (a placed node that answered
/// too late), to release it.
const ABANDON_WATCH: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionBody {
    slug: String,
}

fn refused(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}

/// The leader's side, installed into the control plane's tenants
/// ([`warren_control_plane::Tenants::set_placer`]).
pub struct DirectPlacer {
    node: Weak<ClusterNode>,
    /// The platform domain (the `Host` of node-to-node requests).
    domain: String,
}

impl DirectPlacer {
    pub fn new(node: &Arc<ClusterNode>, domain: &str) -> Self {
        Self {
            node: Arc::downgrade(node),
            domain: domain.to_string(),
        }
    }
}

impl PlaceNew for DirectPlacer {
    fn provision_there<'a>(&'a self, id: &'a str, slug: &'a str) -> BoxFuture<'a, Provisioned> {
        Box::pin(async move {
            match self.node.upgrade() {
                Some(node) => node.provision_there(&self.domain, id, slug).await,
                None => Provisioned::Here,
            }
        })
    }

    fn abandon<'a>(&'a self, id: &'a str, there: bool) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Some(node) = self.node.upgrade() {
                node.landed(id);
                if there {
                    node.abandon(id.to_string());
                }
            }
        })
    }
}

impl ClusterNode {
    /// The leader's part: asks the node placement gives new tenant `id` to provision and
    /// claim it, unless that is this node (or new tenants are not placed now).
    async fn provision_there(self: &Arc<Self>, domain: &str, id: &str, slug: &str) -> Provisioned {
        let Some(to) = self.placed_directly(id) else {
            return Provisioned::Here;
        };
        if to == self.node() {
            // Counted here until this node's first claim (which does not queue it for a move).
            return Provisioned::Here;
        }
        let started = Instant::now();
        let node = self.directory.nodes().into_iter().find(|n| n.id == to);
        let answer = match (node, serde_json::to_vec(&json!({ "slug": slug }))) {
            (Some(node), Ok(body)) => {
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(format!("{PROVISION}{id}"))
                    .header(header::HOST, domain)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body));
                match request {
                    Ok(request) => tokio::time::timeout(
                        ASK_LIMIT,
                        self.forwarder.forward(&node.advertise, request),
                    )
                    .await
                    .ok(),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let status = answer.as_ref().map(Response::status);
        if status != Some(StatusCode::OK) {
            self.landed(id);
            tracing::warn!(tenant = id, to, status = ?status, took = ?started.elapsed(), "provisioning a new tenant on its placed node failed: it is provisioned here");
            // A late claim there (the answer came too late) is given up.
            self.abandon(id.to_string());
            return Provisioned::Failed;
        }
        // Counted on its node by the owner record from now on, once this node has seen it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.directory.owner(id).is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.landed(id);
        tracing::info!(tenant = id, to, took = ?started.elapsed(), "new tenant provisioned on its placed node");
        Provisioned::There
    }

    /// Releases the first claim of tenant `id` (made elsewhere and never recorded) once it
    /// shows, for a while, so no node serves a tenant the control database does not have.
    fn abandon(self: &Arc<Self>, id: String) {
        let node = self.clone();
        tokio::spawn(async move {
            let (member, directory) = (&node.member, &node.directory);
            let deadline = Instant::now() + ABANDON_WATCH;
            while Instant::now() < deadline {
                if let Some((owner, _)) = directory.owner(&id) {
                    match ownership::release(member, &id, &owner).await {
                        Ok(_) => tracing::info!(
                            tenant = id,
                            node = owner.node,
                            "an unrecorded new tenant's claim was given up"
                        ),
                        Err(e) => {
                            tracing::warn!(tenant = id, error = %e, "giving up an unrecorded new tenant's claim failed")
                        }
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// The placed node's part: provisions new tenant `id`, claims it (generation 1) and opens
    /// it so its shipper stores the first snapshot; answers once that is in the backup target
    /// (and this node's directory shows the claim). On any failure the tenant is given up here.
    pub(super) async fn provision_here(
        &self,
        control: &ControlPlane,
        id: &str,
        request: Request,
    ) -> Response {
        if !warren_cluster::valid_id(id) {
            return ApiError::not_found().into_response();
        }
        let Ok(body) = axum::body::to_bytes(request.into_body(), BODY_LIMIT).await else {
            return ApiError::bad_request().into_response();
        };
        let Ok(ProvisionBody { slug }) = serde_json::from_slice(&body) else {
            return refused(
                StatusCode::BAD_REQUEST,
                "The body must be {\"slug\": SLUG}.",
            );
        };
        if warren_control_plane::slug::validate(&slug).is_err() {
            return refused(StatusCode::BAD_REQUEST, "The slug is not valid.");
        }
        let Some(target) = control.backups.target().cloned() else {
            return refused(
                StatusCode::CONFLICT,
                "This server has no backup target (--backup-url).",
            );
        };
        if self.tenants_root.join(id).exists() || self.directory.owner(id).is_some() {
            return refused(StatusCode::CONFLICT, "The project exists already.");
        }
        let started = Instant::now();
        // The snapshot that starts its shipping looks the tenant up by id before the control
        // database (or the hostname directory) has it.
        self.new_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), placeholder(id, &slug));
        let made = tokio::time::timeout(THERE_LIMIT, self.make_here(control, &target, id)).await;
        self.new_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let failure = match made {
            Ok(Ok(generation)) => {
                tracing::info!(tenant = id, took = ?started.elapsed(), "new tenant provisioned here");
                return (
                    StatusCode::OK,
                    axum::Json(
                        json!({ "tenant": id, "node": self.node(), "generation": generation }),
                    ),
                )
                    .into_response();
            }
            Ok(Err(why)) => why,
            Err(_) => "its first snapshot took too long".to_string(),
        };
        tracing::warn!(tenant = id, reason = %failure, "provisioning a new tenant here failed: given up");
        self.give_up_here(control, id).await;
        refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "The project could not be provisioned here.",
        )
    }

    /// Provisions, claims and opens new tenant `id` and waits for its first snapshot in
    /// `target`; the generation of the claim.
    async fn make_here(
        &self,
        control: &ControlPlane,
        target: &warren_backup::Target,
        id: &str,
    ) -> Result<u64, String> {
        warren_tenant::provision(&self.tenants_root, id)
            .await
            .map_err(|e| format!("provisioning: {e}"))?;
        let owner = match ownership::claim_new(&self.member, id).await {
            Ok(Some(owner)) => owner,
            Ok(None) => return Err("the project had an owner already".into()),
            Err(e) => return Err(format!("claiming: {e}")),
        };
        self.record_generation(id, owner.generation).await;
        // Opened once this node's directory shows the claim: the snapshot is taken only of a
        // tenant this node serves.
        while self
            .directory
            .owner(id)
            .is_none_or(|(o, _)| o.lease != self.member.lease())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        control
            .registry
            .get(id)
            .await
            .map_err(|e| format!("opening: {e}"))?;
        loop {
            if let Ok(Some(_)) = warren_backup::latest::newest_chain(target, id).await {
                return Ok(owner.generation);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Undoes a failed [`ClusterNode::provision_here`]: the claim released, the tenant closed
    /// and its directory removed.
    async fn give_up_here(&self, control: &ControlPlane, id: &str) {
        if let Ok(Some(owner)) = ownership::read_owner(&self.etcd, self.member.keys(), id).await
            && owner.lease == self.member.lease()
            && let Err(e) = ownership::release(&self.member, id, &owner).await
        {
            tracing::warn!(tenant = id, error = %e, "releasing a new tenant given up failed");
        }
        control.registry.close(id);
        let _ = tokio::fs::remove_dir_all(self.tenants_root.join(id)).await;
    }

    /// A tenant being provisioned here at the leader's request, by id.
    pub(super) fn new_here(&self, id: &str) -> Option<TenantInfo> {
        self.new_here
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

/// What this node knows of a tenant it provisions before the control database records it.
fn placeholder(id: &str, slug: &str) -> TenantInfo {
    TenantInfo {
        id: id.to_string(),
        slug: slug.to_string(),
        status: TenantStatus::Active,
        created: String::new(),
        plan: "default".to_string(),
        limits: Default::default(),
    }
}
