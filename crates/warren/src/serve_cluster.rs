//! Cluster mode of `warren serve`: this node's membership, where each request goes (served
//! here, or forwarded to the tenant's owner or the control plane's leader), tenant claims, the
//! leader election and the hostname mirror the leader keeps in etcd.
//!
//! Without the cluster flags none of this runs. With them every request is routed by what the
//! etcd directory (a watched copy in memory) says: tenant hosts resolve through the mirrored
//! `hosts/` records, a tenant is served by the node holding its owner record, and the platform
//! host (operator API, console, signups) by the leader, who also has each new tenant
//! provisioned on its placed node (`provision`, else moved there: `placing`) and moves a share
//! of the tenants to a node that joins (`rebalance`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde::Deserialize;
use warren_api::ApiError;
use warren_cluster::ownership::{self, Claim};
use warren_cluster::{Directory, Etcd, Keys, Member, MemberConfig};
use warren_control_plane::TenantInfo;
use warren_edge::{App, Forwarder};

use crate::cli::ClusterSettings;

mod actions;
pub mod control_db;
mod eager;
mod lead;
mod moves;
mod placing;
mod platform_calls;
mod provision;
mod rebalance;
mod relay;
mod restore;
mod superuser;
pub use actions::Action;
pub use control_db::ShippedControl;
use lead::SyncState;
pub use provision::DirectPlacer;
pub use restore::FromTarget;

/// How long one etcd request may take.
const ETCD_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a peer's resolved advertised name is trusted.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// The answer of a node that must not serve: in PocketBase's envelope.
fn unavailable(message: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}

/// What a moving tenant answers.
pub const MOVING: &str = "The project is moving between servers; try again shortly.";

/// This node in its cluster. Shared by the router and the background tasks.
pub struct ClusterNode {
    member: Member,
    /// The cluster's etcd, and its name (for the state other parts keep there).
    etcd: Etcd,
    name: String,
    directory: Directory,
    forwarder: Forwarder,
    secret: String,
    advertise: String,
    /// `<data dir>/tenants`: a tenant whose directory is here has its data on this node.
    tenants_root: PathBuf,
    /// `<data dir>/cluster/generations`: the generation under which this node last claimed
    /// each tenant, one small file per tenant.
    generations_dir: PathBuf,
    generations: RwLock<HashMap<String, u64>>,
    /// Advertised names resolved to addresses, and when (for peers that advertise a name).
    resolved: RwLock<HashMap<String, (std::time::Instant, Vec<IpAddr>)>>,
    /// The restore from the backup target, once given.
    restorer: RwLock<Option<Arc<dyn Restorer>>>,
    /// The control database shipped to the backup target, once given (without one, a new
    /// leader serves its own control database).
    shipped_control: RwLock<Option<Arc<ShippedControl>>>,
    /// Tenants being restored now (one restore per tenant at a time).
    restoring: Arc<std::sync::Mutex<HashSet<String>>>,
    /// Tenants whose copy here is older than their state in the backup target (another node
    /// owned them since this node last did): restored before they are served.
    stale: Arc<std::sync::Mutex<HashSet<String>>>,
    /// Tenants being handed off from this node to another (planned moves).
    moving: std::sync::Mutex<HashSet<String>>,
    /// This node left the cluster on purpose (a clean shutdown).
    left: std::sync::atomic::AtomicBool,
    /// Serializes mirror syncs (the leader loop and the sync after a platform write).
    syncing: tokio::sync::Mutex<SyncState>,
    /// The usage and backup runs this node records for the leader, once started.
    relay: std::sync::OnceLock<warren_control_plane::relay::Relay>,
    /// New tenants on their way from this leader to their placed node, and the placer's bell.
    placing: std::sync::Mutex<placing::Placing>,
    placing_wake: tokio::sync::Notify,
    /// The tenants this node lately forwarded requests for (claimed at once when freed).
    recent: std::sync::Mutex<eager::Recent>,
    /// New tenants being provisioned here at the leader's request, not recorded yet.
    new_here: std::sync::Mutex<HashMap<String, TenantInfo>>,
}

