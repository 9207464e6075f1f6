//! New tenants to their placed node: where each is decided (its pin, else placement counting
//! the tenants on their way), and, for the tenants the leader provisioned itself, the background
//! hand-off to that node with a planned move (once the tenant's first snapshot is in the backup
//! target), a few at a time. Tenants provisioned directly on their node: `provision`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use warren_cluster::placement;
use warren_control_plane::ControlPlane;

use super::ClusterNode;

/// Moves of new tenants running at once.
const AT_ONCE: usize = 4;
/// How long a new tenant's first snapshot may take to reach the backup target.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);
/// How often the placer looks for the first snapshot, and for a lost lease while idle.
const POLL: Duration = Duration::from_millis(200);
/// How long a queued tenant may wait for its first claim to show in the directory before it
/// is dropped from the queue (the claim failed, or went to another node).
const CLAIM_GRACE: Duration = Duration::from_secs(10);
/// How often the placer looks again for a queued tenant's claim.
const CLAIM_POLL: Duration = Duration::from_millis(20);
/// Attempts at a move that keeps failing (a busy target, a snapshot not confirmed yet), one
/// second more apart each time; then the tenant stays where it was created.
const ATTEMPTS: u32 = 5;

/// New tenants on their way to their node.
#[derive(Debug, Default)]
pub(super) struct Placing {
    /// The placer runs (`--cluster-place-new`, with a backup target): new tenants are queued.
    on: bool,
    /// New tenants claimed here and not placed yet, oldest first, with when they were claimed.
    waiting: VecDeque<(String, Instant)>,
    /// New tenants being moved, and to which node.
    decided: HashMap<String, String>,
    /// New tenants being provisioned directly on their placed node, and which.
    provisioning: HashMap<String, String>,
}

impl ClusterNode {
    /// Queues tenant `id`, just provisioned here and about to be first claimed, for its placed
    /// node (when the placer runs). It is placed once the directory shows this node's claim.
    pub(super) fn placed_later(&self, id: &str) {
        let mut placing = self.placing.lock().unwrap_or_else(|p| p.into_inner());
        if placing
            .provisioning
            .get(id)
            .is_some_and(|n| n == self.node())
        {
            // Provisioned here because placement gave this node the tenant: it stays.
            placing.provisioning.remove(id);
            return;
        }
        if placing.on && !placing.waiting.iter().any(|(t, _)| t == id) {
            placing.waiting.push_back((id.to_string(), Instant::now()));
            drop(placing);
            self.placing_wake.notify_one();
        }
    }

    /// Takes tenant `id` off the queue: its first claim was not this node's.
    pub(super) fn not_placed(&self, id: &str) {
        self.placing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .retain(|(t, _)| t != id);
    }

