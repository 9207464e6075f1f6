//! Rebalancing on join: while this node leads, a node that joined (and stayed live a while)
//! receives the tenants placement now gives it, by planned moves a few at a time. Nothing
//! moves when a node leaves: its tenants fail over on their next request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures_util::StreamExt;
use warren_cluster::placement;
use warren_control_plane::ControlPlane;

use super::ClusterNode;

/// How often the rebalancer looks at the live nodes.
const TICK: Duration = Duration::from_millis(250);
/// Moves running at once.
const AT_ONCE: usize = 4;
/// The shortest time the live nodes must stay unchanged before tenants move (the node's lease
/// TTL when longer), so a node that flaps is not sent tenants it may drop again.
const MIN_SETTLE: Duration = Duration::from_secs(3);
/// Further passes for a join some of whose moves failed (a tenant without a backup yet, a
/// target busy), each after the settle time.
const RETRIES: usize = 2;

/// What the rebalancer remembers of the live nodes while this node leads.
#[derive(Debug, Default)]
struct Joins {
    /// The live nodes as last seen (`None` before the first look of a lead).
    known: Option<HashSet<String>>,
    /// Nodes that joined since and have not received their share yet.
    joined: HashSet<String>,
    /// When the live nodes last changed (or a pass was put off).
    changed: Option<Instant>,
    /// Passes put off since the live nodes last changed.
    retries: usize,
}

impl Joins {
    /// Takes in the live nodes seen at `now`; the nodes that joined and should receive their
    /// share now: the live nodes have not changed for `settle`. A node that left is no longer
    /// one (it gets its share when it joins again and stays).
    fn observe(&mut self, live: HashSet<String>, now: Instant, settle: Duration) -> Vec<String> {
        let Some(known) = &self.known else {
            // The first look of a lead: nodes live now are not joining.
            self.known = Some(live);
            return Vec::new();
        };
        if *known != live {
            self.joined.extend(live.difference(known).cloned());
            self.joined.retain(|n| live.contains(n));
            self.changed = Some(now);
            self.retries = 0;
            self.known = Some(live);
        }
        let settled = self
            .changed
            .is_none_or(|at| now.saturating_duration_since(at) >= settle);
        if !settled {
            return Vec::new();
        }
        let mut ready: Vec<String> = self.joined.drain().collect();
        ready.sort();
        ready
    }

    /// Puts `nodes` back for another pass once the settle time has passed again (some of
    /// their moves failed), at most [`RETRIES`] times per change of the live nodes; whether
    /// it did.
    fn retry(&mut self, nodes: &[String], now: Instant) -> bool {
        if self.retries >= RETRIES {
            return false;
        }
        self.retries += 1;
        self.joined.extend(nodes.iter().cloned());
        self.changed = Some(now);
        true
    }
}

/// How one planned move of a rebalance ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Moved,
    Failed,
    /// Not started: this node stopped leading, or the target left.
    Skipped,
}

impl ClusterNode {
    /// Moves a share of the tenants to each node that joins, while this node leads. Runs until
    /// the process ends (started only with `--cluster-rebalance`, the default).
    pub async fn run_rebalancer(self: Arc<Self>, control: ControlPlane) {
        let settle = self.member.ttl().max(MIN_SETTLE);
        let mut joins = Joins::default();
        loop {
            tokio::time::sleep(TICK).await;
            if self.member.lost() {
                return;
            }
            if !self.member.can_write() || !self.leads_now() {
                joins = Joins::default();
                continue;
            }
            let live: HashSet<String> = self.directory.nodes().into_iter().map(|n| n.id).collect();
            let ready = joins.observe(live, Instant::now(), settle);
            if ready.is_empty() {
                continue;
            }
            let failed = self.rebalance_onto(&control, &ready).await;
            if failed > 0 && joins.retry(&ready, Instant::now()) {
                tracing::info!(joined = ?ready, failed, "rebalancing: failed moves are tried again");
            }
        }
    }