/// Where a tenant request goes.
pub enum Route {
    /// Serve it here, as this tenant.
    Here(Box<(TenantInfo, Request)>),
    /// Already answered (forwarded, or refused).
    Answered(Response),
}

impl ClusterNode {
    /// Joins the cluster and starts following its directory.
    pub async fn join(
        settings: &ClusterSettings,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Arc<Self>> {
        let etcd = Etcd::new(&settings.etcd, ETCD_TIMEOUT)?;
        let keys = Keys::new(&settings.name)?;
        let secret =
            warren_cluster::secret::shared(&etcd, &keys, settings.secret.as_deref()).await?;
        let member = Member::join(
            etcd.clone(),
            keys.clone(),
            MemberConfig {
                node: settings.node.clone(),
                advertise: settings.advertise.clone(),
                ttl: settings.ttl,
            },
        )
        .await?;
        let directory = Directory::follow(etcd.clone(), keys).await?;
        let forwarder = Forwarder::new(&settings.node)
            .and_then(|f| f.with_secret(&secret))
            .map_err(anyhow::Error::msg)?;
        let generations_dir = data_dir.join("cluster").join("generations");
        std::fs::create_dir_all(&generations_dir)?;
        Ok(Arc::new(Self {
            member,
            etcd,
            name: settings.name.clone(),
            directory,
            forwarder,
            secret,
            advertise: settings.advertise.clone(),
            tenants_root: warren_control_plane::tenants_root(data_dir),
            generations_dir,
            generations: RwLock::new(HashMap::new()),
            resolved: RwLock::new(HashMap::new()),
            restorer: RwLock::new(None),
            shipped_control: RwLock::new(None),
            restoring: Arc::new(std::sync::Mutex::new(HashSet::new())),
            stale: Arc::new(std::sync::Mutex::new(HashSet::new())),
            moving: std::sync::Mutex::new(HashSet::new()),
            left: std::sync::atomic::AtomicBool::new(false),
            syncing: tokio::sync::Mutex::new(SyncState::default()),
            relay: std::sync::OnceLock::new(),
            placing: std::sync::Mutex::new(placing::Placing::default()),
            placing_wake: tokio::sync::Notify::new(),
            recent: std::sync::Mutex::new(eager::Recent::default()),
            new_here: std::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// The cluster's shared ACME state (account, certificates, challenge answers, order
    /// locks), so a name is ordered once cluster-wide and every node serves its certificate.
    pub fn acme_state(&self) -> anyhow::Result<Arc<dyn warren_edge::AcmeState>> {
        let state = warren_edge::EtcdState::new(self.etcd.clone(), &self.name)
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(state))
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        self.member.node()
    }

    /// Leaves the cluster (clean shutdown): the lease is revoked, so this node's tenants and
    /// its lead are free at once.
    pub async fn leave(&self) {
        if self.member.lost() {
            // Nothing to give back: the lease is gone, and the node ends as one that lost it.
            return;
        }
        self.left.store(true, std::sync::atomic::Ordering::Release);
        if let Err(e) = self.member.leave().await {
            tracing::warn!(error = %e, "leaving the cluster failed; the lease will expire");
        }
    }

    /// Whether etcd said this node's lease is gone (not given back by [`ClusterNode::leave`]):
    /// it can never serve again as this member.
    pub fn is_lost(&self) -> bool {
        self.member.lost() && !self.left.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves once this node's lease is gone.
    pub async fn lease_lost(&self) {
        while !self.is_lost() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The generation under which this node claimed `tenant`, if it did (the number every
    /// object the tenant ships must carry).
    pub fn ownership_generation(&self, tenant: &str) -> Option<u64> {
        if let Some(g) = self
            .generations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return Some(*g);
        }
        if !warren_cluster::valid_id(tenant) {
            return None;
        }
        std::fs::read_to_string(self.generations_dir.join(tenant))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Keeps the generation of a claim, in memory and beside the tenant's data.
    async fn record_generation(&self, tenant: &str, generation: u64) {
        let known = self
            .generations
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), generation);
        if known == Some(generation) || !warren_cluster::valid_id(tenant) {
            return;
        }
        if known.is_some() {
            // Claimed anew while possibly open here under the older generation: closed, so
            // its shipper ends that chain and the next open starts one under this generation.
            if let Some(restorer) = self.restorer() {
                restorer.claimed_anew(tenant);
            }
        }
        let path = self.generations_dir.join(tenant);
        let part = self.generations_dir.join(format!("{tenant}.part"));
        let written = async {
            tokio::fs::write(&part, generation.to_string()).await?;
            tokio::fs::rename(&part, &path).await
        };
        if let Err(e) = written.await {
            tracing::warn!(tenant, error = %e, "recording the ownership generation failed");
        }
    }

    /// Refuses every request once this node may no longer write (its lease could expire
    /// before the request is done), and sorts out a forwarding peer's marks: a request marked
    /// by a peer that shows the cluster secret from a live node's address is a peer's, and the
    /// client it names becomes the request's client address; any other request loses the
    /// marks. Whether the request came from a peer.
    pub async fn admit(&self, request: &mut Request) -> Result<bool, Response> {
        if !self.member.can_write() {
            return Err(unavailable(
                "This server lost contact with its cluster; try again shortly.",
            ));
        }
        if !Forwarder::was_forwarded(request) {
            // A client's own secret header travels nowhere.
            Forwarder::strip_marks(request.headers_mut());
            return Ok(false);
        }
        let socket = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let peer = Forwarder::shows_secret(request.headers(), &self.secret)
            && match socket {
                Some(addr) => self.is_peer_address(addr.ip()).await,
                None => false,
            };
        Forwarder::strip_marks(request.headers_mut());
        if !peer {
            return Ok(false);
        }
        // The forwarding node appended its client to X-Forwarded-For: that client is this
        // request's, and the header is left as the client sent it.
        if let Some(client) = pop_forwarded_for(request.headers_mut()) {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
        // Marked again so a peer's request is never forwarded a second time.
        request.headers_mut().insert(
            warren_edge::forward::FORWARDED_BY,
            HeaderValue::from_static("peer"),
        );
        Ok(true)
    }

    /// Whether `ip` is a live node's advertised address (names are resolved, and the answers
    /// kept for [`RESOLVED_FOR`]).
    async fn is_peer_address(&self, ip: IpAddr) -> bool {
        if self.directory.is_node_address(ip) {
            return true;
        }
        for node in self.directory.nodes() {
            if node.advertise.parse::<SocketAddr>().is_ok() {
                continue;
            }
            let cached = self
                .resolved
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&node.advertise)
                .filter(|(at, _)| at.elapsed() < RESOLVED_FOR)
                .map(|(_, ips)| ips.clone());
            let ips = match cached {
                Some(ips) => ips,
                None => {
                    let ips: Vec<IpAddr> = tokio::net::lookup_host(node.advertise.as_str())
                        .await
                        .map(|addrs| addrs.map(|a| a.ip()).collect())
                        .unwrap_or_default();
                    let mut resolved = self.resolved.write().unwrap_or_else(|p| p.into_inner());
                    // Bounded: names of nodes that left are dropped now and then.
                    if resolved.len() > 1024 {
                        resolved.clear();
                    }
                    resolved.insert(
                        node.advertise.clone(),
                        (std::time::Instant::now(), ips.clone()),
                    );
                    ips
                }
            };
            if ips.contains(&ip) {
                return true;
            }
        }
        false
    }

    /// The platform host: served here when this node leads the control plane and serves the
    /// latest control database (the request comes back), else forwarded to the leader (its
    /// answer comes back).
    pub async fn platform(&self, request: Request, from_peer: bool) -> Result<Request, Response> {
        match self.directory.leader() {
            Some(leader) if leader.lease == self.member.lease() => {
                if self.platform_ready() {
                    Ok(request)
                } else {
                    // Still restoring the control database the last leader shipped.
                    Err(unavailable(
                        "The platform's leader is changing; try again shortly.",
                    ))
                }
            }
            Some(_) if from_peer => Err(unavailable(
                "The platform's leader is changing; try again shortly.",
            )),
            Some(leader) => Err(self.forwarder.forward(&leader.advertise, request).await),
            None => Err(unavailable(
                "The platform is choosing its leader; try again shortly.",
            )),
        }
    }

    /// The tenant a host name (lowercase, no port) reaches, from the mirrored directory.
    pub fn resolve(&self, host: &str) -> Option<Result<TenantInfo, Response>> {
        let record = self.directory.host(host)?;
        Some(
            TenantInfo::deserialize(&record.info).map_err(|e| {
                ApiError::internal(format!("host record of {host}: {e}")).into_response()
            }),
        )
    }

    /// Routes a request for tenant `info`: served here when this node owns it (claiming it
    /// when it is free and belongs here), else forwarded to its owner or to the node its pin or
    /// placement gives it.
    pub async fn route(&self, info: TenantInfo, request: Request, from_peer: bool) -> Route {
        let id = info.id.clone();
        let me = self.member.lease();
        if let Some((owner, node)) = self.directory.owner(&id) {
            if owner.lease == me {
                return self.here(info, request).await;
            }
            return match node {
                Some(node) if node.id != self.node() && !from_peer => {
                    self.forwarded_for(&id);
                    Route::Answered(self.forwarder.forward(&node.advertise, request).await)
                }
                // The owner's node is gone (its lease is ending) or is this node's earlier
                // membership, or a peer sent it here on an older view: soon settled.
                _ => Route::Answered(unavailable(MOVING)),
            };
        }
        if self.is_moving_out(&id) {
            // Being handed by this node to the target of a move.
            return Route::Answered(unavailable(MOVING));
        }
        let nodes: Vec<String> = self.directory.nodes().into_iter().map(|n| n.id).collect();
        // A pin to a live node places the tenant there; otherwise (no pin, or its node is
        // not live) placement decides.
        let placed = match self.directory.pin(&id).filter(|p| nodes.contains(p)) {
            Some(pinned) => Some(pinned),
            None => warren_cluster::placement::place(
                &id,
                &nodes,
                &self.directory.loads(),
                warren_cluster::placement::DEFAULT_FACTOR,
            )
            .map(str::to_string),
        };
        let data_here = self.has_data(&id);
        let claim_here = from_peer || data_here || placed.as_deref() == Some(self.node());
        if !claim_here {
            let to = placed.and_then(|p| self.directory.nodes().into_iter().find(|n| n.id == p));
            return match to {
                Some(node) => {
                    Route::Answered(self.forwarder.forward(&node.advertise, request).await)
                }
                None => Route::Answered(unavailable(MOVING)),
            };
        }
        match ownership::claim(&self.member, &id).await {
            Ok(Claim::Granted(owner)) => {
                self.claimed(&id, owner.generation, data_here).await;
                self.here(info, request).await
            }
            Ok(Claim::Held(owner)) => {
                let node = self
                    .directory
                    .nodes()
                    .into_iter()
                    .find(|n| n.id == owner.node && owner.node != self.node());
                match node {
                    Some(node) if !from_peer => {
                        Route::Answered(self.forwarder.forward(&node.advertise, request).await)
                    }
                    _ => Route::Answered(unavailable(MOVING)),
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %id, error = %e, "claiming a tenant failed");
                Route::Answered(unavailable(MOVING))
            }
        }
    }

    /// Records a claim of `id` under `generation` this node was just granted. The copy here
    /// (`data_here`) is the latest only when this node held the generation just before this
    /// one; otherwise another node owned the tenant since, and it is restored over.
    async fn claimed(&self, id: &str, generation: u64, data_here: bool) {
        let previous = self.ownership_generation(id);
        self.record_generation(id, generation).await;
        if data_here && !copy_is_current(previous, generation) && self.restorer().is_some() {
            tracing::info!(
                tenant = %id,
                generation,
                "the copy here is stale: the tenant is restored from the backup target"
            );
            self.stale
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string());
        }
    }

    /// A tenant this node owns: served when its data is here, else fetched first.
    async fn here(&self, info: TenantInfo, request: Request) -> Route {
        if self.is_moving_out(&info.id) {
            return Route::Answered(unavailable(MOVING));
        }
        if let Some((owner, _)) = self.directory.owner(&info.id)
            && owner.lease == self.member.lease()
            && self.ownership_generation(&info.id) != Some(owner.generation)
        {
            // Handed here by a planned move before the target's claim call arrived: the copy
            // here, if any, is checked as a claim's would be.
            let data_here = self.has_data(&info.id);
            self.claimed(&info.id, owner.generation, data_here).await;
        }
        if self.has_data(&info.id) {
            return Route::Here(Box::new((info, request)));
        }
        self.restore_from_backup_target(&info.id);
        Route::Answered(unavailable(MOVING))
    }

    /// Brings the latest state of a tenant this node now owns, but whose data lived on another
    /// node, from the backup target (its last snapshot and every WAL segment shipped since),
    /// through the [`Restorer`] the node was given. The restore runs in the background, one at
    /// a time per tenant; requests meanwhile answer 503 "moving between servers", and the first
    /// one after it finished is served from the restored data.
    ///
    /// Without a restorer (`serve` without a backup target) such a tenant keeps answering
    /// "moving".
    fn restore_from_backup_target(&self, tenant: &str) {
        let Some(generation) = self.ownership_generation(tenant) else {
            return;
        };
        let Some(restorer) = self.restorer() else {
            tracing::warn!(
                tenant,
                generation,
                "this node owns a tenant whose data is on another node, and cannot restore it from the backup target"
            );
            return;
        };
        if !self
            .restoring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string())
        {
            return;
        }
        let restoring = self.restoring.clone();
        let stale = self.stale.clone();
        let tenant = tenant.to_string();
        tokio::spawn(async move {
            match restorer.restore(&tenant, generation).await {
                Ok(true) => {
                    stale
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&tenant);
                    tracing::info!(tenant, generation, "tenant restored from the backup target")
                }
                Ok(false) => {
                    // Nothing newer anywhere: a copy here, however old, is the best there is.
                    stale
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&tenant);
                    tracing::warn!(
                        tenant,
                        generation,
                        "the backup target holds nothing of this tenant"
                    )
                }
                Err(e) => {
                    tracing::warn!(tenant, generation, error = %e, "restoring the tenant from the backup target failed")
                }
            }
            restoring
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&tenant);
        });
    }