    /// While this node leads, moves each new tenant to the node placement gives it, in the
    /// order they were created, [`AT_ONCE`] at a time. Runs until the process ends (started
    /// with `--cluster-place-new=true`); without a backup target nothing can move, and
    /// new tenants stay where they were created.
    pub async fn run_placer(self: Arc<Self>, control: ControlPlane) {
        if control.backups.target().is_none() {
            return;
        }
        self.placing.lock().unwrap_or_else(|p| p.into_inner()).on = true;
        let permits = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
        loop {
            if self.member.lost() {
                return;
            }
            let Some((id, since)) = self.next_waiting() else {
                let _ = tokio::time::timeout(POLL, self.placing_wake.notified()).await;
                continue;
            };
            match self.directory.owner(&id) {
                Some((owner, _)) if owner.lease == self.member.lease() => {}
                owner => {
                    if owner.is_some() || since.elapsed() >= CLAIM_GRACE {
                        self.not_placed(&id);
                    } else {
                        tokio::time::sleep(CLAIM_POLL).await;
                    }
                    continue;
                }
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            // Decided only now, so the loads count every earlier tenant where it is going.
            let Some(to) = self.decide(&id) else {
                continue;
            };
            let node = self.clone();
            let control = control.clone();
            tokio::spawn(async move {
                node.place_new(&control, &id, &to, since).await;
                node.placing
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .decided
                    .remove(&id);
                drop(permit);
            });
        }
    }

    /// The oldest new tenant still waiting, if any (left waiting: it is decided next).
    fn next_waiting(&self) -> Option<(String, Instant)> {
        self.placing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .front()
            .cloned()
    }

    /// The live nodes' ids, and each owned tenant's node.
    fn live_and_owners(&self) -> (Vec<String>, HashMap<String, String>) {
        let live = self.directory.nodes().into_iter().map(|n| n.id).collect();
        let owners = self
            .directory
            .owners()
            .into_iter()
            .map(|(t, o)| (t, o.node))
            .collect();
        (live, owners)
    }

    /// Takes tenant `id` (claimed here) off the queue and decides where it goes: `None` when
    /// it stays here (placed here, no live node, or this node no longer leads).
    fn decide(&self, id: &str) -> Option<String> {
        let (live, owners) = self.live_and_owners();
        let pin = self.directory.pin(id);
        let mut placing = self.placing.lock().unwrap_or_else(|p| p.into_inner());
        placing.waiting.retain(|(t, _)| t != id);
        if !self.member.can_write() || !self.leads_now() {
            return None;
        }
        let to = placing.destination(id, &live, &owners, pin)?;
        if to == self.node() {
            return None;
        }
        placing.decided.insert(id.to_string(), to.clone());
        Some(to)
    }

    /// The node new tenant `id` (not provisioned yet) is to be provisioned on, counted there
    /// until [`ClusterNode::landed`] (or, this node, until its first claim here); `None` when
    /// new tenants are not placed (or this node cannot write, or no longer leads).
    pub(super) fn placed_directly(&self, id: &str) -> Option<String> {
        let (live, owners) = self.live_and_owners();
        let mut placing = self.placing.lock().unwrap_or_else(|p| p.into_inner());
        if !placing.on || !self.member.can_write() || !self.leads_now() {
            return None;
        }
        let to = placing.destination(id, &live, &owners, None)?;
        placing.provisioning.insert(id.to_string(), to.clone());
        Some(to)
    }

    /// New tenant `id` is no longer on its way to a node (its owner record shows it there, or
    /// provisioning it there failed).
    pub(super) fn landed(&self, id: &str) {
        self.placing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .provisioning
            .remove(id);
    }

    /// Moves new tenant `id` (claimed at `since`) to node `to`: opened here so its shipper
    /// stores the first snapshot, then handed over once that is in the backup target.
    async fn place_new(&self, control: &ControlPlane, id: &str, to: &str, since: Instant) {
        let Some(target) = control.backups.target() else {
            return;
        };
        if let Err(e) = control.registry.get(id).await {
            tracing::warn!(tenant = id, error = %e, "opening a new tenant to place it failed");
            return;
        }
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        loop {
            match warren_backup::latest::newest_chain(target, id).await {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(None) => {
                    tracing::warn!(
                        tenant = id,
                        "a new tenant's first snapshot did not reach the backup target: it stays here"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(tenant = id, error = %e, "looking for a new tenant's first snapshot failed");
                    tokio::time::sleep(POLL).await;
                    if Instant::now() >= deadline {
                        return;
                    }
                }
            }
        }
        for attempt in 1..=ATTEMPTS {
            if !self.member.can_write() || !self.leads_now() {
                return;
            }
            let answer = self.move_tenant(control, id, to).await;
            if answer.status() == StatusCode::OK {
                tracing::info!(tenant = id, to, took = ?since.elapsed(), "new tenant placed");
                return;
            }
            tracing::info!(tenant = id, to, attempt, status = %answer.status(), "placing a new tenant: the move failed");
            if answer.status() == StatusCode::BAD_REQUEST {
                // The target left: the tenant stays here.
                return;
            }
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        tracing::warn!(
            tenant = id,
            to,
            "placing a new tenant failed: it stays where it was created"
        );
    }
}

impl Placing {
    /// [`destination`] of `tenant` with the tenants on their way now.
    fn destination(
        &self,
        tenant: &str,
        live: &[String],
        owners: &HashMap<String, String>,
        pin: Option<String>,
    ) -> Option<String> {
        let waiting: HashSet<String> = self.waiting.iter().map(|(t, _)| t.clone()).collect();
        let mut on_the_way = self.decided.clone();
        on_the_way.extend(self.provisioning.clone());
        destination(tenant, live, owners, &on_the_way, &waiting, pin)
    }
}

/// Where new tenant `tenant` goes among the `live` nodes: the node it is pinned to (`pin`)
/// when that one is live, else [`placement::place`] with each node's load as it will be once
/// the tenants on their way (`on_the_way`: tenant → node, moving or being provisioned there)
/// have landed; tenants still `waiting` for their place, and `tenant` itself, are not counted.
/// `owners`: tenant → owning node.
fn destination(
    tenant: &str,
    live: &[String],
    owners: &HashMap<String, String>,
    on_the_way: &HashMap<String, String>,
    waiting: &HashSet<String>,
    pin: Option<String>,
) -> Option<String> {
    if let Some(pinned) = pin.filter(|p| live.contains(p)) {
        return Some(pinned);
    }
    let mut loads: HashMap<String, usize> = live.iter().map(|n| (n.clone(), 0)).collect();
    let unowned = on_the_way.keys().filter(|t| !owners.contains_key(*t));
    for t in owners.keys().chain(unowned) {
        if t == tenant || waiting.contains(t) {
            continue;
        }
        let Some(node) = on_the_way.get(t).or_else(|| owners.get(t)) else {
            continue;
        };
        if let Some(load) = loads.get_mut(node) {
            *load += 1;
        }
    }
    placement::place(tenant, live, &loads, placement::DEFAULT_FACTOR).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        ["n1", "n2", "n3"].map(String::from).to_vec()
    }

    #[test]
    fn tenants_placed_one_by_one_land_as_placement_fills_the_nodes() {
        // Every tenant created on n1, then decided in order while the earlier ones are still
        // moving: the same answers as placing them one by one over empty nodes.
        let live = nodes();
        let mut owners = HashMap::new();
        let mut decided = HashMap::new();
        let mut loads: HashMap<String, usize> = HashMap::new();
        let ids: Vec<String> = (0..30).map(|i| format!("t{i}")).collect();
        for id in &ids {
            owners.insert(id.clone(), "n1".to_string());
        }
        for (i, id) in ids.iter().enumerate() {
            let waiting: HashSet<String> = ids[i + 1..].iter().cloned().collect();
            let to = destination(id, &live, &owners, &decided, &waiting, None).unwrap();
            let expected = placement::place(id, &live, &loads, placement::DEFAULT_FACTOR)
                .unwrap()
                .to_string();
            assert_eq!(to, expected, "{id}");
            *loads.entry(to.clone()).or_default() += 1;
            decided.insert(id.clone(), to);
        }
        let most = loads.values().max().copied().unwrap_or(0);
        assert!(most <= 13, "{loads:?}");
    }

    #[test]
    fn tenants_being_provisioned_elsewhere_count_where_they_go() {
        // No owner yet (their node has not claimed them): decided one after another while the
        // earlier ones are still being provisioned, they spread as if placed one by one.
        let live = nodes();
        let (owners, waiting) = (HashMap::new(), HashSet::new());
        let mut on_the_way = HashMap::new();
        let mut loads: HashMap<String, usize> = HashMap::new();
        for i in 0..30 {
            let id = format!("p{i}");
            let to = destination(&id, &live, &owners, &on_the_way, &waiting, None).unwrap();
            let expected = placement::place(&id, &live, &loads, placement::DEFAULT_FACTOR)
                .unwrap()
                .to_string();
            assert_eq!(to, expected, "{id}");
            *loads.entry(to.clone()).or_default() += 1;
            on_the_way.insert(id, to);
        }
        assert_eq!(loads.len(), 3, "{loads:?}");
        assert!(loads.values().all(|n| *n <= 13), "{loads:?}");
    }

    #[test]
    fn a_pin_to_a_live_node_wins_and_to_a_dead_one_is_ignored() {
        let live = nodes();
        let none = HashMap::new();
        let waiting = HashSet::new();
        assert_eq!(
            destination("t", &live, &none, &none, &waiting, Some("n2".into())).as_deref(),
            Some("n2")
        );
        let placed = destination("t", &live, &none, &none, &waiting, Some("n9".into()));
        assert!(placed.is_some_and(|n| live.contains(&n)));
        assert_eq!(destination("t", &[], &none, &none, &waiting, None), None);
    }
}
