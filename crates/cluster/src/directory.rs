//! The routing directory: live nodes, tenant owners and pins, listed once and then kept current by
//! an etcd watch, so a request finds its tenant's owner without asking etcd.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::etcd::{Etcd, Event, KeyValue};
pub use crate::hosts::HostRecord;
use crate::leader::Leader;
use crate::membership::NodeRecord;
use crate::ownership::{Owner, parse_owner};
use crate::{Keys, Result};

/// A tenant whose owner record was deleted: its owner's lease ended (the node died, or left
/// cleanly), so the tenant is free for another node to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freed {
    pub tenant: String,
    /// The record that was deleted.
    pub owner: Owner,
}

/// How many freed tenants wait for a slow listener before the oldest are dropped.
const FREED_BACKLOG: usize = 4096;

/// A live node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub advertise: String,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, NodeInfo>,
    owners: HashMap<String, Owner>,
    /// The hostname mirror: host → tenant.
    hosts: HashMap<String, Arc<HostRecord>>,
    /// The control plane's leader.
    leader: Option<Leader>,
    /// Operators' pins: tenant → node.
    pins: HashMap<String, String>,
}

/// What every node knows of the cluster. Cheap to clone; following stops when the last clone
/// is dropped.
#[derive(Clone)]
pub struct Directory {
    state: Arc<RwLock<State>>,
    revision: tokio::sync::watch::Receiver<i64>,
    /// Owner records the watch saw deleted (their node's lease ended or was revoked).
    freed: tokio::sync::broadcast::Sender<Freed>,
    _follower: Arc<Follower>,
}

struct Follower(tokio::task::JoinHandle<()>);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Directory {
    /// Lists the cluster's nodes and owners, then follows their changes.
    pub async fn follow(etcd: Etcd, keys: Keys) -> Result<Self> {
        let state = Arc::new(RwLock::new(State::default()));
        let revision = sync(&etcd, &keys, &state).await?;
        let (tx, rx) = tokio::sync::watch::channel(revision);
        let (freed, _) = tokio::sync::broadcast::channel(FREED_BACKLOG);
        let task = tokio::spawn(follow(
            etcd,
            keys,
            state.clone(),
            (tx, freed.clone()),
            revision,
        ));
        Ok(Self {
            state,
            revision: rx,
            freed,
            _follower: Arc::new(Follower(task)),
        })
    }

    /// From now on, every tenant whose owner record the watch sees deleted (not those missed
    /// while the watch was broken and the directory listed anew).
    pub fn freed(&self) -> tokio::sync::broadcast::Receiver<Freed> {
        self.freed.subscribe()
    }

    /// The owner of `tenant` and, when that node is live, where to reach it.
    pub fn owner(&self, tenant: &str) -> Option<(Owner, Option<NodeInfo>)> {
        let state = self.read();
        let owner = state.owners.get(tenant)?.clone();
        let node = state.nodes.get(&owner.node).cloned();
        Some((owner, node))
    }

    /// The live nodes, by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self.read().nodes.values().cloned().collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    /// How many tenants each live node owns.
    pub fn loads(&self) -> HashMap<String, usize> {
        let state = self.read();
        let mut loads: HashMap<String, usize> =
            state.nodes.keys().map(|id| (id.clone(), 0)).collect();
        for owner in state.owners.values() {
            if let Some(n) = loads.get_mut(&owner.node) {
                *n += 1;
            }
        }
        loads
    }

    /// Every tenant with an owner, and its owner record.
    pub fn owners(&self) -> HashMap<String, Owner> {
        self.read().owners.clone()
    }

    /// The node `tenant` is pinned to, if an operator pinned it.
    pub fn pin(&self, tenant: &str) -> Option<String> {
        self.read().pins.get(tenant).cloned()
    }

    /// Every pin: tenant → node.
    pub fn pins(&self) -> HashMap<String, String> {
        self.read().pins.clone()
    }

    /// The tenants `node` owns.
    pub fn owned_by(&self, node: &str) -> Vec<String> {
        let mut tenants: Vec<String> = self
            .read()
            .owners
            .iter()
            .filter(|(_, o)| o.node == node)
            .map(|(t, _)| t.clone())
            .collect();
        tenants.sort();
        tenants
    }

    /// The tenant host `name` (lowercase, no port) reaches, from the mirrored hostname directory.
    pub fn host(&self, name: &str) -> Option<Arc<HostRecord>> {
        self.read().hosts.get(name).cloned()
    }

    /// Every mirrored host and its record.
    pub fn hosts(&self) -> HashMap<String, Arc<HostRecord>> {
        self.read().hosts.clone()
    }

    /// The control plane's leader, when one leads.
    pub fn leader(&self) -> Option<Leader> {
        self.read().leader.clone()
    }

    /// Whether some live node advertises an address on `ip`.
    pub fn is_node_address(&self, ip: std::net::IpAddr) -> bool {
        self.read().nodes.values().any(|n| {
            n.advertise
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip() == ip)
        })
    }

    /// The etcd revision the directory reflects.
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// Waits until the directory reflects revision `at` (or later), at most `timeout`; whether
    /// it does.
    pub async fn caught_up(&self, at: i64, timeout: Duration) -> bool {
        let mut rx = self.revision.clone();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= at))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Replaces the state with a fresh listing; the revision it was read at.