    /// Gives the node its control database shipped to the backup target: restored when this
    /// node takes the lead, before it serves the platform (see [`ShippedControl`]).
    pub fn set_shipped_control(&self, control: Arc<ShippedControl>) {
        *self
            .shipped_control
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(control);
    }

    fn shipped_control(&self) -> Option<Arc<ShippedControl>> {
        self.shipped_control
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the control database here is the one to serve the platform from: always
    /// without a shipped control database, else once the lead's restore is done.
    fn platform_ready(&self) -> bool {
        self.shipped_control().is_none_or(|c| c.ready())
    }

    /// Gives the node the restore from the backup target (see [`Restorer`]).
    pub fn set_restorer(&self, restorer: Arc<dyn Restorer>) {
        *self.restorer.write().unwrap_or_else(|p| p.into_inner()) = Some(restorer);
    }

    fn restorer(&self) -> Option<Arc<dyn Restorer>> {
        self.restorer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether tenant `tenant`'s current data is on this node (a stale copy is not).
    fn has_data(&self, tenant: &str) -> bool {
        warren_cluster::valid_id(tenant)
            && self.tenants_root.join(tenant).is_dir()
            && !self
                .stale
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(tenant)
    }
}

/// What a node needs from the backup side to serve a tenant whose data lived on another node.
/// Implemented over the backup target by the shipping and restore code (`crates/backup`,
/// `crates/tenant`) and given to the node with [`ClusterNode::set_restorer`].
pub trait Restorer: Send + Sync + 'static {
    /// Restores tenant `tenant` into this node's tenants directory (`<data dir>/tenants/<id>`,
    /// made whole before it appears there): its latest snapshot and every WAL segment shipped
    /// after it, replaying only objects written under generations up to `generation` (the one
    /// this node claimed the tenant under), so a stale owner's late segments never count.
    /// `Ok(false)` when the target holds nothing of the tenant.
    fn restore<'a>(
        &'a self,
        tenant: &'a str,
        generation: u64,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<bool>>;

    /// Tenant `tenant` was claimed again by this node under a new generation: if it is open
    /// here, it is closed, so its shipper stops extending the older generation's chain (the
    /// next open starts one under the new generation).
    fn claimed_anew(&self, tenant: &str);
}

/// Whether a node's copy of a tenant is its latest state when the node claims it under
/// `generation`, having last held it under `previous` (`None`: never, as for a single node's
/// data directory joining a cluster): only if no other node held a generation in between.
fn copy_is_current(previous: Option<u64>, generation: u64) -> bool {
    generation <= previous.unwrap_or(0) + 1
}

/// Removes the last address of `X-Forwarded-For` (the one a forwarding peer appended) and
/// returns it; the header goes when nothing is left.
fn pop_forwarded_for(headers: &mut axum::http::HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?.to_string();
    let (rest, last) = match value.rsplit_once(',') {
        Some((rest, last)) => (Some(rest.trim_end().to_string()), last.trim()),
        None => (None, value.trim()),
    };
    let ip: IpAddr = last.parse().ok()?;
    match rest.filter(|r| !r.is_empty()) {
        Some(rest) => match HeaderValue::from_str(&rest) {
            Ok(v) => {
                headers.insert("x-forwarded-for", v);
            }
            Err(_) => {
                headers.remove("x-forwarded-for");
            }
        },
        None => {
            headers.remove("x-forwarded-for");
        }
    }
    Some(ip)
}

/// The plain listener's service when HTTPS is on in cluster mode: requests that show the
/// cluster secret (peers forwarding to this node's advertised plain address) go to `platform`,
/// every other request to `plain` (ACME answers and the redirect to HTTPS).
pub fn peers_or(cluster: Arc<ClusterNode>, platform: App, plain: axum::Router) -> App {
    App::new(tower::service_fn(move |request: Request| {
        let answer = if Forwarder::shows_secret(request.headers(), &cluster.secret) {
            crate::app::forward(platform.clone(), request).boxed()
        } else {
            crate::app::forward(plain.clone(), request).boxed()
        };
        answer.map(Ok::<_, std::convert::Infallible>)
    }))
}

/// Whether a platform request may change the control database (then the mirror follows).
pub fn is_write(request: &Request<Body>) -> bool {
    !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_current_only_without_another_owner_in_between() {
        assert!(
            copy_is_current(None, 1),
            "a first claim of a node's own tenant"
        );
        assert!(
            copy_is_current(Some(4), 5),
            "claimed again right after its own generation"
        );
        assert!(
            !copy_is_current(Some(1), 3),
            "another node held generation 2"
        );
        assert!(!copy_is_current(None, 2), "another node held generation 1");
    }

    #[test]
    fn the_peer_appended_client_is_taken_off_forwarded_for() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.7"),
        );
        assert_eq!(
            pop_forwarded_for(&mut headers),
            Some("10.0.0.7".parse().unwrap())
        );
        assert_eq!(headers.get("x-forwarded-for").unwrap(), "203.0.113.9");
        assert_eq!(
            pop_forwarded_for(&mut headers),
            Some("203.0.113.9".parse().unwrap())
        );
        assert!(headers.get("x-forwarded-for").is_none());
        headers.insert("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(pop_forwarded_for(&mut headers), None);
    }
}