    /// Moves to the nodes `joined` every tenant owned by another live node that placement
    /// (pins first) now puts on one of them, [`AT_ONCE`] at a time; a move whose target left
    /// meanwhile, or once this node no longer leads, does not start. The count of moves that
    /// failed.
    async fn rebalance_onto(&self, control: &ControlPlane, joined: &[String]) -> usize {
        let live: Vec<String> = self.directory.nodes().into_iter().map(|n| n.id).collect();
        let owners = self.directory.owners();
        let tenants: Vec<String> = owners.keys().cloned().collect();
        let plan = placement::assign(
            &tenants,
            &live,
            &self.directory.pins(),
            placement::DEFAULT_FACTOR,
        );
        let mut moves: Vec<(String, String)> = owners
            .into_iter()
            .filter_map(|(tenant, owner)| {
                let to = plan.get(&tenant)?;
                (joined.contains(to) && *to != owner.node && live.contains(&owner.node))
                    .then(|| (tenant, to.clone()))
            })
            .collect();
        moves.sort();
        if moves.is_empty() {
            tracing::info!(joined = ?joined, "rebalancing: nothing to move");
            return 0;
        }
        let started = Instant::now();
        tracing::info!(joined = ?joined, tenants = moves.len(), "rebalancing: moving tenants to joined nodes");
        let outcomes: Vec<Outcome> = futures_util::stream::iter(moves)
            .map(|(tenant, to)| async move {
                let target_live = self.directory.nodes().iter().any(|n| n.id == to);
                if !target_live || !self.member.can_write() || !self.leads_now() {
                    return Outcome::Skipped;
                }
                let answer = self.move_tenant(control, &tenant, &to).await;
                if answer.status() == StatusCode::OK {
                    Outcome::Moved
                } else {
                    tracing::warn!(tenant, to, status = %answer.status(), "rebalancing: a move failed");
                    Outcome::Failed
                }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
        let failed = count(Outcome::Failed);
        tracing::info!(
            moved = count(Outcome::Moved),
            failed,
            skipped = count(Outcome::Skipped),
            took = ?started.elapsed(),
            "rebalancing done"
        );
        failed
    }

    /// Whether this membership leads the control plane now.
    pub(super) fn leads_now(&self) -> bool {
        self.directory
            .leader()
            .is_some_and(|l| l.lease == self.member.lease())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    const SETTLE: Duration = Duration::from_secs(3);

    #[test]
    fn a_joined_node_is_ready_once_the_nodes_settle() {
        let t0 = Instant::now();
        let mut joins = Joins::default();
        assert!(joins.observe(set(&["n1", "n2"]), t0, SETTLE).is_empty());
        let t1 = t0 + Duration::from_secs(1);
        assert!(
            joins
                .observe(set(&["n1", "n2", "n3"]), t1, SETTLE)
                .is_empty()
        );
        let t2 = t1 + Duration::from_secs(2);
        assert!(
            joins
                .observe(set(&["n1", "n2", "n3"]), t2, SETTLE)
                .is_empty()
        );
        let t3 = t1 + SETTLE;
        assert_eq!(joins.observe(set(&["n1", "n2", "n3"]), t3, SETTLE), ["n3"]);
        // Once only.
        assert!(
            joins
                .observe(set(&["n1", "n2", "n3"]), t3 + SETTLE, SETTLE)
                .is_empty()
        );
    }

    #[test]
    fn failed_moves_get_a_bounded_number_of_further_passes() {
        let t0 = Instant::now();
        let mut joins = Joins::default();
        joins.observe(set(&["n1"]), t0, SETTLE);
        joins.observe(set(&["n1", "n2"]), t0, SETTLE);
        let mut now = t0 + SETTLE;
        assert_eq!(joins.observe(set(&["n1", "n2"]), now, SETTLE), ["n2"]);
        for _ in 0..RETRIES {
            assert!(joins.retry(&["n2".to_string()], now));
            assert!(joins.observe(set(&["n1", "n2"]), now, SETTLE).is_empty());
            now += SETTLE;
            assert_eq!(joins.observe(set(&["n1", "n2"]), now, SETTLE), ["n2"]);
        }
        assert!(!joins.retry(&["n2".to_string()], now));
        assert!(
            joins
                .observe(set(&["n1", "n2"]), now + SETTLE, SETTLE)
                .is_empty()
        );
    }

    #[test]
    fn a_flapping_node_gets_nothing_and_a_death_moves_nothing() {
        let t0 = Instant::now();
        let mut joins = Joins::default();
        joins.observe(set(&["n1", "n2"]), t0, SETTLE);
        joins.observe(
            set(&["n1", "n2", "n3"]),
            t0 + Duration::from_secs(1),
            SETTLE,
        );
        // n3 leaves before the nodes settle: it is no longer a joiner.
        joins.observe(set(&["n1", "n2"]), t0 + Duration::from_secs(2), SETTLE);
        assert!(
            joins
                .observe(set(&["n1", "n2"]), t0 + Duration::from_secs(10), SETTLE)
                .is_empty()
        );
        // A node dying is not a join.
        joins.observe(set(&["n1"]), t0 + Duration::from_secs(11), SETTLE);
        assert!(
            joins
                .observe(set(&["n1"]), t0 + Duration::from_secs(20), SETTLE)
                .is_empty()
        );
        // n2 back, then n3 joins: the settle counts from the last change, both get a share.
        joins.observe(set(&["n1", "n2"]), t0 + Duration::from_secs(21), SETTLE);
        joins.observe(
            set(&["n1", "n2", "n3"]),
            t0 + Duration::from_secs(23),
            SETTLE,
        );
        assert!(
            joins
                .observe(
                    set(&["n1", "n2", "n3"]),
                    t0 + Duration::from_secs(25),
                    SETTLE
                )
                .is_empty()
        );
        assert_eq!(
            joins.observe(
                set(&["n1", "n2", "n3"]),
                t0 + Duration::from_secs(26),
                SETTLE
            ),
            ["n2", "n3"]
        );
    }
}