async fn sync(etcd: &Etcd, keys: &Keys, state: &RwLock<State>) -> Result<i64> {
    let (kvs, revision) = etcd.list(keys.root()).await?;
    let mut fresh = State::default();
    for kv in kvs {
        apply_put(keys, &mut fresh, kv);
    }
    *state.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    Ok(revision)
}

/// Watches from after `revision`, applying each change; lists again whenever the watch breaks.
async fn follow(
    etcd: Etcd,
    keys: Keys,
    state: Arc<RwLock<State>>,
    (tx, freed): (
        tokio::sync::watch::Sender<i64>,
        tokio::sync::broadcast::Sender<Freed>,
    ),
    mut revision: i64,
) {
    let mut pause = Duration::from_millis(50);
    loop {
        let e = watch_changes(&etcd, &keys, &state, (&tx, &freed), &mut revision).await;
        tracing::warn!(error = %e, "cluster watch broke; listing again");
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        match sync(&etcd, &keys, &state).await {
            Ok(r) => {
                revision = r;
                tx.send_replace(revision);
                pause = Duration::from_millis(50);
            }
            Err(e) => tracing::warn!(error = %e, "cluster listing failed"),
        }
    }
}

/// Applies changes as the watch reports them, until it breaks.
async fn watch_changes(
    etcd: &Etcd,
    keys: &Keys,
    state: &RwLock<State>,
    (tx, freed): (
        &tokio::sync::watch::Sender<i64>,
        &tokio::sync::broadcast::Sender<Freed>,
    ),
    revision: &mut i64,
) -> crate::Error {
    let mut watch = match etcd.watch(keys.root(), *revision + 1).await {
        Ok(w) => w,
        Err(e) => return e,
    };
    loop {
        let events = match watch.next().await {
            Ok(events) => events,
            Err(e) => return e,
        };
        let mut s = state.write().unwrap_or_else(|p| p.into_inner());
        let mut released = Vec::new();
        for event in events {
            match event {
                Event::Put(kv) => {
                    *revision = (*revision).max(kv.mod_revision);
                    apply_put(keys, &mut s, kv);
                }
                Event::Delete { key, mod_revision } => {
                    *revision = (*revision).max(mod_revision);
                    released.extend(apply_delete(keys, &mut s, &key));
                }
            }
        }
        drop(s);
        tx.send_replace(*revision);
        for one in released {
            // Nobody listening is fine: the tenant is claimed on its next request.
            let _ = freed.send(one);
        }
    }
}

fn apply_put(keys: &Keys, state: &mut State, kv: KeyValue) {
    if let Some(id) = kv.key.strip_prefix(&keys.nodes()) {
        match serde_json::from_slice::<NodeRecord>(&kv.value) {
            Ok(record) => {
                state.nodes.insert(
                    id.to_string(),
                    NodeInfo {
                        id: id.to_string(),
                        advertise: record.advertise,
                    },
                );
            }
            Err(e) => tracing::warn!(node = id, error = %e, "unreadable node record"),
        }
    } else if let Some(tenant) = kv.key.strip_prefix(&keys.owners()) {
        match parse_owner(&kv.value) {
            Ok(owner) => {
                state.owners.insert(tenant.to_string(), owner);
            }
            Err(e) => tracing::warn!(tenant, error = %e, "unreadable owner record"),
        }
    } else if let Some(host) = kv.key.strip_prefix(&keys.hosts()) {
        match crate::hosts::parse(&kv.value) {
            Ok(record) => {
                state.hosts.insert(host.to_string(), Arc::new(record));
            }
            Err(e) => tracing::warn!(host, error = %e, "unreadable host record"),
        }
    } else if let Some(tenant) = kv.key.strip_prefix(&keys.pins()) {
        match crate::pins::parse(&kv.value) {
            Ok(pin) => {
                state.pins.insert(tenant.to_string(), pin.node);
            }
            Err(e) => tracing::warn!(tenant, error = %e, "unreadable pin record"),
        }
    } else if kv.key == keys.control() {
        match crate::leader::parse(&kv.value) {
            Ok(leader) => state.leader = Some(leader),
            Err(e) => tracing::warn!(error = %e, "unreadable leader record"),
        }
    }
}

/// Applies a deletion; the tenant it freed, when it was an owner record.
fn apply_delete(keys: &Keys, state: &mut State, key: &str) -> Option<Freed> {
    if let Some(id) = key.strip_prefix(&keys.nodes()) {
        state.nodes.remove(id);
    } else if let Some(tenant) = key.strip_prefix(&keys.owners()) {
        let owner = state.owners.remove(tenant)?;
        return Some(Freed {
            tenant: tenant.to_string(),
            owner,
        });
    } else if let Some(host) = key.strip_prefix(&keys.hosts()) {
        state.hosts.remove(host);
    } else if let Some(tenant) = key.strip_prefix(&keys.pins()) {
        state.pins.remove(tenant);
    } else if key == keys.control() {
        state.leader = None;
    }
    None
}
